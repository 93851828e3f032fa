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
//! known when it is empty).
//!
//! How: every write is a [`Write`] sent, in openraft's order, to one writer thread, which takes
//! all that are waiting and commits them in one durable transaction (one fsync for many appends,
//! and for the committed pointer saved meanwhile), then tells each caller. The log as openraft
//! sees it runs ahead of the file: the newest entries are kept in memory (the [`Tail`]) from the
//! moment `append` is called, so they are readable at once and replication reads them without
//! decoding them back from the file; entries older than the tail are read from the file, which
//! every write before them has reached. Writes never run on the runtime's threads.
//!
//! This module knows nothing of commands or jobs: entries are stored as encoded.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

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

/// Durable entries the tail keeps for replication beyond those still being written, at most
/// (a follower that falls further behind is served from the file).
const TAIL_KEEP_ENTRIES: usize = 256;
/// ... and at most this many encoded bytes of them.
const TAIL_KEEP_BYTES: usize = 8 << 20;

/// The log of one server. Clones share the file, the tail and the writer (the log reader
/// openraft hands to its replication tasks is a clone).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The writer thread's queue (see [`writer_loop`]).
    writer: std::sync::mpsc::Sender<Write>,
    tail: Arc<Mutex<Tail>>,
    /// The committed log id last saved and not yet written (see [`LogStore::save_committed`]).
    committed: Arc<Mutex<Option<Vec<u8>>>>,
}

/// The newest entries of the log, in memory: every entry from `start` on is here (or does not
/// exist), none before it is. Entries are added when appended, so the log is readable before the
/// writer reaches the file, and dropped from the front once durable and beyond what is kept for
/// replication; a `truncate` or `purge` changes the tail at once and the file in its turn.
struct Tail {
    start: u64,
    entries: BTreeMap<u64, TailEntry>,
}

struct TailEntry {
    entry: Entry,
    /// Its encoded size, counted against [`TAIL_KEEP_BYTES`] once durable.
    bytes: usize,
    durable: bool,
}

/// A change for the writer thread, told its outcome once its transaction is durable.
enum Write {
    Append {
        /// Remove the log from this index on first (an append within the log).
        replace_from: Option<u64>,
        rows: Vec<(LogId, Vec<u8>)>,
        flushed: LogFlushed<TypeConfig>,
    },
    Truncate {
        since: u64,
        done: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    Purge {
        upto: u64,
        encoded: Vec<u8>,
        done: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    Vote {
        encoded: Vec<u8>,
        done: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// Nothing: done once every write before it is durable.
    Sync {
        done: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
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
        let start = {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let log = txn.open_table(LOG).map_err(redb::Error::from)?;
            let last = log.last().map_err(redb::Error::from)?;
            last.map_or(0, |(index, _)| index.value() + 1)
        };
        let db = Arc::new(db);
        let tail = Arc::new(Mutex::new(Tail {
            start,
            entries: BTreeMap::new(),
        }));
        let committed = Arc::new(Mutex::new(None));
        let (writer, writes) = std::sync::mpsc::channel();
        let (writer_db, writer_tail, writer_committed) =
            (db.clone(), tail.clone(), committed.clone());
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer_loop(&writer_db, &writes, &writer_tail, &writer_committed))
            .map_err(|error| StoreError::Commit(format!("starting the log writer: {error}")))?;
        Ok(LogStore {
            db,
            writer,
            tail,
            committed,
        })
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `write` to the writer thread and waits until it is durable; why not, if it is not.
    async fn write_and_wait(
        &self,
        write: impl FnOnce(tokio::sync::oneshot::Sender<Result<(), String>>) -> Write,
    ) -> Result<(), std::io::Error> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let stopped = || std::io::Error::other("the raft log's writer has stopped");
        self.writer.send(write(done)).map_err(|_| stopped())?;
        outcome
            .await
            .map_err(|_| stopped())?
            .map_err(std::io::Error::other)
    }

    /// Runs `read` in one read transaction of the file.
    fn read<T>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StorageIOError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| io_read(redb::Error::from(e)))?;
        read(&txn).map_err(io_read)
    }

    fn read_state<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageIOError> {
        let bytes = self.read(|txn| {
            let value = txn.open_table(STATE)?.get(key)?;
            Ok(value.map(|bytes| bytes.value().to_vec()))
        })?;
        bytes
            .map(|bytes| decode(&bytes).map_err(io_read))
            .transpose()
    }

