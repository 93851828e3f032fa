//! Path and query extractors whose rejections are [`ApiError`]s naming the parameter, instead of
//! axum's plain-text 400s: every refusal of the API is JSON with a field and a reason.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, RawPathParams};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `Path<T>` with JSON errors naming the path parameter.
pub struct PathArg<T>(pub T);

/// `Query<T>` with JSON errors naming the query parameter.
pub struct QueryArgs<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathArg<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathArg(value)),
            Err(rejection) => {
                // A lone parameter's parse error does not say its name; the route does.
                let only = RawPathParams::from_request_parts(parts, state)
                    .await
                    .ok()
                    .and_then(|params| {
                        let names: Vec<String> =
                            params.iter().map(|(k, _)| k.to_string()).collect();
                        (names.len() == 1).then(|| names[0].clone())
                    });
                Err(describe_path(rejection, only))
            }
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(QueryArgs(value)),
            Err(rejection) => Err(describe_query(rejection)),
        }
    }
}

fn describe_path(rejection: PathRejection, only_param: Option<String>) -> ApiError {
    use axum::extract::path::ErrorKind;
    match rejection {
        PathRejection::FailedToDeserializePathParams(error) => {
            let field = match error.kind() {
                ErrorKind::ParseErrorAtKey { key, .. }
                | ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                _ => only_param.unwrap_or_else(|| "path".to_string()),
            };
            ApiError::invalid(field, error.body_text())
        }
        other => ApiError::invalid("path", other.body_text()),
    }
}

fn describe_query(rejection: QueryRejection) -> ApiError {
    let text = rejection.body_text();
    // serde_urlencoded says e.g. "limit: invalid digit found in string" or "unknown field `x`".
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    let field = match detail.split_once(": ") {
        Some((name, _)) if !name.contains(' ') => name.to_string(),
        _ => detail
            .split('`')
            .nth(1)
            .filter(|name| !name.is_empty())
            .unwrap_or("query")
            .to_string(),
    };
    ApiError::invalid(field, detail.to_string())
}
