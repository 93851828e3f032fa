//! `shoal tui`: the ops console of the `shoal-tui` crate, fed by the HTTP API.
//!
//! [`ApiSource`] is the console's [`DataSource`]: each refresh fetches the cluster, its members,
//! the queue's summary, the jobs, the newest instances and the newest finished ones concurrently
//! (bounded by [`REFRESH_TIMEOUT`]) and turns them into one [`Snapshot`] with [`snapshot`], a
//! pure function so the conversion is unit-tested without a server. Counts and the no-worker
//! banner come from the server's queue summary, counted over every unfinished instance, never
//! from the page of instances the snapshot holds: with a deep queue that page is all queued work.
//! The console's loop is blocking, so [`run`] drives it on a blocking thread and the source
//! reaches the async client through a runtime [`Handle`].

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use shoal_tui::{
    Action, AttemptRow, ChainLink, ChainOn, DataSource, InstanceRow, InstanceStatus, JobLink,
    JobRow, MemberState, Options, Snapshot, Stats, Unplaceable, UnplaceableTotals, WorkerRow,
};
use tokio::runtime::Handle;

use crate::alert::ChainEdge;
use crate::client::{ApiClient, ClientError, InstanceQuery};
use crate::model::{Attempt, Instance, InstanceId, InstanceState, StateKind, UnixMs, now_ms};
use crate::wire::admin::{
    ChainLinks, ClusterInfo, InstanceView, JobSummary, MemberRow, QueueSummary,
};

/// The most a refresh may take; past it the console shows the server as unreachable and keeps
/// its last data.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);

/// The most an action may take before the console reports it as unanswered.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// How many of the newest instances a snapshot holds (the instances view).
pub const INSTANCE_LIMIT: usize = 2000;
/// How many of the newest finished instances a snapshot holds as well (the failures view and
/// the header's 5-minute counts): with a deep queue, the newest instances are all queued.
pub const FINISHED_LIMIT: usize = 2000;
/// The most jobs a snapshot holds (fetched a page at a time).
pub const JOB_LIMIT: usize = 10_000;

/// Window of the header's succeeded/failed counts and throughput sparkline.
const WINDOW_MS: i64 = 5 * 60 * 1000;
/// Width of one throughput bucket.
const BUCKET_MS: i64 = 10_000;
const BUCKETS: usize = (WINDOW_MS / BUCKET_MS) as usize;

/// Runs the console on the terminal until the operator quits.
pub async fn run(client: ApiClient, options: Options) -> anyhow::Result<()> {
    require_terminal()?;
    let mut source = ApiSource::new(client, Handle::current());
    tokio::task::spawn_blocking(move || shoal_tui::run(&mut source, options))
        .await
        .context("the console stopped unexpectedly")?
        .context("terminal error")
}

/// The console draws on the terminal and reads keys from it; without one it would only garble
/// a pipe, so say what to use instead.
pub fn require_terminal() -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the console needs an interactive terminal; for scripts use `shoal members`, \
             `shoal job list` or `shoal instance list` (with --output json), or \
             `shoal demo --headless`"
        );
    }
    Ok(())
}

/// The console's window on a server, over [`ApiClient`]. Its methods block on `handle`, so they
/// must be called outside the runtime's worker threads (e.g. in `spawn_blocking`).
pub struct ApiSource {
    client: ApiClient,
    handle: Handle,
    /// How long a refresh may take ([`REFRESH_TIMEOUT`] unless changed).
    refresh_timeout: Duration,
}

impl ApiSource {
    pub fn new(client: ApiClient, handle: Handle) -> ApiSource {
        ApiSource {
            client,
            handle,
            refresh_timeout: REFRESH_TIMEOUT,
        }
    }

    /// The same source with another limit on a refresh: for a caller that wants the data
    /// however long it takes (a test on a loaded machine), not an operator waiting on screen.
    pub fn with_refresh_timeout(self, limit: Duration) -> ApiSource {
        ApiSource {
            refresh_timeout: limit,
            ..self
        }
    }

