//! Who may call what: scoped tokens for the admin API and `/metrics`, and the worker secrets that
//! key the RPC handshake (see `session`; the worker RPC never takes a token itself).
//!
//! Scopes, each a separate secret (`--token-read`, `--token-operator`, `--token-admin`,
//! `--token-worker`, each repeatable so that an old and a new token are valid at once while
//! rotating):
//! - `read`: look (console, list, show, members, `/metrics`);
//! - `operator`: act on work (run, pause, resume, retry, cancel, backfill), and read;
//! - `admin`: change jobs (create, update, apply, delete), and everything an operator may;
//! - `worker`: the worker RPC only — a worker token opens nothing of the admin API.
//!
//! `--token` is one token for every scope (as before scopes existed). With no token at all the
//! API is open (loopback development). A request without a known token gets 401; a known token
//! without the scope a route needs gets 403 naming that scope. Tokens are compared in constant
//! time, each against every configured token, so timing says nothing about which one matched.
//! This module must never log or send a token.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Read,
    Operator,
    Admin,
    Worker,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operator => "operator",
            Scope::Admin => "admin",
            Scope::Worker => "worker",
        }
    }

    /// The scopes a token given for `self` holds: each API scope includes the ones below it.
    fn grants(self) -> &'static [Scope] {
        match self {
            Scope::Read => &[Scope::Read],
            Scope::Operator => &[Scope::Read, Scope::Operator],
            Scope::Admin => &[Scope::Read, Scope::Operator, Scope::Admin],
            Scope::Worker => &[Scope::Worker],
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tokens a server accepts, as given on its command line.
#[derive(Debug, Clone, Default)]
pub struct TokenSettings {
    /// `--token`: every scope.
    pub all: Option<String>,
    pub read: Vec<String>,
    pub operator: Vec<String>,
    pub admin: Vec<String>,
    pub worker: Vec<String>,
}

impl TokenSettings {
    /// Whether any token is configured (then the API is closed to callers without one).
    pub fn any(&self) -> bool {
        self.entries().next().is_some()
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &'static [Scope])> {
        const ALL: &[Scope] = &[Scope::Read, Scope::Operator, Scope::Admin, Scope::Worker];
        let all = self.all.iter().map(|t| (t.as_str(), ALL));
        let scoped = [
            (&self.read, Scope::Read),
            (&self.operator, Scope::Operator),
            (&self.admin, Scope::Admin),
            (&self.worker, Scope::Worker),
        ]
        .into_iter()
        .flat_map(|(tokens, scope)| tokens.iter().map(move |t| (t.as_str(), scope.grants())));
        all.chain(scoped).filter(|(t, _)| !t.is_empty())
    }

    /// A token that keys the worker handshake (`--token`, else the first `--token-worker`),
    /// for workers embedded in the server's process.
    pub fn worker_token(&self) -> Option<String> {
        self.all
            .iter()
            .chain(&self.worker)
            .find(|t| !t.is_empty())
            .cloned()
    }

    /// The token this server sends to the other servers of its group (`--token`, else the first
    /// `--token-admin`): the group's wire needs the admin scope on every server.
    pub fn server_token(&self) -> Option<String> {
        self.all
            .iter()
            .chain(&self.admin)
            .find(|t| !t.is_empty())
            .cloned()
    }

    /// Refuses a token given for two scopes (it would hold the wider one, surprisingly) and
    /// tokens too short to resist guessing offline.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut seen: Vec<&str> = Vec::new();
        for (token, _) in self.entries() {
            if seen.contains(&token) {
                anyhow::bail!(
                    "the same token is given for two scopes (--token, --token-read, \
                     --token-operator, --token-admin, --token-worker): give each scope its own \
                     secret"
                );
            }
            seen.push(token);
        }
        Ok(())
    }
}

