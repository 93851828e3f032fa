//! Bearer-token check for the admin API. (The worker RPC takes a session credential instead, so
//! that a worker never sends the token itself: see `session`.)

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The cluster token, if one is configured. Compared in constant time so that response timing
/// leaks nothing about how much of a guess was right (only whether its length was).
#[derive(Clone, Default)]
pub struct Token(Option<std::sync::Arc<str>>);

impl Token {
    pub fn new(token: Option<String>) -> Self {
        Token(token.filter(|t| !t.is_empty()).map(Into::into))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The token itself, for keying the handshake's proofs; never to be sent or logged.
    pub(crate) fn secret(&self) -> Option<&str> {
        self.0.as_deref()
    }

    fn accepts(&self, presented: Option<&str>) -> bool {
        match (&self.0, presented) {
            (None, _) => true,
            (Some(expected), Some(presented)) => {
                bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
            }
            (Some(_), None) => false,
        }
    }
}

pub async fn require_token(State(token): State<Token>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials);
    if token.accepts(presented) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme name is case-insensitive
/// (RFC 9110, section 11.1).
fn bearer_credentials(header: &str) -> Option<&str> {
    credentials_of(header, "bearer")
}

/// The credentials of an `Authorization` header if its scheme is `scheme` (any case).
pub(crate) fn credentials_of<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (presented, credentials) = header.split_once(' ')?;
    presented
        .eq_ignore_ascii_case(scheme)
        .then_some(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly() {
        let token = Token::new(Some("s3cret".into()));
        assert!(token.accepts(Some("s3cret")));
        assert!(!token.accepts(Some("s3cre")));
        assert!(!token.accepts(Some("s3cret2")));
        assert!(!token.accepts(None));
        assert!(Token::new(None).accepts(None));
        assert!(
            Token::new(Some(String::new())).accepts(None),
            "an empty token is no token"
        );
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_is_not() {
        assert_eq!(bearer_credentials("Bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_credentials("bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_credentials("BEARER s3cret"), Some("s3cret"));
        assert_eq!(bearer_credentials("Basic s3cret"), None);
        assert_eq!(bearer_credentials("s3cret"), None);
        let token = Token::new(Some("s3cret".into()));
        assert!(!token.accepts(bearer_credentials("Bearer S3CRET")));
        assert!(!token.accepts(bearer_credentials("Bearer  s3cret")));
    }
}
