//! What an operator can do to jobs and instances: each change is validated, turned into a
//! [`Command`] with the time it is asked for, and proposed to the engine; reads go to the store.
//! The API (and the embedded demo) call these; nothing here writes the store itself. A change is
//! acknowledged (the function returns) only after the engine made its command durable.

use std::collections::HashMap;
use std::sync::Arc;

use crate::alert::ChainEdge;
use crate::model::{Instance, InstanceId, Job, JobId, UnixMs, now_ms};
use crate::server::command::Command;
use crate::server::engine::Engine;
use crate::server::machine::{self, Response};
use crate::server::queue_view;
use crate::server::store::{InstanceFilter, Page, ReadTx, Store};
use crate::spec::FieldError;
use crate::spec::JobSpec;
use crate::wire::admin::{
    BackfillRequest, BackfillResult, ChainLinks, InstanceView, JobDetail, JobSummary,
    LinkedInstance, QueueSummary,
};

/// What an operation can fail with: the state machine's refusals, or the store's failure.
pub use crate::server::machine::ApplyError as ServiceError;

pub type Result<T> = std::result::Result<T, ServiceError>;

/// For each job name, the jobs whose chain names it, with the field that does.
type Upstream = HashMap<String, Vec<ChainEdge>>;
/// [`Upstream`] as last read, with the count of definition changes it saw.
type CachedUpstream = std::sync::Mutex<Option<(u64, Arc<Upstream>)>>;

#[derive(Clone)]
pub struct Service {
    engine: Arc<dyn Engine>,
    /// [`Service::upstream`] as last read (shared by the clones the API's handlers hold).
    upstream: Arc<CachedUpstream>,
}

impl Service {
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Service {
            engine,
            upstream: Arc::default(),
        }
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

    /// The job and the jobs whose end queues it.
    pub fn job_detail(&self, key: &str) -> Result<JobDetail> {
        let job = self.job(key)?;
        Ok(JobDetail {
            upstream: self
                .upstream()?
                .get(&job.def.name)
                .cloned()
                .unwrap_or_default(),
            job,
        })
    }

    /// For each job name, the jobs whose chain names it. Finding those reads every job, so it is
    /// done once per change of a job's definition (the feed counts them), not on every page of
    /// the job list.
    fn upstream(&self) -> Result<Arc<Upstream>> {
        // Taken before the read: a change committed meanwhile counts after it, so a map read
        // from older jobs is never kept as current.
        let generation = self.store().feed().definitions_changed();
        let mut cached = self
            .upstream
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((seen, upstream)) = cached.as_ref()
            && *seen == generation
        {
            return Ok(upstream.clone());
        }
        let upstream = Arc::new(upstream_of(&self.store().read()?.jobs()?));
        *cached = Some((generation, upstream.clone()));
        Ok(upstream)
    }

