//! Which server this worker talks to, and the proof that it is one.
//!
//! Gossip is unauthenticated: any host that can send UDP to the gossip port can announce itself
//! as a server, under an id that sorts first. So a worker with a token sends a server candidate
//! nothing but a challenge (`/rpc/v1/hello`) until the candidate has proved it holds the cluster
//! token (`crate::handshake`); only then does the worker prove itself, get a session, and poll.
//! A candidate that fails is logged once (per candidate and failure), named with its address and
//! the likely cause, and skipped for as long as gossip announces that same incarnation of it; the
//! worker goes on to the next candidate. A restarted candidate (a new gossip generation) is
//! tried afresh.
//!
//! Without a token (loopback development) the first live server is taken as it is, as before.
//! This module must never send the token, nor anything but a hello, to an unproven server.
//!
//! A server's gossip address says how to reach it: bare `HOST:PORT` is plain HTTP, and
//! `https://HOST:PORT` is TLS. A worker given a CA (`--ca`) talks HTTPS only: a candidate offering
//! plain HTTP — a server started without `--tls-cert`, or a rogue member trying a downgrade — is
//! refused before it is contacted at all, and so is one whose certificate that CA did not sign.

use std::collections::{HashMap, HashSet};

use shoal_gossip::{MembershipView, Role};
use tokio::sync::Mutex;

use super::rpc::{RpcError, ServerRpc, StepAnswer};
use crate::handshake::{Nonce, Proof, ServerClaim, WorkerClaim};
use crate::tls::TlsFailure;
use crate::wire::admin::ErrorBody;
use crate::wire::{HelloRequest, SessionRequest};

/// Proofs beyond the first a server may offer (one per worker token it accepts while tokens are
/// rotated); more are ignored, so a rogue answer cannot make the worker hash without end.
const MAX_OTHER_PROOFS: usize = 8;

/// A server this worker may send work-related calls to.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub server_id: String,
    /// As gossip announces it, for logs.
    pub api: String,
    /// The base URL calls go to (`http://HOST:PORT` or `https://HOST:PORT`).
    pub url: String,
    generation: u64,
    /// The credential of every call; `None` only when the worker has no token.
    pub session: Option<String>,
}

/// One incarnation of a member announcing itself as a server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Candidate {
    id: String,
    generation: u64,
    api: String,
}

pub struct ServerLink {
    rpc: ServerRpc,
    worker: String,
    cluster: String,
    token: Option<String>,
    /// Refuse servers that offer plain HTTP (the worker was given a CA).
    https_only: bool,
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    current: Option<Connection>,
    /// Candidates that failed the handshake; never contacted again in this incarnation.
    refused: HashSet<Candidate>,
    /// The kind of the last failure logged per candidate, so a failure is logged once per state.
    logged: HashMap<Candidate, &'static str>,
}

/// Why a candidate is not (yet) a server to use.
struct Failure {
    /// Refused for good (this incarnation), or worth another try later.
    refused: bool,
    /// A stable name of the failure, for logging each state once.
    kind: &'static str,
    cause: String,
}

impl Failure {
    fn refused(kind: &'static str, cause: impl Into<String>) -> Failure {
        Failure {
            refused: true,
            kind,
            cause: cause.into(),
        }
    }

    fn transient(kind: &'static str, cause: impl Into<String>) -> Failure {
        Failure {
            refused: false,
            kind,
            cause: cause.into(),
        }
    }
}

impl ServerLink {
    pub fn new(
        rpc: ServerRpc,
        worker: &str,
        cluster: &str,
        token: Option<String>,
        https_only: bool,
    ) -> ServerLink {
        ServerLink {
            rpc,
            worker: worker.to_string(),
            cluster: cluster.to_string(),
            token: token.filter(|t| !t.is_empty()),
            https_only,
            state: Mutex::new(LinkState::default()),
        }
    }

