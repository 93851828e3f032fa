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
    LEADER_HEADER, MemberRow, NextFires, QueueSummary, ServerChange, ServerRow,
};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// A client of one server, or of the servers of a group (`--server` with several URLs,
/// comma-separated): a call goes to the server that answered last, and moves to the next one
/// only when a connection cannot be made — never after a request was sent, so that no write is
/// made twice. When a follower answers and names the group's leader, and the leader is one of
/// the URLs given, the next calls go to the leader.
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

    /// One page of jobs by id: those after `after` (the previous page's `next`), at most
    /// `limit` (the server's default when `None`).
    pub async fn jobs_page(
        &self,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page<JobSummary>, ClientError> {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        if let Some(after) = after {
            params.append_pair("after", after);
        }
        if let Some(limit) = limit {
            params.append_pair("limit", &limit.to_string());
        }
        let path = format!("/api/v1/jobs?{}", params.finish());
        self.call_page(&path, "after").await
    }

    /// Every job, page by page (at most `max`, when given).
    pub async fn jobs_up_to(&self, max: Option<usize>) -> Result<Vec<JobSummary>, ClientError> {
        let mut jobs = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let left = max.map(|max| max - jobs.len());
            let limit = left.map(|left| left.min(JOBS_PAGE));
            let page = self
                .jobs_page(after.as_deref(), limit.or(Some(JOBS_PAGE)))
                .await?;
            jobs.extend(page.items);
            match page.next {
                Some(next) if max.is_none_or(|max| jobs.len() < max) => after = Some(next),
                _ => return Ok(jobs),
            }
        }
    }

    /// Every job, page by page.
    pub async fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        self.jobs_up_to(None).await
    }

    /// The whole queue: totals, reasons, the work no worker can take.
    pub async fn queue(&self) -> Result<QueueSummary, ClientError> {
        self.call(Method::GET, "/api/v1/queue", None::<&()>).await
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

    /// One page of instances, newest first: those before `before` (the previous page's
    /// `next`), matching `query`, at most `query.limit` (the server's default when `None`). A
    /// filtered page may hold fewer, even none, and still have a next page: the server bounds
    /// how much history one request reads.
    pub async fn instances_page(
        &self,
        query: &InstanceQuery,
        before: Option<&str>,
    ) -> Result<Page<InstanceView>, ClientError> {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        if let Some(job) = &query.job {
            params.append_pair("job", job);
        }
        if let Some(state) = &query.state {
            params.append_pair("state", state);
        }
        if let Some(before) = before {
            params.append_pair("before", before);
        }
        if let Some(limit) = query.limit {
            params.append_pair("limit", &limit.to_string());
        }
        let path = format!("/api/v1/instances?{}", params.finish());
        self.call_page(&path, "before").await
    }

    /// Instances newest first, page by page until `query.limit` (default 100) are found or
    /// there are no more.
    pub async fn instances(&self, query: &InstanceQuery) -> Result<Vec<InstanceView>, ClientError> {
        let wanted = query.limit.unwrap_or(100);
        let mut instances = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let page_query = InstanceQuery {
                limit: Some((wanted - instances.len()).clamp(1, INSTANCES_PAGE)),
                ..query.clone()
            };
            let page = self.instances_page(&page_query, before.as_deref()).await?;
            instances.extend(page.items);
            match page.next {
                Some(next) if instances.len() < wanted => before = Some(next),
                _ => return Ok(instances),
            }
        }
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

    /// A `GET` of a paged list: the body, and the cursor of the next page (`cursor`'s value in
    /// the URL of the response's `Link: <…>; rel="next"`), if there is one.
    async fn call_page<T: DeserializeOwned>(
        &self,
        path: &str,
        cursor: &str,
    ) -> Result<Page<T>, ClientError> {
        let (items, headers) = self.exchange(Method::GET, path, None::<&()>).await?;
        Ok(Page {
            items,
            next: next_cursor(&headers, cursor),
        })
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        Ok(self.exchange(method, path, body).await?.0)
    }

    /// One request, to the server that answered last or, when it cannot be reached, the next:
    /// the decoded body of a success with its headers, or why it failed.
    async fn exchange<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(T, reqwest::header::HeaderMap), ClientError> {
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
                    let next = self.leader_named(&answer.1).unwrap_or(index);
                    self.current.store(next, Ordering::Relaxed);
                    return Ok(answer);
                }
            }
        }
    }

    /// Which of this client's servers a follower's answer names as the group's leader (see
    /// [`LEADER_HEADER`]): the next calls go there. A leader not among the URLs this client was
    /// given is never called: the token goes only where the operator sent it.
    fn leader_named(&self, headers: &reqwest::header::HeaderMap) -> Option<usize> {
        let named = url::Url::parse(headers.get(LEADER_HEADER)?.to_str().ok()?).ok()?;
        self.bases.iter().position(|base| {
            base.scheme() == named.scheme()
                && base.host() == named.host()
                && base.port_or_known_default() == named.port_or_known_default()
        })
    }

    async fn call_one<T: DeserializeOwned>(
        &self,
        index: usize,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(T, reqwest::header::HeaderMap), Attempt> {
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
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|error| {
            Attempt::Failed(ClientError::Unreachable {
                url: url.clone(),
                reason: describe(&error),
            })
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map(|value| (value, headers))
                .map_err(|error| {
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

/// The page size the client asks for when paging through every job.
pub const JOBS_PAGE: usize = 1_000;
/// The most instances the client asks for in one page (the server's maximum).
pub const INSTANCES_PAGE: usize = 10_000;

/// One page of a list and the cursor of the next (`None`: this was the last).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The value of `param` in the URL of a `Link: <URL>; rel="next"` header, if there is one.
fn next_cursor(headers: &reqwest::header::HeaderMap, param: &str) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find(|link| link.split(';').skip(1).any(|p| p.trim() == "rel=\"next\""))
        .and_then(|link| {
            let target = link.split(';').next()?.trim();
            let target = target.strip_prefix('<')?.strip_suffix('>')?;
            let (_, query) = target.split_once('?')?;
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == param)
                .map(|(_, value)| value.into_owned())
        })
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

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, LINK};

    use super::next_cursor;

    fn headers(links: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for link in links {
            headers.append(LINK, HeaderValue::from_str(link).unwrap());
        }
        headers
    }

    #[test]
    fn the_cursor_is_read_from_the_next_link_only() {
        let page = headers(&[
            "</api/v1/instances?job=a+b&state=queued%2Crunning&before=42&limit=10>; rel=\"next\"",
        ]);
        assert_eq!(next_cursor(&page, "before").as_deref(), Some("42"));
        assert_eq!(next_cursor(&page, "after"), None);
        let several = headers(&["</x?after=1>; rel=\"prev\", </x?after=9>; rel=\"next\""]);
        assert_eq!(next_cursor(&several, "after").as_deref(), Some("9"));
        assert_eq!(next_cursor(&HeaderMap::new(), "after"), None);
    }

    #[test]
    fn the_leader_named_by_a_follower_is_taken_only_from_the_urls_given() {
        let client = super::ApiClient::new(
            "http://10.0.0.5:7070, https://s2.example:443/, http://10.0.0.7:7070",
            None,
            &Default::default(),
        )
        .unwrap();
        let named = |leader: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(super::LEADER_HEADER, HeaderValue::from_str(leader).unwrap());
            client.leader_named(&headers)
        };
        assert_eq!(named("http://10.0.0.7:7070"), Some(2));
        // The default port is the same port; a path does not matter.
        assert_eq!(named("https://s2.example/"), Some(1));
        // Another scheme, port or host is another server: never called.
        assert_eq!(named("https://10.0.0.7:7070"), None);
        assert_eq!(named("http://10.0.0.7:7071"), None);
        assert_eq!(named("http://10.0.0.9:7070"), None);
        assert_eq!(named("not a url"), None);
        assert_eq!(client.leader_named(&HeaderMap::new()), None);
    }
}
