//! A typed client of the server's HTTP API, shared by the CLI and the console, and the console's
//! data source over it ([`console`]). It speaks `http://` or `https://` with the trust of a
//! [`ClientTls`] (built by `crate::tls`, the one place for that), and names a TLS mismatch
//! either way as such ([`ClientError::PlainHttpServer`], [`ClientError::HttpsRequired`]).

pub mod console;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{Instance, InstanceId, Job};
use crate::spec::JobSpec;
use crate::tls::{ClientTls, HTTPS_REQUIRED_HEADER, TlsFailure};
use crate::wire::admin::{
    BackfillRequest, BackfillResult, ClusterInfo, ErrorBody, InstanceView, JobDetail, JobSummary,
    MemberRow, NextFires, ServerChange, ServerRow,
};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// A client of one server, or of the servers of a group (`--server` with several URLs,
/// comma-separated): a call goes to the server that answered last, and moves to the next one
/// only when a connection cannot be made — never after a request was sent, so that no write is
/// made twice.
#[derive(Clone)]
pub struct ApiClient {
    bases: Arc<Vec<url::Url>>,
    /// Which of `bases` answered last.
    current: Arc<AtomicUsize>,
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
    /// An https:// URL, and the server answered in plain HTTP.
    #[error(
        "the server at {url} answered in plain HTTP: use --server {http_url} (SHOAL_SERVER), or \
         enable TLS on the server (--tls-cert and --tls-key)"
    )]
    PlainHttpServer { url: String, http_url: String },
    /// An http:// URL, and the server speaks HTTPS.
    #[error(
        "the server at {url} speaks HTTPS: use --server {https_url} (SHOAL_SERVER), with --ca \
         FILE if a private CA signed its certificate"
    )]
    HttpsRequired { url: String, https_url: String },
    /// Any other TLS failure (an untrusted certificate, most often).
    #[error("cannot talk to the Shoal server at {url} over TLS: {failure}")]
    Tls { url: String, failure: TlsFailure },
}

impl ApiClient {
    /// A client of the server at `server` (an `http://` or `https://` URL; for a group of
    /// servers, several, comma-separated), trusting as `tls` says; a client given a CA refuses
    /// an `http://` URL.
    pub fn new(server: &str, token: Option<String>, tls: &ClientTls) -> anyhow::Result<ApiClient> {
        let bases = server
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|one| {
                let base = url::Url::parse(one)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                    .ok_or_else(|| {
                        anyhow!(
                            "--server {one:?} is not a URL: expected e.g. {DEFAULT_SERVER} (several \
                             servers of a group: comma-separated URLs)"
                        )
                    })?;
                tls.check_scheme(&base)
                    .map_err(|reason| anyhow!("--server {reason}"))?;
                Ok(base)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if bases.is_empty() {
            anyhow::bail!("--server is empty: expected e.g. {DEFAULT_SERVER}");
        }
        let http = tls
            .http_client(Duration::from_secs(3))?
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient {
            bases: Arc::new(bases),
            current: Arc::new(AtomicUsize::new(0)),
            http,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// The URL of the server that answered last (the first given, before any call).
    pub fn server_url(&self) -> &str {
        self.url_of(self.current.load(Ordering::Relaxed))
    }

    fn url_of(&self, index: usize) -> &str {
        self.bases[index % self.bases.len()]
            .as_str()
            .trim_end_matches('/')
    }

    pub async fn members(&self) -> Result<Vec<MemberRow>, ClientError> {
        self.call(Method::GET, "/api/v1/members", None::<&()>).await
    }

    /// The servers of the group (`/api/v1/servers`).
    pub async fn servers(&self) -> Result<Vec<ServerRow>, ClientError> {
        self.call(Method::GET, "/api/v1/servers", None::<&()>).await
    }

    pub async fn add_server(&self, id: &str) -> Result<Vec<ServerRow>, ClientError> {
        let change = ServerChange { id: id.to_string() };
        self.call(Method::POST, "/api/v1/servers", Some(&change))
            .await
    }

    pub async fn remove_server(&self, id: &str) -> Result<Vec<ServerRow>, ClientError> {
        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        self.call(
            Method::DELETE,
            &format!("/api/v1/servers/{id}"),
            None::<&()>,
        )
        .await
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
        let first = self.current.load(Ordering::Relaxed);
        let mut tried = 0;
        loop {
            let index = (first + tried) % self.bases.len();
            match self.call_one(index, method.clone(), path, body).await {
                // Not connected: nothing was sent, so another server of the group may take it.
                Err(Attempt::NotConnected(error)) if tried + 1 < self.bases.len() => {
                    tracing::debug!(%error, "server unreachable; trying the next --server");
                    tried += 1;
                }
                Err(Attempt::NotConnected(error) | Attempt::Failed(error)) => return Err(error),
                Ok(answer) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(answer);
                }
            }
        }
    }

    async fn call_one<T: DeserializeOwned>(
        &self,
        index: usize,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Attempt> {
        let server_url = self.url_of(index);
        let url = format!("{server_url}{path}");
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| {
            let failed = self.transport_error(index, &error);
            // Only a connection never made sent nothing: that alone may go to another server.
            if error.is_connect() && matches!(failed, ClientError::Unreachable { .. }) {
                Attempt::NotConnected(failed)
            } else {
                Attempt::Failed(failed)
            }
        })?;
        if let Some(https_url) = response
            .headers()
            .get(HTTPS_REQUIRED_HEADER)
            .and_then(|value| value.to_str().ok())
        {
            return Err(Attempt::Failed(ClientError::HttpsRequired {
                url: server_url.to_string(),
                https_url: https_url.to_string(),
            }));
        }
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| {
            Attempt::Failed(ClientError::Unreachable {
                url: url.clone(),
                reason: describe(&error),
            })
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|error| {
                Attempt::Failed(ClientError::Protocol {
                    url,
                    reason: error.to_string(),
                })
            });
        }
        Err(Attempt::Failed(refusal(status, &bytes)))
    }
}

/// How one server's call went wrong: before anything was sent, or after.
enum Attempt {
    NotConnected(ClientError),
    Failed(ClientError),
}

impl ApiClient {
    /// Why a request to the `index`th server got no answer: a TLS mismatch named as such, else
    /// the root cause.
    fn transport_error(&self, index: usize, error: &reqwest::Error) -> ClientError {
        let url = self.url_of(index).to_string();
        match TlsFailure::of(error) {
            Some(TlsFailure::PlainHttpAnswer) => {
                let mut http_url = self.bases[index % self.bases.len()].clone();
                // Only the scheme changes; http and https are both "special" schemes, so this
                // cannot fail.
                let _ = http_url.set_scheme("http");
                ClientError::PlainHttpServer {
                    url,
                    http_url: http_url.as_str().trim_end_matches('/').to_string(),
                }
            }
            Some(failure) => ClientError::Tls { url, failure },
            None => ClientError::Unreachable {
                url,
                reason: describe(error),
            },
        }
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