    /// The server to use now: the current one while gossip still announces it (and, for a group
    /// of servers, as its leader), else the first candidate that proves itself — the group's
    /// leader first, then the others by id. `None` when no candidate does.
    pub async fn connect(&self, view: &MembershipView) -> Option<Connection> {
        let candidates: Vec<Candidate> = view
            .live_servers()
            .into_iter()
            .filter(|m| m.info.role == Role::Server && !m.info.api_addr.is_empty())
            .map(|m| Candidate {
                id: m.info.id.clone(),
                generation: m.generation,
                api: m.info.api_addr.clone(),
            })
            .collect();
        let mut state = self.state.lock().await;
        if let Some(current) = &state.current {
            let led_elsewhere = led_by_another(view, &current.server_id);
            if !led_elsewhere && candidates.iter().any(|c| c.is(current)) {
                return Some(current.clone());
            }
            if led_elsewhere {
                tracing::info!(server = %current.server_id, api = %current.api,
                    "the server group has another leader; switching to it");
            } else {
                tracing::info!(server = %current.server_id, api = %current.api,
                    "server no longer live in gossip; looking for another");
            }
            state.current = None;
        }
        // Forget incarnations gossip no longer knows, so neither set grows without end.
        let known = |c: &Candidate| {
            view.get(&c.id)
                .is_some_and(|m| m.generation == c.generation)
        };
        state.refused.retain(known);
        state.logged.retain(|c, _| known(c));

        for candidate in candidates {
            if state.refused.contains(&candidate) {
                continue;
            }
            let url = match self.base_url(&candidate) {
                Ok(url) => url,
                Err(failure) => {
                    state.record(&candidate, failure);
                    continue;
                }
            };
            let Some(token) = &self.token else {
                tracing::info!(server = %candidate.id, api = %candidate.api,
                    "using server (no --token: the server is not authenticated; loopback \
                     development only)");
                let connection = candidate.connection(url, None);
                state.current = Some(connection.clone());
                return Some(connection);
            };
            match self.handshake(&candidate, &url, token).await {
                Ok(session) => {
                    state.logged.remove(&candidate);
                    tracing::info!(server = %candidate.id, api = %candidate.api,
                        "server authenticated: it proved it holds the cluster token");
                    let connection = candidate.connection(url, Some(session));
                    state.current = Some(connection.clone());
                    return Some(connection);
                }
                Err(failure) => state.record(&candidate, failure),
            }
        }
        None
    }

    /// Whether gossip names a leader of the server group other than `server`: then the worker
    /// moves to it (and gives up a poll in flight to `server`).
    pub fn should_leave(&self, view: &MembershipView, server: &Connection) -> bool {
        led_by_another(view, &server.server_id)
    }

    /// Where to reach `candidate`, or why it must not be contacted at all.
    fn base_url(&self, candidate: &Candidate) -> Result<String, Failure> {
        let url = crate::net::api_url_from_gossip(&candidate.api).map_err(|reason| {
            Failure::refused(
                "bad-address",
                format!("its announced API address is unusable: {reason}"),
            )
        })?;
        if self.https_only && url.scheme() != "https" {
            return Err(Failure::refused(
                "plain-http-offered",
                "it offers its API in plain HTTP, and this worker talks to servers over HTTPS \
                 only (it was given --ca): a server started without --tls-cert, or a rogue \
                 gossip member trying a downgrade",
            ));
        }
        Ok(url.as_str().trim_end_matches('/').to_string())
    }

    /// Drops `connection` after the server refused its session: the next `connect` handshakes
    /// again (a restarted server has forgotten every session).
    pub async fn forget(&self, connection: &Connection) {
        let mut state = self.state.lock().await;
        if state.current.as_ref() == Some(connection) {
            state.current = None;
        }
    }

    /// Challenges `candidate` at `url`; on a correct proof, proves this worker and returns the
    /// session.
    async fn handshake(
        &self,
        candidate: &Candidate,
        url: &str,
        token: &str,
    ) -> Result<String, Failure> {
        let worker_nonce = Nonce::fresh();
        let hello = HelloRequest {
            worker: self.worker.clone(),
            worker_nonce: worker_nonce.to_hex(),
        };
        let answer = match self.rpc.hello(url, &hello).await {
            Ok(answer) => answer,
            Err(error) => return Err(unanswered_hello(error)),
        };
        let hello = match answer {
            StepAnswer::Answered(hello) => hello,
            StepAnswer::Refused(status, body) => return Err(refused_hello(status, &body)),
            StepAnswer::Garbled(detail) => {
                return Err(Failure::refused(
                    "not-shoal",
                    format!(
                        "its answer to the handshake is not Shoal's ({detail}): not a Shoal server"
                    ),
                ));
            }
        };
        let malformed = |field: &str, reason: String| {
            Failure::refused(
                "not-shoal",
                format!(
                    "its handshake answer is malformed ({field}: {reason}): not a Shoal server"
                ),
            )
        };
        let server_nonce =
            Nonce::from_hex(&hello.server_nonce).map_err(|e| malformed("server_nonce", e))?;
        let server_proofs = std::iter::once(&hello.server_proof)
            .chain(hello.other_proofs.iter().take(MAX_OTHER_PROOFS))
            .map(|proof| Proof::from_hex(proof).map_err(|e| malformed("server_proof", e)))
            .collect::<Result<Vec<_>, _>>()?;
        if hello.server != candidate.id {
            return Err(Failure::refused(
                "other-id",
                format!(
                    "its API answers as server {:?}, not as the {:?} gossip announces: another \
                     node's address, or not a Shoal server",
                    hello.server, candidate.id
                ),
            ));
        }
        let claim = ServerClaim {
            cluster: &self.cluster,
            server_id: &candidate.id,
            worker_nonce: &worker_nonce,
            server_nonce: &server_nonce,
        };
        if !server_proofs.iter().any(|proof| claim.verify(token, proof)) {
            return Err(Failure::refused(
                "wrong-proof",
                "its proof of the cluster token is wrong: it was started with another --token, \
                 or it is not a Shoal server",
            ));
        }
        let worker_proof = WorkerClaim {
            cluster: &self.cluster,
            worker_id: &self.worker,
            server_nonce: &server_nonce,
            worker_nonce: &worker_nonce,
        }
        .prove(token);
        let request = SessionRequest {
            worker: self.worker.clone(),
            worker_nonce: worker_nonce.to_hex(),
            server_nonce: server_nonce.to_hex(),
            worker_proof: worker_proof.to_hex(),
        };
        // The server proved it holds our token, so a refusal from here on is a passing fault
        // (a restart between the two steps, an expired challenge), not a reason to distrust it.
        match self.rpc.open_session(url, &request).await {
            Ok(StepAnswer::Answered(session)) => Ok(session.session),
            Ok(StepAnswer::Refused(status, body)) => Err(Failure::transient(
                "session-refused",
                format!("it refused to open a session ({status}: {body})"),
            )),
            Ok(StepAnswer::Garbled(detail)) => Err(Failure::transient(
                "session-refused",
                format!("its session answer is not Shoal's ({detail})"),
            )),
            Err(error) => Err(Failure::transient("unreachable", format!("{error:#}"))),
        }
    }
}

