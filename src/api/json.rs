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
            let text = std::error::Error::source(&error)
                .map(|s| s.to_string())
                .unwrap_or_else(|| error.body_text());
            let field = text
                .split_once(": ")
                .map(|(path, _)| path.to_string())
                .filter(|p| !p.contains(' '))
                .unwrap_or_else(|| "body".to_string());
            ApiError::invalid(field, text)
        }
        JsonRejection::JsonSyntaxError(error) => ApiError::invalid(
            "body",
            format!(
                "not valid JSON: {}",
                std::error::Error::source(&error)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| error.body_text())
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("content-type", "expected Content-Type: application/json")
        }
        JsonRejection::BytesRejection(error) => ApiError::invalid(
            "body",
            format!(
                "{} (the limit is {} bytes)",
                error.body_text(),
                super::MAX_REQUEST_BODY
            ),
        ),
        other => ApiError::invalid("body", other.body_text()),
    }
}
