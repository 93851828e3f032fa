//! The Raft log, the vote and the committed pointer, on disk in the data dir: a redb file of its
//! own, `raft-log.redb`, beside the store's `shoal.redb`.
//!
//! Why a file of its own: the log is written on every append (one durable commit per batch the
//! leader replicates), cut back on a conflict (`truncate`) and compacted (`purge`) — none of which
//! needs to be atomic with the store. The store's file has one writer at a time; sharing it would
//! put every log write in line with the state machine's commits. The state machine's own record
//! of what it applied is the one thing that must be atomic with the store, so it lives in the
//! store's file (see `state_machine.rs`).
//!
//! Promises openraft relies on: `save_vote` and `append` are durable (a committed redb
//! transaction, fsynced) before `save_vote` returns and before `append` reports the entries
//! flushed; entries are readable as soon as `append` returns; the log has no holes (`truncate`
//! removes a suffix, `purge` a prefix, and the last purged id is kept so the log's position is
//! known when it is empty). Writes run on a blocking thread, never on the runtime's.
//!
//! This module knows nothing of commands or jobs: entries are stored as encoded.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, RaftTypeConfig};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::types::{Entry, LogId, StorageError, StorageIOError, TypeConfig, Vote, decode, encode};
use crate::server::store::StoreError;

pub const LOG_FILE: &str = "raft-log.redb";

/// Entries by index.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// The vote, the committed log id and the last purged log id, by name.
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The log of one server. Clones share the file (the log reader openraft hands to its
/// replication tasks is a clone; redb readers never block the writer).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// Makes appended entries durable in batches (see [`LogStore::append`]).
    flusher: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
    /// The committed log id last saved and not yet written (see [`LogStore::save_committed`]).
    committed: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl LogStore {
    /// Opens (or creates) `DIR/raft-log.redb`.
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        let db = match Database::create(dir.join(LOG_FILE)) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse(dir.to_path_buf()));
            }
            Err(error) => return Err(StoreError::Db(error.into())),
        };
        let txn = db.begin_write().map_err(redb::Error::from)?;
        txn.open_table(LOG).map_err(redb::Error::from)?;
        txn.open_table(STATE).map_err(redb::Error::from)?;
        txn.commit().map_err(redb::Error::from)?;
        let db = Arc::new(db);
        let (flusher, flushes) = std::sync::mpsc::channel();
        let committed = Arc::new(std::sync::Mutex::new(None));
        let flushed_db = db.clone();
        let flushed_committed = committed.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_loop(&flushed_db, &flushes, &flushed_committed))
            .map_err(|error| StoreError::Commit(format!("starting the log flusher: {error}")))?;
        Ok(LogStore {
            db,
            flusher,
            committed,
        })
    }

    fn read_state<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageIOError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| io_read(redb::Error::from(e)))?;
        let table = txn
            .open_table(STATE)
            .map_err(|e| io_read(redb::Error::from(e)))?;
        match table.get(key).map_err(|e| io_read(redb::Error::from(e)))? {
            Some(bytes) => decode(bytes.value()).map(Some).map_err(io_read),
            None => Ok(None),
        }
    }

    /// Runs `change` in one durable write transaction on a blocking thread.
    async fn write(
        &self,
        change: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    ) -> Result<(), StorageIOError> {
        self.write_with(Durability::Immediate, change).await
    }

    /// Runs `change` in one write transaction of the given durability on a blocking thread.
    async fn write_with(
        &self,
        durability: Durability,
        change: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error> + Send + 'static,
    ) -> Result<(), StorageIOError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut txn = db.begin_write()?;
            txn.set_durability(durability)
                .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            change(&txn)?;
            txn.commit()?;
            Ok::<_, redb::Error>(())
        })
        .await
        .map_err(|join| StorageIOError::write_logs(&join))?
        .map_err(|error| StorageIOError::write_logs(&error))
    }
}

