//! Decides which live worker takes each queued instance, hands assignments to the workers'
//! long-polls, passes their reports on, and takes work back from workers that are lost.
//!
//! It decides; the state machine changes. A pass plans `DispatchStep`s and proposes them as one
//! `Dispatch` command; reports become `Report` commands. Every assignment (with its lease) is
//! committed before any worker can see it; every report is fenced by attempt number, so a late
//! report from a lost attempt is refused, never applied. Its memory (the working set, outboxes,
//! poll times) is rebuilt from the store and the feed of effects, so any server can take over.

pub mod placement;
mod working_set;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_gossip::{Membership, MembershipView};
use tokio::sync::Notify;

use crate::model::{Instance, InstanceState, Job, JobId, Strategy, UnixMs, now_ms};
use crate::reason::QueueReason;
use crate::server::command::{Command, DispatchStep};
use crate::server::engine::Engine;
use crate::server::machine::{ApplyError, Response};
use crate::server::store::{ReadTx, Store, StoreError};
use crate::shutdown::Shutdown;
use crate::wire::admin::QueueSummary;
use crate::wire::{Assignment, ReportAck, TaskEvent};
use placement::Candidate;
use working_set::WorkingSet;

/// A lease outlives the task's own timeout by this much before the task counts as lost.
pub const LEASE_GRACE_MS: i64 = 15_000;
/// Look at leases, backoffs and dispatch timeouts at least this often.
const TICK: Duration = Duration::from_millis(250);
/// When woken by new work this close to the earliest `not_before_ms`, wait for it first: a pass
/// reading a batch of fires just created ahead (due in about a second) must not delay fires that
/// fall due while it reads. New work waits at most this long.
pub const DUE_GUARD_MS: i64 = 10;
/// Right after a restart the member list is still filling in: an unknown worker is not yet lost.
const STARTUP_GRACE: Duration = Duration::from_secs(10);
/// Most instances examined per pass, so one pass never holds a transaction for long.
const PASS_LIMIT: usize = 5_000;
/// A worker counts as taking work if it polled this recently (its polls last at most 20 s).
const POLLING_WINDOW: Duration = Duration::from_secs(30);
/// A worker whose recent tasks took less than this on average is handed work ahead (see
/// [`Dispatcher::prefetch`]); slower tasks would keep a prefetched one waiting too long.
const PREFETCH_TASKS_UNDER_MS: f64 = 100.0;
/// Most work handed ahead to one worker, in multiples of its capacity (see
/// [`Dispatcher::prefetch`]): a bound on what waits for one worker while another might be free,
/// and on what a lost worker's lease holds back.
const PREFETCH_MAX_CAPACITIES: u32 = 4;
/// Weight of the newest task in a worker's average task time, and of the newest refill in the
/// average refill time.
const TASK_TIME_WEIGHT: f64 = 0.2;

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<dyn Engine>,
    membership: Arc<Membership>,
    outboxes: Mutex<HashMap<String, Outbox>>,
    /// Every unfinished instance, as last committed; only the dispatch pass uses it.
    working_set: Mutex<WorkingSet>,
    round_robin: Mutex<HashMap<JobId, usize>>,
    /// When each worker last polled with a valid token. Gossip says a worker is live; only a
    /// poll proves it can take work (right token, server API reachable from it).
    last_poll: Mutex<HashMap<String, Instant>>,
    /// Each worker's recent task time (ms, a moving average of its reports).
    task_ms: Mutex<HashMap<String, f64>>,
    /// How long a pass that hands out work takes until its assignments are committed (ms, a
    /// moving average): how long a worker's outbox waits to be refilled.
    refill_ms: Mutex<f64>,
    started: Instant,
    /// The wall clock when `started` was taken: leases are set and checked on
    /// [`Dispatcher::lease_clock`], which a wall-clock step does not move.
    started_wall_ms: UnixMs,
    /// The gossip address a new worker should join, for "start one with: …" hints.
    join_hint: String,
    /// The group term this dispatcher serves (0 for a single server): every assignment carries
    /// it, so that workers refuse a deposed leader's.
    term: u64,
}