impl LinkState {
    /// Logs `failure` once per candidate and kind; a refusal is remembered for the candidate's
    /// incarnation, so it is never contacted again.
    fn record(&mut self, candidate: &Candidate, failure: Failure) {
        if self.logged.get(candidate) != Some(&failure.kind) {
            self.logged.insert(candidate.clone(), failure.kind);
            if failure.refused {
                tracing::warn!(server = %candidate.id, api = %candidate.api,
                    cause = %failure.cause,
                    "refused server {} at {}: {}; it is sent nothing more and none of its work \
                     runs", candidate.id, candidate.api, failure.cause);
            } else {
                tracing::warn!(server = %candidate.id, api = %candidate.api,
                    cause = %failure.cause,
                    "cannot authenticate server {} at {} yet: {}; trying again",
                    candidate.id, candidate.api, failure.cause);
            }
        }
        if failure.refused {
            self.refused.insert(candidate.clone());
        }
    }
}

/// What a hello that got no answer says about the candidate: a TLS certificate this worker does
/// not trust, or the wrong protocol, is a refusal; anything else may pass.
fn unanswered_hello(error: RpcError) -> Failure {
    match error {
        RpcError::Tls(TlsFailure::UntrustedCertificate(reason)) => Failure::refused(
            "untrusted-certificate",
            format!(
                "its TLS certificate is not trusted ({reason}): not signed by the CA of --ca, or \
                 not naming the address gossip announces"
            ),
        ),
        RpcError::Tls(TlsFailure::PlainHttpAnswer) => Failure::refused(
            "plain-http-answer",
            "gossip announces it with https://, but it answers in plain HTTP: not a Shoal \
             server with TLS",
        ),
        RpcError::HttpsRequired(url) => Failure::refused(
            "https-required",
            format!(
                "gossip announces it with plain http, but it speaks HTTPS ({url}): not a Shoal \
                 server of this version"
            ),
        ),
        other => Failure::transient("unreachable", other.to_string()),
    }
}

/// What a non-200 answer to the hello says about the candidate.
fn refused_hello(status: reqwest::StatusCode, body: &str) -> Failure {
    let error = serde_json::from_str::<ErrorBody>(body).ok();
    match error {
        Some(error) if status == reqwest::StatusCode::CONFLICT => Failure::refused(
            "no-token",
            format!(
                "it cannot prove it holds the cluster token: {}",
                error.message
            ),
        ),
        _ if status.is_server_error() => Failure::transient(
            "server-error",
            format!("it answered the handshake with {status}"),
        ),
        _ => Failure::refused(
            "not-shoal",
            format!(
                "it answered the handshake with {status}: not a Shoal server, or one older than \
                 this worker"
            ),
        ),
    }
}

impl Candidate {
    fn is(&self, connection: &Connection) -> bool {
        self.id == connection.server_id
            && self.generation == connection.generation
            && self.api == connection.api
    }

    fn connection(&self, url: String, session: Option<String>) -> Connection {
        Connection {
            server_id: self.id.clone(),
            api: self.api.clone(),
            url,
            generation: self.generation,
            session,
        }
    }
}

/// Whether gossip names a live leader of the server group other than `server`.
fn led_by_another(view: &MembershipView, server: &str) -> bool {
    view.live_server().is_some_and(|leader| {
        leader.info.id != server
            && leader
                .group
                .is_some_and(|g| g.role == shoal_gossip::GroupRole::Leader)
    })
}
