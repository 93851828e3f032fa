//! The server's HTTP API (axum): the admin REST API under `/api/v1` and the worker RPC under
//! `/rpc/v1`. Handlers validate, call into the store/dispatcher, and map errors in one place
//! ([`ApiError`]). Nothing here decides *what* runs where; that is the dispatcher's job.

mod auth;
mod error;
mod extract;
mod instances;
mod jobs;
mod json;
mod members;
mod rpc;
mod schedules;
pub mod types;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
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
    pub service: crate::service::Service,
    pub dispatcher: crate::dispatch::Dispatcher,
    /// Ends long-polls when the server stops.
    pub shutdown: crate::shutdown::Shutdown,
}

pub fn router(state: ApiState, token: Token) -> Router {
    let rpc = Router::new()
        .route("/poll", post(rpc::poll))
        .route("/report", post(rpc::report))
        .layer(axum::middleware::from_fn_with_state(
            token.clone(),
            auth::require_token,
        ));
    let api = Router::new()
        .route("/members", get(members::list))
        .route("/cluster", get(members::cluster))
        .route("/jobs", get(jobs::list).post(jobs::create).put(jobs::apply))
        .route(
            "/jobs/{key}",
            get(jobs::get).put(jobs::update).delete(jobs::delete),
        )
        .route("/jobs/{key}/pause", post(jobs::pause))
        .route("/jobs/{key}/resume", post(jobs::resume))
        .route("/jobs/{key}/run", post(jobs::run))
        .route("/jobs/{key}/next", get(schedules::next))
        .route("/jobs/{key}/backfill", post(schedules::backfill))
        .route("/instances", get(instances::list))
        .route("/instances/{id}", get(instances::get))
        .route("/instances/{id}/cancel", post(instances::cancel))
        .route("/instances/{id}/retry", post(instances::retry))
        .layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_token,
        ));
    Router::new()
        .nest("/api/v1", api)
        .nest("/rpc/v1", rpc)
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!(
                "route {} (the API lives under /api/v1)",
                uri.path()
            ))
        })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(state)
}
