//! `/api/v1/jobs`: create, list, get, update, apply, delete, pause, resume, run-now. Every job
//! leaves here [`Job::redacted`]: a client private key is shown as set, never shown.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use super::extract::{PathArg, QueryArgs};
use super::json::JsonBody;
use super::paging;
use crate::model::{Instance, Job, JobId};
use crate::spec::JobSpec;
use crate::wire::admin::{JobDetail, JobSummary};

pub async fn create(
    State(state): State<ApiState>,
    JsonBody(spec): JsonBody<JobSpec>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let job = blocking(move || state.service.create_job(&spec)).await?;
    Ok((StatusCode::CREATED, Json(job.redacted())))
}

/// A page of jobs when none is asked for.
pub const DEFAULT_PAGE: usize = 1_000;
/// The most jobs one page holds.
pub const MAX_PAGE: usize = 5_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The cursor: only jobs with a larger id (the previous page's last).
    after: Option<JobId>,
    limit: Option<usize>,
}

/// `GET /api/v1/jobs`: jobs by id, a page at a time, each with its queue and last result. The
/// page comes from the store, the queue counts from the leader's working set (on a server that
/// does not lead, from each job's part of the store's unfinished index): its cost follows the
/// page and its jobs' own queues, never jobs × instances.
pub async fn list(
    State(state): State<ApiState>,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<(HeaderMap, Json<Vec<JobSummary>>), ApiError> {
    let limit = paging::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let page = blocking(move || {
        let mut page = state.service.jobs_page(query.after, limit)?;
        let ids: Vec<JobId> = page.items.iter().map(|s| s.job.id).collect();
        // The leader's working set has them in memory; elsewhere the store, job by job.
        let counts = match state.leader.dispatcher() {
            Some(dispatcher) => dispatcher.job_counts(&ids)?,
            None => state.service.job_counts(&ids)?,
        };
        for (summary, (queued, running)) in page.items.iter_mut().zip(counts) {
            summary.queued = queued;
            summary.running = running;
            summary.job.redact();
        }
        Ok(page)
    })
    .await?;
    let headers = paging::next_link(
        "/api/v1/jobs",
        page.next.is_some(),
        &[
            ("after", page.next.map(|id| id.to_string())),
            ("limit", Some(limit.to_string())),
        ],
    );
    Ok((headers, Json(page.items)))
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