    /// A page of jobs by id, after `after`, each with its last result and upstream. The queue
    /// counts are left at 0: the leader's working set has them (see `Dispatcher::job_counts`),
    /// or [`Service::job_counts`]. Costs the page: each job's last result is found from its own
    /// instances (see `ReadTx::last_result`), never by scanning the others.
    pub fn jobs_page(&self, after: Option<JobId>, limit: usize) -> Result<Page<JobSummary, JobId>> {
        let upstream = self.upstream()?;
        let read = self.store().read()?;
        let page = read.jobs_page(after, limit)?;
        let mut items = Vec::with_capacity(page.items.len());
        for job in page.items {
            items.push(JobSummary {
                queued: 0,
                running: 0,
                last_result: read.last_result(job.id)?,
                upstream: upstream.get(&job.def.name).cloned().unwrap_or_default(),
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

    /// [`Service::instances_page`], each with its chain's parent and children as they are now.
    pub fn instance_views_page(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Page<InstanceView, InstanceId>> {
        let read = self.store().read()?;
        let page = read.instances_page(filter)?;
        Ok(Page {
            items: with_chains(&read, page.items)?,
            next: page.next,
        })
    }

    pub fn instance(&self, id: InstanceId) -> Result<Instance> {
        self.store()
            .read()?
            .instance(id)?
            .ok_or_else(|| ServiceError::NotFound(format!("instance {id}")))
    }

    /// [`Service::instance`] with its chain's parent and children as they are now.
    pub fn instance_view(&self, id: InstanceId) -> Result<InstanceView> {
        let read = self.store().read()?;
        let instance = read
            .instance(id)?
            .ok_or_else(|| ServiceError::NotFound(format!("instance {id}")))?;
        let mut views = with_chains(&read, vec![instance])?;
        views
            .pop()
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

/// For each job name, the jobs whose chain names it, with the field that does.
fn upstream_of(jobs: &[Job]) -> Upstream {
    let mut upstream = Upstream::new();
    for job in jobs {
        for edge in job.def.chain.downstream() {
            upstream.entry(edge.job).or_default().push(ChainEdge {
                job: job.def.name.clone(),
                on: edge.on,
            });
        }
    }
    upstream
}

/// `instances` with their chain links resolved: first among `instances` themselves (a page of
/// a list holds most of its own chains), then each missing one by its id. The ids are stored on
/// the instance (a child records its parent, a parent its children, in the command that queued
/// them), so this is point reads, never a scan.
fn with_chains(
    read: &ReadTx,
    instances: Vec<Instance>,
) -> std::result::Result<Vec<InstanceView>, crate::server::store::StoreError> {
    let mut known: HashMap<InstanceId, Option<LinkedInstance>> = instances
        .iter()
        .map(|i| (i.id, Some(LinkedInstance::from(i))))
        .collect();
    let mut views = Vec::with_capacity(instances.len());
    for instance in instances {
        let mut chain = ChainLinks::default();
        for id in instance.parent.iter().chain(&instance.children) {
            if !known.contains_key(id) {
                let found = read.instance(*id)?.as_ref().map(LinkedInstance::from);
                known.insert(*id, found);
            }
            let Some(Some(linked)) = known.get(id) else {
                continue;
            };
            if Some(*id) == instance.parent {
                chain.parent = Some(linked.clone());
            } else {
                chain.children.push(linked.clone());
            }
        }
        views.push(InstanceView { instance, chain });
    }
    Ok(views)
}

/// A response of the wrong kind: a bug between a command and its handler, not a user error.
pub(crate) fn unexpected(response: Response) -> ServiceError {
    ServiceError::Store(crate::server::store::StoreError::Corrupt {
        table: "commands",
        reason: format!("unexpected response to a command: {response:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::ChainOn;
    use crate::model::StateKind;
    use crate::server::command::DispatchStep;
    use crate::test_support;
    use crate::wire::{TaskEvent, TaskResult};

    fn chained(name: &str, on_success: &[&str]) -> JobSpec {
        JobSpec {
            on_demand: true,
            on_success: on_success.iter().map(|s| s.to_string()).collect(),
            ..test_support::spec(name)
        }
    }

    /// Runs `instance` on worker `w` to success at `at`.
    fn succeed(service: &Service, instance: InstanceId, at: i64) {
        let engine = service.engine();
        let steps = vec![DispatchStep::Assign {
            instance,
            attempt: 1,
            worker: "w".into(),
            lease_until_ms: at + 1_000,
        }];
        engine.propose(Command::Dispatch { at, steps }).unwrap();
        let events = vec![TaskEvent::Finished(TaskResult {
            instance,
            attempt: 1,
            started_ms: at,
            ended_ms: at + 1,
            succeeded: true,
            http_status: Some(200),
            error: None,
            excerpt: None,
        })];
        engine
            .propose(Command::Report {
                worker: "w".into(),
                at: at + 1,
                events,
            })
            .unwrap();
    }

    #[test]
    fn instances_show_their_chain_and_jobs_who_queues_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let service = Service::new(Arc::new(test_support::engine(&store)));
        service.create_job(&chained("report", &[])).unwrap();
        service.create_job(&chained("audit", &[])).unwrap();
        service
            .create_job(&chained("load", &["report", "audit"]))
            .unwrap();
        service.create_job(&chained("extract", &["load"])).unwrap();
        let first = service.run_now("extract").unwrap();
        succeed(&service, first.id, 10);
        let middle = service.instance_view(first.id).unwrap().chain.children[0].clone();
        assert_eq!(
            (middle.job_name.as_str(), middle.state),
            ("load", StateKind::Queued)
        );
        succeed(&service, middle.id, 20);

        let view = service.instance_view(middle.id).unwrap();
        let parent = view.chain.parent.clone().unwrap();
        assert_eq!(
            (parent.id, parent.job_name.as_str(), parent.state),
            (first.id, "extract", StateKind::Succeeded)
        );
        let children: Vec<&str> = view
            .chain
            .children
            .iter()
            .map(|c| c.job_name.as_str())
            .collect();
        assert_eq!(children, ["report", "audit"]);

        // A listed page resolves the same links (from the page itself, or by id).
        let listed = service
            .instance_views_page(&InstanceFilter {
                limit: 1,
                before: Some(middle.id + 1),
                ..InstanceFilter::default()
            })
            .unwrap()
            .items;
        assert_eq!(listed, vec![view.clone()]);

        // A child retention forgot is left out; its id stays on the instance.
        let audit = view.chain.children[1].id;
        service.cancel_instance(audit).unwrap();
        service
            .engine()
            .propose(Command::Forget {
                instances: vec![(view.chain.children[1].job_id, audit)],
            })
            .unwrap();
        let view = service.instance_view(middle.id).unwrap();
        assert_eq!(view.instance.children.len(), 2);
        assert_eq!(view.chain.children.len(), 1);
        assert!(view.chain.get(audit).is_none());

        let load = service.job_detail("load").unwrap();
        assert_eq!(
            load.upstream,
            [ChainEdge {
                job: "extract".into(),
                on: ChainOn::OnSuccess
            }]
        );
        let upstream = |name: &str| {
            service
                .jobs_page(None, 100)
                .unwrap()
                .items
                .iter()
                .find(|s| s.job.def.name == name)
                .map(|s| s.upstream.iter().map(|e| e.job.clone()).collect::<Vec<_>>())
                .unwrap()
        };
        assert_eq!(upstream("report"), ["load"]);
        assert_eq!(upstream("audit"), ["load"]);
        assert!(upstream("extract").is_empty());
        // The upstream is kept between pages, and read again once a definition changed.
        service.create_job(&chained("late", &["report"])).unwrap();
        assert_eq!(upstream("report"), ["load", "late"]);
        service.delete_job("late").unwrap();
        assert_eq!(upstream("report"), ["load"]);
    }
}
