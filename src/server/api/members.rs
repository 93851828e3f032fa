//! Cluster membership as the server sees it.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use crate::wire::admin::{ClusterInfo, MemberRow};

pub async fn list(State(state): State<ApiState>) -> Json<Vec<MemberRow>> {
    Json(MemberRow::all(&state.membership.view()))
}

pub async fn cluster(State(state): State<ApiState>) -> Json<ClusterInfo> {
    Json(ClusterInfo {
        cluster: state.cluster.clone(),
        server_id: state.membership.self_id().to_string(),
        version: crate::VERSION.to_string(),
        gossip_addr: state.membership.gossip_addr().to_string(),
        storage_degraded: state.service.store().degraded(),
        group: state.group.as_ref().map(|engine| engine.view()),
    })
}

/// `GET /healthz`: 200 `ok`, or 503 with the reason while the storage refuses writes (the server
/// then still answers reads and recovers by itself; a load balancer should send writes elsewhere
/// or wait).
pub async fn healthz(State(state): State<ApiState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.service.store().degraded() {
        None => "ok".into_response(),
        Some(degraded) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "degraded: {} since {}: {}",
                degraded.fault.label(),
                crate::model::rfc3339(degraded.since_ms),
                degraded.message
            ),
        )
            .into_response(),
    }
}
