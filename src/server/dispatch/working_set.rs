//! The dispatcher's copy of every unfinished instance. A pass used to re-read (and decode) all of
//! them from redb; with a deep queue that cost grew with the queue on every pass. Now the copy is
//! refreshed from the feed of effects (the instances commands wrote), so a pass reads only what
//! changed.
//!
//! The copy is a cache, never an authority: the dispatcher commits a change only if the stored
//! instance is still exactly as the copy showed it, and a full re-read every [`FULL_RELOAD`]
//! bounds the life of anything the feed could ever miss.
//!
//! Because it holds every unfinished instance, it also answers the API's queue counts (the job
//! list's per-job counts, `GET /api/v1/queue`) without reading the store. It exists only on the
//! leading server (a new term starts it empty: its first refresh reads the store in full), so a
//! server that does not lead counts from its store instead (`queue_view`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::model::{Instance, InstanceId, InstanceState, JobId, UnixMs};
use crate::server::queue_view;
use crate::server::store::{Store, StoreError};
use crate::wire::admin::QueueSummary;

/// A safety net, not the mechanism: the feed carries every change.
const FULL_RELOAD: Duration = Duration::from_secs(60);

/// Every unfinished instance, with the indexes a pass needs so that its cost follows the work
/// it does (what it places) rather than the depth of the queue.
#[derive(Default)]
pub(super) struct WorkingSet {
    /// Unfinished instances by id: oldest first, so the queue is served in order across jobs.
    instances: BTreeMap<InstanceId, Instance>,
    /// Queued instances with no `not_before_ms`: dispatchable now.
    ready: BTreeSet<InstanceId>,
    /// Queued instances with a `not_before_ms` (fires created ahead, retries in backoff), by it.
    waiting: BTreeSet<(UnixMs, InstanceId)>,
    /// How many assigned or running instances each worker holds.
    per_worker: HashMap<String, u32>,
    /// How many assigned or running instances each job has (its `max_concurrent` bounds it).
    per_job: HashMap<JobId, u32>,
    /// How many queued instances each job has (the job list's counts).
    queued_per_job: HashMap<JobId, u32>,
    /// Where the next full pass goes on looking past the oldest instances (see
    /// [`WorkingSet::full_pass`]); 0: just past them.
    resume_after: InstanceId,
    /// When the copy was last read in full; `None` forces a full read.
    loaded_at: Option<Instant>,
}

impl WorkingSet {
    /// Brings the copy up to date with what is committed. The store's feed must already be
    /// following written instances (see [`crate::server::effects::Feed::follow_written`]).
    pub(super) fn refresh(&mut self, store: &Store) -> Result<(), StoreError> {
        // Taken before the read begins: everything taken was committed before it was announced,
        // so a full read below sees it (or something newer); anything announced later is taken
        // next time.
        let written = store.feed().take_written();
        let full = self.loaded_at.is_none_or(|at| at.elapsed() > FULL_RELOAD);
        if full {
            // Until this read succeeds the taken changes exist nowhere else: fall back to a full
            // read next time if it fails.
            self.loaded_at = None;
            let active = store.read()?.active_instances()?;
            *self = WorkingSet::default();
            for instance in active {
                self.put(instance);
            }
            self.loaded_at = Some(Instant::now());
        } else {
            // In commit order, so the last write of an instance is the one kept.
            for instance in written {
                if instance.state.is_terminal() {
                    self.remove(instance.id);
                } else {
                    self.put(instance);
                }
            }
        }
        Ok(())
    }

    fn put(&mut self, instance: Instance) {
        self.remove(instance.id);
        match &instance.state {
            InstanceState::Queued {
                not_before_ms: Some(at),
                ..
            } => {
                self.waiting.insert((*at, instance.id));
                *self.queued_per_job.entry(instance.job_id).or_default() += 1;
            }
            InstanceState::Queued { .. } => {
                self.ready.insert(instance.id);
                *self.queued_per_job.entry(instance.job_id).or_default() += 1;
            }
            state => {
                if let Some(worker) = state.worker() {
                    *self.per_worker.entry(worker.to_string()).or_default() += 1;
                    *self.per_job.entry(instance.job_id).or_default() += 1;
                }
            }
        }
        self.instances.insert(instance.id, instance);
    }

    fn remove(&mut self, id: InstanceId) {
        let Some(old) = self.instances.remove(&id) else {
            return;
        };
        match &old.state {
            InstanceState::Queued {
                not_before_ms: Some(at),
                ..
            } => {
                self.waiting.remove(&(*at, id));
                decrement(&mut self.queued_per_job, &old.job_id);
            }
            InstanceState::Queued { .. } => {
                self.ready.remove(&id);
                decrement(&mut self.queued_per_job, &old.job_id);
            }
            state => {
                if let Some(worker) = state.worker() {
                    decrement(&mut self.per_worker, worker);
                    decrement(&mut self.per_job, &old.job_id);
                }
            }
        }
    }

