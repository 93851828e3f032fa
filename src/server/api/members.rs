//! Cluster membership as the server sees it.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use crate::wire::admin::{ClusterInfo, MemberRow};

pub async fn list(State(state): State<ApiState>) -> Json<Vec<MemberRow>> {
    let view = state.membership.view();
    Json(view.members.iter().map(MemberRow::from).collect())
}

pub async fn cluster(State(state): State<ApiState>) -> Json<ClusterInfo> {
    Json(ClusterInfo {
        cluster: state.cluster.clone(),
        server_id: state.membership.self_id().to_string(),
        version: crate::VERSION.to_string(),
        gossip_addr: state.membership.gossip_addr().to_string(),
    })
}
