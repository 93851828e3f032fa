//! The server's HTTP API (axum): the admin REST API under `/api/v1` and the worker RPC under
//! `/rpc/v1`. Handlers validate, call into the store/dispatcher, and map errors in one place
//! ([`ApiError`]). Nothing here decides *what* runs where; that is the dispatcher's job.

mod alerts;
mod auth;
mod error;
mod extract;
mod instances;
mod jobs;
mod json;
mod members;
mod metrics;
mod paging;
mod queue;
mod raft;
mod rpc;
mod schedules;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use shoal_gossip::Membership;

pub use auth::{TokenSettings, Tokens};
pub use error::ApiError;

/// Largest request body the API reads. Job definitions are small; anything bigger is a mistake.
pub const MAX_REQUEST_BODY: usize = 256 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub cluster: String,
    pub membership: Arc<Membership>,
    pub service: crate::server::service::Service,
    /// The dispatcher, while this server leads (always, for a single server).
    pub leader: crate::server::group::LeaderSlot,
    /// The Raft engine, when servers form a group.
    pub group: Option<Arc<crate::server::raft::engine::RaftEngine>>,
    pub metrics: Arc<crate::server::metrics::Metrics>,
    /// Ends long-polls when the server stops.
    pub shutdown: crate::shutdown::Shutdown,
}

pub fn router(state: ApiState, tokens: Tokens) -> Router {
    let sessions = session::Sessions::new(&tokens, &state.cluster, state.membership.self_id());
    // The handshake needs no credential: it is how a worker earns one without sending the token.
    let handshake = Router::new()
        .route("/hello", post(session::hello))
        .route("/session", post(session::open))
        .with_state(sessions.clone());
    let rpc = Router::new()
        .route("/poll", post(rpc::poll))
        .route("/report", post(rpc::report))
        .layer(axum::middleware::from_fn_with_state(
            sessions,
            session::require_session,
        ))
        .merge(handshake);
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
        .route("/queue", get(queue::summary))
        .route("/instances/{id}", get(instances::get))
        .route("/instances/{id}/cancel", post(instances::cancel))
        .route("/instances/{id}/retry", post(instances::retry))
        .route("/channels", get(alerts::list).put(alerts::put))
        .route("/channels/{name}", get(alerts::get).delete(alerts::delete))
        .route("/alerts", get(alerts::alerts))
        .route("/servers", get(raft::list).post(raft::add))
        .route("/servers/{id}", axum::routing::delete(raft::remove))
        .layer(axum::middleware::from_fn_with_state(
            tokens.clone(),
            auth::require_scope,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.group.clone(),
            raft::name_the_leader,
        ));
    let group = Router::new()
        .route("/append", post(raft::append))
        .route("/vote", post(raft::vote))
        .route("/snapshot", post(raft::snapshot))
        .route("/propose", post(raft::propose))
        .layer(DefaultBodyLimit::max(raft::MAX_RAFT_BODY))
        .layer(axum::middleware::from_fn_with_state(
            tokens.clone(),
            auth::require_scope,
        ));
    Router::new()
        .nest("/api/v1", api)
        .nest("/raft/v1", group)
        .nest("/rpc/v1", rpc)
        .merge(Router::new().route("/metrics", get(metrics::scrape)).layer(
            axum::middleware::from_fn_with_state(tokens, auth::require_scope),
        ))
        .route("/healthz", get(members::healthz))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!(
                "route {} (the API lives under /api/v1)",
                uri.path()
            ))
        })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(state)
}
