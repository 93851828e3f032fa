//! `GET /metrics`: the Prometheus scrape (see `server::metrics` for what each metric means).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::ApiState;
use super::error::ApiError;
use crate::server::metrics;

pub async fn scrape(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let view = state.membership.view();
    let store = state.service.store().clone();
    let registry = state.metrics.clone();
    let text =
        tokio::task::spawn_blocking(move || registry.scrape(&store, &view, crate::model::now_ms()))
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?
            .map_err(|error| ApiError::Internal(format!("{error:#}")))?;
    Ok(([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text))
}