    /// Runs `call` on the runtime, giving up after `limit`.
    fn block_on<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, String> {
        match self
            .handle
            .block_on(async { tokio::time::timeout(limit, call).await })
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "no answer from {} within {}",
                self.client.server_url(),
                crate::model::human_ms(limit.as_millis() as u64)
            )),
        }
    }
}

impl DataSource for ApiSource {
    fn refresh(&mut self) -> Result<Snapshot, String> {
        let client = &self.client;
        let newest = InstanceQuery {
            limit: Some(INSTANCE_LIMIT),
            ..InstanceQuery::default()
        };
        let finished = InstanceQuery {
            state: Some("succeeded,failed,cancelled".into()),
            limit: Some(FINISHED_LIMIT),
            ..InstanceQuery::default()
        };
        // One page of each instance list: the server bounds what a page reads.
        let (cluster, members, queue, jobs, newest, finished) =
            self.block_on(self.refresh_timeout, async {
                tokio::try_join!(
                    client.cluster(),
                    client.members(),
                    client.queue(),
                    client.jobs_up_to(Some(JOB_LIMIT)),
                    client.instances_page(&newest, None),
                    client.instances_page(&finished, None),
                )
            })?;
        Ok(snapshot(
            client.server_url(),
            &cluster,
            &members,
            &jobs,
            &queue,
            &newest_first(newest.items, finished.items),
            now_ms(),
        ))
    }

    fn perform(&mut self, action: &Action) -> Result<String, String> {
        let client = &self.client;
        match action {
            Action::RunJob { job_id, .. } => {
                let instance =
                    self.block_on(ACTION_TIMEOUT, client.run_job(&job_id.to_string()))?;
                Ok(queued(&instance))
            }
            Action::SetPaused {
                job_id,
                paused: true,
                ..
            } => {
                self.block_on(ACTION_TIMEOUT, client.pause_job(&job_id.to_string()))?;
                Ok("paused; its schedule no longer fires".to_string())
            }
            Action::SetPaused {
                job_id,
                paused: false,
                ..
            } => {
                let job = self.block_on(ACTION_TIMEOUT, client.resume_job(&job_id.to_string()))?;
                Ok(match job.next_fire_ms {
                    Some(at) => format!("resumed; next fire {}", crate::model::rfc3339(at)),
                    None => "resumed".to_string(),
                })
            }
            Action::RetryInstance { id } => {
                let instance = self.block_on(ACTION_TIMEOUT, client.retry_instance(*id))?;
                Ok(queued(&instance))
            }
            Action::CancelInstance { id } => {
                self.block_on(ACTION_TIMEOUT, client.cancel_instance(*id))?;
                Ok("cancelled".to_string())
            }
        }
    }
}

/// "queued instance 12 of job nightly".
fn queued(instance: &Instance) -> String {
    format!(
        "queued instance {} of job {}",
        instance.id, instance.job_name
    )
}

/// Both lists as one, newest first, each instance once.
fn newest_first(mut newest: Vec<InstanceView>, finished: Vec<InstanceView>) -> Vec<InstanceView> {
    newest.extend(finished);
    newest.sort_unstable_by_key(|v| std::cmp::Reverse(v.instance.id));
    newest.dedup_by_key(|v| v.instance.id);
    newest
}

