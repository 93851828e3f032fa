//! The server's Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format.
//!
//! Counters and histograms move where the server already learns of a change, never inside the
//! state machine (so `machine::apply` stays deterministic and knows nothing of metrics):
//! - [`ObservedEngine`] wraps the engine: every command proposed, by kind and result, and the
//!   fires its answer says it created.
//! - the store's feed ([`effects::Observer`]): each durable commit's latency and size, and the
//!   instances written by it — attempts ended by outcome (with the time from their assignment to
//!   their worker starting them), lateness of a first assignment, instances ended by state.
//! - gauges are read at scrape time from the store (unfinished instances by state, the queue by
//!   reason kind, the jobs, the file size) and from gossip (worker slots used and free).
//!
//! Label values come from bounded sets only: command kinds, states, reason kinds, outcomes, and
//! job names only for the jobs named by `--metrics-job-labels` (every other job counts under
//! `_other`). This module must never write to the store, nor label by anything unbounded
//! (instance ids, worker ids, free-form reasons).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use shoal_gossip::MembershipView;

use crate::model::{AttemptOutcome, Instance, InstanceId, InstanceState, StateKind, Trigger};
use crate::reason::QueueReason;
use crate::server::command::Command;
use crate::server::effects::{self, Effects};
use crate::server::engine::Engine;
use crate::server::machine::{ApplyError, Response};
use crate::server::store::Store;

/// The content type of the OpenMetrics text format, which Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label value of every job not named by `--metrics-job-labels`.
pub const OTHER_JOBS: &str = "_other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabels {
    slots: &'static str,
}

/// `shoal_job`, not `job`: Prometheus gives every scraped series a `job` label of its own.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    outcome: &'static str,
    shoal_job: String,
}

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    job_labels: HashSet<String>,
    commands: Family<KindLabels, Counter>,
    fires: Family<TriggerLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    ended: Family<StateLabels, Counter>,
    fire_lateness: Histogram,
    dispatch_latency: Histogram,
    commit_latency: Histogram,
    commit_batch: Histogram,
    instances: Family<StateLabels, Gauge>,
    queue: Family<ReasonLabels, Gauge>,
    worker_slots: Family<SlotLabels, Gauge>,
    workers: Gauge,
    jobs: Gauge,
    store_bytes: Gauge,
    /// Per unfinished instance, the highest attempt number already counted as ended, so that an
    /// instance written again with the same closed attempt (a cancelled retry, say) is counted
    /// once. Entries leave when the instance ends, so this holds at most the unfinished ones.
    counted_attempts: Mutex<HashMap<InstanceId, u32>>,
}

fn seconds_histogram(start: f64, buckets: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, 2.0, buckets))
}

