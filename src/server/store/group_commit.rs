//! Group commit: writers that arrive while a durable commit is running share the next one.
//!
//! A durable redb commit costs an fsync, and redb has one writer at a time, so one commit per
//! API call caps the server at a few thousand changes per second. Here every caller still runs
//! its own change on its own thread, but into a shared open transaction (a *batch*):
//!
//! 1. A caller joins the open batch (or opens one) and runs its change in it, under the lock.
//! 2. If no other caller is waiting to join, it commits the batch; otherwise it leaves the batch
//!    open for them and the last of them commits. Callers arriving while a commit runs wait for
//!    it to end, then form the next batch together: that is where the batching comes from.
//! 3. Every member returns only after its batch's commit returned. If the commit failed, every
//!    member gets the error. So a change is never acknowledged before it is durable.
//!
//! redb cannot roll back part of a dirty transaction (savepoints need a clean one), so a change
//! that fails or panics abandons its whole batch: its own writes are gone with it and its caller
//! gets the error, and the other members — whose changes were not committed either — simply run
//! theirs again in a fresh batch. That is why a change must be safe to run more than once
//! (`FnMut`, no effects outside the transaction). Each retry round removes the failing member,
//! so retries end.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use super::{Store, StoreError, WriteOutcome, WriteTx, db_error};

#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<State>,
    /// Signalled when a commit ends or a batch is abandoned.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The batch taking members: its transaction is open.
    open: Option<Batch>,
    /// A batch's commit runs now (its transaction was taken out of `open`).
    committing: bool,
    /// Callers waiting for that commit to end so that they can join the next batch.
    waiting: usize,
}

struct Batch {
    tx: WriteTx,
    /// Changes run into it so far (for the batch-size metric).
    changes: usize,
    end: Arc<OnceLock<BatchEnd>>,
}

#[derive(Clone)]
enum BatchEnd {
    Committed,
    /// The commit failed: every member reports the error (its outcome is unknown).
    Failed(CommitFailure),
    /// A member's change failed or panicked: nothing was committed; run the change again.
    Abandoned,
}

/// A failed commit, as every member of its batch reports it.
#[derive(Clone)]
enum CommitFailure {
    /// The storage failed (a full disk, an I/O error): already classified.
    Storage(super::StorageUnavailable),
    /// Anything else redb said, as text.
    Other(String),
}