    /// Entries `from..to` read from the file.
    fn read_file(&self, from: u64, to: u64) -> Result<Vec<Entry>, StorageIOError> {
        let rows = self.read(|txn| {
            let mut rows = Vec::new();
            for row in txn.open_table(LOG)?.range::<u64>(from..to)? {
                let (_, bytes) = row?;
                rows.push(bytes.value().to_vec());
            }
            Ok(rows)
        })?;
        rows.iter()
            .map(|bytes| decode::<Entry>(bytes).map_err(io_read))
            .collect()
    }
}

impl Tail {
    /// Drops the entries from `since` on (all of them when `since` is before the tail).
    fn truncate(&mut self, since: u64) {
        self.entries.split_off(&since);
        self.start = self.start.min(since);
    }

    /// Marks the entries `written` durable (those still in the tail as written: a later
    /// `truncate` may have replaced them), then drops durable entries from the front beyond
    /// what is kept.
    fn written(&mut self, written: &[LogId]) {
        for id in written {
            if let Some(kept) = self.entries.get_mut(&id.index)
                && kept.entry.log_id == *id
            {
                kept.durable = true;
            }
        }
        let mut durable_bytes: usize = self
            .entries
            .values()
            .filter(|kept| kept.durable)
            .map(|kept| kept.bytes)
            .sum();
        let mut durable_count = self.entries.values().filter(|kept| kept.durable).count();
        while durable_count > TAIL_KEEP_ENTRIES || durable_bytes > TAIL_KEEP_BYTES {
            let Some(first) = self.entries.first_entry() else {
                break;
            };
            // Only a durable entry leaves the front: what is before `start` is read from the file.
            if !first.get().durable {
                break;
            }
            let (index, dropped) = first.remove_entry();
            durable_count -= 1;
            durable_bytes -= dropped.bytes;
            self.start = index + 1;
        }
    }
}

