//! `/api/v1/instances`: list (by job and state), get, cancel, retry. Listed and got instances
//! carry their chain's parent and children as they are now ([`InstanceView`]).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use super::extract::{PathArg, QueryArgs};
use super::jobs::blocking;
use super::paging;
use crate::model::{Instance, InstanceId, StateKind};
use crate::server::store::InstanceFilter;
use crate::wire::admin::InstanceView;

/// The most instances one page holds.
pub const MAX_LIST: usize = 10_000;
/// A page of instances when none is asked for.
pub const DEFAULT_PAGE: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Job name or id.
    job: Option<String>,
    /// Comma-separated states.
    state: Option<String>,
    /// The cursor: only instances with a smaller id (newest first; the `next` of a page).
    before: Option<InstanceId>,
    limit: Option<usize>,
}

/// `GET /api/v1/instances`: newest first, a page at a time (see `ReadTx::instances_page` for
/// what a page costs; a filtered page may end short, or empty, with a next page to follow).
pub async fn list(
    State(state): State<ApiState>,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<(HeaderMap, Json<Vec<InstanceView>>), ApiError> {
    let states = match query.state.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                StateKind::parse(s.trim()).ok_or_else(|| {
                    ApiError::invalid(
                        "state",
                        format!(
                            "{s:?} is not a state; use queued, assigned, running, succeeded, \
                             failed or cancelled"
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let limit = paging::limit(query.limit, DEFAULT_PAGE, MAX_LIST)?;
    let service = state.service.clone();
    let (job, state_param) = (query.job.clone(), query.state.clone());
    let page = blocking(move || {
        let job_id = match &query.job {
            Some(key) => Some(service.job(key)?.id),
            None => None,
        };
        service.instance_views_page(&InstanceFilter {
            job_id,
            states,
            before: query.before,
            limit,
        })
    })
    .await?;
    let headers = paging::next_link(
        "/api/v1/instances",
        page.next.is_some(),
        &[
            ("job", job),
            ("state", state_param),
            ("before", page.next.map(|id| id.to_string())),
            ("limit", Some(limit.to_string())),
        ],
    );
    Ok((headers, Json(page.items)))
}

pub async fn get(
    State(state): State<ApiState>,
    PathArg(id): PathArg<InstanceId>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(
        blocking(move || state.service.instance_view(id)).await?,
    ))
}

pub async fn cancel(
    State(state): State<ApiState>,
    PathArg(id): PathArg<InstanceId>,
) -> Result<Json<Instance>, ApiError> {
    Ok(Json(
        blocking(move || state.service.cancel_instance(id)).await?,
    ))
}

pub async fn retry(
    State(state): State<ApiState>,
    PathArg(id): PathArg<InstanceId>,
) -> Result<(StatusCode, Json<Instance>), ApiError> {
    let instance = blocking(move || state.service.retry_instance(id)).await?;
    Ok((StatusCode::CREATED, Json(instance)))
}