/// Builds the console's snapshot from what the API returned at `now`. `instances` are some of
/// the newest, newest first (as the API lists them), each with its chain's links; every count
/// of the queue, and the no-worker banner, come from `queue`.
pub fn snapshot(
    server: &str,
    cluster: &ClusterInfo,
    members: &[MemberRow],
    jobs: &[JobSummary],
    queue: &QueueSummary,
    instances: &[InstanceView],
    now: UnixMs,
) -> Snapshot {
    let workers: Vec<WorkerRow> = members.iter().map(worker_row).collect();
    let instances: Vec<InstanceRow> = instances.iter().map(instance_row).collect();
    let stats = stats(&workers, queue, &instances, now);
    Snapshot {
        cluster: cluster.cluster.clone(),
        server: server.to_string(),
        fetched_at_ms: now,
        workers,
        jobs: jobs.iter().map(job_row).collect(),
        instances,
        stats,
        unplaceable: queue
            .unplaceable
            .groups
            .iter()
            .map(|group| Unplaceable {
                job: group.job.clone(),
                queued: saturate(group.queued),
                reason: group.why.clone(),
                fix: group.fix.clone().unwrap_or_default(),
            })
            .collect(),
        unplaceable_totals: UnplaceableTotals {
            queued: queue.unplaceable.queued,
            jobs: queue.unplaceable.jobs,
        },
        degraded: cluster
            .storage_degraded
            .as_ref()
            .map(|degraded| degraded.fault.label().to_string()),
        group: cluster.group.as_ref().map(group_label),
        group_trouble: cluster.group.as_ref().and_then(|group| {
            (!group.has_quorum()).then(|| {
                format!(
                    "{}: {} of {} servers reachable, {} needed — writes refused",
                    if group.leader_api.is_some() {
                        "NO QUORUM"
                    } else {
                        "NO LEADER"
                    },
                    group.reachable,
                    group.members,
                    group.quorum
                )
            })
        }),
    }
}

/// "leader · term 3", or "follower · leader at 10.0.0.5:7070 · term 3".
fn group_label(group: &crate::wire::admin::ClusterGroup) -> String {
    use shoal_gossip::GroupRole;
    match (&group.role, &group.leader_api) {
        (GroupRole::Leader, _) => format!("leader · term {}", group.term),
        (role, Some(leader)) => format!("{role} · leader at {leader} · term {}", group.term),
        (role, None) => format!("{role} · no leader · term {}", group.term),
    }
}

