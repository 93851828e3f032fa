//! The state machine: [`apply`] is the only code that changes jobs and instances. It takes a
//! [`Command`] and an open write transaction and makes the change, deterministically: no clock
//! (the time is in the command), no randomness (the dispatcher's choices are in the command), no
//! I/O but the transaction. Two stores that apply the same commands in the same order are
//! identical, table by table — which is what lets the engine replicate commands instead of state.
//!
//! It returns the caller's answer ([`Response`]) and the [`Effects`]: what moved, for the
//! scheduler and the dispatcher to act on once the engine has made the command durable. A
//! refused command ([`ApplyError`]) is refused before anything is written.
//!
//! Instance transitions are pure functions in [`transitions`]; this module finds the records,
//! checks what only the store can tell (names, concurrency, the job's retry policy), and writes.

mod ended;
mod job_cache;
mod links;
mod reschedule;
pub mod transitions;

use std::collections::BTreeSet;

use crate::model::{
    Instance, InstanceId, InstanceState, Job, JobDefinition, JobHealth, JobId, MAX_BUFFERED_FIRES,
    OverlapPolicy, RetryPolicy, Schedule, StateKind, Trigger, UnixMs, human_ms, rfc3339,
};
use crate::schedule::{LOOKAHEAD_MS, fire_due, initial_fire};
use crate::server::command::{Command, DispatchStep};
use crate::server::effects::Effects;
use crate::server::store::{StoreError, WriteTx};
use crate::spec::FieldError;
use crate::wire::{Refusal, ReportAck, TaskEvent};
use job_cache::JobCache;

/// Why a command was refused (nothing of it was written), or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The replicated engine could not commit (never an answer of `apply` itself).
    #[error(transparent)]
    Group(#[from] crate::server::engine::GroupUnavailable),
}

