//! `/api/v1/instances`: list (by job and state), get, cancel, retry. Listed and got instances
//! carry their chain's parent and children as they are now ([`InstanceView`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;
use super::extract::{PathArg, QueryArgs};
use super::jobs::blocking;
use crate::model::{Instance, InstanceId, StateKind};
use crate::server::store::InstanceFilter;
use crate::wire::admin::InstanceView;

pub const MAX_LIST: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Job name or id.
    job: Option<String>,
    /// Comma-separated states.
    state: Option<String>,
    before: Option<InstanceId>,
    limit: Option<usize>,
}

pub async fn list(
    State(state): State<ApiState>,
    QueryArgs(query): QueryArgs<ListQuery>,
) -> Result<Json<Vec<InstanceView>>, ApiError> {
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
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::invalid("limit", format!("must be 1–{MAX_LIST}")));
    }
    let service = state.service.clone();
    let instances = blocking(move || {
        let job_id = match &query.job {
            Some(key) => Some(service.job(key)?.id),
            None => None,
        };
        service.instance_views(&InstanceFilter {
            job_id,
            states,
            before: query.before,
            limit,
        })
    })
    .await?;
    Ok(Json(instances))
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
