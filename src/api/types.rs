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

/// `GET /api/v1/jobs/{key}/next`: a job's schedule in words and its next fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextFires {
    pub job: String,
    /// The schedule in words, e.g. "at 12:00, on Monday … (Europe/Berlin)".
    pub description: String,
    /// Oldest first; each with its scheduled time and, later by its jitter, when it runs.
    pub fires: Vec<crate::schedule::UpcomingFire>,
    pub paused: bool,
    /// Set when the job's window has closed: it will not fire again on schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<crate::model::UnixMs>,
}

/// `POST /api/v1/jobs/{key}/backfill`: create the job's fires of `[from, to)` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    pub from: String,
    pub to: String,
    /// Only count the fires; create nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a backfill created (or, for a dry run, would create).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillResult {
    pub job: String,
    pub count: usize,
    pub dry_run: bool,
    /// The instances created, oldest fire first (empty for a dry run).
    pub instances: Vec<crate::model::InstanceId>,
}
