//! A typed client of the server's HTTP API, shared by the CLI and the console, and the console's
//! data source over it ([`console`]).

pub mod console;

use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{Instance, InstanceId, Job};
use crate::spec::JobSpec;
use crate::wire::admin::{
    BackfillRequest, BackfillResult, ClusterInfo, ErrorBody, InstanceView, JobDetail, JobSummary,
    MemberRow, NextFires,
};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

#[derive(Clone)]
pub struct ApiClient {
    base: url::Url,
    http: reqwest::Client,
    token: Option<String>,
}

/// Why a call failed, kept apart so callers (the console) can tell "down" from "refused".
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the Shoal server at {url}: {reason}. Is `shoal server` running there? \
         (choose another with --server or SHOAL_SERVER)"
    )]
    Unreachable { url: String, reason: String },
    #[error("{message}")]
    Refused {
        status: u16,
        field: Option<String>,
        message: String,
    },
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ApiClient {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<ApiClient> {
        let base = url::Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                anyhow!("--server {server:?} is not a URL: expected e.g. {DEFAULT_SERVER}")
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient {
            base,
            http,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    pub fn server_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub async fn members(&self) -> Result<Vec<MemberRow>, ClientError> {
        self.call(Method::GET, "/api/v1/members", None::<&()>).await
    }

    pub async fn cluster(&self) -> Result<ClusterInfo, ClientError> {
        self.call(Method::GET, "/api/v1/cluster", None::<&()>).await
    }

    pub async fn create_job(&self, spec: &JobSpec) -> Result<Job, ClientError> {
        self.call(Method::POST, "/api/v1/jobs", Some(spec)).await
    }

    pub async fn apply_job(&self, spec: &JobSpec) -> Result<Job, ClientError> {
        self.call(Method::PUT, "/api/v1/jobs", Some(spec)).await
    }

    pub async fn update_job(&self, key: &str, spec: &JobSpec) -> Result<Job, ClientError> {
        self.call(Method::PUT, &job_path(key, ""), Some(spec)).await
    }

    pub async fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        self.call(Method::GET, "/api/v1/jobs", None::<&()>).await
    }

    pub async fn job(&self, key: &str) -> Result<Job, ClientError> {
        Ok(self.job_detail(key).await?.job)
    }

    /// The job and the jobs whose end queues it.
    pub async fn job_detail(&self, key: &str) -> Result<JobDetail, ClientError> {
        self.call(Method::GET, &job_path(key, ""), None::<&()>)
            .await
    }

    pub async fn delete_job(&self, key: &str) -> Result<Job, ClientError> {
        self.call(Method::DELETE, &job_path(key, ""), None::<&()>)
            .await
    }

    pub async fn pause_job(&self, key: &str) -> Result<Job, ClientError> {
        self.call(Method::POST, &job_path(key, "/pause"), None::<&()>)
            .await
    }

    pub async fn resume_job(&self, key: &str) -> Result<Job, ClientError> {
        self.call(Method::POST, &job_path(key, "/resume"), None::<&()>)
            .await
    }

    pub async fn run_job(&self, key: &str) -> Result<Instance, ClientError> {
        self.call(Method::POST, &job_path(key, "/run"), None::<&()>)
            .await
    }

    /// The job's schedule in words and its next `count` fires.
    pub async fn next_fires(&self, key: &str, count: usize) -> Result<NextFires, ClientError> {
        self.call(
            Method::GET,
            &job_path(key, &format!("/next?count={count}")),
            None::<&()>,
        )
        .await
    }

    /// Creates (or with `dry_run`, counts) the job's fires of a past range.
    pub async fn backfill(
        &self,
        key: &str,
        request: &BackfillRequest,
    ) -> Result<BackfillResult, ClientError> {
        self.call(Method::POST, &job_path(key, "/backfill"), Some(request))
            .await
    }

    /// Lists instances; `query` holds `job`, `state` (comma-separated) and `limit` as given.
    pub async fn instances(&self, query: &InstanceQuery) -> Result<Vec<InstanceView>, ClientError> {
        let mut path = "/api/v1/instances?".to_string();
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        if let Some(job) = &query.job {
            params.append_pair("job", job);
        }
        if let Some(state) = &query.state {
            params.append_pair("state", state);
        }
        if let Some(limit) = query.limit {
            params.append_pair("limit", &limit.to_string());
        }
        path.push_str(&params.finish());
        self.call(Method::GET, &path, None::<&()>).await
    }

    pub async fn instance(&self, id: InstanceId) -> Result<InstanceView, ClientError> {
        self.call(Method::GET, &format!("/api/v1/instances/{id}"), None::<&()>)
            .await
    }

    pub async fn cancel_instance(&self, id: InstanceId) -> Result<Instance, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/instances/{id}/cancel"),
            None::<&()>,
        )
        .await
    }

    pub async fn retry_instance(&self, id: InstanceId) -> Result<Instance, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/v1/instances/{id}/retry"),
            None::<&()>,
        )
        .await
    }

    /// Creates or replaces a channel; the answer is redacted.
    pub async fn put_channel(
        &self,
        spec: &crate::alert::spec::ChannelSpec,
    ) -> Result<crate::alert::ChannelDefinition, ClientError> {
        self.call(Method::PUT, "/api/v1/channels", Some(spec)).await
    }

    pub async fn channels(&self) -> Result<Vec<crate::alert::ChannelDefinition>, ClientError> {
        self.call(Method::GET, "/api/v1/channels", None::<&()>)
            .await
    }

    pub async fn channel(
        &self,
        name: &str,
    ) -> Result<crate::alert::ChannelDefinition, ClientError> {
        self.call(Method::GET, &channel_path(name), None::<&()>)
            .await
    }

    pub async fn delete_channel(
        &self,
        name: &str,
    ) -> Result<crate::alert::ChannelDefinition, ClientError> {
        self.call(Method::DELETE, &channel_path(name), None::<&()>)
            .await
    }

    /// Alerts newest first; `status` comma-separated (pending, sent, failed).
    pub async fn alerts(
        &self,
        status: Option<&str>,
        job: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::alert::Alert>, ClientError> {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        if let Some(status) = status {
            params.append_pair("status", status);
        }
        if let Some(job) = job {
            params.append_pair("job", job);
        }
        params.append_pair("limit", &limit.to_string());
        let path = format!("/api/v1/alerts?{}", params.finish());
        self.call(Method::GET, &path, None::<&()>).await
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{}", self.server_url(), path);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| ClientError::Unreachable {
                url: self.server_url().to_string(),
                reason: describe(&error),
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| ClientError::Unreachable {
                url: url.clone(),
                reason: describe(&error),
            })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|error| ClientError::Protocol {
                url,
                reason: error.to_string(),
            });
        }
        Err(refusal(status, &bytes))
    }
}

fn refusal(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ClientError::Refused {
            status: status.as_u16(),
            field: body.field,
            message: body.message,
        },
        Err(_) => ClientError::Refused {
            status: status.as_u16(),
            field: None,
            message: format!(
                "server answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ),
        },
    }
}

/// reqwest's top-level message is vague ("error sending request"); the root cause is what helps.
fn describe(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    if error.is_timeout() {
        "timed out".to_string()
    } else {
        source.to_string()
    }
}

/// Filters of `GET /api/v1/instances`.
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    pub job: Option<String>,
    pub state: Option<String>,
    pub limit: Option<usize>,
}

fn channel_path(name: &str) -> String {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("/api/v1/channels/{name}")
}

fn job_path(key: &str, suffix: &str) -> String {
    let key: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
    format!("/api/v1/jobs/{key}{suffix}")
}