impl GroupCommit {
    /// Runs `f` under the lock once no batch is open or committing: nothing writes meanwhile.
    pub(super) fn when_idle<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut state = self.lock();
        while state.committing || state.open.is_some() {
            state = self.wait(state);
        }
        f()
    }

    pub(super) fn write<T, E: From<StoreError>>(
        &self,
        store: &Store,
        mut change: impl FnMut(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E> {
        loop {
            let mut state = self.lock();
            while state.committing {
                state.waiting += 1;
                state = self.wait(state);
                state.waiting -= 1;
            }
            if state.open.is_none() {
                // Nothing is written when a batch cannot even begin (redb refuses writes after an
                // I/O error until the database is reopened).
                let txn = store
                    .database(WriteOutcome::NotWritten)?
                    .begin_write()
                    .map_err(|error| {
                        store.classify_write_error(db_error(error), WriteOutcome::NotWritten)
                    })?;
                state.open = Some(Batch {
                    tx: WriteTx::new(txn),
                    changes: 0,
                    end: Arc::default(),
                });
            }
            let Some(batch) = state.open.as_mut() else {
                continue;
            };
            let end = batch.end.clone();
            let value = match catch_unwind(AssertUnwindSafe(|| change(&mut batch.tx))) {
                Ok(Ok(value)) => {
                    batch.changes += 1;
                    value
                }
                Ok(Err(error)) => {
                    self.abandon(&mut state);
                    return Err(error);
                }
                Err(panic) => {
                    self.abandon(&mut state);
                    drop(state);
                    resume_unwind(panic);
                }
            };
            let outcome = if state.waiting == 0 {
                self.commit(state, store)
            } else {
                // Someone will join after us; the last member commits for all.
                while end.get().is_none() {
                    state = self.wait(state);
                }
                end.get().cloned().unwrap_or(BatchEnd::Abandoned)
            };
            match outcome {
                BatchEnd::Committed => return Ok(value),
                BatchEnd::Failed(CommitFailure::Storage(error)) => {
                    return Err(StoreError::Unavailable(error).into());
                }
                BatchEnd::Failed(CommitFailure::Other(reason)) => {
                    return Err(StoreError::Commit(reason).into());
                }
                BatchEnd::Abandoned => continue,
            }
        }
    }

    /// Commits the open batch outside the lock (other callers queue up for the next batch
    /// meanwhile) and tells its members how it ended.
    fn commit(&self, mut state: MutexGuard<'_, State>, store: &Store) -> BatchEnd {
        let Some(batch) = state.open.take() else {
            return BatchEnd::Abandoned;
        };
        state.committing = true;
        drop(state);
        let (mut txn, effects, journal) = batch.tx.into_parts();
        if !store.commits_are_durable() {
            // Behind a durable log (see `Store::commit_behind_log`). redb refuses this only for a
            // transaction that changed persistent savepoints, which the store never makes; the
            // commit is then simply durable.
            let _ = txn.set_durability(redb::Durability::None);
        }
        let started = std::time::Instant::now();
        let end = match txn.commit() {
            Ok(()) => {
                store.feed.committed(batch.changes, started.elapsed());
                // Before any member returns (whoever is told of the change may look for it) and
                // before the next batch commits (so effects are published in commit order).
                store.feed.journal(journal);
                store.feed.publish(effects);
                BatchEnd::Committed
            }
            // redb may still make a commit that failed durable (LIBRARY-NOTES §9).
            Err(error) => {
                match store.classify_write_error(db_error(error), WriteOutcome::Unknown) {
                    StoreError::Unavailable(error) => {
                        BatchEnd::Failed(CommitFailure::Storage(error))
                    }
                    other => BatchEnd::Failed(CommitFailure::Other(other.to_string())),
                }
            }
        };
        let mut state = self.lock();
        state.committing = false;
        let _ = batch.end.set(end.clone());
        self.changed.notify_all();
        end
    }

    /// Drops the open batch uncommitted (redb rolls it back) and sends its members round again.
    fn abandon(&self, state: &mut State) {
        if let Some(batch) = state.open.take() {
            if let Err(error) = batch.tx.into_parts().0.abort() {
                tracing::warn!(%error, "aborting an abandoned write batch");
            }
            let _ = batch.end.set(BatchEnd::Abandoned);
        }
        self.changed.notify_all();
    }

    /// Changes run under this lock are caught if they panic, so a poisoned lock still guards a
    /// consistent state.
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(state)
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Every critical section here leaves its data consistent (changes that panic are caught), so a
/// poisoned lock is simply taken over.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{Store, StoreError};
    use crate::model::Job;
    use crate::test_support;

    fn job(id: u64, name: &str) -> Job {
        test_support::job(id, test_support::on_demand(name))
    }

    /// Runs `writes` writes on each of `threads` threads at once; `write(store, thread, i)`
    /// returns whether the write was meant to succeed and what it returned.
    fn hammer(
        store: &Arc<Store>,
        threads: usize,
        writes: usize,
        write: impl Fn(&Store, usize, usize) + Send + Sync + Copy + 'static,
    ) {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..writes {
                        write(&store, t, i);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    }

    #[test]
    fn every_acknowledged_change_is_already_committed_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        hammer(&store, 16, 40, |store, t, i| {
            let id = (t * 1000 + i + 1) as u64;
            store
                .write(|tx| tx.put_job(&job(id, &format!("j-{t}-{i}"))))
                .unwrap();
            // A read transaction sees only committed data: the change must be there the moment
            // `write` returns, whatever batch it went in.
            assert_eq!(
                store.read().unwrap().job(id).unwrap().map(|j| j.id),
                Some(id)
            );
        });
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.read().unwrap().job_count().unwrap(), 16 * 40);
    }

    #[test]
    fn a_failing_change_writes_nothing_and_its_batch_mates_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        hammer(&store, 12, 40, |store, t, i| {
            let id = (t * 1000 + i + 1) as u64;
            let fails = (t + i) % 3 == 0;
            let result = store.write(|tx| {
                // Write first, fail after: the write must not survive.
                tx.put_job(&job(id, &format!("j-{t}-{i}")))?;
                if fails {
                    return Err(StoreError::Commit("refused by the test".into()));
                }
                Ok(())
            });
            assert_eq!(result.is_err(), fails, "write {t}/{i}");
            let stored = store.read().unwrap().job(id).unwrap();
            assert_eq!(stored.is_some(), !fails, "write {t}/{i}");
        });
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let read = store.read().unwrap();
        for t in 0..12 {
            for i in 0..40 {
                let id = (t * 1000 + i + 1) as u64;
                let fails = (t + i) % 3 == 0;
                assert_eq!(read.job(id).unwrap().is_some(), !fails, "write {t}/{i}");
                let by_name = read.job_id_by_name(&format!("j-{t}-{i}")).unwrap();
                assert_eq!(by_name.is_some(), !fails, "name index of write {t}/{i}");
            }
        }
    }

    #[test]
    fn a_panicking_change_reaches_its_caller_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let panicking = {
            let store = store.clone();
            std::thread::spawn(move || {
                store.write(|tx| {
                    tx.put_job(&job(7, "doomed"))?;
                    panic!("change panicked on purpose");
                    #[allow(unreachable_code)]
                    Ok::<_, StoreError>(())
                })
            })
        };
        assert!(panicking.join().is_err(), "the panic reaches the caller");
        store.write(|tx| tx.put_job(&job(8, "fine"))).unwrap();
        let read = store.read().unwrap();
        assert!(read.job(7).unwrap().is_none());
        assert!(read.job(8).unwrap().is_some());
    }

    #[test]
    fn only_committed_instance_writes_are_announced() {
        use crate::model::Trigger;
        use crate::server::machine::create_instance;

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let job = job(1, "fed");
        store.write(|tx| tx.put_job(&job)).unwrap();
        let before = store
            .write(|tx| create_instance(tx, &job, Trigger::Manual, 1, 1))
            .unwrap();
        assert!(
            store.feed().take_written().is_empty(),
            "nothing is recorded until someone follows"
        );
        store.feed().follow_written();
        let kept = store
            .write(|tx| create_instance(tx, &job, Trigger::Manual, 1, 1))
            .unwrap();
        let failed: Result<(), StoreError> = store.write(|tx| {
            create_instance(tx, &job, Trigger::Manual, 1, 1)?;
            Err(StoreError::Commit("refused by the test".into()))
        });
        assert!(failed.is_err());
        assert_eq!(store.feed().take_written(), vec![kept.clone()]);
        assert!(store.feed().take_written().is_empty(), "taken once");
        assert_ne!(before.id, kept.id);
    }
}
