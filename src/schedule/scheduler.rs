//! The scheduler loop: sleeps until the earliest fire comes within [`LOOKAHEAD_MS`] (or until
//! jobs change), then, in one write transaction per batch, creates the instances of the fires due
//! by then and moves each job's next fire on. A fire whose time has not come yet is created as
//! queued with `not_before_ms` = its fire time; the dispatcher holds it until then. A crash
//! before the commit loses nothing (the fire is still due); after it, nothing is doubled (the next
//! fire has moved).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::fire_due;
use crate::model::{
    AttemptOutcome, Instance, InstanceState, Job, JobId, Schedule, Trigger, UnixMs, now_ms,
};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError, WriteTx};

/// How far ahead of its scheduled time a fire is committed. Creating a fire costs 25–40 µs of
/// store work and its batch a durable commit, so 10,000 fires due in the same second take some
/// 300–400 ms to commit: fired at their due time, the last of them would be that late. Committed
/// up to a second ahead, they wait in the dispatcher's memory and become dispatchable at their
/// time. Large enough to cover committing 10,000 fires; small enough that a pause or an edit
/// rarely finds a pre-created instance to cancel.
pub const LOOKAHEAD_MS: i64 = 1_000;
/// Jobs handled per transaction: large enough to amortize the commit, small enough to keep the
/// write lock short.
const BATCH: usize = 512;
/// Even with nothing due, look again this often (clock jumps, missed wake-ups).
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub struct Scheduler {
    store: Arc<Store>,
    /// Woken when a job is created, updated, resumed or deleted, and when an instance ends.
    wake: Arc<Notify>,
    /// Notified when instances were queued.
    queued: Arc<Notify>,
}

impl Scheduler {
    pub fn new(store: Arc<Store>, wake: Arc<Notify>, queued: Arc<Notify>) -> Scheduler {
        Scheduler {
            store,
            wake,
            queued,
        }
    }