fn saturate(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

fn worker_row(member: &MemberRow) -> WorkerRow {
    WorkerRow {
        id: member.id.clone(),
        // A server of a group shows its role in it: "server (leader)".
        role: match member.group {
            Some(group) => format!("{} ({})", member.role, group.role),
            None => member.role.to_string(),
        },
        state: match member.state {
            shoal_gossip::MemberState::Live => MemberState::Live,
            shoal_gossip::MemberState::Dead => MemberState::Dead,
            shoal_gossip::MemberState::Left => MemberState::Left,
        },
        addr: member.addr.clone(),
        tags: member.tags.clone(),
        running: member.running,
        capacity: member.capacity,
        last_seen_ms: i64::try_from(member.last_seen_ms).unwrap_or(i64::MAX),
        version: member.version.clone(),
    }
}

fn job_row(summary: &JobSummary) -> JobRow {
    let job = &summary.job;
    let def = &job.def;
    JobRow {
        id: job.id,
        name: def.name.clone(),
        schedule: def.schedule.describe(&def.timezone),
        next_fire_ms: job.next_fire_ms,
        queued: summary.queued,
        running: summary.running,
        last_result: summary.last_result.map(status),
        paused: def.paused,
        // The schedule in words as a comment on top: the detail pane shows it, and the text
        // stays a job file. (The next fires are not listed here: computing them for every job
        // on every refresh costs too much with thousands of jobs; `shoal job next` has them.)
        definition: match toml::to_string_pretty(&def.to_spec()) {
            Ok(text) => format!("# {}\n{text}", crate::schedule::describe(def)),
            Err(error) => format!("# cannot show the definition as TOML: {error}\n"),
        },
        insecure_tls: def.http.client.insecure(),
        upstream: summary.upstream.iter().map(job_link).collect(),
        downstream: def.chain.downstream().iter().map(job_link).collect(),
    }
}

fn job_link(edge: &ChainEdge) -> JobLink {
    JobLink {
        job: edge.job.clone(),
        on: match edge.on {
            crate::alert::ChainOn::OnSuccess => ChainOn::Success,
            crate::alert::ChainOn::OnFailure => ChainOn::Failure,
            crate::alert::ChainOn::OnComplete => ChainOn::Complete,
        },
    }
}

/// The instance `id` of a chain as the console shows it: as the server answered, or forgotten.
fn chain_link(chain: &ChainLinks, id: InstanceId) -> ChainLink {
    match chain.get(id) {
        Some(linked) => ChainLink::Kept {
            id,
            job: linked.job_name.clone(),
            status: status(linked.state),
        },
        None => ChainLink::Forgotten { id },
    }
}

fn status(kind: StateKind) -> InstanceStatus {
    match kind {
        StateKind::Queued => InstanceStatus::Queued,
        StateKind::Assigned => InstanceStatus::Assigned,
        StateKind::Running => InstanceStatus::Running,
        StateKind::Succeeded => InstanceStatus::Succeeded,
        StateKind::Failed => InstanceStatus::Failed,
        StateKind::Cancelled => InstanceStatus::Cancelled,
    }
}

fn instance_row(view: &InstanceView) -> InstanceRow {
    let instance = &view.instance;
    let reason = match &instance.state {
        InstanceState::Queued { reason, .. } => reason.as_ref().map(ToString::to_string),
        InstanceState::Failed { reason } | InstanceState::Cancelled { reason } => {
            Some(reason.clone())
        }
        _ => None,
    };
    InstanceRow {
        id: instance.id,
        job_id: instance.job_id,
        job: instance.job_name.clone(),
        status: status(instance.state.kind()),
        attempt: u32::try_from(instance.attempts.len()).unwrap_or(u32::MAX),
        worker: instance
            .state
            .worker()
            .or_else(|| instance.current_attempt().map(|a| a.worker.as_str()))
            .map(str::to_string),
        created_ms: instance.created_ms,
        updated_ms: instance.updated_ms,
        reason,
        attempts: instance.attempts.iter().map(attempt_row).collect(),
        parent: instance.parent.map(|id| chain_link(&view.chain, id)),
        children: instance
            .children
            .iter()
            .map(|id| chain_link(&view.chain, *id))
            .collect(),
    }
}

fn attempt_row(attempt: &Attempt) -> AttemptRow {
    AttemptRow {
        number: attempt.number,
        worker: attempt.worker.clone(),
        started_ms: attempt.started_ms.unwrap_or(attempt.assigned_ms),
        ended_ms: attempt.ended_ms,
        http_status: attempt.http_status,
        error: attempt.error.clone(),
        excerpt: attempt.excerpt.clone(),
    }
}

/// Header counters. Queue counts come from the queue summary, which counts every unfinished
/// instance; recent outcomes come from the newest finished instances.
fn stats(
    workers: &[WorkerRow],
    queue: &QueueSummary,
    instances: &[InstanceRow],
    now: i64,
) -> Stats {
    let count_workers = |state: MemberState| {
        workers
            .iter()
            .filter(|w| w.role == "worker" && w.state == state)
            .count() as u32
    };
    let mut stats = Stats {
        live_workers: count_workers(MemberState::Live),
        dead_workers: count_workers(MemberState::Dead),
        queued: saturate(queue.queued),
        running: saturate(queue.running),
        throughput: vec![0; BUCKETS],
        ..Stats::default()
    };
    for instance in instances {
        let age = now - instance.updated_ms;
        if !(0..WINDOW_MS).contains(&age) {
            continue;
        }
        match instance.status {
            InstanceStatus::Succeeded => stats.succeeded_5m += 1,
            InstanceStatus::Failed => stats.failed_5m += 1,
            _ => continue,
        }
        let bucket = (age / BUCKET_MS) as usize;
        stats.throughput[BUCKETS - 1 - bucket] += 1;
    }
    stats
}

#[cfg(test)]
mod tests {
    use shoal_gossip::Role;

    use super::*;
    use crate::model::{
        AttemptOutcome, HttpTask, Job, JobDefinition, MisfirePolicy, RetryPolicy, Schedule,
        Strategy, Target, Trigger,
    };
    use crate::reason::{QueueReason, Unmatched};
    use crate::wire::admin::{UnplaceableJob, UnplaceableSummary};

    const NOW: i64 = 1_700_000_000_000;
    const BILLING_REASON: &str = "no live worker carries tag \"billing\" (1 live worker(s): w1); \
                                  start one with: shoal worker --join 127.0.0.1:7946 --tag billing";

    fn billing_reason() -> Option<QueueReason> {
        Some(QueueReason::NoWorker {
            unmatched: Unmatched::Tag {
                tag: "billing".into(),
            },
            live: vec!["w1".into()],
            silent: vec![],
            fix: Some("shoal worker --join 127.0.0.1:7946 --tag billing".into()),
        })
    }

    fn member(id: &str, role: Role, state: shoal_gossip::MemberState) -> MemberRow {
        MemberRow {
            id: id.into(),
            role,
            addr: format!("{id}:1"),
            gossip_addr: format!("{id}:2"),
            state,
            tags: vec!["eu".into()],
            capacity: 8,
            running: 1,
            version: "0.1.0".into(),
            generation: 1,
            last_seen_ms: (NOW - 500) as u64,
            group: None,
            lag: None,
        }
    }

    fn job(id: u64, name: &str, queued: u32, running: u32) -> JobSummary {
        JobSummary {
            job: Job {
                id,
                def: JobDefinition {
                    name: name.into(),
                    schedule: Schedule::FixedRate { every_ms: 30_000 },
                    timezone: "UTC".into(),
                    http: HttpTask {
                        method: "POST".into(),
                        url: format!("http://127.0.0.1:9/{name}"),
                        headers: vec![],
                        body: None,
                        timeout_ms: 10_000,
                        expect_status: vec![],
                        expect_body: None,
                        expect_body_regex: None,
                        client: Default::default(),
                    },
                    retry: RetryPolicy::default(),
                    target: Target::default(),
                    strategy: Strategy::default(),
                    max_concurrent: 5,
                    dispatch_timeout_ms: 600_000,
                    misfire: MisfirePolicy::default(),
                    overlap: Default::default(),
                    pause_after_failures: None,
                    paused: name == "paused",
                    timing: Default::default(),
                    alerts: None,
                    chain: Default::default(),
                },
                created_ms: NOW - 3_600_000,
                updated_ms: NOW - 3_600_000,
                next_fire_ms: Some(NOW + 30_000),
                health: Default::default(),
            },
            queued,
            running,
            last_result: Some(StateKind::Failed),
            upstream: Vec::new(),
        }
    }

    fn instance(id: u64, job: &str, state: InstanceState, updated_ago: i64) -> Instance {
        Instance {
            id,
            job_id: if job == "billing" { 2 } else { 1 },
            job_name: job.into(),
            trigger: Trigger::Manual,
            fire_at_ms: NOW - 600_000,
            run_at_ms: None,
            created_ms: NOW - 600_000,
            updated_ms: NOW - updated_ago,
            state,
            attempts: vec![],
            pinned_worker: None,
            parent: None,
            children: Vec::new(),
        }
    }

    fn attempt(number: u32, worker: &str, outcome: AttemptOutcome, status: u16) -> Attempt {
        Attempt {
            number,
            worker: worker.into(),
            assigned_ms: NOW - 20_000,
            started_ms: (number == 2).then_some(NOW - 19_000),
            ended_ms: Some(NOW - 18_000),
            outcome: Some(outcome),
            http_status: Some(status),
            duration_ms: Some(1000),
            error: Some(format!("expected status 2xx, got {status}")),
            excerpt: Some("boom".into()),
        }
    }

    fn queued(reason: Option<QueueReason>) -> InstanceState {
        InstanceState::Queued {
            reason,
            not_before_ms: None,
            since_ms: NOW - 60_000,
        }
    }

    fn build() -> Snapshot {
        let cluster = ClusterInfo {
            cluster: "prod-eu".into(),
            server_id: "server".into(),
            version: "0.1.0".into(),
            gossip_addr: "127.0.0.1:7946".into(),
            storage_degraded: None,
            group: None,
        };
        use shoal_gossip::MemberState as M;
        let members = [
            member("server", Role::Server, M::Live),
            member("w1", Role::Worker, M::Live),
            member("w2", Role::Worker, M::Dead),
            member("w3", Role::Worker, M::Left),
            member("w4", Role::Worker, M::Live),
        ];
        let jobs = [job(1, "fails", 1, 2), job(2, "billing", 3, 0)];
        let mut failed = instance(
            10,
            "fails",
            InstanceState::Failed {
                reason: "attempt 2 failed: expected status 2xx, got 500".into(),
            },
            15_000,
        );
        failed.attempts = vec![
            attempt(1, "w2", AttemptOutcome::Lost, 502),
            attempt(2, "w1", AttemptOutcome::Failed, 500),
        ];
        let instances = [
            // Newest first, as the API lists them.
            instance(20, "billing", queued(billing_reason()), 1_000),
            instance(
                19,
                "fails",
                queued(Some(QueueReason::Other {
                    text: "all 1 matching worker(s) are at capacity (8/8)".into(),
                })),
                2_000,
            ),
            instance(18, "billing", queued(billing_reason()), 3_000),
            instance(
                17,
                "pinned",
                queued(Some(QueueReason::NoWorker {
                    unmatched: Unmatched::EmptyCluster,
                    live: vec![],
                    silent: vec![],
                    fix: None,
                })),
                3_500,
            ),
            instance(
                16,
                "fails",
                InstanceState::Running {
                    worker: "w4".into(),
                    lease_until_ms: NOW + 30_000,
                },
                4_000,
            ),
            instance(15, "billing", queued(None), 4_500),
            instance(14, "fails", InstanceState::Succeeded, 5_000),
            instance(13, "fails", InstanceState::Succeeded, 299_000),
            failed,
            instance(9, "fails", InstanceState::Succeeded, 301_000),
            instance(
                8,
                "fails",
                InstanceState::Cancelled {
                    reason: "cancelled by operator".into(),
                },
                6_000,
            ),
        ];
        snapshot(
            "http://127.0.0.1:7070",
            &cluster,
            &members,
            &jobs,
            &queue(),
            &views(instances),
            NOW,
        )
    }

    /// The server's count of the whole queue: far more than the instances the snapshot holds.
    fn queue() -> QueueSummary {
        let group = |job_id: u64, job: &str, queued: u64, reason: QueueReason| UnplaceableJob {
            job_id,
            job: job.into(),
            queued,
            why: reason.why(),
            fix: reason.fix().map(str::to_string),
            reason,
        };
        let no_worker = QueueReason::NoWorker {
            unmatched: Unmatched::EmptyCluster,
            live: vec![],
            silent: vec![],
            fix: None,
        };
        QueueSummary {
            at_ms: NOW,
            queued: 15_004,
            running: 2,
            queued_jobs: 5_001,
            by_reason: vec![],
            oldest: None,
            top_jobs: vec![],
            unplaceable: UnplaceableSummary {
                queued: 15_000,
                jobs: 5_000,
                groups: vec![
                    group(2, "billing", 12, billing_reason().unwrap()),
                    group(3, "pinned", 3, no_worker),
                ],
            },
        }
    }

    /// Instances as the API lists them, with no chain links.
    fn views(instances: impl IntoIterator<Item = Instance>) -> Vec<InstanceView> {
        instances
            .into_iter()
            .map(|instance| InstanceView {
                instance,
                chain: ChainLinks::default(),
            })
            .collect()
    }

    #[test]
    fn chains_are_shown_with_each_linked_job_and_state() {
        use crate::alert::{ChainEdge, ChainOn as On};
        use crate::wire::admin::LinkedInstance;
        let cluster = ClusterInfo {
            cluster: "c".into(),
            server_id: "s".into(),
            version: "0".into(),
            gossip_addr: "127.0.0.1:1".into(),
            storage_degraded: None,
            group: None,
        };
        let mut load = job(5, "load", 0, 0);
        load.job.def.chain.on_success = vec!["report".into()];
        load.job.def.chain.on_complete = vec!["audit".into()];
        load.upstream = vec![ChainEdge {
            job: "extract".into(),
            on: On::OnFailure,
        }];
        let mut middle = instance(7, "load", InstanceState::Succeeded, 1_000);
        middle.parent = Some(6);
        middle.children = vec![8, 9];
        let linked = |id, job_name: &str, state| LinkedInstance {
            id,
            job_id: 1,
            job_name: job_name.into(),
            state,
        };
        let view = InstanceView {
            instance: middle,
            chain: ChainLinks {
                parent: Some(linked(6, "extract", StateKind::Failed)),
                // 9 was forgotten by retention: the server left it out.
                children: vec![linked(8, "report", StateKind::Running)],
            },
        };
        let snapshot = snapshot("s", &cluster, &[], &[load], &queue(), &[view], NOW);
        let row = &snapshot.instances[0];
        assert_eq!(
            row.parent,
            Some(ChainLink::Kept {
                id: 6,
                job: "extract".into(),
                status: InstanceStatus::Failed
            })
        );
        assert_eq!(
            row.children,
            [
                ChainLink::Kept {
                    id: 8,
                    job: "report".into(),
                    status: InstanceStatus::Running
                },
                ChainLink::Forgotten { id: 9 },
            ]
        );
        let job = &snapshot.jobs[0];
        assert_eq!(
            job.upstream,
            [JobLink {
                job: "extract".into(),
                on: ChainOn::Failure
            }]
        );
        assert_eq!(
            job.downstream,
            [
                JobLink {
                    job: "report".into(),
                    on: ChainOn::Success
                },
                JobLink {
                    job: "audit".into(),
                    on: ChainOn::Complete
                },
            ]
        );
    }

    #[test]
    fn the_banner_comes_from_the_queue_summary_with_the_fix_command() {
        let snapshot = build();
        assert_eq!(
            snapshot.unplaceable,
            [
                Unplaceable {
                    job: "billing".into(),
                    queued: 12,
                    reason: "no live worker carries tag \"billing\" (1 live worker(s): w1)".into(),
                    fix: "shoal worker --join 127.0.0.1:7946 --tag billing".into(),
                },
                Unplaceable {
                    job: "pinned".into(),
                    queued: 3,
                    reason: "no live worker in the cluster".into(),
                    fix: String::new(),
                },
            ],
            "the server's groups, not the few queued instances the snapshot holds"
        );
        assert_eq!(
            snapshot.unplaceable_totals,
            UnplaceableTotals {
                queued: 15_000,
                jobs: 5_000
            }
        );
    }

    #[test]
    fn newest_first_merges_the_two_lists_once_each() {
        let queued = |id| instance(id, "j", queued(None), 0);
        let done = |id| instance(id, "j", InstanceState::Succeeded, 0);
        let merged = newest_first(
            views([queued(9), queued(8), done(7)]),
            views([done(7), done(3)]),
        );
        assert_eq!(
            merged.iter().map(|v| v.instance.id).collect::<Vec<_>>(),
            [9, 8, 7, 3]
        );
    }

    #[test]
    fn stats_count_workers_queues_and_recent_outcomes() {
        let stats = build().stats;
        assert_eq!(stats.live_workers, 2, "the server is not a worker");
        assert_eq!(stats.dead_workers, 1, "left workers are not dead");
        assert_eq!(
            (stats.queued, stats.running),
            (15_004, 2),
            "from the queue summary"
        );
        assert_eq!(stats.succeeded_5m, 2, "301 s ago is outside the window");
        assert_eq!(stats.failed_5m, 1);
        assert_eq!(stats.throughput.len(), 30);
        // Oldest bucket first: 299 s ago is in the first, 15 s and 5 s ago near the end.
        let mut expected = vec![0; 30];
        expected[0] = 1;
        expected[28] = 1;
        expected[29] = 1;
        assert_eq!(stats.throughput, expected);
    }

    #[test]
    fn instances_carry_reasons_workers_and_attempts() {
        let snapshot = build();
        let by_id = |id: u64| snapshot.instances.iter().find(|i| i.id == id).unwrap();
        assert_eq!(
            snapshot.instances.iter().map(|i| i.id).collect::<Vec<_>>(),
            [20, 19, 18, 17, 16, 15, 14, 13, 10, 9, 8],
            "order kept: newest first"
        );
        let failed = by_id(10);
        assert_eq!(failed.status, InstanceStatus::Failed);
        assert_eq!(failed.attempt, 2);
        assert_eq!(
            failed.worker.as_deref(),
            Some("w1"),
            "from the last attempt"
        );
        assert_eq!(
            failed.reason.as_deref(),
            Some("attempt 2 failed: expected status 2xx, got 500")
        );
        assert_eq!(
            failed.attempts,
            [
                AttemptRow {
                    number: 1,
                    worker: "w2".into(),
                    started_ms: NOW - 20_000,
                    ended_ms: Some(NOW - 18_000),
                    http_status: Some(502),
                    error: Some("expected status 2xx, got 502".into()),
                    excerpt: Some("boom".into()),
                },
                AttemptRow {
                    number: 2,
                    worker: "w1".into(),
                    started_ms: NOW - 19_000,
                    ended_ms: Some(NOW - 18_000),
                    http_status: Some(500),
                    error: Some("expected status 2xx, got 500".into()),
                    excerpt: Some("boom".into()),
                },
            ]
        );
        let running = by_id(16);
        assert_eq!(running.status, InstanceStatus::Running);
        assert_eq!(running.worker.as_deref(), Some("w4"), "from the state");
        assert_eq!((running.attempt, running.reason.as_deref()), (0, None));
        assert_eq!(by_id(20).reason.as_deref(), Some(BILLING_REASON));
        assert_eq!(by_id(8).reason.as_deref(), Some("cancelled by operator"));
        assert_eq!(by_id(8).status, InstanceStatus::Cancelled);
    }

    #[test]
    fn workers_and_jobs_are_mapped() {
        let snapshot = build();
        assert_eq!(snapshot.cluster, "prod-eu");
        assert_eq!(snapshot.server, "http://127.0.0.1:7070");
        assert_eq!(snapshot.fetched_at_ms, NOW);
        let server = &snapshot.workers[0];
        assert_eq!(
            (server.id.as_str(), server.role.as_str()),
            ("server", "server")
        );
        let w2 = &snapshot.workers[2];
        assert_eq!(w2.role, "worker");
        assert_eq!(w2.state, MemberState::Dead);
        assert_eq!(snapshot.workers[3].state, MemberState::Left);
        assert_eq!(w2.last_seen_ms, NOW - 500);
        assert_eq!((w2.running, w2.capacity), (1, 8));
        assert_eq!(w2.tags, ["eu"]);

        let job = &snapshot.jobs[0];
        assert_eq!(job.name, "fails");
        assert_eq!(job.schedule, "every 30s");
        assert_eq!((job.queued, job.running), (1, 2));
        assert_eq!(job.last_result, Some(InstanceStatus::Failed));
        assert_eq!(job.next_fire_ms, Some(NOW + 30_000));
        assert!(
            job.definition.starts_with("# every 30s\n"),
            "the schedule in words on top: {}",
            job.definition
        );
        assert!(
            job.definition.contains("name = \"fails\""),
            "{}",
            job.definition
        );
        assert!(
            job.definition.contains("http://127.0.0.1:9/fails"),
            "{}",
            job.definition
        );
        let parsed: crate::spec::JobSpec = toml::from_str(&job.definition).unwrap();
        assert_eq!(parsed.name, "fails");
    }
}
