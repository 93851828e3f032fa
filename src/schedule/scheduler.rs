//! The scheduler loop: sleeps until the earliest due fire (or until jobs change), then, in one
//! write transaction per batch, creates the due instances and moves each job's next fire on. A
//! crash before the commit loses nothing (the fire is still due); after it, nothing is doubled
//! (the next fire has moved).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::fire_due;
use crate::model::{Instance, InstanceState, Job, JobId, Schedule, Trigger, UnixMs, now_ms};
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError, WriteTx};

/// Jobs handled per transaction: large enough to amortize the commit, small enough to keep the
/// write lock short.
const BATCH: usize = 512;
/// Even with nothing due, look again this often (clock jumps, missed wake-ups).
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub struct Scheduler {
    store: Arc<Store>,
    /// Woken when a job is created, updated, resumed or deleted.
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
            // The dispatcher hears of each committed batch at once, not after the last one: with
            // thousands of jobs due together, the first are dispatched while the rest are written.
            let fired = tokio::task::spawn_blocking(move || {
                fire_everything_due_then(&store, now_ms(), || queued.notify_one())
            })
            .await;
            match fired {
                Ok(Ok(0)) => {}
                Ok(Ok(created)) => tracing::debug!(created, "instances fired"),
                Ok(Err(error)) => tracing::error!(%error, "scheduler could not fire due jobs"),
                Err(error) => tracing::error!(%error, "scheduler task failed"),
            }
            let sleep = self.time_until_next_fire();
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    fn time_until_next_fire(&self) -> Duration {
        let earliest = self.store.read().and_then(|r| r.earliest_due());
        match earliest {
            Ok(Some(at)) => {
                Duration::from_millis((at - now_ms()).clamp(0, MAX_SLEEP.as_millis() as i64) as u64)
            }
            Ok(None) => MAX_SLEEP,
            Err(error) => {
                tracing::error!(%error, "scheduler cannot read the due index");
                Duration::from_secs(1)
            }
        }
    }
}

/// Fires every job due at `now`; returns how many instances were created.
pub fn fire_everything_due(store: &Store, now: UnixMs) -> Result<usize, StoreError> {
    fire_everything_due_then(store, now, || {})
}

/// [`fire_everything_due`], calling `created` after each commit that queued instances.
fn fire_everything_due_then(
    store: &Store,
    now: UnixMs,
    mut queued: impl FnMut(),
) -> Result<usize, StoreError> {
    let mut created = 0;
    loop {
        let (jobs, instances) = store.write(|tx| fire_batch(tx, now))?;
        created += instances;
        if instances > 0 {
            queued();
        }
        if jobs < BATCH {
            return Ok(created);
        }
    }
}

/// Returns (jobs handled, instances created).
fn fire_batch(tx: &mut WriteTx, now: UnixMs) -> Result<(usize, usize), StoreError> {
    let due = tx.due_jobs(now, BATCH)?;
    let mut created = 0;
    for job_id in &due {
        let Some(mut job) = tx.job(*job_id)? else {
            continue;
        };
        let Some(scheduled) = job.next_fire_ms else {
            continue;
        };
        let firing = fire_due(&job.def, scheduled, now);
        if firing.skipped > 0 {
            tracing::info!(job = %job.def.name, skipped = firing.skipped, policy = ?job.def.misfire,
                "missed fires after downtime");
        }
        let mut active = tx.active_count(job.id)?;
        for fire_at in firing.fires {
            if active >= u64::from(job.def.max_concurrent) {
                tracing::info!(job = %job.def.name, active, max = job.def.max_concurrent,
                    "fire skipped: max concurrent instances reached");
                continue;
            }
            create_instance(tx, &job, Trigger::Schedule, fire_at, now)?;
            active += 1;
            created += 1;
        }
        tx.set_next_fire(&mut job, firing.next)?;
    }
    Ok((due.len(), created))
}

/// Queues a new instance of `job`.
pub fn create_instance(
    tx: &mut WriteTx,
    job: &Job,
    trigger: Trigger,
    fire_at: UnixMs,
    now: UnixMs,
) -> Result<Instance, StoreError> {
    let instance = Instance {
        id: tx.next_instance_id()?,
        job_id: job.id,
        job_name: job.def.name.clone(),
        trigger,
        fire_at_ms: fire_at,
        created_ms: now,
        updated_ms: now,
        state: InstanceState::queued(now),
        attempts: Vec::new(),
    };
    tx.put_instance(&instance)?;
    Ok(instance)
}

/// Book-keeping when an instance of `job_id` ends: a fixed-delay job's next run is measured from
/// this moment (the caller wakes the scheduler after the commit).
pub fn instance_ended(tx: &mut WriteTx, job_id: JobId, now: UnixMs) -> Result<(), StoreError> {
    let Some(mut job) = tx.job(job_id)? else {
        return Ok(());
    };
    if let Schedule::FixedDelay { delay_ms } = job.def.schedule
        && !job.def.paused
        && job.next_fire_ms.is_none()
        && tx.active_count(job_id)? == 0
    {
        job.next_fire_ms = Some(now + delay_ms as i64);
        tx.put_job(&job)?;
    }
    Ok(())
}
