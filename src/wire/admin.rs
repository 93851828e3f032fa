//! Types of the admin API (`/api/v1`) shared by the server's handlers and the client (CLI and
//! console). Plain data.

use serde::{Deserialize, Serialize};
use shoal_gossip::{GroupRole, GroupStatus, Member, MemberState, Role};

use crate::alert::ChainEdge;
use crate::model::{Instance, InstanceId, Job, JobId, StateKind, UnixMs};
use crate::reason::QueueReason;

/// A header on the answers of a server that does not lead its group: the leader's API URL.
/// Clients given several servers' URLs send their next requests to the one it names.
pub const LEADER_HEADER: &str = "shoal-leader";

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
    /// A server's place in its group (role, term, applied index), when servers form one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupStatus>,
    /// How many log entries a server has yet to apply to catch up with the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

impl MemberRow {
    /// The rows of `view`, each server's lag measured against the leader's applied index.
    pub fn all(view: &shoal_gossip::MembershipView) -> Vec<MemberRow> {
        let leader_applied = view
            .members
            .iter()
            .filter(|m| m.is_live())
            .filter_map(|m| m.group)
            .filter(|g| g.role == GroupRole::Leader)
            .max_by_key(|g| g.term)
            .map(|g| g.applied);
        view.members
            .iter()
            .map(|m| {
                let mut row = MemberRow::from(m);
                row.lag = match (leader_applied, m.group) {
                    (Some(leader), Some(own)) => Some(leader.saturating_sub(own.applied)),
                    _ => None,
                };
                row
            })
            .collect()
    }
}

/// One server of a group, as `GET /api/v1/servers` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRow {
    /// The server's Raft id (derived from its `--id`).
    pub raft_id: u64,
    /// Its `--id`, when gossip knows it.
    pub server_id: Option<String>,
    /// Its API address, as the group's membership holds it.
    pub api: String,
    /// Whether it votes (else it is a learner, catching up).
    pub voter: bool,
    pub leader: bool,
    /// How gossip sees it (live, dead, left), when it does.
    pub state: Option<String>,
    pub role: Option<String>,
    pub term: Option<u64>,
    pub applied: Option<u64>,
    pub lag: Option<u64>,
}

/// `POST /api/v1/servers`: the server (its `--id`) to add to the group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerChange {
    pub id: String,
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
            group: member.group,
            lag: None,
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
    /// Set while the server's storage refuses writes (a full disk, an I/O error); absent when
    /// healthy. Reads keep answering meanwhile, and the server recovers by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_degraded: Option<StorageDegraded>,
    /// The answering server's place in its group, when servers form one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<ClusterGroup>,
}

/// The group as the answering server sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterGroup {
    pub role: GroupRole,
    pub term: u64,
    /// The index of the last log entry the answering server applied (its reads reflect it).
    pub applied: u64,
    /// The leader's API address, when one is known.
    pub leader_api: Option<String>,
    /// Voting servers reachable from the answering one (itself included), of how many.
    pub reachable: usize,
    pub members: usize,
    /// How many voting servers a write needs.
    pub quorum: usize,
}

impl ClusterGroup {
    /// Whether writes can be committed as far as the answering server can tell.
    pub fn has_quorum(&self) -> bool {
        self.reachable >= self.quorum
            && (self.role == GroupRole::Leader || self.leader_api.is_some())
    }
}

/// Why the server's storage refuses writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageFault {
    /// The data dir's file system is full (ENOSPC, or a quota: EDQUOT).
    NoSpace,
    /// Any other I/O error of the data dir's storage.
    Io,
}

impl StorageFault {
    /// A few words for a header or a log line.
    pub fn label(self) -> &'static str {
        match self {
            StorageFault::NoSpace => "disk full",
            StorageFault::Io => "storage I/O error",
        }
    }
}

/// The storage's state while degraded: what failed, since when, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageDegraded {
    pub fault: StorageFault,
    /// What failed and what to do, in a sentence.
    pub message: String,
    pub since_ms: crate::model::UnixMs,
}

