//! `/raft/v1`: the server group's wire (openraft's append, vote and snapshot RPCs, and commands
//! forwarded by followers to the leader), and `/api/v1/servers`: the group's members, adding and
//! removing one. Bodies on `/raft/v1` are MessagePack (`raft::network`); the routes need the
//! admin scope, which every server of a group holds.
//!
//! Nothing here decides anything about the group: openraft does.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use openraft::ChangeMembers;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ApiState;
use super::error::ApiError;
use crate::server::command::Command;
use crate::server::group::{members_of, node_id};
use crate::server::raft::engine::RaftEngine;
use crate::server::raft::network::{CONTENT_TYPE, base_url};
use crate::server::raft::types::{NodeId, decode, encode};
use crate::wire::admin::{LEADER_HEADER, ServerChange, ServerRow};

/// Largest body on `/raft/v1`: a batch of log entries or a snapshot chunk.
pub const MAX_RAFT_BODY: usize = 64 * 1024 * 1024;

fn engine(state: &ApiState) -> Result<&Arc<RaftEngine>, ApiError> {
    state.group.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "server group (this server runs alone: start servers with --bootstrap-expect to form \
             one)",
        )
    })
}

fn decoded<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    decode(body).map_err(|error| ApiError::invalid("body", error.to_string()))
}

fn encoded<T: Serialize>(value: &T) -> Response {
    match encode(value) {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], bytes).into_response(),
        Err(error) => {
            ApiError::Internal(format!("encoding a raft answer: {error}")).into_response()
        }
    }
}

pub async fn append(State(state): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let engine = engine(&state)?;
    let request: AppendEntriesRequest<_> = decoded(&body)?;
    Ok(encoded(&engine.raft().append_entries(request).await))
}

pub async fn vote(State(state): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let engine = engine(&state)?;
    let request: VoteRequest<NodeId> = decoded(&body)?;
    Ok(encoded(&engine.raft().vote(request).await))
}

pub async fn snapshot(State(state): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let engine = engine(&state)?;
    let request: InstallSnapshotRequest<_> = decoded(&body)?;
    Ok(encoded(&engine.raft().install_snapshot(request).await))
}

/// A command a follower forwards: committed here if this server leads.
pub async fn propose(State(state): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let engine = engine(&state)?;
    let command: Command = decoded(&body)?;
    Ok(encoded(&engine.propose_as_leader(command).await))
}

/// `GET /api/v1/servers`: the group's servers, as the membership holds them.
pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<ServerRow>>, ApiError> {
    let engine = engine(&state)?;
    let (voters, nodes) = members_of(engine.raft());
    let view = state.membership.view();
    let metrics = engine.raft().metrics().borrow().clone();
    let leader_applied = view
        .members
        .iter()
        .filter_map(|m| m.group)
        .filter(|g| g.role == shoal_gossip::GroupRole::Leader)
        .map(|g| g.applied)
        .max();
    let rows = nodes
        .into_iter()
        .map(|(id, addr)| {
            let member = view
                .members
                .iter()
                .find(|m| m.info.role == shoal_gossip::Role::Server && node_id(&m.info.id) == id);
            let group = member.and_then(|m| m.group);
            ServerRow {
                raft_id: id,
                server_id: member.map(|m| m.info.id.clone()),
                api: addr,
                voter: voters.contains(&id),
                leader: metrics.current_leader == Some(id),
                state: member.map(|m| m.state.to_string()),
                role: group.map(|g| g.role.to_string()),
                term: group.map(|g| g.term),
                applied: group.map(|g| g.applied),
                lag: match (leader_applied, group) {
                    (Some(leader), Some(g)) => Some(leader.saturating_sub(g.applied)),
                    _ => None,
                },
            }
        })
        .collect();
    Ok(Json(rows))
}