    pub async fn run(self, mut shutdown: Shutdown) {
        loop {
            let store = self.store.clone();
            let queued = self.queued.clone();
            let now = now_ms();
            // The dispatcher hears of each committed batch at once, not after the last one: with
            // thousands of jobs due together, the first are dispatched while the rest are written.
            let fired = tokio::task::spawn_blocking(move || {
                fire_round(&store, now, || queued.notify_one())
            })
            .await;
            let held_until = match fired {
                Ok(Ok(round)) => {
                    if round.created > 0 {
                        tracing::debug!(created = round.created, "instances fired");
                    }
                    round.held_until
                }
                // Fires may be left due: look again in a second, not only at the next horizon.
                Ok(Err(error)) => {
                    tracing::error!(%error, "scheduler could not fire due jobs");
                    Some(now + 1_000)
                }
                Err(error) => {
                    tracing::error!(%error, "scheduler task failed");
                    Some(now + 1_000)
                }
            };
            let sleep = self.time_until_next_round(now + LOOKAHEAD_MS, held_until);
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Until the first fire after this round's horizon comes within the look-ahead, or until the
    /// earliest held fire is due (whichever is first). Held jobs stay in the due index before the
    /// horizon; the next round looks at them again, and so does any round woken by an instance
    /// ending, which may have made room for them.
    fn time_until_next_round(&self, horizon: UnixMs, held_until: Option<UnixMs>) -> Duration {
        let earliest = self
            .store
            .read()
            .and_then(|r| r.earliest_due_after(horizon));
        let next = match earliest {
            Ok(next) => next.map(|at| at - LOOKAHEAD_MS),
            Err(error) => {
                tracing::error!(%error, "scheduler cannot read the due index");
                Some(now_ms() + 1_000)
            }
        };
        match next.into_iter().chain(held_until).min() {
            Some(at) => {
                Duration::from_millis((at - now_ms()).clamp(0, MAX_SLEEP.as_millis() as i64) as u64)
            }
            None => MAX_SLEEP,
        }
    }
}

/// What one round of the scheduler did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Instances created.
    pub created: usize,
    /// The earliest fire left for later because its job had no room for it yet (see
    /// `fire_batch`).
    pub held_until: Option<UnixMs>,
}

/// Fires every job due by `now` + [`LOOKAHEAD_MS`]; returns how many instances were created.
pub fn fire_everything_due(store: &Store, now: UnixMs) -> Result<usize, StoreError> {
    Ok(fire_round(store, now, || {})?.created)
}

/// [`fire_everything_due`], calling `queued` after each commit that queued instances.
pub fn fire_round(
    store: &Store,
    now: UnixMs,
    mut queued: impl FnMut(),
) -> Result<Round, StoreError> {
    let mut round = Round::default();
    let mut cursor = None;
    loop {
        let batch = store.write(|tx| fire_batch(tx, now, cursor))?;
        round.created += batch.created;
        round.held_until = round.held_until.into_iter().chain(batch.held_until).min();
        if batch.created > 0 {
            queued();
        }
        if batch.jobs < BATCH {
            return Ok(round);
        }
        cursor = batch.last;
    }
}

struct Batch {
    jobs: usize,
    created: usize,
    /// The due-index key of the last job looked at: the next batch starts after it.
    last: Option<(UnixMs, JobId)>,
    held_until: Option<UnixMs>,
}

/// Fires the jobs due by `now` + [`LOOKAHEAD_MS`], after `cursor` in the due index.
///
/// `max_concurrent` is judged when a fire is created. For a fire still ahead, a job that is full
/// now may have room by the fire time (its running instance may end first), so such a fire is
/// neither created nor skipped ahead of time: it is held (the job's next fire stays on it) and
/// decided again in a later round, at the latest at its fire time, exactly as without look-ahead.
/// A fire created ahead counts as active from then on: it has reserved its slot.
fn fire_batch(
    tx: &mut WriteTx,
    now: UnixMs,
    cursor: Option<(UnixMs, JobId)>,
) -> Result<Batch, StoreError> {
    let horizon = now + LOOKAHEAD_MS;
    let due = tx.due_jobs(cursor, horizon, BATCH)?;
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
        for fire_at in firing.fires {
            if active >= u64::from(job.def.max_concurrent) {
                if fire_at > now {
                    next = Some(fire_at);
                    held_until = held_until.into_iter().chain([fire_at]).min();
                    break;
                }
                tracing::info!(job = %job.def.name, active, max = job.def.max_concurrent,
                    "fire skipped: max concurrent instances reached");
                continue;
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
    Ok(Batch {
        jobs: due.len(),
        created,
        last: due.last().copied(),
        held_until,
    })
}

/// Queues a new instance of `job`.
pub fn create_instance(
    tx: &mut WriteTx,
    job: &Job,
    trigger: Trigger,
    fire_at: UnixMs,
    now: UnixMs,
) -> Result<Instance, StoreError> {
    // A scheduled fire of a job with jitter runs later than its time, by an amount fixed for it.
    let run_at = match trigger {
        Trigger::Schedule => super::run_at(job.id, &job.def, fire_at),
        Trigger::Manual | Trigger::Backfill => fire_at,
    };
    let instance = Instance {
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
    };
    // A fresh id: nothing is stored under it yet.
    tx.replace_instance(None, &instance)?;
    Ok(instance)
}

/// Cancels the instances of `job_id` fired ahead whose fire time has not come (the operator
/// paused, changed or deleted the job before it was due), in the caller's transaction. Returns
/// how many were cancelled.
pub fn cancel_fired_ahead(
    tx: &mut WriteTx,
    job_id: JobId,
    reason: &str,
    now: UnixMs,
) -> Result<usize, StoreError> {
    let mut cancelled = 0;
    for mut instance in tx.active_of_job(job_id)? {
        if instance.is_fired_ahead(now) {
            instance.finish(
                InstanceState::Cancelled {
                    reason: reason.to_string(),
                },
                AttemptOutcome::Cancelled,
                now,
            );
            tx.put_instance(&instance)?;
            cancelled += 1;
        }
    }
    Ok(cancelled)
}

/// Book-keeping when an instance of `job_id` ends: a fixed-delay job's next run is measured from
/// this moment (the caller wakes the scheduler after the commit).
pub fn instance_ended(tx: &mut WriteTx, job_id: JobId, now: UnixMs) -> Result<(), StoreError> {
    let Some(mut job) = tx.job(job_id)? else {
        return Ok(());
    };
    if let Schedule::FixedDelay { .. } = job.def.schedule
        && !job.def.paused
        && job.next_fire_ms.is_none()
        && tx.active_count(job_id)? == 0
    {
        job.next_fire_ms = super::fire_after_run(&job.def, now);
        tx.put_job(&job)?;
    }
    Ok(())
}
