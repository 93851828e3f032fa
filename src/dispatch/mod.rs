//! Assigns queued instances to live workers, hands assignments to the workers' long-polls,
//! applies their reports, and takes work back from workers that are lost.
//!
//! Every assignment (with its lease) is committed before any worker can see it; every report is
//! fenced by attempt number, so a late report from a lost attempt is refused, never applied.

pub mod placement;
mod results;
mod working_set;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_gossip::{Membership, MembershipView};
use tokio::sync::Notify;

use crate::api::types::{Assignment, ReportAck, TaskEvent};
use crate::model::{
    Attempt, AttemptOutcome, Instance, InstanceId, InstanceState, Job, JobId, Strategy, UnixMs,
    human_ms, now_ms,
};
use crate::shutdown::Shutdown;
use crate::store::{ReadTx, Store, StoreError, WriteTx};
use placement::{Candidate, Unplaced};
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
/// Weight of the newest task in a worker's average task time.
const TASK_TIME_WEIGHT: f64 = 0.2;

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    membership: Arc<Membership>,
    /// Wakes the dispatch loop (new work queued, capacity freed).
    wake: Arc<Notify>,
    /// Wakes the scheduler (a fixed-delay job's run ended).
    scheduler_wake: Arc<Notify>,
    outboxes: Mutex<HashMap<String, Outbox>>,
    /// Every unfinished instance, as last committed; only the dispatch pass uses it.
    working_set: Mutex<WorkingSet>,
    round_robin: Mutex<HashMap<JobId, usize>>,
    /// When each worker last polled with a valid token. Gossip says a worker is live; only a
    /// poll proves it can take work (right token, server API reachable from it).
    last_poll: Mutex<HashMap<String, Instant>>,
    /// Each worker's recent task time (ms, a moving average of its reports).
    task_ms: Mutex<HashMap<String, f64>>,
    started: Instant,
    /// The gossip address a new worker should join, for "start one with: …" hints.
    join_hint: String,
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
        store: Arc<Store>,
        membership: Arc<Membership>,
        wake: Arc<Notify>,
        scheduler_wake: Arc<Notify>,
        join_hint: String,
    ) -> Dispatcher {
        // Before any read of the working set, so that no later change is missed.
        store.follow_written_instances();
        Dispatcher {
            inner: Arc::new(Inner {
                store,
                membership,
                wake,
                scheduler_wake,
                outboxes: Mutex::new(HashMap::new()),
                working_set: Mutex::new(WorkingSet::default()),
                round_robin: Mutex::new(HashMap::new()),
                last_poll: Mutex::new(HashMap::new()),
                task_ms: Mutex::new(HashMap::new()),
                started: Instant::now(),
                join_hint,
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
                _ = self.inner.wake.notified() => {
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

    /// Assignments committed before a restart but never fetched go back into their outboxes.
    fn redeliver_after_restart(&self) -> Result<(), StoreError> {
        let active = self.inner.store.read()?.active_instances()?;
        let mut jobs = JobCache::new(&self.inner.store)?;
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
    fn pass(&self, now: UnixMs, scope: PassScope) -> Result<Option<UnixMs>, StoreError> {
        let view = self.inner.membership.view();
        let mut working_set = locked(&self.inner.working_set);
        working_set.refresh(&self.inner.store)?;
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
            ..Plan::default()
        };
        let mut jobs = JobCache::new(&self.inner.store)?;
        let visit: Box<dyn Iterator<Item = &Instance>> = match scope {
            PassScope::Full => Box::new(working_set.oldest(PASS_LIMIT).into_iter()),
            PassScope::Quick => Box::new(working_set.dispatchable(now).take(PASS_LIMIT)),
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
        drop(working_set);
        if plan.changes.is_empty() && plan.fan_outs.is_empty() {
            return Ok(held_until);
        }
        let committed = self.commit(&plan)?;
        if !plan.fan_outs.is_empty() {
            // The copies are placed by the next pass, at once.
            self.inner.wake.notify_one();
        }
        for (worker, delivery) in plan.deliveries {
            if committed.contains(&delivery.instance) {
                self.deliver(&worker, delivery);
            }
        }
        if plan.ended {
            self.inner.scheduler_wake.notify_one();
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
                let lost = match placement::is_gone(view, worker) {
                    Some("unknown") if self.inner.started.elapsed() < STARTUP_GRACE => None,
                    Some(why) => Some(format!("worker {worker} lost ({why})")),
                    None if *lease_until_ms < now => Some(format!(
                        "worker {worker} lost (lease expired with no report)"
                    )),
                    None => None,
                };
                if let Some(reason) = lost {
                    let mut requeued = instance.clone();
                    requeued.finish(
                        InstanceState::Queued {
                            reason: Some(format!("{reason}; re-queued")),
                            not_before_ms: None,
                            since_ms: now,
                        },
                        AttemptOutcome::Lost,
                        now,
                    );
                    if let Some(attempt) = requeued.current_attempt_mut() {
                        attempt.error = Some(reason.clone());
                    }
                    tracing::warn!(instance = instance.id, job = %instance.job_name, %reason, "failover");
                    self.withdraw(worker, instance.id);
                    if let Some(count) = assigned.get_mut(worker.as_str()) {
                        *count = count.saturating_sub(1);
                    }
                    plan.change(instance, requeued);
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
                    let mut cancelled = instance.clone();
                    cancelled.finish(
                        InstanceState::Cancelled {
                            reason: "job deleted".into(),
                        },
                        AttemptOutcome::Cancelled,
                        now,
                    );
                    plan.ended = true;
                    plan.change(instance, cancelled);
                    return;
                };
                if job.def.strategy == Strategy::Broadcast && instance.pinned_worker.is_none() {
                    let candidates = placement::candidates(view, assigned, prefetch, polling);
                    let workers = placement::broadcast_workers(&job.def, &candidates);
                    // With no matching worker it waits like any task, with the same reason.
                    if !workers.is_empty() {
                        plan.fan_outs.push((instance.clone(), workers));
                        return;
                    }
                }
                // A pinned copy's outcome says nothing of its job's other copies.
                let cacheable = instance.pinned_worker.is_none();
                let placed = match plan.unplaceable.get(&job.id).filter(|_| cacheable) {
                    Some(unplaced) => Err(unplaced.clone()),
                    None => {
                        let mut candidates =
                            placement::candidates(view, assigned, prefetch, polling);
                        let placed = match &instance.pinned_worker {
                            Some(pinned) => {
                                candidates.retain(|c| c.id() == pinned);
                                if candidates.is_empty() {
                                    Err(placement::pinned_worker_gone(pinned))
                                } else {
                                    self.place(job, &candidates, view, polling)
                                }
                            }
                            None => self.place(job, &candidates, view, polling),
                        };
                        if let Err(unplaced) = &placed
                            && cacheable
                        {
                            plan.unplaceable.insert(job.id, unplaced.clone());
                        }
                        placed
                    }
                };
                match placed {
                    Ok(worker) => {
                        let attempt = instance.next_attempt_number();
                        let lease_until_ms = now + job.def.http.timeout_ms as i64 + LEASE_GRACE_MS;
                        let mut next = instance.clone();
                        next.state = InstanceState::Assigned {
                            worker: worker.clone(),
                            lease_until_ms,
                        };
                        next.updated_ms = now;
                        next.attempts.push(Attempt {
                            number: attempt,
                            worker: worker.clone(),
                            assigned_ms: now,
                            started_ms: None,
                            ended_ms: None,
                            outcome: None,
                            http_status: None,
                            duration_ms: None,
                            error: None,
                            excerpt: None,
                        });
                        *assigned.entry(worker.clone()).or_default() += 1;
                        plan.room = plan.room.saturating_sub(1);
                        plan.deliveries
                            .push((worker, assignment(instance, job, attempt, lease_until_ms)));
                        plan.change(instance, next);
                    }
                    Err(unplaced) => {
                        let waited = now - since_ms;
                        if waited > job.def.dispatch_timeout_ms as i64 {
                            let mut failed = instance.clone();
                            failed.finish(
                                InstanceState::Failed {
                                    reason: format!(
                                        "not dispatched within {}: {}",
                                        human_ms(job.def.dispatch_timeout_ms),
                                        unplaced.reason()
                                    ),
                                },
                                AttemptOutcome::Failed,
                                now,
                            );
                            plan.ended = true;
                            plan.change(instance, failed);
                        } else if reason.as_deref() != Some(unplaced.reason()) {
                            let mut waiting = instance.clone();
                            waiting.state = InstanceState::Queued {
                                reason: Some(unplaced.reason().to_string()),
                                not_before_ms: None,
                                since_ms: *since_ms,
                            };
                            if let Unplaced::NoMatch(reason) = &unplaced {
                                tracing::warn!(instance = instance.id, job = %instance.job_name, %reason, "task queued: no worker");
                            }
                            plan.change(instance, waiting);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn place(
        &self,
        job: &Job,
        candidates: &[Candidate],
        view: &MembershipView,
        polling: &HashSet<String>,
    ) -> Result<String, Unplaced> {
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
    /// and a durable commit. Only for workers whose recent tasks were short (a prefetched task
    /// waits for a slot on its worker, even if another frees first), and at most its capacity.
    fn prefetch(&self, view: &MembershipView) -> HashMap<String, u32> {
        locked(&self.inner.task_ms)
            .iter()
            .filter(|(_, ms)| **ms < PREFETCH_TASKS_UNDER_MS)
            .filter_map(|(worker, _)| {
                view.get(worker)
                    .map(|member| (worker.clone(), member.info.capacity))
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
            self.inner.wake.notify_one();
        }
    }

    /// Commits the plan in one transaction. A change is applied only if the instance is still as
    /// the plan saw it (a report or an operator may have moved it meanwhile). Returns the ids
    /// whose change was committed.
    fn commit(&self, plan: &Plan) -> Result<Vec<u64>, StoreError> {
        self.inner.store.write(|tx| {
            let mut committed = Vec::new();
            let mut ended: BTreeMap<JobId, UnixMs> = BTreeMap::new();
            for (seen, next) in &plan.changes {
                match tx.instance(next.id)? {
                    Some(current) if current == *seen => {
                        tx.replace_instance(Some(&seen.state), next)?;
                        if next.state.is_terminal() {
                            ended.insert(next.job_id, next.updated_ms);
                        }
                        committed.push(next.id);
                    }
                    _ => {}
                }
            }
            // Once per job, after all of its instances moved.
            for (job_id, at) in ended {
                crate::schedule::scheduler::instance_ended(tx, job_id, at)?;
            }
            for (seen, workers) in &plan.fan_outs {
                if tx.instance(seen.id)?.as_ref() == Some(seen) {
                    committed.extend(fan_out(tx, seen, workers)?);
                }
            }
            Ok(committed)
        })
    }

    fn deliver(&self, worker: &str, assignment: Assignment) {
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
                    self.inner.wake.notify_one();
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

    /// Applies a worker's report in one transaction; see `results`.
    pub fn report(&self, worker: &str, events: &[TaskEvent]) -> Result<ReportAck, StoreError> {
        self.note_task_times(worker, events);
        let outcome = results::apply(&self.inner.store, worker, events, now_ms())?;
        if outcome.freed {
            self.inner.wake.notify_one();
        }
        if outcome.ended {
            self.inner.scheduler_wake.notify_one();
        }
        Ok(outcome.ack)
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

/// The changes one pass will commit, and the assignments to hand out once it has.
#[derive(Default)]
struct Plan {
    /// (as seen, as it should become)
    changes: Vec<(Instance, Instance)>,
    deliveries: Vec<(String, Assignment)>,
    /// Some instance reached a terminal state (the scheduler may have a fixed-delay fire to set).
    ended: bool,
    /// Jobs for which no worker was found in this pass. A pass only fills workers up, so the
    /// job's later queued instances would find none either: they skip the search (which, with a
    /// deep queue, was most of a pass).
    unplaceable: HashMap<JobId, Unplaced>,
    /// Free slots left on the polling live workers.
    room: u32,
    /// Broadcast instances to split into one copy per worker: (as seen, the workers).
    fan_outs: Vec<(Instance, Vec<String>)>,
}

impl Plan {
    fn change(&mut self, seen: &Instance, next: Instance) {
        self.changes.push((seen.clone(), next));
    }
}

/// Splits a broadcast instance: it becomes the copy of the first worker, and each other worker
/// gets a new copy of the same fire (same trigger, fire time and queue start), in the caller's
/// transaction. Returns the ids written.
fn fan_out(
    tx: &mut WriteTx,
    seen: &Instance,
    workers: &[String],
) -> Result<Vec<InstanceId>, StoreError> {
    let mut written = Vec::with_capacity(workers.len());
    for (n, worker) in workers.iter().enumerate() {
        let mut copy = seen.clone();
        let previous = if n == 0 {
            Some(&seen.state)
        } else {
            copy.id = tx.next_instance_id()?;
            None
        };
        copy.pinned_worker = Some(worker.clone());
        tx.replace_instance(previous, &copy)?;
        written.push(copy.id);
    }
    tracing::info!(instance = seen.id, job = %seen.job_name, workers = workers.len(),
        "broadcast fanned out");
    Ok(written)
}

fn assignment(instance: &Instance, job: &Job, attempt: u32, lease_until_ms: UnixMs) -> Assignment {
    Assignment {
        instance: instance.id,
        attempt,
        job: job.def.name.clone(),
        task: job.def.http.clone(),
        lease_until_ms,
    }
}

#[cfg(test)]
mod tests;
