//! The domain model: jobs, their schedules and HTTP tasks, and the instances a job fires.
//!
//! Typed throughout: a stored job is a validated [`JobDefinition`] (built from the user-facing
//! [`JobSpec`](crate::spec::JobSpec) by `spec::validate`), and an instance's lifecycle is the
//! [`InstanceState`] enum, whose terminal states never change.

use serde::{Deserialize, Serialize};

use crate::reason::QueueReason;

pub type JobId = u64;
pub type InstanceId = u64;

/// Milliseconds since the Unix epoch (UTC).
pub type UnixMs = i64;

pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// When a job fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    /// A cron expression with a seconds field (6 or 7 fields), in the job's timezone.
    Cron { expr: String },
    /// Every `every_ms`, measured between scheduled times (late runs do not shift the grid).
    FixedRate { every_ms: u64 },
    /// `delay_ms` after the previous instance finished (so runs never overlap).
    FixedDelay { delay_ms: u64 },
    /// Once, at a given time.
    Once { at_ms: UnixMs },
    /// Only when asked (`shoal job run`, the API or the console).
    OnDemand,
}

impl Schedule {
    /// A short human description, e.g. `cron 0 * * * * * (Europe/Paris)` or `every 30s`.
    pub fn describe(&self, timezone: &str) -> String {
        match self {
            Schedule::Cron { expr } => format!("cron {expr} ({timezone})"),
            Schedule::FixedRate { every_ms } => format!("every {}", human_ms(*every_ms)),
            Schedule::FixedDelay { delay_ms } => {
                format!("{} after each finish", human_ms(*delay_ms))
            }
            Schedule::Once { at_ms } => format!("once at {}", rfc3339(*at_ms)),
            Schedule::OnDemand => "on demand".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MisfirePolicy {
    /// After downtime, fire once for all missed times, then resume the schedule.
    #[default]
    FireOnce,
    /// After downtime, skip missed times.
    Skip,
    /// After downtime, fire each missed time (bounded by [`MAX_MISFIRE_FIRES`]).
    FireAll,
}

/// The most missed fires `fire-all` creates in one go, so a long outage cannot flood the queue.
pub const MAX_MISFIRE_FIRES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The live worker with the lowest running/capacity ratio.
    #[default]
    LeastLoaded,
    RoundRobin,
    Random,
    /// The same worker for the same job while it lives.
    ConsistentHash,
    /// Every live matching worker runs each fire: the dispatcher fans the instance out into one
    /// copy per worker, each pinned to its worker (see [`Instance::pinned_worker`]).
    Broadcast,
}

/// The HTTP request a task makes, and what counts as success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpTask {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: Option<String>,
    pub timeout_ms: u64,
    /// Accepted status codes; empty means any 2xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// If set, the response body must contain it (a plain substring, as it always was).
    #[serde(default)]
    pub expect_body: Option<String>,
    /// If set, the response body must match this regular expression (checked as well as
    /// `expect_body` when both are set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body_regex: Option<String>,
    /// TLS, proxy and connect timeout: set, they need a client of the job's own.
    #[serde(flatten)]
    pub client: crate::http_options::ClientOptions,
}

impl HttpTask {
    pub fn status_ok(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Extra attempts after the first fails.
    pub count: u32,
    /// Delay before the first retry; doubles for each further retry (capped at 10 min).
    pub backoff_ms: u64,
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2 = the first retry).
    pub fn delay_before(&self, next_attempt: u32) -> u64 {
        let doublings = next_attempt.saturating_sub(2).min(20);
        self.backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(600_000)
    }
}

/// Which workers may run a job's tasks: all listed tags must be carried, and if `workers` is
/// non-empty the worker's id must be one of them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Target {
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub workers: Vec<String>,
}

impl Target {
    pub fn matches(&self, worker_id: &str, worker_tags: &[String]) -> bool {
        (self.workers.is_empty() || self.workers.iter().any(|w| w == worker_id))
            && self.tags.iter().all(|t| worker_tags.contains(t))
    }
}

