//! The jobs one command has read. A command that ends instances (a worker's report, a dispatch
//! pass) needs each one's job several times — its retry policy, its chain and alert policy, its
//! failure count for `pause_after_failures`, its next fixed-delay run — and a report may end
//! many instances of one job: with this cache each job is read and decoded once per command.
//!
//! Write-through: a job the command changes is written with [`JobCache::put`], which keeps the
//! new version here too, so every later read in the command sees what the transaction holds.
//! A cache lives for one command and is never shared.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::model::{Job, JobId};
use crate::server::store::{StoreError, WriteTx};

#[derive(Default)]
pub(super) struct JobCache {
    /// By id: the job as the transaction holds it, or `None` when there is no such job.
    jobs: BTreeMap<JobId, Option<Rc<Job>>>,
}

impl JobCache {
    /// Job `id` as the transaction holds it; read from the store only the first time.
    pub(super) fn get(&mut self, tx: &WriteTx, id: JobId) -> Result<Option<Rc<Job>>, StoreError> {
        if let Some(known) = self.jobs.get(&id) {
            return Ok(known.clone());
        }
        let read = tx.job(id)?.map(Rc::new);
        self.jobs.insert(id, read.clone());
        Ok(read)
    }

    /// Writes `job` and keeps it. The stored version it replaces comes from here when the
    /// command read it, so the store need not read it again to update its indexes.
    pub(super) fn put(&mut self, tx: &mut WriteTx, job: Job) -> Result<(), StoreError> {
        match self.jobs.get(&job.id) {
            Some(old) => tx.replace_job(old.as_deref(), &job)?,
            None => tx.put_job(&job)?,
        }
        self.jobs.insert(job.id, Some(Rc::new(job)));
        Ok(())
    }
}
