//! `/api/v1/jobs/{key}/next` (a schedule in words and its next fires) and
//! `/api/v1/jobs/{key}/backfill` (create the fires of a past range). The fire arithmetic lives in
//! `schedule::timing`; these handlers only bound the inputs and call the service.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use super::extract::{PathArg, QueryArgs};
use super::jobs::blocking;
use super::json::JsonBody;
use crate::model::now_ms;
use crate::schedule::{self, MAX_UPCOMING};
use crate::wire::admin::{BackfillRequest, BackfillResult, NextFires};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    count: Option<usize>,
}

pub async fn next(
    State(state): State<ApiState>,
    PathArg(key): PathArg<String>,
    QueryArgs(query): QueryArgs<NextQuery>,
) -> Result<Json<NextFires>, ApiError> {
    let count = query.count.unwrap_or(5);
    if count == 0 || count > MAX_UPCOMING {
        return Err(ApiError::invalid(
            "count",
            format!("must be 1–{MAX_UPCOMING}"),
        ));
    }
    let job = blocking(move || state.service.job(&key)).await?;
    Ok(Json(NextFires {
        job: job.def.name.clone(),
        description: schedule::describe(&job.def),
        fires: schedule::upcoming(&job, count),
        paused: job.def.paused,
        ended_at_ms: schedule::ended_at(&job, now_ms()),
    }))
}

pub async fn backfill(
    State(state): State<ApiState>,
    PathArg(key): PathArg<String>,
    JsonBody(request): JsonBody<BackfillRequest>,
) -> Result<(StatusCode, Json<BackfillResult>), ApiError> {
    let result = blocking(move || state.service.backfill(&key, &request)).await?;
    let status = if result.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(result)))
}