/// A validated job definition: everything the user decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDefinition {
    pub name: String,
    pub schedule: Schedule,
    /// IANA timezone name, used by cron schedules.
    pub timezone: String,
    pub http: HttpTask,
    pub retry: RetryPolicy,
    pub target: Target,
    pub strategy: Strategy,
    /// Most instances of this job queued-or-running at once beyond which fires are skipped.
    pub max_concurrent: u32,
    /// How long an instance may wait for a worker before it fails.
    pub dispatch_timeout_ms: u64,
    pub misfire: MisfirePolicy,
    pub paused: bool,
    /// The window its scheduled fires must fall in, and their jitter.
    #[serde(default, skip_serializing_if = "FireTiming::is_unset")]
    pub timing: FireTiming,
    /// Where and when its instances' ends alert; `None`: the cluster's default channels. Boxed:
    /// most jobs have none, and a job is moved around a lot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Box<crate::alert::AlertPolicy>>,
    /// Jobs queued when one of its instances ends.
    #[serde(default, skip_serializing_if = "crate::alert::Chain::is_empty")]
    pub chain: crate::alert::Chain,
    /// What a fire does when the job already has `max_concurrent` instances.
    #[serde(default, skip_serializing_if = "OverlapPolicy::is_skip")]
    pub overlap: OverlapPolicy,
    /// Pause the job after this many failed instances in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_after_failures: Option<u32>,
}

/// What a scheduled fire does when its job already has `max_concurrent` unfinished instances
/// (Temporal's overlap policies, xxl-job's block strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverlapPolicy {
    /// The fire is skipped (and logged).
    #[default]
    Skip,
    /// One fire waits for a free slot; further fires while it waits are skipped.
    BufferOne,
    /// Every fire waits for a free slot, in order (at most [`MAX_BUFFERED_FIRES`]).
    BufferAll,
    /// The oldest running instances are cancelled to make room for the new fire.
    CancelRunning,
}

impl OverlapPolicy {
    pub fn is_skip(&self) -> bool {
        *self == OverlapPolicy::Skip
    }
}

/// The most fires a `buffer-all` job keeps waiting, so a stuck job cannot flood the queue.
pub const MAX_BUFFERED_FIRES: u64 = 100;

/// What the server tracks of a job's recent outcomes, for `pause_after_failures`.
///
/// The alert rule keeps its own per-job memory ([`crate::alert::JobHealth`], in the store's
/// `job_health` table). Both start from "failures since the last success", but they do not
/// count the same thing, so they stay apart: this one counts every failed instance, without a
/// window or a cap, only for a job with `pause_after_failures`, and starts afresh when the job
/// is resumed; the alert rule's holds only the failures its policy's `on` listens to, within
/// its threshold window and at most its threshold count, plus whether the job is red and when
/// it last alerted, only for a job that alerts, and it must outlive a resume (a job that paused
/// itself while red still owes its recovery alert). One count could not serve both without
/// changing one of the two behaviours.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobHealth {
    /// Failed instances in a row since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Set when the job paused itself (`pause_after_failures`): why. Cleared on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_by: Option<String>,
}

impl JobHealth {
    pub fn is_clear(&self) -> bool {
        *self == JobHealth::default()
    }
}

/// When, beyond its schedule, a job fires: only inside a window, and each fire delayed by a
/// jitter drawn once per fire (see `schedule::run_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FireTiming {
    /// No scheduled fire before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_ms: Option<UnixMs>,
    /// No scheduled fire after this time: past it the job has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at_ms: Option<UnixMs>,
    /// Each scheduled fire runs up to this much after its scheduled time (0: on time).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jitter_ms: u64,
}

