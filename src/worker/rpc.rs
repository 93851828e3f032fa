//! The worker's side of `/rpc/v1`.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::wire::{Assignment, PollRequest, Report, ReportAck, TaskEvent};

pub struct ServerRpc {
    http: reqwest::Client,
    token: Option<String>,
}

impl ServerRpc {
    pub fn new(token: Option<String>) -> anyhow::Result<ServerRpc> {
        Ok(ServerRpc {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .build()
                .context("building the RPC client")?,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        server: &str,
        path: &str,
        body: &impl serde::Serialize,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let mut request = self
            .http
            .post(format!("http://{server}{path}"))
            .timeout(timeout)
            .json(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "the server refused our token: start the worker with the cluster's --token (or SHOAL_TOKEN)"
            );
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("{path} answered {status}: {text}");
        }
        response
            .json()
            .await
            .with_context(|| format!("decoding {path}"))
    }

    pub async fn poll(
        &self,
        server: &str,
        worker: &str,
        free: u32,
        wait: Duration,
    ) -> anyhow::Result<Vec<Assignment>> {
        let request = PollRequest {
            worker: worker.to_string(),
            free,
            wait_ms: wait.as_millis() as u64,
        };
        self.post(
            server,
            "/rpc/v1/poll",
            &request,
            wait + Duration::from_secs(10),
        )
        .await
    }

    pub async fn report(
        &self,
        server: &str,
        worker: &str,
        events: &[TaskEvent],
    ) -> anyhow::Result<ReportAck> {
        let report = Report {
            worker: worker.to_string(),
            events: events.to_vec(),
        };
        self.post(server, "/rpc/v1/report", &report, Duration::from_secs(30))
            .await
    }
}
