//! `GET /api/v1/queue`: the whole queue in one answer — totals, counts by typed reason, the
//! longest wait, the deepest jobs, and the work no live worker can take with its reason and fix.
//! Counted over every unfinished instance, so it is exact however deep the queue: by the leading
//! server's dispatcher over its in-memory working set (no store read), or — on a server that does
//! not lead — over the store's unfinished instances (see `queue_view`).

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::error::ApiError;
use super::jobs::blocking;
use crate::model::now_ms;
use crate::wire::admin::QueueSummary;

pub async fn summary(State(state): State<ApiState>) -> Result<Json<QueueSummary>, ApiError> {
    let summary = blocking(move || match state.leader.dispatcher() {
        Some(dispatcher) => Ok(dispatcher.queue_summary(now_ms())?),
        None => state.service.queue_summary(now_ms()),
    })
    .await?;
    Ok(Json(summary))
}
