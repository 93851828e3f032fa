//! `/api/v1/channels` (put, list, get, delete) and `/api/v1/alerts` (list). Channels are answered
//! redacted: a secret goes in, never out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use super::extract::{PathArg, QueryArgs};
use super::jobs::blocking;
use super::json::JsonBody;
use crate::alert::spec::ChannelSpec;
use crate::alert::{Alert, ChannelDefinition};

/// Create-or-replace by name: 201 when created, 200 when replaced.
pub async fn put(
    State(state): State<ApiState>,
    JsonBody(spec): JsonBody<ChannelSpec>,
) -> Result<(StatusCode, Json<ChannelDefinition>), ApiError> {
    let (channel, created) = blocking(move || state.service.put_channel(&spec)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(channel)))
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<ChannelDefinition>>, ApiError> {
    Ok(Json(blocking(move || state.service.channels()).await?))
}

pub async fn get(
    State(state): State<ApiState>,
    PathArg(name): PathArg<String>,
) -> Result<Json<ChannelDefinition>, ApiError> {
    Ok(Json(blocking(move || state.service.channel(&name)).await?))
}

pub async fn delete(
    State(state): State<ApiState>,
    PathArg(name): PathArg<String>,
) -> Result<Json<ChannelDefinition>, ApiError> {
    Ok(Json(
        blocking(move || state.service.delete_channel(&name)).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Comma-separated: pending, sent, failed.
    status: Option<String>,
    /// Job name or id.
    job: Option<String>,
    limit: Option<usize>,
}

pub async fn alerts(
    State(state): State<ApiState>,
    QueryArgs(query): QueryArgs<AlertQuery>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    let mut statuses = Vec::new();
    for status in query.status.as_deref().unwrap_or("").split(',') {
        match status.trim() {
            "" => {}
            known @ ("pending" | "sent" | "failed") => statuses.push(known.to_string()),
            other => {
                return Err(ApiError::invalid(
                    "status",
                    format!("{other:?} is not one of pending, sent, failed"),
                ));
            }
        }
    }
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::invalid("limit", "must be 1–10000"));
    }
    Ok(Json(
        blocking(move || state.service.alerts(statuses, query.job.as_deref(), limit)).await?,
    ))
}