impl Metrics {
    /// `job_labels`: the jobs whose attempts are counted under their own name.
    pub fn new(job_labels: impl IntoIterator<Item = String>) -> Metrics {
        let metrics = Metrics {
            registry: Registry::default(),
            job_labels: job_labels.into_iter().collect(),
            commands: Family::default(),
            fires: Family::default(),
            attempts: Family::default(),
            ended: Family::default(),
            // 1 ms … 32 s.
            fire_lateness: seconds_histogram(0.001, 16),
            dispatch_latency: seconds_histogram(0.001, 16),
            // 0.1 ms … 3.3 s.
            commit_latency: seconds_histogram(0.0001, 16),
            // 1 … 2048 changes.
            commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            instances: Family::default(),
            queue: Family::default(),
            worker_slots: Family::default(),
            workers: Gauge::default(),
            jobs: Gauge::default(),
            store_bytes: Gauge::default(),
            counted_attempts: Mutex::default(),
        };
        metrics.registered()
    }

    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "shoal_commands",
            "Commands proposed to the state machine, by kind and result (applied, refused, failed)",
            self.commands.clone(),
        );
        r.register(
            "shoal_fires",
            "Instances created, by trigger (schedule, manual, backfill, retry)",
            self.fires.clone(),
        );
        r.register(
            "shoal_attempts",
            "Attempts ended, by outcome; shoal_job is the job for jobs named by \
             --metrics-job-labels, else _other",
            self.attempts.clone(),
        );
        r.register(
            "shoal_instances_ended",
            "Instances that reached a terminal state, by state",
            self.ended.clone(),
        );
        r.register(
            "shoal_fire_lateness_seconds",
            "Scheduled fires: first assignment to a worker minus the scheduled (jittered) time",
            self.fire_lateness.clone(),
        );
        r.register(
            "shoal_dispatch_latency_seconds",
            "Attempts that started, observed when they end: the worker starting it minus its \
             assignment",
            self.dispatch_latency.clone(),
        );
        r.register(
            "shoal_commit_latency_seconds",
            "Durable store commits: how long each took",
            self.commit_latency.clone(),
        );
        r.register(
            "shoal_commit_batch_size",
            "Durable store commits: changes that shared one commit (group commit)",
            self.commit_batch.clone(),
        );
        r.register(
            "shoal_instances",
            "Unfinished instances now, by state",
            self.instances.clone(),
        );
        r.register(
            "shoal_queue_depth",
            "Queued instances now, by reason kind (ready: none; held: waiting for its time)",
            self.queue.clone(),
        );
        r.register(
            "shoal_worker_slots",
            "Task slots of live workers as gossip reports them: used and free",
            self.worker_slots.clone(),
        );
        r.register(
            "shoal_workers_live",
            "Live workers as gossip sees them",
            self.workers.clone(),
        );
        r.register("shoal_jobs", "Jobs stored", self.jobs.clone());
        r.register(
            "shoal_store_file_bytes",
            "Size of the redb file",
            self.store_bytes.clone(),
        );
        self
    }

    fn job_label(&self, job: &str) -> String {
        if self.job_labels.contains(job) {
            job.to_string()
        } else {
            OTHER_JOBS.to_string()
        }
    }

    /// Reads the gauges from `store` and `view`, then encodes every metric. Blocking (store reads).
    pub fn scrape(
        &self,
        store: &Store,
        view: &MembershipView,
        now: crate::model::UnixMs,
    ) -> anyhow::Result<String> {
        self.read_gauges(store, view, now)?;
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    fn read_gauges(
        &self,
        store: &Store,
        view: &MembershipView,
        now: crate::model::UnixMs,
    ) -> anyhow::Result<()> {
        let read = store.read()?;
        let active = read.active_instances()?;
        let mut by_state: HashMap<&'static str, i64> = HashMap::new();
        let mut by_reason: HashMap<&'static str, i64> = HashMap::new();
        for instance in &active {
            *by_state.entry(instance.state.kind().as_str()).or_default() += 1;
            if let InstanceState::Queued {
                reason,
                not_before_ms,
                ..
            } = &instance.state
            {
                let kind = match reason {
                    Some(reason) => reason.kind(),
                    None if not_before_ms.is_some_and(|t| t > now) => "held",
                    None => "ready",
                };
                *by_reason.entry(kind).or_default() += 1;
            }
        }
        for state in [StateKind::Queued, StateKind::Assigned, StateKind::Running] {
            let state = state.as_str();
            self.instances
                .get_or_create(&StateLabels { state })
                .set(by_state.get(state).copied().unwrap_or(0));
        }
        for reason in ["ready", "held"].into_iter().chain(QueueReason::KINDS) {
            self.queue
                .get_or_create(&ReasonLabels { reason })
                .set(by_reason.get(reason).copied().unwrap_or(0));
        }
        self.jobs.set(gauge_value(read.job_count()?));
        drop(read);

        let (mut used, mut capacity, mut live) = (0u64, 0u64, 0u64);
        for worker in view.live_workers() {
            live += 1;
            used += u64::from(worker.info.running);
            capacity += u64::from(worker.info.capacity);
        }
        self.workers.set(gauge_value(live));
        self.worker_slots
            .get_or_create(&SlotLabels { slots: "used" })
            .set(gauge_value(used));
        self.worker_slots
            .get_or_create(&SlotLabels { slots: "free" })
            .set(gauge_value(capacity.saturating_sub(used)));
        // A missing file (never, once open) reads as 0 rather than failing the scrape.
        let bytes = std::fs::metadata(store.path()).map_or(0, |m| m.len());
        self.store_bytes.set(gauge_value(bytes));
        Ok(())
    }

    fn command_done(
        &self,
        kind: &'static str,
        trigger: Option<&'static str>,
        result: &Result<Response, ApplyError>,
    ) {
        let outcome = match result {
            Ok(_) => "applied",
            Err(ApplyError::Store(_) | ApplyError::Group(_)) => "failed",
            Err(_) => "refused",
        };
        self.commands
            .get_or_create(&KindLabels {
                kind,
                result: outcome,
            })
            .inc();
        let created = match result {
            Ok(Response::Fired(fired)) => fired.created,
            Ok(Response::Instance(_)) => 1,
            Ok(Response::Backfilled { created, .. }) => created.len(),
            _ => 0,
        };
        if let Some(trigger) = trigger
            && created > 0
        {
            self.fires
                .get_or_create(&TriggerLabels { trigger })
                .inc_by(created as u64);
        }
    }

    fn instance_written(&self, instance: &Instance) {
        let attempt = instance.current_attempt();
        // The first assignment of a scheduled fire: how late it left the queue.
        if let InstanceState::Assigned { .. } = &instance.state
            && let Some(attempt) = attempt
            && attempt.number == 1
            && instance.trigger == Trigger::Schedule
        {
            let due = instance.run_at_ms.unwrap_or(instance.fire_at_ms);
            self.fire_lateness
                .observe(ms_to_seconds(attempt.assigned_ms.saturating_sub(due)));
        }
        let terminal = instance.state.is_terminal();
        if let Some(attempt) = attempt
            && let Some(outcome) = attempt.outcome
        {
            let mut counted = self
                .counted_attempts
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let seen = counted.get(&instance.id).copied().unwrap_or(0);
            if attempt.number > seen {
                // Observed once per attempt, when it ends: a quick task's start and end often
                // arrive in one report, so it is never written as running.
                if let Some(started) = attempt.started_ms {
                    self.dispatch_latency
                        .observe(ms_to_seconds(started.saturating_sub(attempt.assigned_ms)));
                }
                self.attempts
                    .get_or_create(&AttemptLabels {
                        outcome: outcome_label(outcome),
                        shoal_job: self.job_label(&instance.job_name),
                    })
                    .inc();
                if !terminal {
                    counted.insert(instance.id, attempt.number);
                }
            }
            if terminal {
                counted.remove(&instance.id);
            }
        }
        if terminal {
            self.ended
                .get_or_create(&StateLabels {
                    state: instance.state.kind().as_str(),
                })
                .inc();
        }
    }
}

