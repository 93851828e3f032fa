//! The data the console shows: one snapshot of the cluster as the server saw it.
//!
//! These are plain values with no behaviour beyond labels, so the binary can
//! build them from its API JSON and tests can build them by hand. All times are
//! unix milliseconds.

/// Everything the console displays, fetched in one go so that every view is
/// consistent with every other view and with the header counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Cluster name.
    pub cluster: String,
    /// Server URL, shown in the header so the operator knows which cluster
    /// they are about to act on.
    pub server: String,
    pub fetched_at_ms: i64,
    pub workers: Vec<WorkerRow>,
    pub jobs: Vec<JobRow>,
    /// Most recent first, already limited by the source.
    pub instances: Vec<InstanceRow>,
    pub stats: Stats,
    /// Queued work that no live worker can take, by job, most first. Non-empty
    /// means the cluster is silently stuck, so the console shows a banner for
    /// it. The source may list only the worst jobs; `unplaceable_totals` counts
    /// them all.
    pub unplaceable: Vec<Unplaceable>,
    pub unplaceable_totals: UnplaceableTotals,
    /// Set while the server is degraded (it refuses writes), with the reason in a few words,
    /// e.g. "disk full": the header shows it in red.
    pub degraded: Option<String>,
    /// The answering server's place in its group of servers, e.g. "follower · leader at
    /// 10.0.0.5:7070 · term 3", when servers form one.
    pub group: Option<String>,
    /// Set while the group cannot take writes (no leader, no quorum), in a few words: the header
    /// shows it in red.
    pub group_trouble: Option<String>,
}

/// Gossip membership state of a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MemberState {
    #[default]
    Live,
    Dead,
    Left,
}

impl MemberState {
    pub fn label(self) -> &'static str {
        match self {
            MemberState::Live => "live",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

/// A cluster member as listed in the workers view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerRow {
    pub id: String,
    /// "server" or "worker".
    pub role: String,
    pub state: MemberState,
    pub addr: String,
    pub tags: Vec<String>,
    pub running: u32,
    pub capacity: u32,
    pub last_seen_ms: i64,
    pub version: String,
}

/// A job definition with its queue.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobRow {
    pub id: u64,
    pub name: String,
    /// Human text, e.g. "cron 0 * * * * * (UTC)" or "every 30s".
    pub schedule: String,
    pub next_fire_ms: Option<i64>,
    pub queued: u32,
    pub running: u32,
    pub last_result: Option<InstanceStatus>,
    pub paused: bool,
    /// Pretty TOML of the job, shown in the detail pane.
    pub definition: String,
    /// The job skips TLS certificate verification: its detail (and its instances') say so in red.
    pub insecure_tls: bool,
    /// The jobs whose end queues this one.
    pub upstream: Vec<JobLink>,
    /// The jobs this one's end queues.
    pub downstream: Vec<JobLink>,
}

/// A job at the other end of a chain edge, and when the edge queues the job downstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobLink {
    pub job: String,
    pub on: ChainOn,
}

/// When a chain queues the job downstream: on the upstream instance's success, failure, or
/// either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainOn {
    Success,
    Failure,
    Complete,
}

impl ChainOn {
    pub fn label(self) -> &'static str {
        match self {
            ChainOn::Success => "on success",
            ChainOn::Failure => "on failure",
            ChainOn::Complete => "on completion",
        }
    }
}

