//! The group's wire: openraft's RPCs (append, vote, snapshot chunks) and forwarded proposals,
//! sent as POSTs of MessagePack bodies (`types::encode`) to a peer's API under `/raft/v1`, with
//! the server's own token. The peer answers 200 with the encoded `Result` of its Raft node; any
//! other status, or no answer, is a failure of the network, and openraft retries it.
//!
//! A peer is reached at the address its membership entry holds (`BasicNode::addr`, its API
//! address, `http://` unless it names a scheme). This module must never decide anything about the
//! group: it carries messages.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{NodeId, TypeConfig, decode, encode};

/// The content type of every body on `/raft/v1`.
pub const CONTENT_TYPE: &str = "application/vnd.shoal.raft+msgpack";

/// The base URL of a peer's API from its membership address.
pub fn base_url(addr: &str) -> String {
    if addr.contains("://") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    }
}

/// One HTTP client for every peer (connections are pooled per peer), and the token to send.
#[derive(Clone)]
pub struct PeerWire {
    http: reqwest::Client,
    token: Option<String>,
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// No answer: the peer is down, or the network dropped the call.
    #[error("{url}: unreachable: {cause}")]
    Unreachable { url: String, cause: String },
    /// An answer, but not the peer's Raft node's: a refusal (wrong token) or a garbled body.
    #[error("{url}: {cause}")]
    Refused { url: String, cause: String },
}

impl PeerWire {
    /// Trusting the peers' certificates as `tls` says (when their addresses are `https://`).
    pub fn new(token: Option<String>, tls: &crate::tls::ClientTls) -> anyhow::Result<PeerWire> {
        Ok(PeerWire {
            http: tls
                .http_client(Duration::from_millis(500))?
                // Under the server's header timeout, after which it closes idle connections.
                .pool_idle_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .build()?,
            token,
        })
    }

    /// POSTs `body` to `{base}/raft/v1/{path}` and decodes the answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, WireError> {
        let url = format!("{base}/raft/v1/{path}");
        let refused = |cause: String| WireError::Refused {
            url: url.clone(),
            cause,
        };
        let body = encode(body).map_err(|e| refused(format!("encoding the request: {e}")))?;
        let mut request = self
            .http
            .post(&url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| WireError::Unreachable {
            url: url.clone(),
            cause: error_chain(&e),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| WireError::Unreachable {
            url: url.clone(),
            cause: error_chain(&e),
        })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(refused(format!(
                "answered {status}: {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        decode(&bytes).map_err(|e| refused(format!("an answer that does not decode: {e}")))
    }
}

impl PeerWire {
    /// Sends an admin API request (`method path`, a JSON body) to the server at `base`, as this
    /// server, and returns its status and body as they are: how a follower hands a membership
    /// change to the leader.
    pub async fn forward_json(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(reqwest::StatusCode, axum::body::Bytes), WireError> {
        let url = format!("{base}{path}");
        let mut request = self
            .http
            .request(method, &url)
            .timeout(Duration::from_secs(60));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| WireError::Unreachable {
            url: url.clone(),
            cause: error_chain(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok((status, bytes))
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Builds a [`PeerClient`] per peer for openraft.
#[derive(Clone)]
pub struct PeerNetwork {
    wire: PeerWire,
}

impl PeerNetwork {
    pub fn new(wire: PeerWire) -> PeerNetwork {
        PeerNetwork { wire }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            node: node.clone(),
            base: base_url(&node.addr),
            wire: self.wire.clone(),
        }
    }
}

/// openraft's connection to one peer.
pub struct PeerClient {
    target: NodeId,
    node: BasicNode,
    base: String,
    wire: PeerWire,
}

type Answer<T, E> = Result<T, RaftError<NodeId, E>>;
type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn rpc<Req, T, E>(&self, path: &str, request: &Req, option: &RPCOption) -> Rpc<T, E>
    where
        Req: Serialize,
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Answer<T, E> = self
            .wire
            .call(&self.base, path, request, option.hard_ttl())
            .await
            .map_err(|error| match error {
                WireError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&error)),
                WireError::Refused { .. } => RPCError::Network(NetworkError::new(&error)),
            })?;
        answer.map_err(|remote| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                remote,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        self.rpc("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.rpc("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        self.rpc("vote", &rpc, &option).await
    }

    /// Unreachable peers are retried every 200 ms (openraft's default is 500 ms): a restarted
    /// server is back in the group well within a second.
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
