//! What an operator can do to jobs and instances, each as one store transaction: the API (and the
//! embedded demo) call these; they never touch redb themselves. A change is acknowledged (the
//! function returns) only after its transaction committed.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::model::{
    AttemptOutcome, Instance, InstanceId, InstanceState, Job, JobId, Schedule, StateKind, Trigger,
    now_ms,
};
use crate::schedule::initial_fire;
use crate::schedule::scheduler::{cancel_fired_ahead, create_instance, instance_ended};
use crate::spec::{FieldError, JobSpec};
use crate::store::{InstanceFilter, Store, StoreError, WriteTx};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// A job with its queue, as listed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobSummary {
    #[serde(flatten)]
    pub job: Job,
    pub queued: u32,
    pub running: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<StateKind>,
}

#[derive(Clone)]
pub struct Service {
    store: Arc<Store>,
    /// Tells the scheduler that fire times changed.
    scheduler_wake: Arc<Notify>,
    /// Tells the dispatcher that instances were queued or freed.
    dispatch_wake: Arc<Notify>,
}

impl Service {
    pub fn new(store: Arc<Store>, scheduler_wake: Arc<Notify>, dispatch_wake: Arc<Notify>) -> Self {
        Service {
            store,
            scheduler_wake,
            dispatch_wake,
        }
    }

    fn write<T>(&self, change: impl FnMut(&mut WriteTx) -> Result<T>) -> Result<T> {
        self.store.write(change)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn create_job(&self, spec: &JobSpec) -> Result<Job> {
        let def = spec.validate()?.with_stored_key(None)?;
        let now = now_ms();
        if let Schedule::Once { at_ms } = def.schedule
            && at_ms <= now
        {
            return Err(FieldError {
                field: "at".into(),
                reason: format!(
                    "{} is in the past; use on_demand = true to run it by hand",
                    crate::model::rfc3339(at_ms)
                ),
            }
            .into());
        }
        let job = self.write(|tx| {
            if let Some(existing) = tx.job_id_by_name(&def.name)? {
                return Err(ServiceError::Conflict(format!(
                    "a job named {:?} already exists (id {existing}); change it with `shoal job \
                     update` or `shoal job apply`",
                    def.name
                )));
            }
            let job = Job {
                id: tx.next_job_id()?,
                next_fire_ms: if def.paused {
                    None
                } else {
                    initial_fire(&def, now)
                },
                def: def.clone(),
                created_ms: now,
                updated_ms: now,
            };
            tx.put_job(&job)?;
            Ok(job)
        })?;
        self.scheduler_wake.notify_one();
        Ok(job)
    }

    /// Replaces a job's definition. The next fire is recomputed when the schedule changed.
    pub fn update_job(&self, key: &str, spec: &JobSpec) -> Result<Job> {
        let def = spec.validate()?;
        let now = now_ms();
        let job = self.write(|tx| {
            let mut job = find_job(tx, key)?;
            if def.name != job.def.name
                && let Some(other) = tx.job_id_by_name(&def.name)?
            {
                return Err(ServiceError::Conflict(format!(
                    "cannot rename to {:?}: job {other} has that name",
                    def.name
                )));
            }
            let timing_changed = def.schedule != job.def.schedule
                || def.timezone != job.def.timezone
                || def.paused != job.def.paused;
            // Fires created ahead (see `scheduler::LOOKAHEAD_MS`) follow the old timing: when it
            // changes they are cancelled and the next fire is computed afresh (a cron fire at the
            // same time is simply created again). When it does not, they stay: the dispatcher
            // reads the job's current definition when it hands them out.
            if timing_changed || def.paused {
                cancel_fired_ahead(tx, job.id, "job changed before this fire was due", now)?;
            }
            job.def = def.clone().with_stored_key(Some(&job.def))?;
            job.updated_ms = now;
            if job.def.paused {
                job.next_fire_ms = None;
            } else if timing_changed {
                job.next_fire_ms = initial_fire(&job.def, now);
            }
            tx.put_job(&job)?;
            Ok(job)
        })?;
        self.scheduler_wake.notify_one();
        Ok(job)
    }

    /// Creates the job, or updates the one with the same name. Returns whether it was created.
    pub fn apply_job(&self, spec: &JobSpec) -> Result<(Job, bool)> {
        let existing = self.store.read()?.job_id_by_name(&spec.name)?;
        match existing {
            Some(id) => Ok((self.update_job(&id.to_string(), spec)?, false)),
            None => Ok((self.create_job(spec)?, true)),
        }
    }

    /// Deletes a job; its unfinished instances are cancelled, its history kept.
    pub fn delete_job(&self, key: &str) -> Result<Job> {
        let now = now_ms();
        let job = self.write(|tx| {
            let job = find_job(tx, key)?;
            // Fires created ahead whose time has not come are cancelled like any other.
            for mut instance in tx.active_of_job(job.id)? {
                let reason = if instance.is_fired_ahead(now) {
                    "job deleted before this fire was due"
                } else {
                    "job deleted"
                };
                instance.finish(
                    InstanceState::Cancelled {
                        reason: reason.into(),
                    },
                    AttemptOutcome::Cancelled,
                    now,
                );
                tx.put_instance(&instance)?;
            }
            tx.delete_job(job.id)?;
            Ok(job)
        })?;
        self.scheduler_wake.notify_one();
        Ok(job)
    }

    pub fn set_paused(&self, key: &str, paused: bool) -> Result<Job> {
        let now = now_ms();
        let job = self.write(|tx| {
            let mut job = find_job(tx, key)?;
            if job.def.paused != paused {
                if paused {
                    cancel_fired_ahead(tx, job.id, "job paused before this fire was due", now)?;
                }
                job.def.paused = paused;
                job.updated_ms = now;
                job.next_fire_ms = if paused {
                    None
                } else {
                    initial_fire(&job.def, now)
                };
                tx.put_job(&job)?;
            }
            Ok(job)
        })?;
        self.scheduler_wake.notify_one();
        Ok(job)
    }

    /// Queues an instance now, whatever the schedule (and even when paused).
    pub fn run_now(&self, key: &str) -> Result<Instance> {
        self.queue_run(key, None)
    }

    /// Queues a manual run; `pinned_worker` keeps a retried broadcast copy on its worker.
    fn queue_run(&self, key: &str, pinned_worker: Option<String>) -> Result<Instance> {
        let now = now_ms();
        let instance = self.write(|tx| {
            let job = find_job(tx, key)?;
            let active = tx.active_count(job.id)?;
            if active >= u64::from(job.def.max_concurrent) {
                return Err(ServiceError::Conflict(format!(
                    "job {:?} already has {active} unfinished instance(s), its max_concurrent; \
                     wait for them, cancel one, or raise max_concurrent",
                    job.def.name
                )));
            }
            let mut instance = create_instance(tx, &job, Trigger::Manual, now, now)?;
            if pinned_worker.is_some() {
                instance.pinned_worker = pinned_worker.clone();
                tx.put_instance(&instance)?;
            }
            Ok(instance)
        })?;
        self.dispatch_wake.notify_one();
        Ok(instance)
    }

    pub fn job(&self, key: &str) -> Result<Job> {
        let read = self.store.read()?;
        resolve_job(key, |name| read.job_id_by_name(name), |id| read.job(id))
    }

    pub fn jobs(&self) -> Result<Vec<JobSummary>> {
        let read = self.store.read()?;
        let jobs = read.jobs()?;
        let active = read.active_instances()?;
        let mut summaries = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut summary = JobSummary {
                queued: 0,
                running: 0,
                last_result: None,
                job,
            };
            for instance in active.iter().filter(|i| i.job_id == summary.job.id) {
                match instance.state.kind() {
                    StateKind::Queued => summary.queued += 1,
                    _ => summary.running += 1,
                }
            }
            summary.last_result = read
                .instances(&InstanceFilter {
                    job_id: Some(summary.job.id),
                    states: vec![
                        StateKind::Succeeded,
                        StateKind::Failed,
                        StateKind::Cancelled,
                    ],
                    limit: 1,
                    ..InstanceFilter::default()
                })?
                .first()
                .map(|i| i.state.kind());
            summaries.push(summary);
        }
        Ok(summaries)
    }

