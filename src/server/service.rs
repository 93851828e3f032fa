//! What an operator can do to jobs and instances: each change is validated, turned into a
//! [`Command`] with the time it is asked for, and proposed to the engine; reads go to the store.
//! The API (and the embedded demo) call these; nothing here writes the store itself. A change is
//! acknowledged (the function returns) only after the engine made its command durable.

use std::sync::Arc;

use crate::model::{Instance, InstanceId, Job, JobId, UnixMs, now_ms};
use crate::server::command::Command;
use crate::server::engine::Engine;
use crate::server::machine::{self, Response};
use crate::server::queue_view;
use crate::server::store::{InstanceFilter, Page, Store};
use crate::spec::FieldError;
use crate::spec::JobSpec;
use crate::wire::admin::{BackfillRequest, BackfillResult, JobSummary, QueueSummary};

/// What an operation can fail with: the state machine's refusals, or the store's failure.
pub use crate::server::machine::ApplyError as ServiceError;

pub type Result<T> = std::result::Result<T, ServiceError>;

#[derive(Clone)]
pub struct Service {
    engine: Arc<dyn Engine>,
}

impl Service {
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Service { engine }
    }

    pub fn store(&self) -> &Arc<Store> {
        self.engine.store()
    }

    pub(crate) fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    fn job_response(&self, command: Command) -> Result<Job> {
        match self.engine.propose(command)? {
            Response::Job(job) => Ok(*job),
            other => Err(unexpected(other)),
        }
    }

    fn instance_response(&self, command: Command) -> Result<Instance> {
        match self.engine.propose(command)? {
            Response::Instance(instance) => Ok(*instance),
            other => Err(unexpected(other)),
        }
    }

    pub fn create_job(&self, spec: &JobSpec) -> Result<Job> {
        let def = spec.validate()?;
        self.job_response(Command::CreateJob { def, at: now_ms() })
    }

    /// Replaces a job's definition. The next fire is recomputed when the schedule changed.
    pub fn update_job(&self, key: &str, spec: &JobSpec) -> Result<Job> {
        let def = spec.validate()?;
        self.job_response(Command::UpdateJob {
            job: key.to_string(),
            def,
            at: now_ms(),
        })
    }

    /// Creates the job, or updates the one with the same name. Returns whether it was created.
    pub fn apply_job(&self, spec: &JobSpec) -> Result<(Job, bool)> {
        let existing = self.store().read()?.job_id_by_name(&spec.name)?;
        match existing {
            Some(id) => Ok((self.update_job(&id.to_string(), spec)?, false)),
            None => Ok((self.create_job(spec)?, true)),
        }
    }

    /// Deletes a job; its unfinished instances are cancelled, its history kept.
    pub fn delete_job(&self, key: &str) -> Result<Job> {
        self.job_response(Command::DeleteJob {
            job: key.to_string(),
            at: now_ms(),
        })
    }

    pub fn set_paused(&self, key: &str, paused: bool) -> Result<Job> {
        self.job_response(Command::SetPaused {
            job: key.to_string(),
            paused,
            at: now_ms(),
        })
    }

    /// Queues an instance now, whatever the schedule (and even when paused).
    pub fn run_now(&self, key: &str) -> Result<Instance> {
        self.instance_response(Command::RunNow {
            job: key.to_string(),
            at: now_ms(),
        })
    }

    /// Creates an instance for each of the job's scheduled times in `[from, to)` (inside its
    /// window), marked as a backfill, by one command: all of them or none. More than
    /// `schedule::MAX_BACKFILL` are refused. `dry_run` only counts them, from a read.
    pub fn backfill(&self, key: &str, request: &BackfillRequest) -> Result<BackfillResult> {
        let from = crate::spec::parse_time("from", &request.from)?;
        let to = crate::spec::parse_time("to", &request.to)?;
        let now = now_ms();
        if to > now {
            return Err(FieldError {
                field: "to".into(),
                reason: format!(
                    "{} is in the future; a backfill creates past fires (the schedule fires the \
                     rest)",
                    crate::model::rfc3339(to)
                ),
            }
            .into());
        }
        if request.dry_run {
            let job = self.job(key)?;
            let fires = crate::schedule::backfill_fires(&job, from, to)?;
            return Ok(BackfillResult {
                job: job.def.name,
                count: fires.len(),
                dry_run: true,
                instances: Vec::new(),
            });
        }
        let command = Command::Backfill {
            job: key.to_string(),
            from,
            to,
            at: now,
        };
        match self.engine.propose(command)? {
            Response::Backfilled { job, created } => Ok(BackfillResult {
                job,
                count: created.len(),
                dry_run: false,
                instances: created.iter().map(|i| i.id).collect(),
            }),
            other => Err(unexpected(other)),
        }
    }

    pub fn job(&self, key: &str) -> Result<Job> {
        let read = self.store().read()?;
        machine::resolve_job(key, |name| read.job_id_by_name(name), |id| read.job(id))?
            .ok_or_else(|| machine::missing_job(key))
    }

    /// A page of jobs by id, after `after`, each with its last result. The queue counts are
    /// left at 0: the dispatcher's working set has them (see `Dispatcher::job_counts`). Costs
    /// the page: each job's last result is found from its own instances (see
    /// `ReadTx::last_result`), never by scanning the others.
    pub fn jobs_page(&self, after: Option<JobId>, limit: usize) -> Result<Page<JobSummary, JobId>> {
        let read = self.store().read()?;
        let page = read.jobs_page(after, limit)?;
        let mut items = Vec::with_capacity(page.items.len());
        for job in page.items {
            items.push(JobSummary {
                queued: 0,
                running: 0,
                last_result: read.last_result(job.id)?,
                job,
            });
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// The whole queue, counted from the store: for a server that does not lead (the leader's
    /// dispatcher counts its working set instead, reading nothing). One pass over the unfinished
    /// index, decoding each unfinished instance once.
    pub fn queue_summary(&self, now: UnixMs) -> Result<QueueSummary> {
        let active = self.store().read()?.active_instances()?;
        Ok(queue_view::summarize(&active, now))
    }

    /// Each job's queued, and assigned or running, instances, from the store (see
    /// [`Service::queue_summary`] for when): each job's own unfinished instances, decoded.
    pub fn job_counts(&self, jobs: &[JobId]) -> Result<Vec<(u32, u32)>> {
        let read = self.store().read()?;
        let mut counts = Vec::with_capacity(jobs.len());
        for &job in jobs {
            if read.active_count(job)? == 0 {
                counts.push((0, 0));
            } else {
                let unfinished = read.unfinished_of_job(job)?;
                counts.push(queue_view::job_counts(&unfinished, &[job])[0]);
            }
        }
        Ok(counts)
    }

    /// A page of instances, newest first (see `ReadTx::instances_page`).
    pub fn instances_page(&self, filter: &InstanceFilter) -> Result<Page<Instance, InstanceId>> {
        Ok(self.store().read()?.instances_page(filter)?)
    }

    pub fn instance(&self, id: InstanceId) -> Result<Instance> {
        self.store()
            .read()?
            .instance(id)?
            .ok_or_else(|| ServiceError::NotFound(format!("instance {id}")))
    }

    /// Cancels an unfinished instance. A worker already running it will have its report refused.
    pub fn cancel_instance(&self, id: InstanceId) -> Result<Instance> {
        self.instance_response(Command::Cancel {
            instance: id,
            at: now_ms(),
        })
    }

    /// Runs a failed or cancelled instance's job again, as a new instance (terminal states never
    /// change, so the old record stays as it was).
    pub fn retry_instance(&self, id: InstanceId) -> Result<Instance> {
        self.instance_response(Command::Retry {
            instance: id,
            at: now_ms(),
        })
    }
}

/// A response of the wrong kind: a bug between a command and its handler, not a user error.
pub(crate) fn unexpected(response: Response) -> ServiceError {
    ServiceError::Store(crate::server::store::StoreError::Corrupt {
        table: "commands",
        reason: format!("unexpected response to a command: {response:?}"),
    })
}