/// `POST /api/v1/servers`: adds a server (by its `--id`, found in gossip) to the group: first as
/// a learner that catches up, then as a voter.
pub async fn add(
    State(state): State<ApiState>,
    super::json::JsonBody(change): super::json::JsonBody<ServerChange>,
) -> Result<Response, ApiError> {
    let engine = engine(&state)?.clone();
    if let Some(forwarded) = to_leader(
        &engine,
        reqwest::Method::POST,
        "/api/v1/servers",
        Some(serde_json::json!({ "id": change.id })),
    )
    .await?
    {
        return Ok(forwarded);
    }
    let view = state.membership.view();
    let Some(member) = view
        .members
        .iter()
        .find(|m| m.info.id == change.id && m.info.role == shoal_gossip::Role::Server)
    else {
        return Err(ApiError::invalid(
            "id",
            format!(
                "no server {:?} in gossip: start it with --join pointing at this cluster (and \
                 --bootstrap-expect, so it runs as a group member), then add it",
                change.id
            ),
        ));
    };
    let id = node_id(&member.info.id);
    let node = openraft::BasicNode::new(member.info.api_addr.clone());
    let raft = engine.raft();
    raft.add_learner(id, node, true)
        .await
        .map_err(|error| change_failed("adding it as a learner", error))?;
    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        .await
        .map_err(|error| change_failed("making it a voter", error))?;
    tracing::info!(server = %change.id, raft_id = id, "server added to the group");
    Ok(list(State(state)).await?.into_response())
}

/// `DELETE /api/v1/servers/{id}`: removes a server from the group (it stops voting and is no
/// longer replicated to).
pub async fn remove(
    State(state): State<ApiState>,
    Path(server): Path<String>,
) -> Result<Response, ApiError> {
    let engine = engine(&state)?.clone();
    let path = format!(
        "/api/v1/servers/{}",
        url::form_urlencoded::byte_serialize(server.as_bytes()).collect::<String>()
    );
    if let Some(forwarded) = to_leader(&engine, reqwest::Method::DELETE, &path, None).await? {
        return Ok(forwarded);
    }
    let id = server
        .parse::<NodeId>()
        .ok()
        .filter(|id| members_of(engine.raft()).1.contains_key(id))
        .unwrap_or_else(|| node_id(&server));
    let (voters, nodes) = members_of(engine.raft());
    if !nodes.contains_key(&id) {
        return Err(ApiError::not_found(format!(
            "server {server:?} in the group"
        )));
    }
    if voters.len() == 1 && voters.contains(&id) {
        return Err(ApiError::Conflict(
            "it is the group's last voter: a group cannot remove its last server".into(),
        ));
    }
    let raft = engine.raft();
    raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
        .await
        .map_err(|error| change_failed("removing it as a voter", error))?;
    raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
        .await
        .map_err(|error| change_failed("removing it from the group", error))?;
    tracing::info!(server = %server, raft_id = id, "server removed from the group");
    Ok(list(State(state)).await?.into_response())
}

/// On a follower, hands a membership change to the leader and answers what the leader answered;
/// `None` on the leader (it makes the change itself).
async fn to_leader(
    engine: &RaftEngine,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<Option<Response>, ApiError> {
    let view = engine.view();
    if view.role == shoal_gossip::GroupRole::Leader {
        return Ok(None);
    }
    let Some(leader) = view.leader_api else {
        return Err(ApiError::Group(
            crate::server::engine::GroupUnavailable::NoLeader {
                reachable: view.reachable,
                members: view.members,
                quorum: view.quorum,
            },
        ));
    };
    let (status, bytes) = engine
        .wire()
        .forward_json(&base_url(&leader), method, path, body.as_ref())
        .await
        .map_err(|error| {
            ApiError::Group(crate::server::engine::GroupUnavailable::LeaderUnreachable {
                leader: leader.clone(),
                cause: error.to_string(),
            })
        })?;
    let status = axum::http::StatusCode::from_u16(status.as_u16())
        .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    Ok(Some(
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
    ))
}

fn change_failed(step: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::Conflict(format!(
        "changing the group failed while {step}: {error} (`shoal servers list` shows the group; \
         try again once it has a leader)"
    ))
}

/// Adds [`LEADER_HEADER`] to a follower's answers, naming the leader's API: a client given the
/// URLs of several servers sends its next requests there, saving the hop a write forwarded by a
/// follower takes (and the follower's wait to apply it).
pub async fn name_the_leader(
    State(group): State<Option<Arc<RaftEngine>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Some(leader) = group.as_ref().and_then(|group| group.leader_elsewhere())
        && let Ok(value) = axum::http::HeaderValue::from_str(&leader)
    {
        response.headers_mut().insert(LEADER_HEADER, value);
    }
    response
}