impl ApplyError {
    /// The storage or the group refuses for now (see `StoreError::is_storage_fault`), and
    /// recovers by itself: retried loops log it quietly.
    pub fn is_storage_fault(&self) -> bool {
        match self {
            ApplyError::Store(error) => error.is_storage_fault(),
            ApplyError::Group(_) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = ApplyError> = std::result::Result<T, E>;

/// The answer to the proposer of a command.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Response {
    /// The job as stored after the change (as it was, for a delete).
    Job(Box<Job>),
    /// The instance created or changed.
    Instance(Box<Instance>),
    /// A backfill's job (by name) and the instances it created, oldest fire first.
    Backfilled {
        job: String,
        created: Vec<Instance>,
    },
    Fired(Fired),
    /// The instances whose dispatch step applied (fan-out copies included).
    Dispatched(Vec<InstanceId>),
    Reported(ReportAck),
    /// How many finished instances were forgotten.
    Forgot(u64),
    /// How many settled (sent or given up) alerts were forgotten.
    ForgotAlerts(u64),
    /// The jobs whose next fire a `Reschedule` brought back: (name, stored, new).
    Rescheduled(Vec<(String, UnixMs, Option<UnixMs>)>),
    /// The channel as stored (as it was, for a delete).
    Channel(crate::alert::ChannelDefinition),
    /// The alert after a delivery try (`None`: no such alert).
    Alert(Option<crate::alert::Alert>),
}

/// What one `Fire` command did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fired {
    /// Jobs looked at (when it equals the command's limit, more may be due).
    pub jobs: usize,
    /// Instances created.
    pub created: usize,
    /// The due-index key of the last job looked at: the next `Fire` starts after it.
    pub last: Option<(UnixMs, JobId)>,
    /// The earliest fire left for later because its job had no room for it yet.
    pub held_until: Option<UnixMs>,
}

/// A command's answer and its effects.
#[derive(Debug)]
pub struct Applied {
    pub response: Response,
    pub effects: Effects,
}

/// Applies `command` in `tx`. Deterministic: see the module documentation.
pub fn apply(tx: &mut WriteTx, command: &Command) -> Result<Applied> {
    let mut effects = Effects::default();
    let response = match command {
        Command::CreateJob { def, at } => {
            Response::Job(Box::new(create_job(tx, &mut effects, def, *at)?))
        }
        Command::UpdateJob { job, def, at } => {
            Response::Job(Box::new(update_job(tx, &mut effects, job, def, *at)?))
        }
        Command::DeleteJob { job, at } => {
            Response::Job(Box::new(delete_job(tx, &mut effects, job, *at)?))
        }
        Command::SetPaused { job, paused, at } => {
            Response::Job(Box::new(set_paused(tx, &mut effects, job, *paused, *at)?))
        }
        Command::RunNow { job, at } => {
            let job = find_job(tx, job)?;
            Response::Instance(Box::new(queue_run(tx, &mut effects, &job, None, *at)?))
        }
        Command::Backfill { job, from, to, at } => {
            let job = find_job(tx, job)?;
            let fires = crate::schedule::backfill_fires(&job, *from, *to)?;
            let mut created = Vec::with_capacity(fires.len());
            for fire_at in fires {
                created.push(create_instance(tx, &job, Trigger::Backfill, fire_at, *at)?);
            }
            effects.queued |= !created.is_empty();
            Response::Backfilled {
                job: job.def.name,
                created,
            }
        }
        Command::Retry { instance, at } => {
            Response::Instance(Box::new(retry(tx, &mut effects, *instance, *at)?))
        }
        Command::Cancel { instance, at } => {
            Response::Instance(Box::new(cancel(tx, &mut effects, *instance, *at)?))
        }
        Command::Fire { now, after, limit } => {
            Response::Fired(fire(tx, &mut effects, *now, *after, *limit as usize)?)
        }
        Command::Dispatch { at, steps } => {
            Response::Dispatched(dispatch(tx, &mut effects, *at, steps)?)
        }
        Command::Report { worker, at, events } => {
            Response::Reported(report(tx, &mut effects, worker, *at, events)?)
        }
        Command::Forget { instances } => Response::Forgot(tx.forget_finished(instances)?),
        Command::ForgetAlerts { alerts } => {
            Response::ForgotAlerts(tx.forget_settled_alerts(alerts)?)
        }
        Command::Reschedule { at } => {
            Response::Rescheduled(reschedule::apply(tx, &mut effects, *at)?)
        }
        Command::PutChannel { def } => Response::Channel(links::put_channel(tx, def)?),
        Command::DeleteChannel { name } => Response::Channel(links::delete_channel(tx, name)?),
        Command::AlertDelivered {
            alert,
            at,
            delivery,
        } => Response::Alert(ended::delivered(tx, &mut effects, *alert, delivery, *at)?),
    };
    effects.written = tx.take_written();
    Ok(Applied { response, effects })
}

fn create_job(
    tx: &mut WriteTx,
    effects: &mut Effects,
    def: &JobDefinition,
    at: UnixMs,
) -> Result<Job> {
    if let Schedule::Once { at_ms } = def.schedule
        && at_ms <= at
    {
        return Err(FieldError {
            field: "at".into(),
            reason: format!(
                "{} is in the past; use on_demand = true to run it by hand",
                rfc3339(at_ms)
            ),
        }
        .into());
    }
    // A `<redacted>` client key stands for a stored one, and a new job has none.
    let def = &def.clone().with_stored_key(None)?;
    if let Some(existing) = tx.job_id_by_name(&def.name)? {
        return Err(ApplyError::Conflict(format!(
            "a job named {:?} already exists (id {existing}); change it with `shoal job update` \
             or `shoal job apply`",
            def.name
        )));
    }
    links::check_job(tx, None, def)?;
    let job = Job {
        id: tx.next_job_id()?,
        next_fire_ms: if def.paused {
            None
        } else {
            initial_fire(def, at)
        },
        def: def.clone(),
        created_ms: at,
        updated_ms: at,
        health: JobHealth::default(),
    };
    tx.put_job(&job)?;
    effects.timing_changed = true;
    Ok(job)
}

fn update_job(
    tx: &mut WriteTx,
    effects: &mut Effects,
    key: &str,
    def: &JobDefinition,
    at: UnixMs,
) -> Result<Job> {
    let mut job = find_job(tx, key)?;
    // A `<redacted>` client key (what the API shows) keeps the key stored with the job.
    let def = &def.clone().with_stored_key(Some(&job.def))?;
    if def.name != job.def.name
        && let Some(other) = tx.job_id_by_name(&def.name)?
    {
        return Err(ApplyError::Conflict(format!(
            "cannot rename to {:?}: job {other} has that name",
            def.name
        )));
    }
    links::check_job(tx, Some(job.id), def)?;
    if def.name != job.def.name {
        links::check_job_unreferenced(tx, job.id, &job.def.name)?;
    }
    let timing_changed = def.schedule != job.def.schedule
        || def.timezone != job.def.timezone
        || def.timing != job.def.timing
        || def.paused != job.def.paused;
    // Fires created ahead (see `schedule::LOOKAHEAD_MS`) follow the old timing: when it changes
    // they are cancelled and the next fire is computed afresh (a cron fire at the same time is
    // simply created again). When it does not, they stay: the dispatcher reads the job's
    // current definition when it hands them out.
    if timing_changed || def.paused {
        cancel_fired_ahead(
            tx,
            effects,
            job.id,
            "job changed before this fire was due",
            at,
        )?;
    }
    if job.def.paused && !def.paused {
        // A resumed job starts its failure count afresh.
        job.health = JobHealth::default();
    }
    job.def = def.clone();
    job.updated_ms = at;
    if job.def.paused {
        job.next_fire_ms = None;
    } else if timing_changed {
        job.next_fire_ms = initial_fire(&job.def, at);
    }
    tx.put_job(&job)?;
    effects.timing_changed = true;
    Ok(job)
}

fn delete_job(tx: &mut WriteTx, effects: &mut Effects, key: &str, at: UnixMs) -> Result<Job> {
    let job = find_job(tx, key)?;
    links::check_job_unreferenced(tx, job.id, &job.def.name)?;
    // Fires created ahead whose time has not come are cancelled like any other.
    for instance in tx.active_of_job(job.id)? {
        let reason = if instance.is_fired_ahead(at) {
            "job deleted before this fire was due"
        } else {
            "job deleted"
        };
        write_transition(
            tx,
            effects,
            &instance,
            transitions::cancel(&instance, reason, at),
        )?;
    }
    tx.delete_job(job.id)?;
    tx.put_job_health(job.id, &crate::alert::JobHealth::default())?;
    effects.timing_changed = true;
    Ok(job)
}

fn set_paused(
    tx: &mut WriteTx,
    effects: &mut Effects,
    key: &str,
    paused: bool,
    at: UnixMs,
) -> Result<Job> {
    let mut job = find_job(tx, key)?;
    if job.def.paused != paused {
        if paused {
            pause(tx, effects, &mut job, at)?;
        } else {
            job.def.paused = false;
            job.updated_ms = at;
            // A resumed job starts its failure count afresh.
            job.health = JobHealth::default();
            job.next_fire_ms = initial_fire(&job.def, at);
            effects.timing_changed = true;
        }
        tx.put_job(&job)?;
    }
    Ok(job)
}

/// Pauses `job` (the caller writes it): fires created ahead whose time has not come are
/// cancelled, and it has no next fire until resumed.
fn pause(tx: &mut WriteTx, effects: &mut Effects, job: &mut Job, at: UnixMs) -> Result<()> {
    cancel_fired_ahead(
        tx,
        effects,
        job.id,
        "job paused before this fire was due",
        at,
    )?;
    job.def.paused = true;
    job.next_fire_ms = None;
    job.updated_ms = at;
    effects.timing_changed = true;
    Ok(())
}

/// Queues a manual run of `job`; `pinned_worker` keeps a retried broadcast copy on its worker.
fn queue_run(
    tx: &mut WriteTx,
    effects: &mut Effects,
    job: &Job,
    pinned_worker: Option<String>,
    at: UnixMs,
) -> Result<Instance> {
    let active = tx.active_count(job.id)?;
    if active >= u64::from(job.def.max_concurrent) {
        return Err(ApplyError::Conflict(format!(
            "job {:?} already has {active} unfinished instance(s), its max_concurrent; wait for \
             them, cancel one, or raise max_concurrent",
            job.def.name
        )));
    }
    let mut instance = new_instance(tx, job, Trigger::Manual, at, at)?;
    instance.pinned_worker = pinned_worker;
    // A fresh id: nothing is stored under it yet.
    tx.replace_instance(None, &instance)?;
    effects.queued = true;
    Ok(instance)
}

fn retry(tx: &mut WriteTx, effects: &mut Effects, id: InstanceId, at: UnixMs) -> Result<Instance> {
    let old = find_instance(tx, id)?;
    if !matches!(old.state.kind(), StateKind::Failed | StateKind::Cancelled) {
        return Err(ApplyError::Conflict(format!(
            "instance {id} is {}; only failed or cancelled instances can be retried",
            old.state.kind().as_str()
        )));
    }
    let job = find_job(tx, &old.job_id.to_string())?;
    // A broadcast copy is retried on its own worker, not fanned out to all of them again.
    queue_run(tx, effects, &job, old.pinned_worker, at)
}

fn cancel(tx: &mut WriteTx, effects: &mut Effects, id: InstanceId, at: UnixMs) -> Result<Instance> {
    let instance = find_instance(tx, id)?;
    let cancelled = transitions::cancel(&instance, "cancelled by operator", at).map_err(|_| {
        ApplyError::Conflict(format!(
            "instance {id} already ended ({}); only queued, assigned or running instances can \
             be cancelled",
            instance.state.kind().as_str()
        ))
    })?;
    tx.replace_instance(Some(&instance.state), &cancelled)?;
    note_moved(effects, &instance, &cancelled);
    instance_ended(tx, &mut JobCache::default(), instance.job_id, at)?;
    Ok(cancelled)
}

/// Fires the jobs due by `now` + [`LOOKAHEAD_MS`], after `after` in the due index, at most
/// `limit` of them.
///
/// `max_concurrent` is judged when a fire is created. For a fire still ahead, a job that is full
/// now may have room by the fire time (its running instance may end first), so such a fire is
/// neither created nor skipped ahead of time: it is held (the job's next fire stays on it) and
/// decided again in a later round, at the latest at its fire time, exactly as without look-ahead.
/// A fire created ahead counts as active from then on: it has reserved its slot.
fn fire(
    tx: &mut WriteTx,
    effects: &mut Effects,
    now: UnixMs,
    after: Option<(UnixMs, JobId)>,
    limit: usize,
) -> Result<Fired> {
    let horizon = now + LOOKAHEAD_MS;
    let due = tx.due_jobs(after, horizon, limit)?;
    let mut created = 0;
    let mut held_until: Option<UnixMs> = None;
    for (_, job_id) in &due {
        let Some(mut job) = tx.job(*job_id)? else {
            continue;
        };
        let Some(scheduled) = job.next_fire_ms else {
            continue;
        };
        let firing = fire_due(&job.def, scheduled, now, horizon);
        if firing.skipped > 0 {
            tracing::info!(job = %job.def.name, skipped = firing.skipped, policy = ?job.def.misfire,
                "missed fires after downtime");
        }
        let mut next = firing.next;
        let before = created;
        let mut active = tx.active_count(job.id)?;
        let max = u64::from(job.def.max_concurrent);
        for fire_at in firing.fires {
            if active >= max {
                if fire_at > now {
                    next = Some(fire_at);
                    held_until = held_until.into_iter().chain([fire_at]).min();
                    break;
                }
                match overlap_room(tx, effects, &job, active, now)? {
                    Room::Made => active = tx.active_count(job.id)?,
                    Room::Buffer => {}
                    Room::None => {
                        tracing::info!(job = %job.def.name, active, max,
                            overlap = ?job.def.overlap, "fire skipped: max concurrent instances reached");
                        continue;
                    }
                }
            }
            create_instance(tx, &job, Trigger::Schedule, fire_at, now)?;
            active += 1;
            created += 1;
        }
        // A held job with nothing fired is left as it is: no write for it.
        if next != job.next_fire_ms || created > before {
            tx.set_next_fire(&mut job, next)?;
        }
    }
    effects.queued |= created > 0;
    Ok(Fired {
        jobs: due.len(),
        created,
        last: due.last().copied(),
        held_until,
    })
}

/// What a due fire of a full job may do, by the job's overlap policy.
enum Room {
    /// Instances were cancelled: there is room now.
    Made,
    /// The fire is created and waits for a slot (the dispatcher holds it).
    Buffer,
    /// The fire is skipped.
    None,
}

/// Decides what a due fire of `job`, which has `active` unfinished instances — at least its
/// `max_concurrent` — does. Buffered fires are the unfinished instances beyond `max_concurrent`;
/// the dispatcher runs at most `max_concurrent` of a job at once, so they wait for a slot.
fn overlap_room(
    tx: &mut WriteTx,
    effects: &mut Effects,
    job: &Job,
    active: u64,
    at: UnixMs,
) -> Result<Room> {
    let buffered = active.saturating_sub(u64::from(job.def.max_concurrent));
    Ok(match job.def.overlap {
        OverlapPolicy::Skip => Room::None,
        OverlapPolicy::BufferOne if buffered < 1 => Room::Buffer,
        OverlapPolicy::BufferAll if buffered < MAX_BUFFERED_FIRES => Room::Buffer,
        OverlapPolicy::BufferOne | OverlapPolicy::BufferAll => Room::None,
        OverlapPolicy::CancelRunning => {
            // Oldest first, until one slot is free for the new fire.
            let excess = usize::try_from(buffered + 1).unwrap_or(usize::MAX);
            for instance in tx.active_of_job(job.id)?.iter().take(excess) {
                let reason = "cancelled to make room for a newer fire (overlap = cancel-running)";
                write_transition(
                    tx,
                    effects,
                    instance,
                    transitions::cancel(instance, reason, at),
                )?;
            }
            Room::Made
        }
    })
}

/// Applies the dispatcher's steps, each only if its instance is still as the step expects (a
/// report or an operator may have moved it since the dispatcher looked). Returns the ids whose
/// step applied.
fn dispatch(
    tx: &mut WriteTx,
    effects: &mut Effects,
    at: UnixMs,
    steps: &[DispatchStep],
) -> Result<Vec<InstanceId>> {
    let mut applied = Vec::new();
    let mut ended_jobs = BTreeSet::new();
    let mut jobs = JobCache::default();
    for step in steps {
        let Some(instance) = tx.instance(step.instance())? else {
            continue;
        };
        let next = match step {
            DispatchStep::Assign {
                worker,
                attempt,
                lease_until_ms,
                ..
            } => transitions::assign(&instance, worker, *attempt, *lease_until_ms, at),
            DispatchStep::Requeue {
                worker,
                attempt,
                why,
                ..
            } => transitions::requeue(&instance, worker, *attempt, why, at),
            DispatchStep::Wait { reason, .. } => {
                if matches!(&instance.state, InstanceState::Queued { reason: Some(r), .. } if r == reason)
                {
                    continue;
                }
                transitions::wait(&instance, reason)
            }
            DispatchStep::Expire { reason, .. } => {
                // The dispatcher judged the timeout; the job's own setting confirms it.
                let Some(job) = jobs.get(tx, instance.job_id)? else {
                    continue;
                };
                let timeout = job.def.dispatch_timeout_ms;
                let waited = match &instance.state {
                    InstanceState::Queued { since_ms, .. } => at - since_ms,
                    _ => continue,
                };
                if waited <= timeout as i64 {
                    continue;
                }
                transitions::expire(&instance, reason, &human_ms(timeout), at)
            }
            DispatchStep::Orphan { .. } => {
                if jobs.get(tx, instance.job_id)?.is_some() {
                    continue;
                }
                match &instance.state {
                    InstanceState::Queued { .. } => {
                        transitions::cancel(&instance, "job deleted", at)
                    }
                    _ => continue,
                }
            }
            DispatchStep::FanOut { workers, .. } => {
                if matches!(instance.state, InstanceState::Queued { .. })
                    && instance.pinned_worker.is_none()
                    && instance.attempts.is_empty()
                {
                    applied.extend(fan_out(tx, &instance, workers)?);
                    effects.queued = true;
                }
                continue;
            }
        };
        let Ok(mut next) = next else {
            continue;
        };
        if next.state.is_terminal() {
            let expired = matches!(step, DispatchStep::Expire { .. });
            ended::on_end(tx, effects, &mut jobs, &mut next, expired, at)?;
        }
        tx.replace_instance(Some(&instance.state), &next)?;
        note_moved(effects, &instance, &next);
        if next.state.is_terminal() {
            ended_jobs.insert(next.job_id);
            track_failures(tx, effects, &mut jobs, &next, at)?;
        }
        applied.push(next.id);
    }
    // Once per job, after all of its instances moved.
    for job_id in ended_jobs {
        instance_ended(tx, &mut jobs, job_id, at)?;
    }
    Ok(applied)
}

/// Splits a broadcast instance: it becomes the copy of the first worker, and each other worker
/// gets a new copy of the same fire (same trigger, fire time and queue start). Returns the ids
/// written.
fn fan_out(tx: &mut WriteTx, seen: &Instance, workers: &[String]) -> Result<Vec<InstanceId>> {
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

/// Applies a worker's report. Every event is fenced: it applies only to the instance's current
/// attempt, on the worker it was assigned to, in a non-terminal state; anything else is refused
/// with the reason, and the rest of the report still applies.
fn report(
    tx: &mut WriteTx,
    effects: &mut Effects,
    worker: &str,
    at: UnixMs,
    events: &[TaskEvent],
) -> Result<ReportAck> {
    let mut ack = ReportAck::default();
    let mut ended_jobs = BTreeSet::new();
    // Each job read once for the whole report, however many of its instances end in it.
    let mut jobs = JobCache::default();
    for event in events {
        let (id, attempt) = event.key();
        let Some(instance) = tx.instance(id)? else {
            ack.refused.push(Refusal {
                instance: id,
                attempt,
                reason: format!("instance {id} does not exist"),
            });
            continue;
        };
        let next = match event {
            TaskEvent::Started { at_ms, .. } => {
                transitions::start(&instance, worker, attempt, *at_ms, at)
            }
            TaskEvent::Finished(result) => {
                // Only a failure needs the job's retry policy (a deleted job retries nothing).
                let retry = if result.succeeded {
                    RetryPolicy::default()
                } else {
                    jobs.get(tx, instance.job_id)?
                        .map(|job| job.def.retry.clone())
                        .unwrap_or_default()
                };
                transitions::finish(&instance, worker, result, &retry, at)
            }
        };
        match next {
            Ok(mut next) => {
                if next.state.is_terminal() {
                    ended::on_end(tx, effects, &mut jobs, &mut next, false, at)?;
                }
                tx.replace_instance(Some(&instance.state), &next)?;
                note_moved(effects, &instance, &next);
                if next.state.is_terminal() {
                    ended_jobs.insert(next.job_id);
                    track_failures(tx, effects, &mut jobs, &next, at)?;
                }
                ack.applied += 1;
            }
            Err(refused) => ack.refused.push(Refusal {
                instance: id,
                attempt,
                reason: refused.to_string(),
            }),
        }
    }
    // Once per job, after all of its instances in this report moved.
    for job_id in ended_jobs {
        instance_ended(tx, &mut jobs, job_id, at)?;
    }
    Ok(ack)
}

/// Counts a job's failed instances in a row (a success resets the count) and pauses the job when
/// the count reaches its `pause_after_failures`, saying why. Only jobs with that setting keep
/// the count, so the hot path of other jobs writes nothing more (and reads the job from
/// `jobs`, where the command's earlier steps left it).
fn track_failures(
    tx: &mut WriteTx,
    effects: &mut Effects,
    jobs: &mut JobCache,
    ended: &Instance,
    at: UnixMs,
) -> Result<()> {
    let failed = match &ended.state {
        InstanceState::Failed { reason } => Some(reason),
        InstanceState::Succeeded => None,
        _ => return Ok(()),
    };
    let Some(job) = jobs.get(tx, ended.job_id)? else {
        return Ok(());
    };
    let Some(limit) = job.def.pause_after_failures else {
        return Ok(());
    };
    let mut job = Job::clone(&job);
    match failed {
        None if job.health.consecutive_failures == 0 => return Ok(()),
        None => job.health.consecutive_failures = 0,
        Some(reason) => {
            job.health.consecutive_failures += 1;
            if job.health.consecutive_failures >= limit && !job.def.paused {
                let why = format!(
                    "paused itself after {} failed instances in a row (pause_after_failures = \
                     {limit}); the last, instance {}: {reason}. Resume it with `shoal job resume \
                     {}`",
                    job.health.consecutive_failures, ended.id, job.def.name
                );
                tracing::warn!(job = %job.def.name, %why, "job paused on failures");
                pause(tx, effects, &mut job, at)?;
                job.health.paused_by = Some(why);
            }
        }
    }
    jobs.put(tx, job)?;
    Ok(())
}

/// Writes a transition's result; a refused transition writes nothing.
fn write_transition(
    tx: &mut WriteTx,
    effects: &mut Effects,
    before: &Instance,
    after: std::result::Result<Instance, transitions::Refused>,
) -> Result<()> {
    if let Ok(after) = after {
        tx.replace_instance(Some(&before.state), &after)?;
        note_moved(effects, before, &after);
    }
    Ok(())
}

/// Records in `effects` what moving `before` to `after` means for the loops.
fn note_moved(effects: &mut Effects, before: &Instance, after: &Instance) {
    if before.state.worker().is_some() && after.state.worker().is_none() {
        effects.freed = true;
    }
    if after.state.is_terminal() {
        effects.ended = true;
    } else if matches!(after.state, InstanceState::Queued { .. })
        && !matches!(before.state, InstanceState::Queued { .. })
    {
        effects.queued = true;
    }
}

/// A new queued instance of `job` under a fresh id (not yet written).
fn new_instance(
    tx: &mut WriteTx,
    job: &Job,
    trigger: Trigger,
    fire_at: UnixMs,
    now: UnixMs,
) -> Result<Instance, StoreError> {
    // A scheduled fire of a job with jitter runs later than its time, by an amount fixed for it
    // (a hash of the job and the fire: the same on every server and after every restart).
    let run_at = match trigger {
        Trigger::Schedule => crate::schedule::run_at(job.id, &job.def, fire_at),
        Trigger::Manual | Trigger::Backfill | Trigger::Chain => fire_at,
    };
    Ok(Instance {
        id: tx.next_instance_id()?,
        job_id: job.id,
        job_name: job.def.name.clone(),
        trigger,
        fire_at_ms: fire_at,
        run_at_ms: (trigger == Trigger::Schedule && job.def.timing.jitter_ms > 0).then_some(run_at),
        created_ms: now,
        updated_ms: now,
        state: if run_at > now {
            // Fired ahead: the dispatcher holds it until its time, and its dispatch timeout
            // counts from then, not from its creation.
            InstanceState::Queued {
                reason: None,
                not_before_ms: Some(run_at),
                since_ms: run_at,
            }
        } else {
            InstanceState::queued(now)
        },
        attempts: Vec::new(),
        pinned_worker: None,
        parent: None,
        children: Vec::new(),
    })
}

/// Creates and writes a new queued instance of `job`.
pub(crate) fn create_instance(
    tx: &mut WriteTx,
    job: &Job,
    trigger: Trigger,
    fire_at: UnixMs,
    now: UnixMs,
) -> Result<Instance, StoreError> {
    let instance = new_instance(tx, job, trigger, fire_at, now)?;
    // A fresh id: nothing is stored under it yet.
    tx.replace_instance(None, &instance)?;
    Ok(instance)
}

/// Creates and writes a new queued instance of `job` whose `parent` ended and queued it.
fn create_instance_with_parent(
    tx: &mut WriteTx,
    job: &Job,
    trigger: Trigger,
    parent: InstanceId,
    now: UnixMs,
) -> Result<Instance, StoreError> {
    let mut instance = new_instance(tx, job, trigger, now, now)?;
    instance.parent = Some(parent);
    // A fresh id: nothing is stored under it yet.
    tx.replace_instance(None, &instance)?;
    Ok(instance)
}

/// Cancels the instances of `job_id` fired ahead whose fire time has not come (the operator
/// paused, changed or deleted the job before it was due).
fn cancel_fired_ahead(
    tx: &mut WriteTx,
    effects: &mut Effects,
    job_id: JobId,
    reason: &str,
    at: UnixMs,
) -> Result<()> {
    for instance in tx.active_of_job(job_id)? {
        if instance.is_fired_ahead(at) {
            write_transition(
                tx,
                effects,
                &instance,
                transitions::cancel(&instance, reason, at),
            )?;
        }
    }
    Ok(())
}

/// Book-keeping when an instance of `job_id` ends: a fixed-delay job's next run is measured from
/// this moment.
fn instance_ended(
    tx: &mut WriteTx,
    jobs: &mut JobCache,
    job_id: JobId,
    at: UnixMs,
) -> Result<(), StoreError> {
    let Some(job) = jobs.get(tx, job_id)? else {
        return Ok(());
    };
    if let Schedule::FixedDelay { .. } = job.def.schedule
        && !job.def.paused
        && job.next_fire_ms.is_none()
        && tx.active_count(job_id)? == 0
    {
        let mut job = Job::clone(&job);
        job.next_fire_ms = crate::schedule::fire_after_run(&job.def, at);
        jobs.put(tx, job)?;
    }
    Ok(())
}

fn job_not_found(key: &str) -> ApplyError {
    ApplyError::NotFound(format!(
        "job {key:?} (no job has that name or id; `shoal job list` shows them)"
    ))
}

fn find_job(tx: &WriteTx, key: &str) -> Result<Job> {
    resolve_job(key, |name| tx.job_id_by_name(name), |id| tx.job(id))?
        .ok_or_else(|| job_not_found(key))
}

fn find_instance(tx: &WriteTx, id: InstanceId) -> Result<Instance> {
    tx.instance(id)?
        .ok_or_else(|| ApplyError::NotFound(format!("instance {id}")))
}

/// A job key is its id (all digits) or its name; both transaction kinds resolve it the same way.
pub(crate) fn resolve_job(
    key: &str,
    id_by_name: impl FnOnce(&str) -> Result<Option<JobId>, StoreError>,
    job_by_id: impl FnOnce(JobId) -> Result<Option<Job>, StoreError>,
) -> Result<Option<Job>, StoreError> {
    let id = match key.parse::<JobId>() {
        Ok(id) => Some(id),
        Err(_) => id_by_name(key)?,
    };
    match id {
        Some(id) => job_by_id(id),
        None => Ok(None),
    }
}

/// The message of a missing job, for readers outside a command.
pub(crate) fn missing_job(key: &str) -> ApplyError {
    job_not_found(key)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod hot_path_tests;
