//! Wire types of the HTTP API, shared by the server handlers and the client.

use serde::{Deserialize, Serialize};
use shoal_gossip::{Member, MemberState, Role};

/// One row of `GET /api/v1/members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRow {
    pub id: String,
    pub role: Role,
    /// The address to reach the node: the API address of a server, the gossip address of a worker.
    pub addr: String,
    pub gossip_addr: String,
    pub state: MemberState,
    pub tags: Vec<String>,
    pub capacity: u32,
    pub running: u32,
    pub version: String,
    pub generation: u64,
    pub last_seen_ms: u64,
}

impl From<&Member> for MemberRow {
    fn from(member: &Member) -> Self {
        let gossip_addr = member.gossip_addr.to_string();
        MemberRow {
            id: member.info.id.clone(),
            role: member.info.role,
            addr: if member.info.api_addr.is_empty() {
                gossip_addr.clone()
            } else {
                member.info.api_addr.clone()
            },
            gossip_addr,
            state: member.state,
            tags: member.info.tags.clone(),
            capacity: member.info.capacity,
            running: member.info.running,
            version: member.info.version.clone(),
            generation: member.generation,
            last_seen_ms: member.last_seen_ms,
        }
    }
}

/// `GET /api/v1/cluster`: who is answering.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster: String,
    pub server_id: String,
    pub version: String,
    /// The gossip address workers should `--join`.
    pub gossip_addr: String,
}

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub instance: crate::model::InstanceId,
    pub attempt: u32,
    pub job: String,
    pub task: crate::model::HttpTask,
    pub lease_until_ms: crate::model::UnixMs,
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
        instance: crate::model::InstanceId,
        attempt: u32,
        at_ms: crate::model::UnixMs,
    },
    Finished(TaskResult),
}

impl TaskEvent {
    pub fn key(&self) -> (crate::model::InstanceId, u32) {
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
    pub instance: crate::model::InstanceId,
    pub attempt: u32,
    pub started_ms: crate::model::UnixMs,
    pub ended_ms: crate::model::UnixMs,
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
    pub instance: crate::model::InstanceId,
    pub attempt: u32,
    pub reason: String,
}