/// Makes the appends written so far durable, many at a time: waits for one, takes every other
/// already waiting, commits once durably (a durable commit persists every non-durable one before
/// it) together with the committed log id saved meanwhile, then tells openraft of each. Ends
/// when the store is dropped.
fn flush_loop(
    db: &Database,
    flushes: &std::sync::mpsc::Receiver<LogFlushed<TypeConfig>>,
    committed: &std::sync::Mutex<Option<Vec<u8>>>,
) {
    while let Ok(first) = flushes.recv() {
        let mut batch = vec![first];
        batch.extend(flushes.try_iter());
        let flushed = (|| {
            let txn = db.begin_write()?;
            let saved = committed.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(bytes) = saved {
                txn.open_table(STATE)?.insert(COMMITTED, bytes.as_slice())?;
            }
            txn.commit()?;
            Ok::<_, redb::Error>(())
        })();
        for callback in batch {
            callback.log_io_completed(
                flushed
                    .as_ref()
                    .map(|_| ())
                    .map_err(|error| std::io::Error::other(error.to_string())),
            );
        }
    }
}

fn io_read(error: impl std::error::Error + 'static) -> StorageIOError {
    StorageIOError::read_logs(&error)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let read = || {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(LOG)?;
            let mut entries = Vec::new();
            let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
            for row in table.range::<u64>(bounds)? {
                let (_, bytes) = row?;
                entries.push(bytes.value().to_vec());
            }
            Ok::<_, redb::Error>(entries)
        };
        let rows = read().map_err(io_read)?;
        let mut entries = Vec::with_capacity(rows.len());
        for bytes in rows {
            entries.push(decode::<Entry>(&bytes).map_err(io_read)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_state(LAST_PURGED)?;
        let last = {
            let txn = self
                .db
                .begin_read()
                .map_err(|e| io_read(redb::Error::from(e)))?;
            let table = txn
                .open_table(LOG)
                .map_err(|e| io_read(redb::Error::from(e)))?;
            match table.last().map_err(|e| io_read(redb::Error::from(e)))? {
                Some((_, bytes)) => Some(decode::<Entry>(bytes.value()).map_err(io_read)?.log_id),
                None => None,
            }
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes = encode(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.write(move |txn| {
            txn.open_table(STATE)?.insert(VOTE, bytes.as_slice())?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self
            .read_state(VOTE)
            .map_err(|e| StorageIOError::read_vote(&e))?)
    }

    /// Kept so that a restarted server re-applies what it knew committed before it hears from
    /// a leader. Held in memory and written by the log's next durable flush, with the appends it
    /// makes durable: neither a transaction nor an fsync of its own on every commit advance (that
    /// cost the group a commit per round on every server). Losing the latest value in a crash
    /// only means re-learning it from the leader: a restarted server serves reads a little
    /// behind until then, and never leads before it has applied everything committed (the
    /// leader's barrier).
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = encode(&committed).map_err(|e| StorageIOError::write(&e))?;
        *self.committed.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let pending = self
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match pending {
            Some(bytes) => decode::<Option<LogId>>(&bytes).map_err(|e| io_read(e).into()),
            None => Ok(self.read_state::<Option<LogId>>(COMMITTED)?.flatten()),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = <TypeConfig as RaftTypeConfig>::Entry> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        for entry in entries {
            let bytes =
                encode(&entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            rows.push((entry.log_id.index, bytes));
        }
        // Written at once but not yet durable, so readable as openraft requires when `append`
        // returns; the flusher makes it durable together with the appends around it, and only
        // then tells openraft (openraft#618: never before). Raft's core appends one client
        // write at a time: one durable commit each would bound the group by the disk's fsync
        // rate, where batching lets it go as fast as writes arrive.
        // An append of nothing (openraft's way of confirming the log up to a point) writes
        // nothing; its callback still waits for the flush, which covers the appends before it.
        let written = if rows.is_empty() {
            Ok(())
        } else {
            self.write_with(Durability::None, move |txn| {
                let mut log = txn.open_table(LOG)?;
                for (index, bytes) in &rows {
                    log.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
            .await
        };
        match written {
            Ok(()) => {
                if let Err(unsent) = self.flusher.send(callback) {
                    unsent.0.log_io_completed(Err(std::io::Error::other(
                        "the raft log's flusher has stopped",
                    )));
                }
                Ok(())
            }
            Err(error) => {
                callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
                Err(error.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(move |txn| {
            txn.open_table(LOG)?
                .retain_in(log_id.index.., |_, _| false)?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = encode(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        self.write(move |txn| {
            txn.open_table(STATE)?
                .insert(LAST_PURGED, bytes.as_slice())?;
            txn.open_table(LOG)?
                .retain_in(..=log_id.index, |_, _| false)?;
            Ok(())
        })
        .await?;
        Ok(())
    }
}
