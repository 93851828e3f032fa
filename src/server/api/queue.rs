//! `GET /api/v1/queue`: the whole queue in one answer — totals, counts by typed reason, the
//! longest wait, the deepest jobs, and the work no live worker can take with its reason and fix.
//! Counted by the dispatcher over its in-memory copy of every unfinished instance (see
//! `Dispatcher::queue_summary`), so it is exact however deep the queue, and costs no store scan.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::error::ApiError;
use super::jobs::blocking;
use crate::model::now_ms;
use crate::wire::admin::QueueSummary;

pub async fn summary(State(state): State<ApiState>) -> Result<Json<QueueSummary>, ApiError> {
    let summary = blocking(move || Ok(state.dispatcher.queue_summary(now_ms())?)).await?;
    Ok(Json(summary))
}
