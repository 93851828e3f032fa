//! The server's HTTP API (axum): the admin REST API under `/api/v1` and the worker RPC under
//! `/rpc/v1`. Handlers validate, call into the store/dispatcher, and map errors in one place
//! ([`ApiError`]). Nothing here decides *what* runs where; that is the dispatcher's job.

mod auth;
mod error;
mod members;
pub mod types;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use shoal_gossip::Membership;

pub use auth::Token;
pub use error::{ApiError, ErrorBody};

/// Largest request body the API reads. Job definitions are small; anything bigger is a mistake.
pub const MAX_REQUEST_BODY: usize = 256 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub cluster: String,
    pub membership: Arc<Membership>,
}

pub fn router(state: ApiState, token: Token) -> Router {
    let api = Router::new()
        .route("/members", get(members::list))
        .route("/cluster", get(members::cluster))
        .layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_token,
        ));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(state)
}
