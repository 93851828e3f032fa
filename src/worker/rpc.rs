//! The worker's side of `/rpc/v1`: the handshake calls, and poll and report under a session.
//! It never sends the cluster token: a server gets a session id, earned by the handshake
//! (`link`), or nothing at all when no token is configured. Calls go to a server's base URL
//! (`http://` or `https://`, from gossip); a TLS mismatch comes back typed ([`RpcError::Tls`],
//! [`RpcError::HttpsRequired`]) for the link to judge the server by.

use std::time::Duration;

use anyhow::Context;

use crate::tls::{ClientTls, HTTPS_REQUIRED_HEADER, TlsFailure};
use crate::wire::{
    Assignment, HelloRequest, HelloResponse, PollRequest, Report, ReportAck, SESSION_SCHEME,
    SessionRequest, SessionResponse, TaskEvent,
};

/// How long one handshake step may take: a server that answers no faster is not one to use.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ServerRpc {
    http: reqwest::Client,
}

/// Why an RPC call failed, as far as the caller must act differently.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// 401 on a call that carried a session: the server forgot it (restarted, or it idled out).
    #[error("the server no longer knows our session (it restarted?); handshaking again")]
    SessionRefused,
    /// 401 on a call without a session: the server wants a token this worker was not given.
    #[error(
        "the server refused our token: start the worker with the cluster's --token (or SHOAL_TOKEN)"
    )]
    TokenRequired,
    /// 503 `not_leader`: the server does not lead its group (any more); poll the leader.
    #[error("{0}")]
    NotLeader(String),
    /// The call failed in TLS: an untrusted certificate, or a plain-HTTP answer to https://.
    #[error("{0}")]
    Tls(TlsFailure),
    /// The server answered a plain-HTTP call saying it speaks HTTPS at this URL.
    #[error("the server speaks HTTPS ({0}), but gossip announced it with plain http")]
    HttpsRequired(String),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl RpcError {
    /// A request that got no answer: its TLS failure if that is the cause, else its chain.
    fn unanswered(path: &str, error: reqwest::Error) -> RpcError {
        match TlsFailure::of(&error) {
            Some(failure) => RpcError::Tls(failure),
            None => RpcError::Other(anyhow::Error::new(error).context(format!("POST {path}"))),
        }
    }
}

/// The URL to use when `response` is the server's refusal of plain HTTP on its TLS port.
fn https_required(response: &reqwest::Response) -> Option<RpcError> {
    response
        .headers()
        .get(HTTPS_REQUIRED_HEADER)
        .map(|url| RpcError::HttpsRequired(url.to_str().unwrap_or("https://…").to_string()))
}

/// How a handshake step was answered.
#[derive(Debug)]
pub enum StepAnswer<T> {
    Answered(T),
    /// A status other than 200, with the body's text.
    Refused(reqwest::StatusCode, String),
    /// 200, but not the JSON of Shoal's handshake.
    Garbled(String),
}

impl ServerRpc {
    pub fn new(tls: &ClientTls) -> anyhow::Result<ServerRpc> {
        Ok(ServerRpc {
            http: tls
                .http_client(Duration::from_secs(3))?
                // Well under the server's --header-timeout (10 s by default), after which it
                // closes an idle connection: reusing one it is closing would fail a call.
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .context("building the RPC client")?,
        })
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        server: &str,
        session: Option<&str>,
        path: &str,
        body: &impl serde::Serialize,
        timeout: Duration,
    ) -> Result<T, RpcError> {
        let mut request = self
            .http
            .post(format!("{server}{path}"))
            .timeout(timeout)
            .json(body);
        if let Some(session) = session {
            request = request.header(
                reqwest::header::AUTHORIZATION,
                format!("{SESSION_SCHEME} {session}"),
            );
        }
        let response = request
            .send()
            .await
            .map_err(|error| RpcError::unanswered(path, error))?;
        if let Some(error) = https_required(&response) {
            return Err(error);
        }
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(match session {
                Some(_) => RpcError::SessionRefused,
                None => RpcError::TokenRequired,
            });
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            if let Ok(body) = serde_json::from_str::<crate::wire::admin::ErrorBody>(&text)
                && body.error == "not_leader"
            {
                return Err(RpcError::NotLeader(body.message));
            }
            return Err(anyhow::anyhow!("{path} answered {status}: {text}").into());
        }
        Ok(response
            .json()
            .await
            .with_context(|| format!("decoding {path}"))?)
    }

    /// One unauthenticated handshake step. `Err` only when no HTTP answer came at all, or the
    /// answer says the server speaks HTTPS.
    async fn step<T: serde::de::DeserializeOwned>(
        &self,
        server: &str,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<StepAnswer<T>, RpcError> {
        let response = self
            .http
            .post(format!("{server}{path}"))
            .timeout(HANDSHAKE_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|error| RpcError::unanswered(path, error))?;
        if let Some(error) = https_required(&response) {
            return Err(error);
        }
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Ok(StepAnswer::Refused(status, text));
        }
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer to {path}"))?;
        Ok(match serde_json::from_slice(&bytes) {
            Ok(answer) => StepAnswer::Answered(answer),
            Err(error) => StepAnswer::Garbled(error.to_string()),
        })
    }

    pub async fn hello(
        &self,
        server: &str,
        request: &HelloRequest,
    ) -> Result<StepAnswer<HelloResponse>, RpcError> {
        self.step(server, "/rpc/v1/hello", request).await
    }

    pub async fn open_session(
        &self,
        server: &str,
        request: &SessionRequest,
    ) -> Result<StepAnswer<SessionResponse>, RpcError> {
        self.step(server, "/rpc/v1/session", request).await
    }

    pub async fn poll(
        &self,
        server: &str,
        session: Option<&str>,
        worker: &str,
        free: u32,
        wait: Duration,
    ) -> Result<Vec<Assignment>, RpcError> {
        let request = PollRequest {
            worker: worker.to_string(),
            free,
            wait_ms: wait.as_millis() as u64,
        };
        self.post(
            server,
            session,
            "/rpc/v1/poll",
            &request,
            wait + Duration::from_secs(10),
        )
        .await
    }

    pub async fn report(
        &self,
        server: &str,
        session: Option<&str>,
        worker: &str,
        events: &[TaskEvent],
    ) -> Result<ReportAck, RpcError> {
        let report = Report {
            worker: worker.to_string(),
            events: events.to_vec(),
        };
        self.post(
            server,
            session,
            "/rpc/v1/report",
            &report,
            Duration::from_secs(30),
        )
        .await
    }
}