    /// The earliest `not_before_ms` after `now` among queued instances (fires created ahead,
    /// retries in backoff): when one of them next becomes dispatchable.
    pub(super) fn earliest_not_before_after(&self, now: UnixMs) -> Option<UnixMs> {
        self.waiting
            .range((now.saturating_add(1), 0)..)
            .next()
            .map(|(at, _)| *at)
    }

    /// The oldest `limit` unfinished instances.
    #[cfg(test)]
    pub(super) fn oldest(&self, limit: usize) -> Vec<&Instance> {
        self.instances.values().take(limit).collect()
    }

    /// What a full pass looks at: the oldest `head` unfinished instances (served first, as
    /// ever), then up to `tail` more, going on from where the previous full pass stopped. So
    /// however deep the queue, every instance is looked at within a few passes — its lease
    /// checked, its dispatch timeout enforced, its reason recorded — while each pass stays
    /// bounded. Call [`WorkingSet::passed`] with the second value once the pass is planned.
    pub(super) fn full_pass(&self, head: usize, tail: usize) -> (Vec<&Instance>, InstanceId) {
        let mut visit: Vec<&Instance> = self.instances.values().take(head).collect();
        let head_end = visit.last().map_or(0, |i| i.id);
        let start = self.resume_after.max(head_end);
        let before = visit.len();
        visit.extend(
            self.instances
                .range(start.saturating_add(1)..)
                .map(|(_, i)| i)
                .take(tail),
        );
        // A full tail may have more after it; a short one reached the end: start over.
        let resume_after = if visit.len() - before == tail {
            visit.last().map_or(0, |i| i.id)
        } else {
            0
        };
        (visit, resume_after)
    }

    /// Records where the next full pass goes on (see [`WorkingSet::full_pass`]).
    pub(super) fn passed(&mut self, resume_after: InstanceId) {
        self.resume_after = resume_after;
    }

    /// A job's queued, and assigned or running, instances.
    pub(super) fn job_counts(&self, job_id: JobId) -> (u32, u32) {
        (
            self.queued_per_job.get(&job_id).copied().unwrap_or(0),
            self.per_job.get(&job_id).copied().unwrap_or(0),
        )
    }

    /// The queue as a whole at `now`, from every unfinished instance held (in memory: nothing is
    /// read or decoded).
    pub(super) fn summary(&self, now: UnixMs) -> QueueSummary {
        queue_view::summarize(self.instances.values(), now)
    }

    /// Queued instances dispatchable at `now`, oldest first.
    pub(super) fn dispatchable(&self, now: UnixMs) -> impl Iterator<Item = &Instance> {
        let mut due: Vec<InstanceId> = self
            .waiting
            .range(..=(now, InstanceId::MAX))
            .map(|(_, id)| *id)
            .collect();
        due.sort_unstable();
        merge_sorted(self.ready.iter().copied(), due.into_iter())
            .filter_map(|id| self.instances.get(&id))
    }

    /// Assigned or running instances per worker.
    pub(super) fn per_worker(&self) -> &HashMap<String, u32> {
        &self.per_worker
    }

    /// Assigned or running instances per job.
    pub(super) fn per_job(&self) -> &HashMap<JobId, u32> {
        &self.per_job
    }
}

/// One fewer under `key`; a count that reaches zero goes.
fn decrement<K, Q>(counts: &mut HashMap<K, u32>, key: &Q)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

