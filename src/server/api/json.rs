//! A JSON extractor whose rejections are [`ApiError`]s naming the field, instead of axum's
//! plain-text messages.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(describe(rejection)),
        }
    }
}

fn describe(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => {
            // serde's message names the path, e.g. "http.url: missing field `url`".
            let (field, reason) = split_field(&serde_message(&error, error.body_text()));
            ApiError::invalid(field, reason)
        }
        JsonRejection::JsonSyntaxError(error) => {
            let (field, reason) = split_field(&serde_message(&error, error.body_text()));
            ApiError::invalid(field, format!("not valid JSON: {reason}"))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("content-type", "expected Content-Type: application/json")
        }
        JsonRejection::BytesRejection(error) => {
            let reason = format!(
                "{} (the limit is {} bytes)",
                error.body_text(),
                super::MAX_REQUEST_BODY
            );
            if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge {
                    field: "body".into(),
                    reason,
                }
            } else {
                ApiError::invalid("body", reason)
            }
        }
        other => ApiError::invalid("body", other.body_text()),
    }
}

/// serde's own message (the rejection's source), which axum's text wraps; `fallback` without one.
fn serde_message(rejection: &dyn std::error::Error, fallback: String) -> String {
    rejection
        .source()
        .map_or(fallback, |source| source.to_string())
}

/// Splits the field path serde put in front of its message ("http.url: …") from the reason;
/// without one, the whole body is to blame.
fn split_field(text: &str) -> (String, String) {
    match text.split_once(": ") {
        Some((path, reason)) if !path.is_empty() && !path.contains(' ') && path != "." => {
            (path.to_string(), reason.to_string())
        }
        _ => ("body".to_string(), text.to_string()),
    }
}
