//! `/rpc/v1`: the worker protocol. Workers long-poll for assignments and report results in
//! batches; both require a session (see `session`) when a token is set, and a session speaks
//! only for its own worker.

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};

use super::ApiState;
use super::error::ApiError;
use super::json::JsonBody;
use super::session::{SessionWorker, check_worker};
use crate::wire::{Assignment, PollRequest, Report, ReportAck};

/// The longest a poll may wait: long enough to keep idle traffic low, short enough that a
/// restarted server is noticed quickly.
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(20);
/// Most events one report may carry.
pub const MAX_REPORT_EVENTS: usize = 4096;

pub async fn poll(
    State(state): State<ApiState>,
    session: Option<Extension<SessionWorker>>,
    JsonBody(request): JsonBody<PollRequest>,
) -> Result<Json<Vec<Assignment>>, ApiError> {
    if request.worker.is_empty() {
        return Err(ApiError::invalid("worker", "missing worker id"));
    }
    check_worker(session.as_deref(), &request.worker)?;
    let wait = Duration::from_millis(request.wait_ms).min(MAX_POLL_WAIT);
    let assignments = leader_dispatcher(&state)?
        .poll(&request.worker, request.free, wait, state.shutdown.clone())
        .await;
    Ok(Json(assignments))
}

pub async fn report(
    State(state): State<ApiState>,
    session: Option<Extension<SessionWorker>>,
    JsonBody(report): JsonBody<Report>,
) -> Result<Json<ReportAck>, ApiError> {
    check_worker(session.as_deref(), &report.worker)?;
    if report.events.len() > MAX_REPORT_EVENTS {
        return Err(ApiError::invalid(
            "events",
            format!("at most {MAX_REPORT_EVENTS} per report"),
        ));
    }
    let dispatcher = leader_dispatcher(&state)?;
    let ack =
        tokio::task::spawn_blocking(move || dispatcher.report(&report.worker, &report.events))
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?
            // A full disk answers 507: the worker keeps the report and sends it again.
            .map_err(ApiError::from)?;
    Ok(Json(ack))
}

/// The dispatcher of the term this server leads; workers are told to go to the leader otherwise.
fn leader_dispatcher(state: &ApiState) -> Result<crate::server::dispatch::Dispatcher, ApiError> {
    state
        .leader
        .dispatcher()
        .ok_or_else(|| ApiError::NotLeader {
            leader: state.leader.leader_api(),
        })
}
