//! What processes say to each other over HTTP, as plain data both sides import, so that neither
//! imports the other's internals to talk to it. This file: the worker protocol (`/rpc/v1`) —
//! polls, assignments, reports and their acknowledgements. [`admin`]: the admin API's types.

pub mod admin;

use serde::{Deserialize, Serialize};

use crate::model::{HttpTask, InstanceId, UnixMs};

/// The most bytes of a response body (and of an error text) a worker reports, and the server
/// stores, per attempt.
pub const EXCERPT_LIMIT: usize = 4 * 1024;

/// The scheme of the worker RPC's `Authorization` header: `Shoal-Session <session>`.
pub const SESSION_SCHEME: &str = "Shoal-Session";

/// `POST /rpc/v1/hello` (no credential): a worker challenges a server to prove it holds the
/// cluster token. The worker sends nothing else to a server until this is answered correctly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloRequest {
    pub worker: String,
    /// 32 fresh random bytes, hex.
    pub worker_nonce: String,
}

/// The server's answer: its id and its proof over the worker's nonce and its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloResponse {
    pub server: String,
    pub server_nonce: String,
    pub server_proof: String,
    /// The same proof under each other worker token the server accepts (while tokens are
    /// rotated); a worker accepts any one made with its token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_proofs: Vec<String>,
}

/// `POST /rpc/v1/session` (no credential): the worker's proof, in return for a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    pub worker: String,
    pub worker_nonce: String,
    pub server_nonce: String,
    pub worker_proof: String,
}

/// A session for the worker's RPC calls: `Authorization: Shoal-Session <session>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionResponse {
    pub session: String,
    /// The server forgets a session unused for this long; the worker then handshakes again.
    pub idle_timeout_ms: u64,
}

/// `POST /rpc/v1/poll`: a worker asks for up to `free` assignments, waiting up to `wait_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollRequest {
    pub worker: String,
    pub free: u32,
    pub wait_ms: u64,
}

/// One task handed to a worker. `attempt` fences it: a report for an older attempt is refused.
/// `term` fences the server that handed it out: a worker that has seen a newer term of the
/// server group refuses it (0: a single server, not in a group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub instance: InstanceId,
    pub attempt: u32,
    pub job: String,
    pub task: HttpTask,
    pub lease_until_ms: UnixMs,
    #[serde(default)]
    pub term: u64,
}

/// `POST /rpc/v1/report`: what happened to a worker's tasks since its last report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub worker: String,
    pub events: Vec<TaskEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum TaskEvent {
    Started {
        instance: InstanceId,
        attempt: u32,
        at_ms: UnixMs,
    },
    Finished(TaskResult),
}

impl TaskEvent {
    pub fn key(&self) -> (InstanceId, u32) {
        match self {
            TaskEvent::Started {
                instance, attempt, ..
            } => (*instance, *attempt),
            TaskEvent::Finished(result) => (result.instance, result.attempt),
        }
    }
}

/// The outcome of one attempt as the worker saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub instance: InstanceId,
    pub attempt: u32,
    pub started_ms: UnixMs,
    pub ended_ms: UnixMs,
    pub succeeded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

/// The server's answer to a report: every event was either applied or refused (and why).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportAck {
    pub applied: u32,
    pub refused: Vec<Refusal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub instance: InstanceId,
    pub attempt: u32,
    pub reason: String,
}