    pub fn instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>> {
        Ok(self.store.read()?.instances(filter)?)
    }

    pub fn instance(&self, id: InstanceId) -> Result<Instance> {
        self.store
            .read()?
            .instance(id)?
            .ok_or_else(|| ServiceError::NotFound(format!("instance {id}")))
    }

    /// Cancels an unfinished instance. A worker already running it will have its report refused.
    pub fn cancel_instance(&self, id: InstanceId) -> Result<Instance> {
        let now = now_ms();
        let instance = self.write(|tx| {
            let mut instance = tx
                .instance(id)?
                .ok_or_else(|| ServiceError::NotFound(format!("instance {id}")))?;
            if instance.state.is_terminal() {
                return Err(ServiceError::Conflict(format!(
                    "instance {id} already ended ({}); only queued, assigned or running instances \
                     can be cancelled",
                    instance.state.kind().as_str()
                )));
            }
            instance.finish(
                InstanceState::Cancelled {
                    reason: "cancelled by operator".into(),
                },
                AttemptOutcome::Cancelled,
                now,
            );
            tx.put_instance(&instance)?;
            instance_ended(tx, instance.job_id, now)?;
            Ok(instance)
        })?;
        self.scheduler_wake.notify_one();
        self.dispatch_wake.notify_one();
        Ok(instance)
    }

    /// Runs a failed or cancelled instance's job again, as a new instance (terminal states never
    /// change, so the old record stays as it was).
    pub fn retry_instance(&self, id: InstanceId) -> Result<Instance> {
        let old = self.instance(id)?;
        if !matches!(old.state.kind(), StateKind::Failed | StateKind::Cancelled) {
            return Err(ServiceError::Conflict(format!(
                "instance {id} is {}; only failed or cancelled instances can be retried",
                old.state.kind().as_str()
            )));
        }
        // A broadcast copy is retried on its own worker, not fanned out to all of them again.
        self.queue_run(&old.job_id.to_string(), old.pinned_worker)
    }
}

fn job_not_found(key: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "job {key:?} (no job has that name or id; `shoal job list` shows them)"
    ))
}

/// Finds a job by id (all digits) or name inside a write transaction.
fn find_job(tx: &WriteTx, key: &str) -> Result<Job> {
    resolve_job(key, |name| tx.job_id_by_name(name), |id| tx.job(id))
}

/// A job key is its id (all digits) or its name; both transaction kinds resolve it the same way.
fn resolve_job(
    key: &str,
    id_by_name: impl FnOnce(&str) -> std::result::Result<Option<JobId>, StoreError>,
    job_by_id: impl FnOnce(JobId) -> std::result::Result<Option<Job>, StoreError>,
) -> Result<Job> {
    let id = match key.parse::<JobId>() {
        Ok(id) => Some(id),
        Err(_) => id_by_name(key)?,
    };
    match id {
        Some(id) => job_by_id(id)?.ok_or_else(|| job_not_found(key)),
        None => Err(job_not_found(key)),
    }
}
