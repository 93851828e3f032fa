//! The one error type of the HTTP API and its mapping to status codes.

use crate::server::store::WriteOutcome;
use crate::wire::admin::{ErrorBody, StorageFault};
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
    /// A known token without the scope the route needs.
    #[error(
        "this token's scopes ({held}) do not include {needed:?}, which this route needs: use a \
         token the server was given with --token-{needed} (or --token)"
    )]
    Forbidden { needed: &'static str, held: String },
    /// A session credential this server does not know: it restarted, or the session idled out.
    #[error(
        "unknown or expired session (the server restarted or forgot it): handshake again at \
         /rpc/v1/hello; the worker does so by itself, and if this repeats check its --token \
         (SHOAL_TOKEN)"
    )]
    UnknownSession,
    /// Over a load limit; worth retrying shortly.
    #[error("{0}")]
    Busy(String),
    /// The data dir's storage refused (a full disk: 507; an I/O error: 503). The message says
    /// what became of the change and what to do.
    #[error("{0}")]
    Storage(crate::server::store::StorageUnavailable),
    /// The server group cannot commit now (no leader, no quorum): 503, typed by its code.
    #[error("{0}")]
    Group(crate::server::engine::GroupUnavailable),
    /// The worker RPC reached a server that does not lead its group.
    #[error(
        "this server does not lead its group{}: workers poll the leader (they find it through \
         gossip and switch by themselves)",
        match leader { Some(leader) => format!("; {leader} does"), None => String::new() }
    )]
    NotLeader { leader: Option<String> },
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
            ApiError::Unauthorized | ApiError::UnknownSession => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(error) => match error.fault {
                StorageFault::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
                StorageFault::Io => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Group(_) | ApiError::NotLeader { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unauthorized | ApiError::UnknownSession => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::Busy(_) => "busy",
            ApiError::Storage(error) => match (error.fault, error.outcome) {
                (_, WriteOutcome::Unknown) => "storage_outcome_unknown",
                (StorageFault::NoSpace, _) => "storage_full",
                (StorageFault::Io, _) => "storage_failed",
            },
            ApiError::Group(error) => match error {
                crate::server::engine::GroupUnavailable::NoLeader { .. } => "no_leader",
                crate::server::engine::GroupUnavailable::NoQuorum {
                    outcome_unknown: true,
                    ..
                } => "no_quorum_outcome_unknown",
                crate::server::engine::GroupUnavailable::NoQuorum { .. } => "no_quorum",
                crate::server::engine::GroupUnavailable::LeaderUnreachable { .. } => {
                    "leader_unreachable"
                }
            },
            ApiError::NotLeader { .. } => "not_leader",
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
            ServiceError::Store(error) => error.into(),
            ServiceError::Group(error) => ApiError::Group(error),
        }
    }
}

impl From<crate::server::store::StoreError> for ApiError {
    fn from(error: crate::server::store::StoreError) -> Self {
        match error {
            crate::server::store::StoreError::Unavailable(error) => ApiError::Storage(error),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