/// The accepted tokens with their scopes, shared by the API's middleware.
#[derive(Clone, Default)]
pub struct Tokens(Arc<Vec<(Box<str>, &'static [Scope])>>);

impl Tokens {
    pub fn new(settings: &TokenSettings) -> Tokens {
        Tokens(Arc::new(
            settings
                .entries()
                .map(|(token, scopes)| (token.into(), scopes))
                .collect(),
        ))
    }

    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }

    /// The secrets that key the worker handshake (the worker tokens and `--token`); never to be
    /// sent or logged.
    pub(crate) fn worker_secrets(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, scopes)| scopes.contains(&Scope::Worker))
            .map(|(token, _)| &**token)
            .collect()
    }

    /// The scopes of the presented token; `None` if it is no token of ours. Every configured
    /// token is compared, in constant time, whatever matched before.
    fn scopes_of(&self, presented: &str) -> Option<&'static [Scope]> {
        let mut found = None;
        for (token, scopes) in self.0.iter() {
            if bool::from(token.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(*scopes);
            }
        }
        found
    }

    /// Whether `presented` may call a route that needs `needed`.
    fn check(&self, presented: Option<&str>, needed: Scope) -> Result<(), ApiError> {
        if !self.is_set() {
            return Ok(());
        }
        let Some(scopes) = presented.and_then(|p| self.scopes_of(p)) else {
            return Err(ApiError::Unauthorized);
        };
        if scopes.contains(&needed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                needed: needed.as_str(),
                held: scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
}

/// The scope a route needs, by method and route pattern (as routed, e.g. `/api/v1/jobs/{key}`).
/// One table, so that a new route's scope is decided in one place.
pub fn scope_of(method: &Method, route: &str) -> Scope {
    let route = route.strip_prefix("/api/v1").unwrap_or(route);
    let read = *method == Method::GET || *method == Method::HEAD;
    match route {
        "/metrics" => Scope::Read,
        "/members" | "/cluster" | "/instances" | "/instances/{id}" | "/jobs/{key}/next"
        | "/queue" => {
            if read {
                Scope::Read
            } else {
                Scope::Admin
            }
        }
        "/jobs/{key}/pause"
        | "/jobs/{key}/resume"
        | "/jobs/{key}/run"
        | "/jobs/{key}/backfill"
        | "/instances/{id}/cancel"
        | "/instances/{id}/retry" => Scope::Operator,
        "/jobs" | "/jobs/{key}" => {
            if read {
                Scope::Read
            } else {
                Scope::Admin
            }
        }
        // A route missing from this table: reading needs the least, anything else the most.
        // (An unknown path ends in 404 once its caller may try it.)
        _ if read => Scope::Read,
        _ => Scope::Admin,
    }
}

/// Middleware of the admin API and `/metrics` (as a route layer, so the route is known).
pub async fn require_scope(State(tokens): State<Tokens>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    let needed = scope_of(request.method(), &route);
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials);
    match tokens.check(presented, needed) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
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

    fn tokens(settings: TokenSettings) -> Tokens {
        Tokens::new(&settings)
    }

    #[test]
    fn tokens_match_exactly() {
        let token = tokens(TokenSettings {
            all: Some("s3cret".into()),
            ..Default::default()
        });
        assert!(token.check(Some("s3cret"), Scope::Admin).is_ok());
        assert!(token.check(Some("s3cre"), Scope::Read).is_err());
        assert!(token.check(Some("s3cret2"), Scope::Read).is_err());
        assert!(token.check(None, Scope::Read).is_err());
        assert!(
            tokens(TokenSettings::default())
                .check(None, Scope::Admin)
                .is_ok()
        );
        assert!(
            tokens(TokenSettings {
                all: Some(String::new()),
                ..Default::default()
            })
            .check(None, Scope::Admin)
            .is_ok(),
            "an empty token is no token"
        );
    }

    #[test]
    fn each_scope_holds_what_it_should_and_two_tokens_of_a_scope_both_work() {
        let t = tokens(TokenSettings {
            read: vec!["r1".into(), "r2".into()],
            operator: vec!["o".into()],
            admin: vec!["a".into()],
            worker: vec!["w".into()],
            ..Default::default()
        });
        let may = |token: &str, scope| t.check(Some(token), scope).is_ok();
        for reader in ["r1", "r2"] {
            assert!(may(reader, Scope::Read));
            assert!(!may(reader, Scope::Operator));
        }
        assert!(may("o", Scope::Read) && may("o", Scope::Operator) && !may("o", Scope::Admin));
        assert!(may("a", Scope::Admin) && !may("a", Scope::Worker));
        assert!(may("w", Scope::Worker) && !may("w", Scope::Read));
        assert_eq!(t.worker_secrets(), vec!["w"]);
        match t.check(Some("r1"), Scope::Admin) {
            Err(ApiError::Forbidden { needed, held }) => {
                assert_eq!((needed, held.as_str()), ("admin", "read"));
            }
            other => panic!("expected a 403, got {other:?}"),
        }
    }

    #[test]
    fn a_token_given_for_two_scopes_is_refused() {
        let settings = TokenSettings {
            read: vec!["same".into()],
            admin: vec!["same".into()],
            ..Default::default()
        };
        assert!(settings.validate().is_err());
    }

    #[test]
    fn routes_need_the_scope_of_what_they_do() {
        assert_eq!(scope_of(&Method::GET, "/api/v1/jobs"), Scope::Read);
        assert_eq!(scope_of(&Method::POST, "/api/v1/jobs"), Scope::Admin);
        assert_eq!(scope_of(&Method::PUT, "/api/v1/jobs"), Scope::Admin);
        assert_eq!(
            scope_of(&Method::DELETE, "/api/v1/jobs/{key}"),
            Scope::Admin
        );
        assert_eq!(
            scope_of(&Method::POST, "/api/v1/jobs/{key}/run"),
            Scope::Operator
        );
        assert_eq!(scope_of(&Method::GET, "/metrics"), Scope::Read);
        assert_eq!(scope_of(&Method::GET, "/api/v1/queue"), Scope::Read);
        assert_eq!(scope_of(&Method::GET, "/api/v1/something-new"), Scope::Read);
        assert_eq!(
            scope_of(&Method::POST, "/api/v1/something-new"),
            Scope::Admin
        );
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_is_not() {
        assert_eq!(bearer_credentials("Bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_credentials("bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_credentials("BEARER s3cret"), Some("s3cret"));
        assert_eq!(bearer_credentials("Basic s3cret"), None);
        assert_eq!(bearer_credentials("s3cret"), None);
        let token = tokens(TokenSettings {
            all: Some("s3cret".into()),
            ..Default::default()
        });
        assert!(
            token
                .check(bearer_credentials("Bearer S3CRET"), Scope::Read)
                .is_err()
        );
        assert!(
            token
                .check(bearer_credentials("Bearer  s3cret"), Scope::Read)
                .is_err()
        );
    }
}