/// Merges two ascending iterators of distinct ids into one ascending iterator.
fn merge_sorted(
    a: impl Iterator<Item = InstanceId>,
    b: impl Iterator<Item = InstanceId>,
) -> impl Iterator<Item = InstanceId> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x <= y => a.next(),
        (Some(_), Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Job, Trigger};
    use crate::server::machine::create_instance;
    use crate::test_support;

    fn job() -> Job {
        let mut def = test_support::on_demand("j");
        def.max_concurrent = 100;
        test_support::job(1, def)
    }

    /// A store in a temp dir, followed from the start, holding `job()`.
    fn followed_store() -> (tempfile::TempDir, Store, Job) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.feed().follow_written();
        let job = job();
        store.write(|tx| tx.put_job(&job)).unwrap();
        (dir, store, job)
    }

    fn ids(set: &WorkingSet) -> Vec<InstanceId> {
        set.oldest(usize::MAX).iter().map(|i| i.id).collect()
    }

    #[test]
    fn the_copy_follows_every_committed_change() {
        let (_dir, store, job) = followed_store();
        let first = store
            .write(|tx| create_instance(tx, &job, Trigger::Manual, 1, 1))
            .unwrap();
        let mut set = WorkingSet::default();
        set.refresh(&store).unwrap();
        assert_eq!(ids(&set), vec![first.id]);

        // New, changed and finished instances all reach the copy through the feed.
        let second = store
            .write(|tx| create_instance(tx, &job, Trigger::Manual, 2, 2))
            .unwrap();
        let mut running = first.clone();
        running.state = InstanceState::Running {
            worker: "w".into(),
            lease_until_ms: 99,
        };
        store.write(|tx| tx.put_instance(&running)).unwrap();
        set.refresh(&store).unwrap();
        assert_eq!(ids(&set), vec![first.id, second.id]);
        assert_eq!(set.oldest(1)[0].state, running.state);

        let mut done = running.clone();
        done.state = InstanceState::Succeeded;
        store.write(|tx| tx.put_instance(&done)).unwrap();
        set.refresh(&store).unwrap();
        assert_eq!(ids(&set), vec![second.id]);
        // What the copy holds is exactly what is stored.
        let stored = store.read().unwrap().active_instances().unwrap();
        assert_eq!(
            set.oldest(usize::MAX)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>(),
            stored
        );
    }

    #[test]
    fn the_indexes_follow_the_states() {
        let (_dir, store, job) = followed_store();
        // 1: queued now; 2: fired ahead, due at 500; 3: queued now; 4: in backoff until 300.
        let first = store
            .write(|tx| create_instance(tx, &job, Trigger::Manual, 100, 100))
            .unwrap();
        let ahead = store
            .write(|tx| create_instance(tx, &job, Trigger::Schedule, 500, 100))
            .unwrap();
        let third = store
            .write(|tx| create_instance(tx, &job, Trigger::Manual, 100, 100))
            .unwrap();
        let mut backoff = store
            .write(|tx| create_instance(tx, &job, Trigger::Manual, 100, 100))
            .unwrap();
        backoff.state = InstanceState::Queued {
            reason: None,
            not_before_ms: Some(300),
            since_ms: 100,
        };
        store.write(|tx| tx.put_instance(&backoff)).unwrap();
        let mut set = WorkingSet::default();
        set.refresh(&store).unwrap();

        let dispatchable =
            |set: &WorkingSet, now| set.dispatchable(now).map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(dispatchable(&set, 200), vec![first.id, third.id]);
        assert_eq!(set.earliest_not_before_after(200), Some(300));
        // Once due, waiting instances join in id order, not in due order.
        assert_eq!(
            dispatchable(&set, 500),
            vec![first.id, ahead.id, third.id, backoff.id]
        );
        assert_eq!(set.earliest_not_before_after(500), None);

        // Assigned and running instances count against their worker, and leave the queue.
        let mut on_w1 = first.clone();
        on_w1.state = InstanceState::Assigned {
            worker: "w1".into(),
            lease_until_ms: 9_000,
        };
        let mut also_w1 = third.clone();
        also_w1.state = InstanceState::Running {
            worker: "w1".into(),
            lease_until_ms: 9_000,
        };
        store.write(|tx| tx.put_instance(&on_w1)).unwrap();
        store.write(|tx| tx.put_instance(&also_w1)).unwrap();
        set.refresh(&store).unwrap();
        assert_eq!(set.per_worker().get("w1"), Some(&2));
        assert_eq!(dispatchable(&set, 500), vec![ahead.id, backoff.id]);

        // A finished instance leaves every index; the last worker slot empties the entry.
        let mut done = on_w1.clone();
        done.state = InstanceState::Succeeded;
        store.write(|tx| tx.put_instance(&done)).unwrap();
        let mut requeued = also_w1.clone();
        requeued.state = InstanceState::queued(600);
        store.write(|tx| tx.put_instance(&requeued)).unwrap();
        set.refresh(&store).unwrap();
        assert_eq!(set.per_worker().get("w1"), None);
        assert_eq!(
            dispatchable(&set, 500),
            vec![ahead.id, third.id, backoff.id]
        );
        assert_eq!(ids(&set), vec![ahead.id, third.id, backoff.id]);
    }

    #[test]
    fn full_passes_look_past_the_oldest_in_turn() {
        let (_dir, store, job) = followed_store();
        store
            .write(|tx| {
                for n in 0..10 {
                    create_instance(tx, &job, Trigger::Manual, n, n)?;
                }
                Ok::<_, crate::server::machine::ApplyError>(())
            })
            .unwrap();
        let mut set = WorkingSet::default();
        set.refresh(&store).unwrap();
        let pass = |set: &mut WorkingSet| {
            let (visit, resume_after) = set.full_pass(2, 3);
            let ids: Vec<InstanceId> = visit.iter().map(|i| i.id).collect();
            set.passed(resume_after);
            ids
        };
        // The oldest two every time, then the rest three at a time, starting over at the end.
        assert_eq!(pass(&mut set), [1, 2, 3, 4, 5]);
        assert_eq!(pass(&mut set), [1, 2, 6, 7, 8]);
        assert_eq!(pass(&mut set), [1, 2, 9, 10]);
        assert_eq!(pass(&mut set), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_summary_counts_the_whole_queue_by_reason_and_job() {
        use crate::reason::{QueueReason, Unmatched};
        let (_dir, store, job) = followed_store();
        let mut other = test_support::job(2, test_support::on_demand("other"));
        other.def.max_concurrent = 100;
        store.write(|tx| tx.put_job(&other)).unwrap();
        let no_worker = |tag: &str| QueueReason::NoWorker {
            unmatched: Unmatched::Tag { tag: tag.into() },
            live: vec![],
            silent: vec![],
            fix: Some(format!("shoal worker --tag {tag}")),
        };
        let mut written = Vec::new();
        store
            .write(|tx| {
                written.clear();
                // Job 1: 3 stuck (the newest reason says "gpu2"), 1 ready, 1 held, 1 running.
                for (n, reason) in [no_worker("gpu"), no_worker("gpu"), no_worker("gpu2")]
                    .into_iter()
                    .enumerate()
                {
                    let mut stuck = create_instance(tx, &job, Trigger::Manual, 10, 10)?;
                    stuck.state = InstanceState::Queued {
                        reason: Some(reason),
                        not_before_ms: None,
                        since_ms: 100 + n as i64,
                    };
                    tx.put_instance(&stuck)?;
                }
                create_instance(tx, &job, Trigger::Manual, 200, 200)?;
                create_instance(tx, &job, Trigger::Schedule, 5_000, 200)?;
                let mut running = create_instance(tx, &job, Trigger::Manual, 50, 50)?;
                running.state = InstanceState::Running {
                    worker: "w".into(),
                    lease_until_ms: 9_000,
                };
                tx.put_instance(&running)?;
                // Job 2: one stuck, at capacity (not unplaceable), the oldest wait.
                let mut busy = create_instance(tx, &other, Trigger::Manual, 1, 1)?;
                busy.state = InstanceState::Queued {
                    reason: Some(QueueReason::AtCapacity {
                        workers: vec!["w".into()],
                        fix: "more".into(),
                    }),
                    not_before_ms: None,
                    since_ms: 1,
                };
                tx.put_instance(&busy)?;
                written.push(busy);
                Ok::<_, crate::server::machine::ApplyError>(())
            })
            .unwrap();
        let mut set = WorkingSet::default();
        set.refresh(&store).unwrap();
        let summary = set.summary(1_000);
        assert_eq!((summary.queued, summary.running), (6, 1));
        assert_eq!(summary.queued_jobs, 2);
        let count = |kind: &str| {
            summary
                .by_reason
                .iter()
                .find(|r| r.kind == kind)
                .map(|r| r.queued)
        };
        assert_eq!(count("no-worker"), Some(3));
        assert_eq!(count("at-capacity"), Some(1));
        assert_eq!(count("ready"), Some(1));
        assert_eq!(count("held"), Some(1));
        assert_eq!(count("retrying"), Some(0), "every kind is listed");
        let oldest = summary.oldest.as_ref().unwrap();
        assert_eq!((oldest.instance, oldest.waited_ms), (written[0].id, 999));
        assert_eq!(
            summary
                .top_jobs
                .iter()
                .map(|j| (j.job.as_str(), j.queued, j.running))
                .collect::<Vec<_>>(),
            [("j", 5, 1), ("other", 1, 0)]
        );
        assert_eq!(
            (summary.unplaceable.queued, summary.unplaceable.jobs),
            (3, 1)
        );
        let group = &summary.unplaceable.groups[0];
        assert_eq!((group.job.as_str(), group.queued), ("j", 3));
        assert_eq!(group.reason, no_worker("gpu2"), "the newest reason");
        assert_eq!(group.fix.as_deref(), Some("shoal worker --tag gpu2"));
        assert!(group.why.contains("\"gpu2\""), "{}", group.why);
        assert_eq!(set.job_counts(job.id), (5, 1));
        assert_eq!(set.job_counts(other.id), (1, 0));
        assert_eq!(set.job_counts(99), (0, 0));
        // A server that does not lead counts the store instead, and sees the same.
        let stored = store.read().unwrap().active_instances().unwrap();
        assert_eq!(queue_view::summarize(&stored, 1_000), summary);
        assert_eq!(
            queue_view::job_counts(&stored, &[job.id, other.id, 99]),
            [(5, 1), (1, 0), (0, 0)]
        );
    }
}