impl FireTiming {
    pub fn is_unset(&self) -> bool {
        *self == FireTiming::default()
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A stored job: its definition plus what the server tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    #[serde(flatten)]
    pub def: JobDefinition,
    pub created_ms: UnixMs,
    pub updated_ms: UnixMs,
    /// The next scheduled fire, if any (none when paused, on demand, finished, or waiting for a
    /// fixed-delay run to end).
    pub next_fire_ms: Option<UnixMs>,
    #[serde(default, skip_serializing_if = "JobHealth::is_clear")]
    pub health: JobHealth,
}

/// Why an instance exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    Schedule,
    Manual,
    /// Created by `shoal job backfill` for a scheduled time in the past.
    Backfill,
    /// Queued by the end of another job's instance (its `parent`), by that job's chain.
    Chain,
}

/// Where an instance is in its life. Terminal states (`Succeeded`, `Failed`, `Cancelled`) never
/// change.
///
/// In JSON (the store and the API alike) a queued instance's typed reason is the field `why`,
/// and `reason` is its text, so that scripts and people read one sentence and the console reads
/// the fields. A record written before reasons were typed has only the text, which is kept as
/// [`QueueReason::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    /// Waiting for a worker. `reason` says why it is still waiting when it cannot be placed;
    /// `not_before_ms` holds it back until then: a retry until its backoff has passed, a
    /// scheduled fire created ahead until its fire time.
    Queued {
        reason: Option<QueueReason>,
        not_before_ms: Option<UnixMs>,
        /// When it started waiting for a worker (the dispatch timeout counts from here).
        since_ms: UnixMs,
    },
    /// Handed to a worker, which has not yet confirmed it started.
    Assigned {
        worker: String,
        lease_until_ms: UnixMs,
    },
    /// The worker is making the request.
    Running {
        worker: String,
        lease_until_ms: UnixMs,
    },
    Succeeded,
    Failed {
        reason: String,
    },
    Cancelled {
        reason: String,
    },
}

/// [`InstanceState`] as written: borrowed, so that encoding an instance copies nothing.
#[derive(Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
enum StateOut<'a> {
    Queued {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        why: Option<&'a QueueReason>,
        #[serde(skip_serializing_if = "Option::is_none")]
        not_before_ms: Option<UnixMs>,
        since_ms: UnixMs,
    },
    Assigned {
        worker: &'a str,
        lease_until_ms: UnixMs,
    },
    Running {
        worker: &'a str,
        lease_until_ms: UnixMs,
    },
    Succeeded,
    Failed {
        reason: &'a str,
    },
    Cancelled {
        reason: &'a str,
    },
}

/// [`InstanceState`] as read.
#[derive(Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
enum StateIn {
    Queued {
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        why: Option<QueueReason>,
        #[serde(default)]
        not_before_ms: Option<UnixMs>,
        since_ms: UnixMs,
    },
    Assigned {
        worker: String,
        lease_until_ms: UnixMs,
    },
    Running {
        worker: String,
        lease_until_ms: UnixMs,
    },
    Succeeded,
    Failed {
        reason: String,
    },
    Cancelled {
        reason: String,
    },
}

impl Serialize for InstanceState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let out = match self {
            InstanceState::Queued {
                reason,
                not_before_ms,
                since_ms,
            } => StateOut::Queued {
                reason: reason.as_ref().map(ToString::to_string),
                why: reason.as_ref(),
                not_before_ms: *not_before_ms,
                since_ms: *since_ms,
            },
            InstanceState::Assigned {
                worker,
                lease_until_ms,
            } => StateOut::Assigned {
                worker,
                lease_until_ms: *lease_until_ms,
            },
            InstanceState::Running {
                worker,
                lease_until_ms,
            } => StateOut::Running {
                worker,
                lease_until_ms: *lease_until_ms,
            },
            InstanceState::Succeeded => StateOut::Succeeded,
            InstanceState::Failed { reason } => StateOut::Failed { reason },
            InstanceState::Cancelled { reason } => StateOut::Cancelled { reason },
        };
        out.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for InstanceState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match StateIn::deserialize(deserializer)? {
            StateIn::Queued {
                reason,
                why,
                not_before_ms,
                since_ms,
            } => InstanceState::Queued {
                reason: why.or_else(|| reason.map(|text| QueueReason::Other { text })),
                not_before_ms,
                since_ms,
            },
            StateIn::Assigned {
                worker,
                lease_until_ms,
            } => InstanceState::Assigned {
                worker,
                lease_until_ms,
            },
            StateIn::Running {
                worker,
                lease_until_ms,
            } => InstanceState::Running {
                worker,
                lease_until_ms,
            },
            StateIn::Succeeded => InstanceState::Succeeded,
            StateIn::Failed { reason } => InstanceState::Failed { reason },
            StateIn::Cancelled { reason } => InstanceState::Cancelled { reason },
        })
    }
}