/// The writer thread: waits for a write, takes every other already waiting, runs them in order in
/// one durable transaction together with the committed log id saved meanwhile, and tells each
/// caller. A batch of nothing but empty appends (openraft confirming the log up to a point, all of
/// it already durable) commits nothing. Ends when the log store is dropped.
fn writer_loop(
    db: &Database,
    writes: &std::sync::mpsc::Receiver<Write>,
    tail: &Mutex<Tail>,
    committed: &Mutex<Option<Vec<u8>>>,
) {
    while let Ok(first) = writes.recv() {
        let mut batch = vec![first];
        batch.extend(writes.try_iter());
        let writes_something = batch.iter().any(|write| match write {
            Write::Append { rows, .. } => !rows.is_empty(),
            Write::Sync { .. } => false,
            _ => true,
        });
        let mut written = Vec::new();
        let outcome = if writes_something {
            let mut commit = || {
                let txn = db.begin_write()?;
                {
                    let mut log = txn.open_table(LOG)?;
                    let mut state = txn.open_table(STATE)?;
                    for write in &batch {
                        match write {
                            Write::Append {
                                replace_from, rows, ..
                            } => {
                                if let Some(since) = replace_from {
                                    log.retain_in(*since.., |_, _| false)?;
                                }
                                for (id, bytes) in rows {
                                    log.insert(id.index, bytes.as_slice())?;
                                    written.push(*id);
                                }
                            }
                            Write::Truncate { since, .. } => {
                                log.retain_in(*since.., |_, _| false)?;
                            }
                            Write::Purge { upto, encoded, .. } => {
                                state.insert(LAST_PURGED, encoded.as_slice())?;
                                log.retain_in(..=*upto, |_, _| false)?;
                            }
                            Write::Vote { encoded, .. } => {
                                state.insert(VOTE, encoded.as_slice())?;
                            }
                            Write::Sync { .. } => {}
                        }
                    }
                    let saved = committed.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(bytes) = saved {
                        state.insert(COMMITTED, bytes.as_slice())?;
                    }
                }
                txn.commit()?;
                Ok::<_, redb::Error>(())
            };
            commit().map_err(|error| error.to_string())
        } else {
            Ok(())
        };
        if outcome.is_ok() {
            tail.lock()
                .unwrap_or_else(|p| p.into_inner())
                .written(&written);
        }
        for write in batch {
            let told = outcome.clone();
            match write {
                Write::Append { flushed, .. } => {
                    flushed.log_io_completed(told.map_err(std::io::Error::other));
                }
                Write::Truncate { done, .. }
                | Write::Purge { done, .. }
                | Write::Vote { done, .. }
                | Write::Sync { done } => {
                    let _ = done.send(told);
                }
            }
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
        let from = match range.start_bound() {
            Bound::Included(first) => *first,
            Bound::Excluded(before) => before.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(last) => last.saturating_add(1),
            Bound::Excluded(end) => *end,
            Bound::Unbounded => u64::MAX,
        };
        if from >= to {
            return Ok(Vec::new());
        }
        let (start, mut newest) = {
            let tail = self.tail();
            let newest: Vec<Entry> = tail
                .entries
                .range(from..to)
                .map(|(_, kept)| kept.entry.clone())
                .collect();
            (tail.start, newest)
        };
        if from >= start {
            return Ok(newest);
        }
        // Entries before the tail are in the file: every write of them is durable, and a later
        // truncate or purge never reaches below the tail's start without moving it.
        let mut entries = self.read_file(from, to.min(start))?;
        entries.append(&mut newest);
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        // Every write handed to the writer reaches the file first.
        self.write_and_wait(|done| Write::Sync { done })
            .await
            .map_err(io_read)?;
        let last_purged_log_id: Option<LogId> = self.read_state(LAST_PURGED)?;
        // With every write in the file, its last entry is the log's (the tail's, if any).
        let last = self.read(|txn| {
            let log = txn.open_table(LOG)?;
            let last = log.last()?;
            Ok(last.map(|(_, bytes)| bytes.value().to_vec()))
        })?;
        let last = match last {
            Some(bytes) => Some(decode::<Entry>(&bytes).map_err(io_read)?.log_id),
            None => None,
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
        let encoded = encode(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.write_and_wait(|done| Write::Vote { encoded, done })
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self
            .read_state(VOTE)
            .map_err(|e| StorageIOError::read_vote(&e))?)
    }

    /// Kept so that a restarted server re-applies what it knew committed before it hears from
    /// a leader. Held in memory and written by the log's next durable write: neither a
    /// transaction nor an fsync of its own on every commit advance (that cost the group a commit
    /// per round on every server). Losing the latest value in a crash only means re-learning it
    /// from the leader: a restarted server serves reads a little behind until then, and never
    /// leads before it has applied everything committed (the leader's barrier).
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
        let mut kept = Vec::new();
        for entry in entries {
            let bytes =
                encode(&entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            kept.push((entry, bytes));
        }
        // Readable from the tail at once, as openraft requires when `append` returns; the writer
        // makes it durable together with the writes around it, and only then tells openraft
        // (openraft#618: never before). Raft's core appends one client write at a time: one
        // durable commit each would bound the group by the disk's fsync rate, where batching
        // lets it go as fast as writes arrive. An append of nothing (openraft's way of
        // confirming the log up to a point) writes nothing; its callback still waits for the
        // writes before it.
        let mut encoded = Vec::with_capacity(kept.len());
        let mut replace_from = None;
        {
            let mut tail = self.tail();
            // openraft appends after the last entry, truncating a conflict first; an append that
            // starts within the log anyway replaces it from there on, in the tail and the file.
            if let Some((first, _)) = kept.first() {
                let index = first.log_id.index;
                if index < tail.start || tail.entries.range(index..).next().is_some() {
                    tail.truncate(index);
                    replace_from = Some(index);
                }
            }
            for (entry, bytes) in kept {
                let index = entry.log_id.index;
                let size = bytes.len();
                encoded.push((entry.log_id, bytes));
                let kept = TailEntry {
                    entry,
                    bytes: size,
                    durable: false,
                };
                tail.entries.insert(index, kept);
            }
        }
        if let Err(std::sync::mpsc::SendError(Write::Append { flushed, .. })) =
            self.writer.send(Write::Append {
                replace_from,
                rows: encoded,
                flushed: callback,
            })
        {
            flushed.log_io_completed(Err(std::io::Error::other(
                "the raft log's writer has stopped",
            )));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.tail().truncate(log_id.index);
        let since = log_id.index;
        self.write_and_wait(|done| Write::Truncate { since, done })
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let encoded = encode(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        {
            let mut tail = self.tail();
            let rest = tail.entries.split_off(&(log_id.index + 1));
            tail.entries = rest;
            tail.start = tail.start.max(log_id.index + 1);
        }
        let upto = log_id.index;
        self.write_and_wait(|done| Write::Purge {
            upto,
            encoded,
            done,
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
