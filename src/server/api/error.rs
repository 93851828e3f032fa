//! The one error type of the HTTP API and its mapping to status codes.

use crate::wire::admin::ErrorBody;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Every API error names what was wrong (`field`, when one field is to blame) and why.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The request body is over the API's size limit.
    #[error("{field}: {reason}")]
    TooLarge { field: String, reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{0}")]
    Conflict(String),
    #[error("missing or wrong token: pass --token or set SHOAL_TOKEN")]
    Unauthorized,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::NotFound { what: what.into() }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(message) = &self {
            tracing::error!(%message, "internal API error");
        }
        let body = ErrorBody {
            error: self.code().to_string(),
            field: match &self {
                ApiError::Invalid { field, .. } | ApiError::TooLarge { field, .. } => {
                    Some(field.clone())
                }
                _ => None,
            },
            message: self.to_string(),
        };
        (self.status(), Json(body)).into_response()
    }
}

impl From<crate::server::service::ServiceError> for ApiError {
    fn from(error: crate::server::service::ServiceError) -> Self {
        use crate::server::service::ServiceError;
        match error {
            ServiceError::Invalid(field) => ApiError::Invalid {
                field: field.field,
                reason: field.reason,
            },
            ServiceError::NotFound(what) => ApiError::NotFound { what },
            ServiceError::Conflict(message) => ApiError::Conflict(message),
            ServiceError::Store(error) => ApiError::Internal(error.to_string()),
        }
    }
}