impl effects::Observer for Metrics {
    fn committed(&self, changes: usize, took: Duration) {
        self.commit_latency.observe(took.as_secs_f64());
        self.commit_batch.observe(changes as f64);
    }

    fn published(&self, effects: &Effects) {
        for instance in &effects.written {
            self.instance_written(instance);
        }
    }
}

fn outcome_label(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::Lost => "lost",
        AttemptOutcome::Cancelled => "cancelled",
    }
}

/// A span in ms as seconds; a negative span (clocks of two machines) counts as 0.
fn ms_to_seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The engine, counting what is proposed to it. Counting happens here, after the engine
/// answered, so the state machine stays free of it.
pub struct ObservedEngine {
    inner: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
}

impl ObservedEngine {
    /// Wraps `inner`, and has its store's feed tell `metrics` of every commit.
    pub fn new(inner: Arc<dyn Engine>, metrics: Arc<Metrics>) -> ObservedEngine {
        inner.store().feed().observe(metrics.clone());
        ObservedEngine { inner, metrics }
    }
}

impl Engine for ObservedEngine {
    fn propose(&self, command: Command) -> Result<Response, ApplyError> {
        let kind = command.kind();
        // The commands that create instances, and how those are counted in `shoal_fires`.
        let trigger = match command {
            Command::Fire { .. } => Some("schedule"),
            Command::RunNow { .. } => Some("manual"),
            Command::Retry { .. } => Some("retry"),
            Command::Backfill { .. } => Some("backfill"),
            _ => None,
        };
        let result = self.inner.propose(command);
        self.metrics.command_done(kind, trigger, &result);
        result
    }

    fn store(&self) -> &Arc<Store> {
        self.inner.store()
    }
}