/// A job with its queue, as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSummary {
    #[serde(flatten)]
    pub job: Job,
    pub queued: u32,
    pub running: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<StateKind>,
    /// The jobs whose end queues this one (its downstream is its own `on_success` …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<ChainEdge>,
}

/// `GET /api/v1/jobs/{key}`: the job and the jobs whose end queues it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<ChainEdge>,
}

/// An instance as `GET /api/v1/instances` and `GET /api/v1/instances/{id}` show it: as stored,
/// plus the instances its chain links it to, as they are now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceView {
    #[serde(flatten)]
    pub instance: Instance,
    #[serde(default, skip_serializing_if = "ChainLinks::is_empty")]
    pub chain: ChainLinks,
}

/// An instance's parent (whose end queued it) and children (queued by its end), each with its
/// job and state now. One the server no longer keeps (retention forgot it) is left out; its id
/// is still in the instance's `parent` or `children`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainLinks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<LinkedInstance>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<LinkedInstance>,
}

impl ChainLinks {
    pub fn is_empty(&self) -> bool {
        self.parent.is_none() && self.children.is_empty()
    }

    /// The linked instance `id`, if the server still keeps it.
    pub fn get(&self, id: InstanceId) -> Option<&LinkedInstance> {
        self.parent
            .iter()
            .chain(&self.children)
            .find(|linked| linked.id == id)
    }
}

/// Another instance of the same chain, in a few fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedInstance {
    pub id: InstanceId,
    pub job_id: JobId,
    pub job_name: String,
    pub state: StateKind,
}

impl From<&Instance> for LinkedInstance {
    fn from(instance: &Instance) -> Self {
        LinkedInstance {
            id: instance.id,
            job_id: instance.job_id,
            job_name: instance.job_name.clone(),
            state: instance.state.kind(),
        }
    }
}

/// `GET /api/v1/queue`: the whole queue, counted over every unfinished instance (never a page of
/// them), for the console's header and banner and for anyone asking "what is stuck, and why".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    /// When it was counted.
    pub at_ms: UnixMs,
    pub queued: u64,
    /// Assigned or running.
    pub running: u64,
    /// How many jobs have queued instances.
    pub queued_jobs: u64,
    /// Queued instances by why they wait, every kind listed (zeros too): `ready` (no pass has
    /// looked at it yet), `held` (its time has not come), then each typed reason's kind
    /// (`no-worker`, `at-capacity`, …, as in `why.kind` of an instance).
    pub by_reason: Vec<ReasonCount>,
    /// The queued instance that has waited longest; absent with an empty queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<OldestQueued>,
    /// The jobs with the most queued instances, most first (at most 20).
    pub top_jobs: Vec<JobQueue>,
    /// Queued work no live worker can take: the console's banner.
    pub unplaceable: UnplaceableSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonCount {
    pub kind: String,
    pub queued: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OldestQueued {
    pub instance: InstanceId,
    pub job_id: JobId,
    pub job: String,
    /// When it was (last) queued.
    pub since_ms: UnixMs,
    pub waited_ms: u64,
}

/// One job's share of the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobQueue {
    pub job_id: JobId,
    pub job: String,
    pub queued: u64,
    pub running: u64,
}

/// Queued instances whose reason says no live worker can take them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnplaceableSummary {
    /// All of them, over every job.
    pub queued: u64,
    /// How many jobs they belong to.
    pub jobs: u64,
    /// By job, most first (at most 50; `queued` and `jobs` count the rest too).
    pub groups: Vec<UnplaceableJob>,
}

/// A job's work that no live worker can take, with its newest instance's reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnplaceableJob {
    pub job_id: JobId,
    pub job: String,
    pub queued: u64,
    /// The reason in words, without the fix.
    pub why: String,
    /// The command that starts a worker that would take it, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The typed reason.
    pub reason: QueueReason,
}

/// The JSON body of an error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
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