/// The state names, for filters and display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateKind {
    Queued,
    Assigned,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl StateKind {
    pub const ALL: [StateKind; 6] = [
        StateKind::Queued,
        StateKind::Assigned,
        StateKind::Running,
        StateKind::Succeeded,
        StateKind::Failed,
        StateKind::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Queued => "queued",
            StateKind::Assigned => "assigned",
            StateKind::Running => "running",
            StateKind::Succeeded => "succeeded",
            StateKind::Failed => "failed",
            StateKind::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<StateKind> {
        StateKind::ALL.into_iter().find(|k| k.as_str() == value)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StateKind::Succeeded | StateKind::Failed | StateKind::Cancelled
        )
    }
}

impl InstanceState {
    pub fn kind(&self) -> StateKind {
        match self {
            InstanceState::Queued { .. } => StateKind::Queued,
            InstanceState::Assigned { .. } => StateKind::Assigned,
            InstanceState::Running { .. } => StateKind::Running,
            InstanceState::Succeeded => StateKind::Succeeded,
            InstanceState::Failed { .. } => StateKind::Failed,
            InstanceState::Cancelled { .. } => StateKind::Cancelled,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.kind().is_terminal()
    }

    pub fn worker(&self) -> Option<&str> {
        match self {
            InstanceState::Assigned { worker, .. } | InstanceState::Running { worker, .. } => {
                Some(worker)
            }
            _ => None,
        }
    }

    pub fn queued(since_ms: UnixMs) -> InstanceState {
        InstanceState::Queued {
            reason: None,
            not_before_ms: None,
            since_ms,
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    /// The worker was lost (dead, or its lease lapsed) before it reported.
    Lost,
    Cancelled,
}

/// One try at running an instance's task, on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub worker: String,
    pub assigned_ms: UnixMs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<UnixMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<UnixMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of the response body, capped (see `wire::EXCERPT_LIMIT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub job_id: JobId,
    pub job_name: String,
    pub trigger: Trigger,
    /// The scheduled time (for manual runs, when it was asked for).
    pub fire_at_ms: UnixMs,
    /// When a jittered fire is due to run: its scheduled time plus the job's jitter for it
    /// (absent when the job has no jitter). Kept so both times stay visible after it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<UnixMs>,
    pub created_ms: UnixMs,
    pub updated_ms: UnixMs,
    #[serde(flatten)]
    pub state: InstanceState,
    /// Attempts so far, oldest first; the current one is last.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// For a broadcast job, the one worker this copy of a fire runs on (retries included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_worker: Option<String>,
    /// For a chained instance, the instance whose end queued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<InstanceId>,
    /// The instances its end queued (set in the same change that ended it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<InstanceId>,
}

impl Instance {
    /// The number the next attempt will carry (attempts are fenced by this number).
    pub fn next_attempt_number(&self) -> u32 {
        self.attempts.last().map_or(1, |a| a.number + 1)
    }

    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn current_attempt_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut()
    }

    /// Moves to `state` (terminal or back to the queue), closing the current attempt with
    /// `outcome` if it is still open. Only the state machine's transitions call this.
    pub(crate) fn finish(&mut self, state: InstanceState, outcome: AttemptOutcome, now: UnixMs) {
        if let Some(attempt) = self.current_attempt_mut()
            && attempt.outcome.is_none()
        {
            attempt.outcome = Some(outcome);
            attempt.ended_ms = Some(now);
        }
        self.state = state;
        self.updated_ms = now;
    }

    /// Whether this is a scheduled fire created ahead of its time that has not come yet at `now`
    /// (see `schedule::scheduler::LOOKAHEAD_MS`): queued, never attempted, held until its fire.
    pub fn is_fired_ahead(&self, now: UnixMs) -> bool {
        self.trigger == Trigger::Schedule
            && self.attempts.is_empty()
            && matches!(self.state, InstanceState::Queued { not_before_ms: Some(at), .. } if at > now)
    }

    /// Attempts that failed on their own account (lost workers do not count against retries).
    pub fn failed_attempts(&self) -> u32 {
        self.attempts
            .iter()
            .filter(|a| a.outcome == Some(AttemptOutcome::Failed))
            .count() as u32
    }
}

pub fn human_ms(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}

pub fn rfc3339(ms: UnixMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_expectations_default_to_2xx() {
        let mut task = HttpTask {
            method: "GET".into(),
            url: "http://127.0.0.1/".into(),
            headers: vec![],
            body: None,
            timeout_ms: 1000,
            expect_status: vec![],
            expect_body: None,
            expect_body_regex: None,
            client: Default::default(),
        };
        assert!(task.status_ok(204));
        assert!(!task.status_ok(302));
        task.expect_status = vec![404];
        assert!(task.status_ok(404) && !task.status_ok(200));
    }

    #[test]
    fn retry_backoff_doubles_and_caps() {
        let policy = RetryPolicy {
            count: 5,
            backoff_ms: 1000,
        };
        assert_eq!(policy.delay_before(2), 1000);
        assert_eq!(policy.delay_before(3), 2000);
        assert_eq!(policy.delay_before(4), 4000);
        assert_eq!(policy.delay_before(40), 600_000);
    }

    #[test]
    fn targets_need_every_tag_and_a_listed_id() {
        let target = Target {
            tags: vec!["billing".into()],
            workers: vec![],
        };
        assert!(target.matches("w1", &["billing".into(), "eu".into()]));
        assert!(!target.matches("w1", &["eu".into()]));
        let pinned = Target {
            tags: vec![],
            workers: vec!["w2".into()],
        };
        assert!(pinned.matches("w2", &[]) && !pinned.matches("w1", &[]));
    }

    #[test]
    fn a_queued_reason_is_written_as_text_and_as_fields_and_read_back_typed() {
        use crate::reason::Unmatched;
        let reason = QueueReason::NoWorker {
            unmatched: Unmatched::Tag { tag: "gpu".into() },
            live: vec!["w1".into()],
            silent: vec![],
            fix: Some("shoal worker --join 127.0.0.1:7946 --tag gpu".into()),
        };
        let state = InstanceState::Queued {
            reason: Some(reason.clone()),
            not_before_ms: None,
            since_ms: 5,
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["state"], "queued");
        assert_eq!(json["reason"], reason.to_string());
        assert_eq!(json["why"]["kind"], "no-worker");
        assert_eq!(
            serde_json::from_value::<InstanceState>(json).unwrap(),
            state
        );
        // A record from a build before typed reasons: its text is kept, never parsed.
        let legacy = serde_json::json!({"state": "queued", "reason": "old words", "since_ms": 5});
        assert_eq!(
            serde_json::from_value::<InstanceState>(legacy).unwrap(),
            InstanceState::Queued {
                reason: Some(QueueReason::Other {
                    text: "old words".into()
                }),
                not_before_ms: None,
                since_ms: 5,
            }
        );
    }

    #[test]
    fn instance_state_serializes_with_a_state_tag() {
        let state = InstanceState::Failed {
            reason: "boom".into(),
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["state"], "failed");
        assert_eq!(json["reason"], "boom");
    }
}
