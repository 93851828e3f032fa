//! `/api/v1/jobs`: create, list, get, update, apply, delete, pause, resume, run-now. Every job
//! leaves here [`Job::redacted`]: a client private key is shown as set, never shown.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::ApiState;
use super::error::ApiError;
use super::extract::PathArg;
use super::json::JsonBody;
use crate::model::{Instance, Job};
use crate::spec::JobSpec;
use crate::wire::admin::{JobDetail, JobSummary};

pub async fn create(
    State(state): State<ApiState>,
    JsonBody(spec): JsonBody<JobSpec>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let job = blocking(move || state.service.create_job(&spec)).await?;
    Ok((StatusCode::CREATED, Json(job.redacted())))
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<JobSummary>>, ApiError> {
    let mut jobs = blocking(move || state.service.jobs()).await?;
    for summary in &mut jobs {
        summary.job.redact();
    }
    Ok(Json(jobs))
}

pub async fn get(
    State(state): State<ApiState>,
    PathArg(key): PathArg<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let mut detail = blocking(move || state.service.job_detail(&key)).await?;
    detail.job.redact();
    Ok(Json(detail))
}

pub async fn update(
    State(state): State<ApiState>,
    PathArg(key): PathArg<String>,
    JsonBody(spec): JsonBody<JobSpec>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(
        blocking(move || state.service.update_job(&key, &spec))
            .await?
            .redacted(),
    ))
}

/// Create-or-update by name (idempotent): 201 when created, 200 when updated.
pub async fn apply(
    State(state): State<ApiState>,
    JsonBody(spec): JsonBody<JobSpec>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let (job, created) = blocking(move || state.service.apply_job(&spec)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(job.redacted())))
}

pub async fn delete(
    State(state): State<ApiState>,
    PathArg(key): PathArg<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(
        blocking(move || state.service.delete_job(&key))
            .await?
            .redacted(),
    ))
}

pub async fn pause(
    State(state): State<ApiState>,
    PathArg(key): PathArg<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(
        blocking(move || state.service.set_paused(&key, true))
            .await?
            .redacted(),
    ))
}

pub async fn resume(
    State(state): State<ApiState>,
    PathArg(key): PathArg<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(
        blocking(move || state.service.set_paused(&key, false))
            .await?
            .redacted(),
    ))
}

pub async fn run(
    State(state): State<ApiState>,
    PathArg(key): PathArg<String>,
) -> Result<(StatusCode, Json<Instance>), ApiError> {
    let instance = blocking(move || state.service.run_now(&key)).await?;
    Ok((StatusCode::CREATED, Json(instance)))
}

/// Store transactions block (fsync); keep them off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> crate::server::service::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .map_err(ApiError::from)
}
