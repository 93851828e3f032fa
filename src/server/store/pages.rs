//! Paged reads of the admin API's lists: jobs by id, instances newest first, and a job's last
//! result. Each page costs what it returns plus a bounded amount of looking: no read here walks
//! every job for every instance, and a filtered instance scan stops after [`SCAN_BUDGET`]
//! non-matching records and says where to go on. Cursors are ids, so a page boundary does not
//! move when jobs or instances are added meanwhile (new ids are larger than every existing one).
//! Reads only.

use std::collections::HashSet;

use super::tables::*;
use super::{ReadTx, Result, db_error, decode, reads};
use crate::model::{Instance, InstanceId, Job, JobId, StateKind};

/// Most records one instance page decodes and throws away because they do not match its filter.
/// Past it the page ends early (maybe empty) with a `next` cursor: the caller goes on from there,
/// and no single request reads the whole history looking for a rare state.
pub const SCAN_BUDGET: usize = 10_000;

/// Which instances to list.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub job_id: Option<JobId>,
    pub states: Vec<StateKind>,
    /// Only ids below this (the cursor of newest-first paging).
    pub before: Option<InstanceId>,
    /// 0: 100.
    pub limit: usize,
}

/// One page of a list and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

impl ReadTx {
    /// Up to `limit` jobs with ids above `after`, by id.
    pub fn jobs_page(&self, after: Option<JobId>, limit: usize) -> Result<Page<Job, JobId>> {
        let table = self.txn.open_table(JOBS).map_err(db_error)?;
        let from = after.map_or(0, |id| id.saturating_add(1));
        let mut items = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        for entry in table.range(from..).map_err(db_error)? {
            if items.len() == limit {
                more = true;
                break;
            }
            let (_, bytes) = entry.map_err(db_error)?;
            items.push(decode::<Job>("jobs", bytes.value())?);
        }
        let next = if more {
            items.last().map(|job| job.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// The state of the job's newest finished instance still kept. Walks the job's instances
    /// newest first, skipping its unfinished ones by id (keys only), and decodes one record: the
    /// cost is the job's own queue, never the whole history nor other jobs.
    pub fn last_result(&self, job_id: JobId) -> Result<Option<StateKind>> {
        let counts = self.txn.open_table(ACTIVE_COUNTS).map_err(db_error)?;
        let unfinished = if reads::active_count(&counts, job_id)? == 0 {
            HashSet::new()
        } else {
            self.unfinished_ids(Some(job_id))?
        };
        let by_job = self.txn.open_table(JOB_INSTANCES).map_err(db_error)?;
        let instances = self.txn.open_table(INSTANCES).map_err(db_error)?;
        for entry in by_job
            .range((job_id, 0)..=(job_id, InstanceId::MAX))
            .map_err(db_error)?
            .rev()
        {
            let id = entry.map_err(db_error)?.0.value().1;
            if unfinished.contains(&id) {
                continue;
            }
            if let Some(instance) = reads::instance(&instances, id)? {
                return Ok(Some(instance.state.kind()));
            }
        }
        Ok(None)
    }

    /// Instances newest first, filtered, one page. Unfinished states are listed from the
    /// unfinished index (the history is not read); finished ones skip the unfinished without
    /// decoding them; any page stops after [`SCAN_BUDGET`] non-matching records.
    pub fn instances_page(&self, filter: &InstanceFilter) -> Result<Page<Instance, InstanceId>> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let before = filter.before.unwrap_or(InstanceId::MAX);
        let states = &filter.states;
        if !states.is_empty() && states.iter().all(|s| !s.is_terminal()) {
            return self.unfinished_page(filter.job_id, states, before, limit);
        }
        let skip: HashSet<InstanceId> =
            if !states.is_empty() && states.iter().all(|s| s.is_terminal()) {
                self.unfinished_ids(filter.job_id)?
            } else {
                HashSet::new()
            };
        let instances = self.txn.open_table(INSTANCES).map_err(db_error)?;
        let by_job = self.txn.open_table(JOB_INSTANCES).map_err(db_error)?;
        // Ids newest first: all of them, or the job's.
        let ids: Box<dyn Iterator<Item = Result<InstanceId>>> = match filter.job_id {
            Some(job_id) => Box::new(
                by_job
                    .range((job_id, 0)..(job_id, before))
                    .map_err(db_error)?
                    .rev()
                    .map(|entry| entry.map(|(key, _)| key.value().1).map_err(db_error)),
            ),
            None => Box::new(
                instances
                    .range(..before)
                    .map_err(db_error)?
                    .rev()
                    .map(|entry| entry.map(|(key, _)| key.value()).map_err(db_error)),
            ),
        };
        let mut items = Vec::new();
        let mut thrown_away = 0;
        let mut ids = ids.peekable();
        while let Some(id) = ids.next() {
            let id = id?;
            if skip.contains(&id) {
                continue;
            }
            let Some(instance) = reads::instance(&instances, id)? else {
                continue;
            };
            if states.is_empty() || states.contains(&instance.state.kind()) {
                items.push(instance);
                if items.len() == limit {
                    let next = ids.peek().is_some().then_some(id);
                    return Ok(Page { items, next });
                }
            } else {
                thrown_away += 1;
                if thrown_away == SCAN_BUDGET {
                    let next = ids.peek().is_some().then_some(id);
                    return Ok(Page { items, next });
                }
            }
        }
        Ok(Page { items, next: None })
    }

    /// The ids of unfinished instances (of one job, or all), from the index's keys.
    fn unfinished_ids(&self, job_id: Option<JobId>) -> Result<HashSet<InstanceId>> {
        let active = self.txn.open_table(ACTIVE).map_err(db_error)?;
        let range = match job_id {
            Some(job_id) => active.range((job_id, 0)..=(job_id, InstanceId::MAX)),
            None => active.range::<(JobId, InstanceId)>(..),
        }
        .map_err(db_error)?;
        let mut ids = HashSet::new();
        for entry in range {
            ids.insert(entry.map_err(db_error)?.0.value().1);
        }
        Ok(ids)
    }

    /// A page of unfinished instances in `states`: their ids come from the index (keys only),
    /// newest first, and only the page's records are decoded (plus those in other unfinished
    /// states, at most the unfinished count).
    fn unfinished_page(
        &self,
        job_id: Option<JobId>,
        states: &[StateKind],
        before: InstanceId,
        limit: usize,
    ) -> Result<Page<Instance, InstanceId>> {
        let mut ids: Vec<InstanceId> = self
            .unfinished_ids(job_id)?
            .into_iter()
            .filter(|id| *id < before)
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let instances = self.txn.open_table(INSTANCES).map_err(db_error)?;
        let mut items = Vec::new();
        for (n, &id) in ids.iter().enumerate() {
            let Some(instance) = reads::instance(&instances, id)? else {
                continue;
            };
            if states.contains(&instance.state.kind()) {
                items.push(instance);
                if items.len() == limit {
                    let next = (n + 1 < ids.len()).then_some(id);
                    return Ok(Page { items, next });
                }
            }
        }
        Ok(Page { items, next: None })
    }

    /// Instances newest first, filtered: the first page of [`ReadTx::instances_page`].
    pub fn instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>> {
        Ok(self.instances_page(filter)?.items)
    }
}