/// Lifecycle of one run of a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InstanceStatus {
    #[default]
    Queued,
    Assigned,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl InstanceStatus {
    /// Every status, in lifecycle order; the order the state filter cycles in.
    pub const ALL: [InstanceStatus; 6] = [
        InstanceStatus::Queued,
        InstanceStatus::Assigned,
        InstanceStatus::Running,
        InstanceStatus::Succeeded,
        InstanceStatus::Failed,
        InstanceStatus::Cancelled,
    ];

    /// Terminal instances will not change any more: they can be retried but
    /// not cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            InstanceStatus::Succeeded | InstanceStatus::Failed | InstanceStatus::Cancelled
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            InstanceStatus::Queued => "queued",
            InstanceStatus::Assigned => "assigned",
            InstanceStatus::Running => "running",
            InstanceStatus::Succeeded => "succeeded",
            InstanceStatus::Failed => "failed",
            InstanceStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a label as typed on the command line (`:instances failed`).
    /// Accepts the label, a unique prefix of it, and a few common synonyms.
    pub fn parse(text: &str) -> Option<InstanceStatus> {
        let text = text.trim().to_ascii_lowercase();
        let synonym = match text.as_str() {
            "ok" | "success" | "done" => Some(InstanceStatus::Succeeded),
            "fail" | "error" | "err" => Some(InstanceStatus::Failed),
            "canceled" => Some(InstanceStatus::Cancelled),
            _ => None,
        };
        if synonym.is_some() || text.is_empty() {
            return synonym;
        }
        let mut matching = Self::ALL.iter().filter(|s| s.label().starts_with(&text));
        match (matching.next(), matching.next()) {
            (Some(status), None) => Some(*status),
            _ => None,
        }
    }
}

/// One run of a job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceRow {
    pub id: u64,
    pub job_id: u64,
    pub job: String,
    pub status: InstanceStatus,
    pub attempt: u32,
    pub worker: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Why it is queued, or why it failed.
    pub reason: Option<String>,
    pub attempts: Vec<AttemptRow>,
    /// For an instance queued by the end of another (a chain): that one.
    pub parent: Option<ChainLink>,
    /// The instances its end queued, in the order it queued them.
    pub children: Vec<ChainLink>,
}

/// Another instance of the same chain, as an instance's detail lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainLink {
    /// As it is now.
    Kept {
        id: u64,
        job: String,
        status: InstanceStatus,
    },
    /// The server no longer keeps it (its history was forgotten): only its id is known.
    Forgotten { id: u64 },
}

/// One HTTP attempt of an instance on a worker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttemptRow {
    pub number: u32,
    pub worker: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// Capped response body.
    pub excerpt: Option<String>,
}

/// Cluster-wide counters for the header.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub live_workers: u32,
    pub dead_workers: u32,
    pub queued: u32,
    pub running: u32,
    pub succeeded_5m: u32,
    pub failed_5m: u32,
    /// Completed instances per bucket, oldest first, for a sparkline.
    pub throughput: Vec<u64>,
}

/// Queued work no live worker can take, with the reason and the command that
/// would fix it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unplaceable {
    pub job: String,
    pub queued: u32,
    /// e.g. `no live worker carries tag "billing" (2 live workers: w1,w2)`.
    pub reason: String,
    /// e.g. `shoal worker --join 127.0.0.1:7946 --tag billing`.
    pub fix: String,
}

/// All the queued work no live worker can take, over the whole queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnplaceableTotals {
    pub queued: u64,
    pub jobs: u64,
}

impl UnplaceableTotals {
    /// The totals of a complete list (when nothing was left out of it).
    pub fn of(stuck: &[Unplaceable]) -> UnplaceableTotals {
        UnplaceableTotals {
            queued: stuck.iter().map(|u| u64::from(u.queued)).sum(),
            jobs: stuck.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parse_accepts_labels_prefixes_and_synonyms() {
        assert_eq!(
            InstanceStatus::parse("failed"),
            Some(InstanceStatus::Failed)
        );
        assert_eq!(InstanceStatus::parse("FAIL"), Some(InstanceStatus::Failed));
        assert_eq!(InstanceStatus::parse("q"), Some(InstanceStatus::Queued));
        assert_eq!(InstanceStatus::parse("run"), Some(InstanceStatus::Running));
        assert_eq!(
            InstanceStatus::parse("canceled"),
            Some(InstanceStatus::Cancelled)
        );
        assert_eq!(InstanceStatus::parse("a"), Some(InstanceStatus::Assigned));
        assert_eq!(InstanceStatus::parse("s"), Some(InstanceStatus::Succeeded));
        assert_eq!(InstanceStatus::parse("bogus"), None);
        assert_eq!(InstanceStatus::parse(""), None);
    }

    #[test]
    fn terminal_statuses() {
        let terminal: Vec<_> = InstanceStatus::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.label())
            .collect();
        assert_eq!(terminal, ["succeeded", "failed", "cancelled"]);
    }
}
