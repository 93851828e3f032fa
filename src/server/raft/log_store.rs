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
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

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
        Ok(LogStore { db: Arc::new(db) })
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
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write()?;
            change(&txn)?;
            txn.commit()?;
            Ok::<_, redb::Error>(())
        })
        .await
        .map_err(|join| StorageIOError::write_logs(&join))?
        .map_err(|error| StorageIOError::write_logs(&error))
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
    /// a leader. Durable like everything here (openraft calls it once per commit advance, not
    /// per entry).
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = encode(&committed).map_err(|e| StorageIOError::write(&e))?;
        self.write(move |txn| {
            txn.open_table(STATE)?.insert(COMMITTED, bytes.as_slice())?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_state::<Option<LogId>>(COMMITTED)?.flatten())
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
        let written = self
            .write(move |txn| {
                let mut log = txn.open_table(LOG)?;
                for (index, bytes) in &rows {
                    log.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
            .await;
        // Only now is the batch on disk: tell openraft (openraft#618: never before).
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
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
