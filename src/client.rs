//! A typed client of the server's HTTP API, shared by the CLI and the console.

use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::ErrorBody;
use crate::api::types::{ClusterInfo, MemberRow};

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
