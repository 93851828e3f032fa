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

/// An instance met while paging: its id (from an index: its record is to be looked up) or its
/// record itself (met walking the records).
enum Found<'a> {
    Id(InstanceId),
    Record(InstanceId, redb::AccessGuard<'a, &'static [u8]>),
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
        // Newest first: the job's ids (each record then looked up), or every record as it comes
        // (decoded in place, only when not skipped).
        let found: Box<dyn Iterator<Item = Result<Found<'_>>>> = match filter.job_id {
            Some(job_id) => Box::new(
                by_job
                    .range((job_id, 0)..(job_id, before))
                    .map_err(db_error)?
                    .rev()
                    .map(|entry| {
                        entry
                            .map(|(key, _)| Found::Id(key.value().1))
                            .map_err(db_error)
                    }),
            ),
            None => Box::new(
                instances
                    .range(..before)
                    .map_err(db_error)?
                    .rev()
                    .map(|entry| {
                        entry
                            .map(|(key, record)| Found::Record(key.value(), record))
                            .map_err(db_error)
                    }),
            ),
        };
        let mut items = Vec::new();
        let mut thrown_away = 0;
        let mut ids = found.peekable();
        while let Some(found) = ids.next() {
            let instance = match found? {
                Found::Id(id) | Found::Record(id, _) if skip.contains(&id) => continue,
                Found::Id(id) => match reads::instance(&instances, id)? {
                    Some(instance) => instance,
                    None => continue,
                },
                Found::Record(_, record) => decode::<Instance>("instances", record.value())?,
            };
            let id = instance.id;
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
        let active = self.txn.open_table(ACTIVE).map_err(db_error)?;
        let range = match job_id {
            Some(job_id) => active.range((job_id, 0)..=(job_id, InstanceId::MAX)),
            None => active.range::<(JobId, InstanceId)>(..),
        }
        .map_err(db_error)?;
        let mut ids = Vec::new();
        for entry in range {
            let id = entry.map_err(db_error)?.0.value().1;
            if id < before {
                ids.push(id);
            }
        }
        ids.sort_unstable_by_key(|id| std::cmp::Reverse(*id));
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

    /// The job's unfinished instances, oldest first (its part of the unfinished index).
    pub fn unfinished_of_job(&self, job_id: JobId) -> Result<Vec<Instance>> {
        let active = self.txn.open_table(ACTIVE).map_err(db_error)?;
        let instances = self.txn.open_table(INSTANCES).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in active
            .range((job_id, 0)..=(job_id, InstanceId::MAX))
            .map_err(db_error)?
        {
            if let Some(instance) =
                reads::instance(&instances, entry.map_err(db_error)?.0.value().1)?
            {
                out.push(instance);
            }
        }
        Ok(out)
    }

    /// Instances newest first, filtered: the first page of [`ReadTx::instances_page`].
    pub fn instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>> {
        Ok(self.instances_page(filter)?.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceState, Trigger};
    use crate::server::machine::create_instance;
    use crate::server::store::Store;
    use crate::test_support;

    fn store_with_jobs(n: usize) -> (tempfile::TempDir, Store, Vec<Job>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let jobs = (0..n)
            .map(|i| {
                test_support::store_job(&store, test_support::on_demand(&format!("j{i}")), None)
            })
            .collect();
        (dir, store, jobs)
    }

    fn queue(store: &Store, job: &Job) -> Instance {
        store
            .write(|tx| create_instance(tx, job, Trigger::Manual, 1, 1))
            .unwrap()
    }

    fn finish(store: &Store, instance: &Instance, state: InstanceState) -> Instance {
        let mut done = instance.clone();
        done.state = state;
        store.write(|tx| tx.put_instance(&done)).unwrap();
        done
    }

    fn ids(instances: &[Instance]) -> Vec<InstanceId> {
        instances.iter().map(|i| i.id).collect()
    }

    #[test]
    fn job_pages_list_every_job_once_while_jobs_are_added() {
        let (_dir, store, jobs) = store_with_jobs(7);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.read().unwrap().jobs_page(after, 3).unwrap();
            assert!(page.items.len() <= 3);
            seen.extend(page.items.iter().map(|j| j.id));
            // A job added between pages lands after every cursor: listed once, at the end.
            if seen.len() == 3 {
                test_support::store_job(&store, test_support::on_demand("late"), None);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut expected: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
        expected.push(expected.last().unwrap() + 1);
        assert_eq!(seen, expected);
        // A full last page says there is nothing after it.
        let all = store.read().unwrap().jobs_page(None, 8).unwrap();
        assert_eq!((all.items.len(), all.next), (8, None));
    }

    #[test]
    fn unfinished_pages_come_from_the_index_newest_first() {
        let (_dir, store, jobs) = store_with_jobs(2);
        let mut queued = Vec::new();
        for n in 0..10 {
            let instance = queue(&store, &jobs[n % 2]);
            if n % 3 == 0 {
                finish(&store, &instance, InstanceState::Succeeded);
            } else {
                queued.push(instance.id);
            }
        }
        queued.reverse();
        let read = store.read().unwrap();
        let filter = |before, job_id| InstanceFilter {
            job_id,
            states: vec![StateKind::Queued],
            before,
            limit: 4,
        };
        let first = read.instances_page(&filter(None, None)).unwrap();
        assert_eq!(ids(&first.items), queued[..4]);
        assert_eq!(first.next, Some(queued[3]));
        let second = read.instances_page(&filter(first.next, None)).unwrap();
        assert_eq!(ids(&second.items), queued[4..]);
        assert_eq!(second.next, None);
        let of_job = read
            .instances_page(&filter(None, Some(jobs[1].id)))
            .unwrap();
        assert!(of_job.items.iter().all(|i| i.job_id == jobs[1].id));
        assert_eq!(of_job.items.len(), 3, "{:?}", ids(&of_job.items));
    }

    #[test]
    fn finished_pages_skip_the_queue_and_stop_after_the_scan_budget() {
        let (_dir, store, jobs) = store_with_jobs(1);
        let failed = finish(
            &store,
            &queue(&store, &jobs[0]),
            InstanceState::Failed { reason: "x".into() },
        );
        store
            .write(|tx| {
                for _ in 0..SCAN_BUDGET {
                    let mut done = create_instance(tx, &jobs[0], Trigger::Manual, 1, 1)?;
                    done.state = InstanceState::Succeeded;
                    tx.put_instance(&done)?;
                }
                // Newer queued work is skipped by id, without counting against the budget.
                for _ in 0..50 {
                    create_instance(tx, &jobs[0], Trigger::Manual, 1, 1)?;
                }
                Ok::<_, crate::server::machine::ApplyError>(())
            })
            .unwrap();
        let read = store.read().unwrap();
        let filter = |before| InstanceFilter {
            states: vec![StateKind::Failed],
            before,
            limit: 10,
            ..InstanceFilter::default()
        };
        let first = read.instances_page(&filter(None)).unwrap();
        assert!(first.items.is_empty(), "the budget ends the page first");
        let next = first.next.expect("a cursor to go on from");
        let second = read.instances_page(&filter(Some(next))).unwrap();
        assert_eq!(ids(&second.items), [failed.id]);
        assert_eq!(second.next, None);
        // Unfiltered, a page is just the newest.
        let newest = read
            .instances_page(&InstanceFilter {
                limit: 5,
                ..InstanceFilter::default()
            })
            .unwrap();
        assert_eq!(newest.items.len(), 5);
        assert!(newest.items.iter().all(|i| !i.state.is_terminal()));
        assert!(newest.next.is_some());
    }

    #[test]
    fn last_result_is_the_newest_finished_behind_the_queue() {
        let (_dir, store, jobs) = store_with_jobs(2);
        assert_eq!(store.read().unwrap().last_result(jobs[0].id).unwrap(), None);
        let first = queue(&store, &jobs[0]);
        finish(&store, &first, InstanceState::Succeeded);
        let second = queue(&store, &jobs[0]);
        finish(
            &store,
            &second,
            InstanceState::Failed {
                reason: "boom".into(),
            },
        );
        // Newer unfinished work of this job and of another does not hide it.
        for _ in 0..5 {
            queue(&store, &jobs[0]);
            queue(&store, &jobs[1]);
        }
        let read = store.read().unwrap();
        assert_eq!(
            read.last_result(jobs[0].id).unwrap(),
            Some(StateKind::Failed)
        );
        assert_eq!(read.last_result(jobs[1].id).unwrap(), None);
        let unfinished = read.unfinished_of_job(jobs[0].id).unwrap();
        assert_eq!(unfinished.len(), 5);
        assert!(unfinished.iter().all(|i| i.job_id == jobs[0].id));
        assert!(
            unfinished.windows(2).all(|w| w[0].id < w[1].id),
            "oldest first"
        );
    }
}