#[derive(Default)]
struct Outbox {
    pending: Vec<Assignment>,
    ready: Arc<Notify>,
    /// Slots the worker said were free at its latest poll, less what it was handed since.
    said_free: u32,
}

impl Dispatcher {
    pub fn new(
        engine: Arc<dyn Engine>,
        membership: Arc<Membership>,
        join_hint: String,
        term: u64,
    ) -> Dispatcher {
        // Before any read of the working set, so that no later change is missed.
        engine.store().feed().follow_written();
        Dispatcher {
            inner: Arc::new(Inner {
                engine,
                membership,
                outboxes: Mutex::new(HashMap::new()),
                working_set: Mutex::new(WorkingSet::default()),
                round_robin: Mutex::new(HashMap::new()),
                last_poll: Mutex::new(HashMap::new()),
                task_ms: Mutex::new(HashMap::new()),
                refill_ms: Mutex::new(0.0),
                started: Instant::now(),
                started_wall_ms: now_ms(),
                join_hint,
                term,
            }),
        }
    }

    /// The dispatch loop: a pass on every wake-up, membership change, or tick.
    pub async fn run(self, mut shutdown: Shutdown) {
        if let Err(error) = self.redeliver_after_restart() {
            tracing::error!(%error, "cannot reload assignments");
        }
        let mut members = self.inner.membership.watch();
        // An interval, not a sleep after each pass: a stream of wake-ups must not put off the
        // full passes that notice expired leases and dispatch timeouts.
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut scope = PassScope::Full;
        loop {
            let this = self.clone();
            let held_until =
                match tokio::task::spawn_blocking(move || this.pass(now_ms(), scope)).await {
                    Ok(Ok(held_until)) => held_until,
                    // The store logs a storage fault once, and wakes this loop when it
                    // recovers.
                    Ok(Err(error)) if error.is_storage_fault() => {
                        tracing::debug!(%error, "dispatch pass: storage refuses writes");
                        None
                    }
                    Ok(Err(error)) => {
                        tracing::error!(%error, "dispatch pass failed");
                        None
                    }
                    Err(error) => {
                        tracing::error!(%error, "dispatch pass panicked");
                        None
                    }
                };
            // Fires created ahead and retries in backoff become dispatchable at their
            // `not_before_ms`: wake for the earliest of them then, not at the next tick, so a fire
            // goes out at its time rather than up to a tick late.
            let due = async {
                match held_until {
                    Some(at) => {
                        let wait = u64::try_from(at - now_ms()).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            scope = tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.bell().notified() => {
                    if let Some(gap) = held_until.map(|at| at - now_ms())
                        && (0..=DUE_GUARD_MS).contains(&gap)
                    {
                        tokio::time::sleep(Duration::from_millis(gap as u64)).await;
                    }
                    PassScope::Quick
                }
                _ = due => PassScope::Quick,
                _ = members.changed() => PassScope::Full,
                _ = tick.tick() => PassScope::Full,
            };
        }
    }

    fn store(&self) -> &Arc<Store> {
        self.inner.engine.store()
    }

    /// The clock leases run on: the wall clock at start-up plus monotonic time since. A wall-clock
    /// step while the server runs moves neither a lease's end nor its check (a forward step of an
    /// hour would otherwise expire every lease at once and run every task twice); a restart
    /// re-anchors it to the wall clock, so a step while the server was down counts as time passed.
    fn lease_clock(&self) -> UnixMs {
        self.inner.started_wall_ms + self.inner.started.elapsed().as_millis() as UnixMs
    }

    /// The dispatch loop's bell (rung by the feed, and by polls that bring room).
    fn bell(&self) -> &Notify {
        self.store().feed().dispatcher_bell()
    }

    /// The working set, brought up to date with everything committed so far (a change
    /// acknowledged before this call is in it). For the API's counts: it holds every unfinished
    /// instance in memory, so counting the queue reads nothing from the store.
    fn current_set(&self) -> Result<std::sync::MutexGuard<'_, WorkingSet>, StoreError> {
        let mut set = locked(&self.inner.working_set);
        set.refresh(self.store())?;
        Ok(set)
    }

    /// The whole queue at `now`: see [`QueueSummary`]. Its cost follows the unfinished
    /// instances, in memory; it reads nothing from the store unless the working set is due for
    /// its periodic full reload (or was never loaded: the first call after a start).
    pub fn queue_summary(&self, now: UnixMs) -> Result<QueueSummary, StoreError> {
        Ok(self.current_set()?.summary(now))
    }

    /// Each job's queued, and assigned or running, instances (for the job list's page).
    pub fn job_counts(&self, jobs: &[JobId]) -> Result<Vec<(u32, u32)>, StoreError> {
        let set = self.current_set()?;
        Ok(jobs.iter().map(|id| set.job_counts(*id)).collect())
    }

    /// Assignments committed before a restart but never fetched go back into their outboxes.
    fn redeliver_after_restart(&self) -> Result<(), StoreError> {
        let active = self.store().read()?.active_instances()?;
        let mut jobs = JobCache::new(self.store())?;
        for instance in active {
            if let InstanceState::Assigned {
                worker,
                lease_until_ms,
            } = &instance.state
                && let (Some(job), Some(attempt)) =
                    (jobs.get(instance.job_id)?, instance.current_attempt())
            {
                self.deliver(
                    worker,
                    assignment(&instance, job, attempt.number, *lease_until_ms),
                );
            }
        }
        Ok(())
    }

    /// One look at the unfinished instances: fail over lost work, place queued work. A quick
    /// pass looks only at dispatchable queued instances, oldest first, and stops once no worker
    /// has room left. Returns the earliest `not_before_ms` still ahead of `now`, when the next
    /// pass should run at the latest.
    fn pass(&self, now: UnixMs, scope: PassScope) -> Result<Option<UnixMs>, ApplyError> {
        let started = Instant::now();
        let view = self.inner.membership.view();
        let mut working_set = locked(&self.inner.working_set);
        working_set.refresh(self.store())?;
        let held_until = working_set.earliest_not_before_after(now);
        let mut assigned = working_set.per_worker().clone();
        let polling = self.polling_workers();
        // A worker's own word on its free slots is fresher than our books: a slot frees when its
        // task ends, our books only when the report of it commits. Believing the poll refills
        // the slot while that report is still being written. The worker itself never runs more
        // than its capacity, and the books still count the instance until its report lands.
        // What a worker holds by its word: the slots it said were busy, plus what waits for it
        // in its outbox (work handed ahead, see `prefetch`).
        for (worker, said_free, pending) in self.worker_word() {
            if let Some(member) = view.get(&worker) {
                let count = assigned.entry(worker).or_default();
                let held = member
                    .info
                    .capacity
                    .saturating_sub(said_free)
                    .saturating_add(pending);
                *count = (*count).min(held);
            }
        }
        let prefetch = self.prefetch(&view);
        let room: u32 = placement::candidates(&view, &assigned, &prefetch, &polling)
            .iter()
            .map(Candidate::free)
            .sum();
        if scope == PassScope::Quick && room == 0 {
            return Ok(held_until);
        }
        let seen = Seen {
            view: &view,
            polling: &polling,
            prefetch: &prefetch,
            now,
        };
        let mut plan = Plan {
            room,
            running_by_job: working_set.per_job().clone(),
            ..Plan::default()
        };
        let mut jobs = JobCache::new(self.store())?;
        // A full pass: the oldest half first, then the next stretch of a deeper queue.
        let (visit, resume_after): (Box<dyn Iterator<Item = &Instance>>, _) = match scope {
            PassScope::Full => {
                let (visit, resume_after) =
                    working_set.full_pass(PASS_LIMIT / 2, PASS_LIMIT - PASS_LIMIT / 2);
                (Box::new(visit.into_iter()), Some(resume_after))
            }
            PassScope::Quick => (
                Box::new(working_set.dispatchable(now).take(PASS_LIMIT)),
                None,
            ),
        };
        for instance in visit {
            if scope == PassScope::Quick && plan.room == 0 {
                break;
            }
            let job = match instance.state {
                InstanceState::Queued { .. } => jobs.get(instance.job_id)?,
                _ => None,
            };
            self.plan_one(instance, job, &seen, &mut assigned, &mut plan);
        }
        if let Some(resume_after) = resume_after {
            working_set.passed(resume_after);
        }
        drop(working_set);
        if plan.steps.is_empty() {
            return Ok(held_until);
        }
        // Fan-out copies are placed by the pass the feed wakes at once.
        let command = Command::Dispatch {
            at: now,
            steps: plan.steps,
        };
        let Response::Dispatched(applied) = self.inner.engine.propose(command)? else {
            return Ok(held_until);
        };
        let refill_ms = started.elapsed().as_secs_f64() * 1_000.0;
        let mut average = locked(&self.inner.refill_ms);
        *average += TASK_TIME_WEIGHT * (refill_ms - *average);
        drop(average);
        let applied: HashSet<u64> = applied.into_iter().collect();
        for (worker, delivery) in plan.deliveries {
            if applied.contains(&delivery.instance) {
                self.deliver(&worker, delivery);
            }
        }
        Ok(held_until)
    }

    fn plan_one(
        &self,
        instance: &Instance,
        job: Option<&Job>,
        seen: &Seen,
        assigned: &mut HashMap<String, u32>,
        plan: &mut Plan,
    ) {
        let Seen {
            view,
            polling,
            prefetch,
            now,
        } = *seen;
        match &instance.state {
            InstanceState::Assigned {
                worker,
                lease_until_ms,
            }
            | InstanceState::Running {
                worker,
                lease_until_ms,
            } => {
                let why = match placement::is_gone(view, worker) {
                    Some("unknown") if self.inner.started.elapsed() < STARTUP_GRACE => None,
                    Some(why) => Some(why.to_string()),
                    None if *lease_until_ms < self.lease_clock() => {
                        Some("lease expired with no report".into())
                    }
                    None => None,
                };
                if let Some(why) = why {
                    tracing::warn!(instance = instance.id, job = %instance.job_name,
                        reason = %format!("worker {worker} lost ({why})"), "failover");
                    self.withdraw(worker, instance.id);
                    if let Some(count) = assigned.get_mut(worker.as_str()) {
                        *count = count.saturating_sub(1);
                    }
                    if let Some(count) = plan.running_by_job.get_mut(&instance.job_id) {
                        *count = count.saturating_sub(1);
                    }
                    plan.steps.push(DispatchStep::Requeue {
                        instance: instance.id,
                        attempt: instance.current_attempt().map_or(0, |a| a.number),
                        worker: worker.clone(),
                        why,
                    });
                }
            }
            InstanceState::Queued {
                reason,
                not_before_ms,
                since_ms,
            } => {
                if not_before_ms.is_some_and(|t| t > now) {
                    return;
                }
                let Some(job) = job else {
                    plan.steps.push(DispatchStep::Orphan {
                        instance: instance.id,
                    });
                    return;
                };
                if job.def.strategy == Strategy::Broadcast && instance.pinned_worker.is_none() {
                    let candidates = placement::candidates(view, assigned, prefetch, polling);
                    let workers = placement::broadcast_workers(&job.def, &candidates);
                    // With no matching worker it waits like any task, with the same reason.
                    if !workers.is_empty() {
                        plan.steps.push(DispatchStep::FanOut {
                            instance: instance.id,
                            workers,
                        });
                        return;
                    }
                }
                // A job runs at most `max_concurrent` instances at once: fires its overlap policy
                // buffered, and backfills, wait here (a broadcast copy is one per worker).
                let running = plan.running_by_job.get(&job.id).copied().unwrap_or(0);
                if running >= job.def.max_concurrent
                    && job.def.strategy != Strategy::Broadcast
                    && instance.pinned_worker.is_none()
                {
                    let unplaced = QueueReason::JobAtConcurrency {
                        running,
                        max: job.def.max_concurrent,
                    };
                    if reason.as_ref() != Some(&unplaced) {
                        plan.steps.push(DispatchStep::Wait {
                            instance: instance.id,
                            reason: unplaced,
                        });
                    }
                    return;
                }
                match self.placement(instance, job, seen, assigned, plan) {
                    Ok(worker) => {
                        let attempt = instance.next_attempt_number();
                        let lease_until_ms =
                            self.lease_clock() + job.def.http.timeout_ms as i64 + LEASE_GRACE_MS;
                        *assigned.entry(worker.clone()).or_default() += 1;
                        *plan.running_by_job.entry(job.id).or_default() += 1;
                        plan.room = plan.room.saturating_sub(1);
                        plan.deliveries.push((
                            worker.clone(),
                            assignment(instance, job, attempt, lease_until_ms),
                        ));
                        plan.steps.push(DispatchStep::Assign {
                            instance: instance.id,
                            attempt,
                            worker,
                            lease_until_ms,
                        });
                    }
                    Err(unplaced) => {
                        let waited = now - since_ms;
                        if waited > job.def.dispatch_timeout_ms as i64 {
                            plan.steps.push(DispatchStep::Expire {
                                instance: instance.id,
                                reason: unplaced,
                            });
                        } else if reason.as_ref() != Some(&unplaced) {
                            if unplaced.is_unplaceable() && plan.warned.insert(job.id) {
                                tracing::warn!(instance = instance.id, job = %instance.job_name,
                                    reason = %unplaced, "task queued: no worker");
                            }
                            plan.steps.push(DispatchStep::Wait {
                                instance: instance.id,
                                reason: unplaced,
                            });
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The worker for a queued instance of `job`, or why there is none. A job found unplaceable
    /// once in a pass is not searched again in that pass (a pass only fills workers up).
    fn placement(
        &self,
        instance: &Instance,
        job: &Job,
        seen: &Seen,
        assigned: &HashMap<String, u32>,
        plan: &mut Plan,
    ) -> Result<String, QueueReason> {
        // A pinned copy's outcome says nothing of its job's other copies.
        let cacheable = instance.pinned_worker.is_none();
        if cacheable && let Some(unplaced) = plan.unplaceable.get(&job.id) {
            return Err(unplaced.clone());
        }
        let mut candidates =
            placement::candidates(seen.view, assigned, seen.prefetch, seen.polling);
        let placed = match &instance.pinned_worker {
            Some(pinned) => {
                candidates.retain(|c| c.id() == pinned);
                if candidates.is_empty() {
                    Err(placement::pinned_worker_gone(pinned))
                } else {
                    self.place(job, &candidates, seen.view, seen.polling)
                }
            }
            None => self.place(job, &candidates, seen.view, seen.polling),
        };
        if let Err(unplaced) = &placed
            && cacheable
        {
            plan.unplaceable.insert(job.id, unplaced.clone());
        }
        placed
    }

    fn place(
        &self,
        job: &Job,
        candidates: &[Candidate],
        view: &MembershipView,
        polling: &HashSet<String>,
    ) -> Result<String, QueueReason> {
        let mut round_robin = locked(&self.inner.round_robin);
        placement::choose(
            job.id,
            &job.def,
            candidates,
            &mut round_robin,
            &self.inner.join_hint,
        )
        .map(|c| c.id().to_string())
        .map_err(|unplaced| placement::note_silent_workers(unplaced, &job.def, view, polling))
    }

    fn polling_workers(&self) -> HashSet<String> {
        let last_poll = locked(&self.inner.last_poll);
        last_poll
            .iter()
            .filter(|(_, at)| at.elapsed() < POLLING_WINDOW)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How many assignments each worker may hold beyond its capacity, waiting in its outbox.
    /// A worker running short tasks frees slots faster than a dispatch commit refills them:
    /// with work committed ahead, its next poll is answered at once rather than after a pass
    /// and a commit. Enough to keep it busy while its outbox is refilled — the tasks it ends in
    /// one refill (a pass and its commit, longer in a group of servers, where a commit is a
    /// round of replication), at least its capacity and at most [`PREFETCH_MAX_CAPACITIES`]
    /// times it. Only for workers whose recent tasks were short: a prefetched task waits for a
    /// slot on its worker, even if another frees first.
    fn prefetch(&self, view: &MembershipView) -> HashMap<String, u32> {
        let refill_ms = *locked(&self.inner.refill_ms);
        locked(&self.inner.task_ms)
            .iter()
            .filter(|(_, ms)| **ms < PREFETCH_TASKS_UNDER_MS)
            .filter_map(|(worker, ms)| {
                let member = view.get(worker)?;
                Some((
                    worker.clone(),
                    prefetch_allowance(member.info.capacity, *ms, refill_ms),
                ))
            })
            .collect()
    }

    /// Folds the task times of a worker's report into its moving average.
    fn note_task_times(&self, worker: &str, events: &[TaskEvent]) {
        let mut task_ms = locked(&self.inner.task_ms);
        for event in events {
            if let TaskEvent::Finished(result) = event {
                let ms = (result.ended_ms - result.started_ms).max(0) as f64;
                task_ms
                    .entry(worker.to_string())
                    .and_modify(|average| *average += TASK_TIME_WEIGHT * (ms - *average))
                    .or_insert(ms);
            }
        }
    }

    /// Records that `worker` is polling; a worker's first poll wakes the dispatcher so queued
    /// work reaches it at once.
    fn saw_poll(&self, worker: &str) {
        let first = locked(&self.inner.last_poll)
            .insert(worker.to_string(), Instant::now())
            .is_none_or(|at| at.elapsed() >= POLLING_WINDOW);
        if first {
            self.bell().notify_one();
        }
    }

    fn deliver(&self, worker: &str, mut assignment: Assignment) {
        assignment.term = self.inner.term;
        let mut outboxes = locked(&self.inner.outboxes);
        let outbox = outboxes.entry(worker.to_string()).or_default();
        outbox.pending.push(assignment);
        outbox.ready.notify_waiters();
        outbox.ready.notify_one();
    }

    /// Per worker: the free slots it reported at its latest poll (less what that poll took),
    /// and how many assignments wait in its outbox.
    fn worker_word(&self) -> Vec<(String, u32, u32)> {
        locked(&self.inner.outboxes)
            .iter()
            .map(|(worker, outbox)| {
                let pending = u32::try_from(outbox.pending.len()).unwrap_or(u32::MAX);
                (worker.clone(), outbox.said_free, pending)
            })
            .collect()
    }

    fn withdraw(&self, worker: &str, instance: u64) {
        let mut outboxes = locked(&self.inner.outboxes);
        if let Some(outbox) = outboxes.get_mut(worker) {
            outbox.pending.retain(|a| a.instance != instance);
        }
    }

    /// A worker's long-poll: up to `free` assignments, waiting up to `wait` for the first.
    pub async fn poll(
        &self,
        worker: &str,
        free: u32,
        wait: Duration,
        mut shutdown: Shutdown,
    ) -> Vec<Assignment> {
        let deadline = tokio::time::Instant::now() + wait;
        self.saw_poll(worker);
        loop {
            let ready = {
                let mut outboxes = locked(&self.inner.outboxes);
                let outbox = outboxes.entry(worker.to_string()).or_default();
                if !outbox.pending.is_empty() && free > 0 {
                    let take = outbox.pending.len().min(free as usize);
                    outbox.said_free = free - take as u32;
                    return outbox.pending.drain(..take).collect();
                }
                if free > 0 && outbox.said_free != free {
                    // New room on the worker's word: queued work need not wait for the report.
                    self.bell().notify_one();
                }
                outbox.said_free = free;
                outbox.ready.clone()
            };
            let notified = ready.notified();
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {
                    self.saw_poll(worker);
                    return Vec::new();
                }
                _ = shutdown.wait() => return Vec::new(),
            }
        }
    }

    /// Applies a worker's report (a `Report` command); refused events are logged and returned
    /// with their reasons.
    pub fn report(&self, worker: &str, events: &[TaskEvent]) -> Result<ReportAck, ApplyError> {
        self.note_task_times(worker, events);
        let command = Command::Report {
            worker: worker.to_string(),
            at: now_ms(),
            events: events.to_vec(),
        };
        let Response::Reported(ack) = self.inner.engine.propose(command)? else {
            return Ok(ReportAck::default());
        };
        for refusal in &ack.refused {
            tracing::warn!(worker, instance = refusal.instance, attempt = refusal.attempt,
                reason = %refusal.reason, "report refused");
        }
        Ok(ack)
    }

    pub fn join_hint(&self) -> &str {
        &self.inner.join_hint
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (each critical section
/// is a single map operation), so a poisoned lock is simply taken over.
fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// What one pass looked at.
#[derive(Clone, Copy)]
struct Seen<'a> {
    view: &'a MembershipView,
    polling: &'a HashSet<String>,
    prefetch: &'a HashMap<String, u32>,
    now: UnixMs,
}

/// The jobs a pass (or the redelivery at start-up) needs, each read once, from one snapshot.
struct JobCache {
    read: ReadTx,
    jobs: HashMap<JobId, Option<Job>>,
}

impl JobCache {
    fn new(store: &Store) -> Result<JobCache, StoreError> {
        Ok(JobCache {
            read: store.read()?,
            jobs: HashMap::new(),
        })
    }

    /// The job, or `None` if it was deleted.
    fn get(&mut self, id: JobId) -> Result<Option<&Job>, StoreError> {
        if !self.jobs.contains_key(&id) {
            let job = self.read.job(id)?;
            self.jobs.insert(id, job);
        }
        Ok(self.jobs.get(&id).and_then(Option::as_ref))
    }
}

/// How much of the working set a pass looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassScope {
    /// Everything: on each tick and each membership change. Updates every queued instance's
    /// reason and fails those past their dispatch timeout.
    Full,
    /// After a wake-up (work queued, a slot freed): places what fits, oldest first, and stops
    /// there. The rest of the queue's reasons and timeouts, and every lease, wait for the next
    /// full pass (at most one tick). Without this, every report re-examined a queue that can be
    /// far longer than the room.
    Quick,
}

/// Work handed ahead to a worker of `capacity` whose tasks take `task_ms` on average, when a
/// refill of its outbox takes `refill_ms` (see [`Dispatcher::prefetch`]).
fn prefetch_allowance(capacity: u32, task_ms: f64, refill_ms: f64) -> u32 {
    // A task of no measurable time (under the reports' millisecond) counts as a tenth of one.
    let tasks_per_slot = (refill_ms / task_ms.max(0.1)).ceil();
    let capacities = tasks_per_slot.clamp(1.0, f64::from(PREFETCH_MAX_CAPACITIES)) as u32;
    capacity.saturating_mul(capacities)
}

/// The steps one pass will propose, and the assignments to hand out once they apply.
#[derive(Default)]
struct Plan {
    steps: Vec<DispatchStep>,
    deliveries: Vec<(String, Assignment)>,
    /// Jobs for which no worker was found in this pass. A pass only fills workers up, so the
    /// job's later queued instances would find none either: they skip the search (which, with a
    /// deep queue, was most of a pass).
    unplaceable: HashMap<JobId, QueueReason>,
    /// Free slots left on the polling live workers.
    room: u32,
    /// Assigned or running instances per job, as the pass goes.
    running_by_job: HashMap<JobId, u32>,
    /// Jobs whose newly unplaceable work this pass has logged: one line per job and pass, not
    /// one per instance (a deep queue would flood the log).
    warned: HashSet<JobId>,
}

fn assignment(instance: &Instance, job: &Job, attempt: u32, lease_until_ms: UnixMs) -> Assignment {
    Assignment {
        instance: instance.id,
        attempt,
        job: job.def.name.clone(),
        task: with_parent(&job.def.http, instance.parent),
        lease_until_ms,
        // Set by `deliver`, which knows the term this dispatcher serves.
        term: 0,
    }
}

/// A chained instance's task carries its parent's id, so that the target can trace the chain.
fn with_parent(
    task: &crate::model::HttpTask,
    parent: Option<crate::model::InstanceId>,
) -> crate::model::HttpTask {
    let mut task = task.clone();
    if let Some(parent) = parent {
        task.headers
            .push((crate::spec::PARENT_HEADER.to_string(), parent.to_string()));
    }
    task
}

#[cfg(test)]
mod tests;
