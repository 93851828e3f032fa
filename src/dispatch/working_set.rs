//! The dispatcher's copy of every unfinished instance. A pass used to re-read (and decode) all of
//! them from redb; with a deep queue that cost grew with the queue on every pass. Now the copy is
//! refreshed from the store's feed of written instances, so a pass reads only what changed.
//!
//! The copy is a cache, never an authority: the dispatcher commits a change only if the stored
//! instance is still exactly as the copy showed it, and a full re-read every [`FULL_RELOAD`]
//! bounds the life of anything the feed could ever miss.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::model::{Instance, InstanceId, InstanceState, UnixMs};
use crate::store::{Store, StoreError};

/// A safety net, not the mechanism: the feed carries every change.
const FULL_RELOAD: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct WorkingSet {
    /// Unfinished instances by id: oldest first, so the queue is served in order across jobs.
    instances: BTreeMap<InstanceId, Instance>,
    /// When the copy was last read in full; `None` forces a full read.
    loaded_at: Option<Instant>,
}

impl WorkingSet {
    /// Brings the copy up to date with what is committed. The store must already be following
    /// written instances (see [`Store::follow_written_instances`]).
    pub(super) fn refresh(&mut self, store: &Store) -> Result<(), StoreError> {
        // Taken before the read begins: every id taken was committed before it was announced,
        // so the read below sees it; anything announced later is taken next time.
        let mut written = store.take_written_instances();
        let full = self.loaded_at.is_none_or(|at| at.elapsed() > FULL_RELOAD);
        // Until this refresh succeeds the taken ids exist nowhere else: fall back to a full
        // read next time if it fails.
        self.loaded_at = None;
        let read = store.read()?;
        if full {
            self.instances = read
                .active_instances()?
                .into_iter()
                .map(|instance| (instance.id, instance))
                .collect();
        } else {
            written.sort_unstable();
            written.dedup();
            for id in written {
                match read.instance(id)? {
                    Some(instance) if !instance.state.is_terminal() => {
                        self.instances.insert(id, instance);
                    }
                    _ => {
                        self.instances.remove(&id);
                    }
                }
            }
        }
        self.loaded_at = Some(Instant::now());
        Ok(())
    }

    /// The earliest `not_before_ms` after `now` among queued instances (fires created ahead,
    /// retries in backoff): when one of them next becomes dispatchable.
    pub(super) fn earliest_not_before_after(&self, now: UnixMs) -> Option<UnixMs> {
        self.instances
            .values()
            .filter_map(|instance| match instance.state {
                InstanceState::Queued {
                    not_before_ms: Some(at),
                    ..
                } if at > now => Some(at),
                _ => None,
            })
            .min()
    }

    /// The oldest `limit` unfinished instances.
    pub(super) fn oldest(&self, limit: usize) -> Vec<&Instance> {
        self.instances.values().take(limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Job, Trigger};
    use crate::schedule::scheduler::create_instance;
    use crate::spec::{HttpSpec, JobSpec};

    fn job() -> Job {
        let def = JobSpec {
            name: "j".into(),
            on_demand: true,
            max_concurrent: Some(100),
            http: HttpSpec {
                url: "http://127.0.0.1:9/".into(),
                ..HttpSpec::default()
            },
            ..JobSpec::default()
        }
        .validate()
        .unwrap();
        Job {
            id: 1,
            def,
            created_ms: 1,
            updated_ms: 1,
            next_fire_ms: None,
        }
    }

    fn ids(set: &WorkingSet) -> Vec<InstanceId> {
        set.oldest(usize::MAX).iter().map(|i| i.id).collect()
    }

    #[test]
    fn the_copy_follows_every_committed_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.follow_written_instances();
        let job = job();
        store.write(|tx| tx.put_job(&job)).unwrap();
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
}
