//! Durable state in one redb file: jobs, instances with their attempts, and the indexes the
//! scheduler and dispatcher need. The only module that touches redb.
//!
//! Promises: every change runs in a write transaction passed to [`Store::write`]; it is committed
//! (durably, unless the store is a Raft group's state machine behind its durable log) before
//! `write` returns, and a closure that returns an error commits nothing. Callers
//! acknowledge a change only after `write` returned. Concurrent writers share commits (see
//! `group_commit`), so a change may run more than once and must have no effect outside `tx`. A
//! file of an unknown schema version is refused, never rewritten; a second process opening the
//! same data dir is refused.

mod alerts;
mod group_commit;
pub mod health;
mod image;
mod pages;
mod retention;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{Instance, InstanceId, InstanceState, Job, JobId, UnixMs};
use crate::server::effects::{Effects, Feed};
use tables::*;

pub use alerts::AlertFilter;
use health::Classified;
pub use health::{StorageUnavailable, WriteOutcome};
pub use image::{Row, StoreImage, TableImage};
pub use pages::{InstanceFilter, Page, SCAN_BUDGET};
pub use retention::{Retention, Swept};

/// Bumped when the layout of the file changes incompatibly.
pub const SCHEMA_VERSION: u64 = 1;
pub const DB_FILE: &str = "shoal.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "data dir {0} is already in use by another Shoal server (one server per data dir); stop \
         it or pass another --data-dir"
    )]
    InUse(PathBuf),
    #[error(
        "{path} has schema version {found}, newer than this build understands ({SCHEMA_VERSION}); \
         run a newer shoal, or point --data-dir elsewhere. The file was not modified."
    )]
    NewerSchema { path: PathBuf, found: u64 },
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    /// The commit of a batch failed: none of its changes is stored.
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("corrupt record in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    /// The data dir's storage failed (a full disk, an I/O error); see `health`.
    #[error("{0}")]
    Unavailable(StorageUnavailable),
}

impl StoreError {
    /// Whether this is the storage refusing (the store is degraded and recovers by itself), as
    /// opposed to a bug or bad data: loops that retry log it at debug level, not as an error.
    pub fn is_storage_fault(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

fn db_error(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(error.into())
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub struct Store {
    /// The open database, swapped for a fresh one by [`Store::try_recover`] after an I/O error
    /// (redb refuses writes until it is reopened). Readers clone the `Arc` and read on; `None`
    /// only for the moment of a reopen (or while one keeps failing).
    db: RwLock<Option<Arc<Database>>>,
    dir: PathBuf,
    path: PathBuf,
    group: group_commit::GroupCommit,
    /// Where the effects announced by committed transactions are published, in commit order.
    feed: std::sync::Arc<Feed>,
    health: health::Health,
    /// Set when the store is the state machine of a Raft group: commits are not made durable
    /// one by one, the group's log is (see [`Store::commit_behind_log`]).
    behind_log: std::sync::atomic::AtomicBool,
}

/// What one [`Store::try_recover`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The store was healthy.
    NotNeeded,
    /// Not tried: the disk is still (nearly) full.
    WaitingForSpace { free_bytes: u64 },
    /// Reopened, and a write succeeded: writes resume.
    Recovered,
    /// Tried and failed: try again later.
    Failed(String),
    /// Not tried, and never will be in this process: the store commits behind a Raft group's
    /// log (see [`Store::commit_behind_log`]), and reopening it in place would drop commits the
    /// group's node counts applied. Restarting the server applies the log again from the
    /// store's last durable point.
    RestartNeeded,
}

impl Store {
    /// Opens (or creates) `DIR/shoal.redb`.
    pub fn open(dir: &Path) -> Result<Store> {
        let path = dir.join(DB_FILE);
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse(dir.to_path_buf()));
            }
            Err(error) => return Err(db_error(error)),
        };
        check_schema(&db, &path)?;
        Ok(Store {
            db: RwLock::new(Some(Arc::new(db))),
            dir: dir.to_path_buf(),
            path,
            group: group_commit::GroupCommit::default(),
            feed: std::sync::Arc::default(),
            health: health::Health::default(),
            behind_log: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// From now on, commits are not made durable one by one (no fsync each): for a store that is
    /// the state machine of a Raft group. The group's log is durable before anything is applied
    /// here, and every transaction records the log position it applied (see
    /// `raft/state_machine.rs`), so a crash only takes the store back to an earlier consistent
    /// point, from which the log is applied again. [`Store::persist`] makes everything committed
    /// so far durable; the state machine calls it before a snapshot lets the log be compacted.
    pub fn commit_behind_log(&self) {
        self.behind_log
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether commits wait for the disk (see [`Store::commit_behind_log`]).
    fn commits_are_durable(&self) -> bool {
        !self.behind_log.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Makes every commit so far durable (one fsync), waiting for the write in progress. Harmless
    /// but useless for a store whose commits are durable anyway. Blocking.
    pub fn persist(&self) -> Result<()> {
        self.group.when_idle(|| {
            let db = self.database(WriteOutcome::NotWritten)?;
            let committed = db
                .begin_write()
                .map_err(db_error)
                .and_then(|txn| txn.commit().map_err(db_error));
            committed.map_err(|error| self.classify_write_error(error, WriteOutcome::Unknown))
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database, or the error a caller gets while it is being reopened.
    fn database(&self, outcome: WriteOutcome) -> Result<Arc<Database>> {
        let slot = self.db.read().unwrap_or_else(|poison| poison.into_inner());
        match slot.as_ref() {
            Some(db) => Ok(db.clone()),
            None => Err(self.unavailable(
                self.health.previous(&self.dir),
                "the database is closed for a reopen",
                outcome,
            )),
        }
    }

    fn unavailable(
        &self,
        fault: crate::wire::admin::StorageFault,
        detail: &str,
        outcome: WriteOutcome,
    ) -> StoreError {
        StoreError::Unavailable(StorageUnavailable {
            fault,
            dir: self.dir.clone(),
            detail: detail.to_string(),
            free_bytes: health::free_bytes(&self.dir),
            outcome,
        })
    }

    /// Turns a redb error met by a write into what the caller is told: a storage fault becomes
    /// [`StoreError::Unavailable`] with `outcome` (and degrades the store); anything else is
    /// returned as it is. Writers that see errors from their own change (the engine) pass them
    /// through here with [`WriteOutcome::NotWritten`]: a change that failed was not committed.
    pub fn classify_write_error(&self, error: StoreError, outcome: WriteOutcome) -> StoreError {
        let StoreError::Db(db) = &error else {
            return error;
        };
        match health::classify(db) {
            Classified::Failed(fault, detail) => {
                self.health.failed(fault, &detail, &self.dir);
                self.unavailable(fault, &detail, outcome)
            }
            Classified::Previous => self.unavailable(
                self.health.previous(&self.dir),
                "the database refuses writes after an earlier I/O error until it is reopened",
                // Refused before writing, whatever the caller thought.
                WriteOutcome::NotWritten,
            ),
            Classified::Other => error,
        }
    }

    /// `Some` while the storage refuses writes: what failed, since when, what to do.
    pub fn degraded(&self) -> Option<crate::wire::admin::StorageDegraded> {
        self.health.degraded()
    }

    /// Rung when the store becomes degraded (the recovery loop waits on it).
    pub fn degraded_bell(&self) -> &tokio::sync::Notify {
        self.health.degraded_bell()
    }

    /// When degraded, reopens the database (what redb needs after an I/O error) and proves it
    /// with a write; on success the store is healthy again. After "disk full" it does not try
    /// until [`health::MIN_FREE_TO_REOPEN`] is free. Waits for in-flight writes to end first;
    /// reads are refused only for the moment of the swap. Blocking.
    pub fn try_recover(&self) -> Recovery {
        let Some(degraded) = self.health.degraded() else {
            return Recovery::NotNeeded;
        };
        if !self.commits_are_durable() {
            return Recovery::RestartNeeded;
        }
        if degraded.fault == crate::wire::admin::StorageFault::NoSpace
            && let Some(free) = health::free_bytes(&self.dir)
            && free < health::MIN_FREE_TO_REOPEN
        {
            return Recovery::WaitingForSpace { free_bytes: free };
        }
        let reopened = self.group.when_idle(|| self.reopen());
        let db = match reopened {
            Ok(db) => db,
            Err(error) => return Recovery::Failed(error.to_string()),
        };
        // The schema check writes (it commits even when nothing changed): the probe that writes
        // succeed again. It runs outside the group lock like any write.
        match check_schema(&db, &self.path) {
            Ok(()) => {
                self.health.recovered();
                Recovery::Recovered
            }
            Err(error) => {
                let error = self.classify_write_error(error, WriteOutcome::NotWritten);
                Recovery::Failed(error.to_string())
            }
        }
    }

    /// Closes the database and opens it again (redb repairs it if needed), and installs it for
    /// readers and writers. Readers that still hold the old one keep its file lock for a moment:
    /// the open is retried until they are done (a read is short).
    fn reopen(&self) -> Result<Arc<Database>> {
        let old = self
            .db
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        drop(old);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            match Database::create(&self.path) {
                Ok(db) => break Arc::new(db),
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => return Err(db_error(error)),
            }
        };
        *self.db.write().unwrap_or_else(|poison| poison.into_inner()) = Some(db.clone());
        tracing::info!(path = %self.path.display(), "storage: database reopened");
        Ok(db)
    }
}

/// Checks the file's schema version (refusing a newer one) and creates every table. It commits a
/// write transaction even when nothing changed.
fn check_schema(db: &Database, path: &Path) -> Result<()> {
    let txn = db.begin_write().map_err(db_error)?;
    {
        let mut meta = txn.open_table(META).map_err(db_error)?;
        let found = meta.get(SCHEMA_KEY).map_err(db_error)?.map(|v| v.value());
        match found {
            Some(version) if version > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    path: path.to_path_buf(),
                    found: version,
                });
            }
            Some(_) => {}
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(db_error)?;
            }
        }
        // Create every table so that readers never meet a missing one.
        txn.open_table(JOBS).map_err(db_error)?;
        txn.open_table(JOB_NAMES).map_err(db_error)?;
        txn.open_table(DUE).map_err(db_error)?;
        txn.open_table(INSTANCES).map_err(db_error)?;
        txn.open_table(JOB_INSTANCES).map_err(db_error)?;
        txn.open_table(ACTIVE).map_err(db_error)?;
        txn.open_table(RAFT_APPLIED).map_err(db_error)?;
        alerts::create_tables(&txn)?;
        rebuild_active_counts(&txn)?;
    }
    txn.commit().map_err(db_error)
}

impl Store {
    /// Runs `change` in a write transaction and returns once it is durably committed (committed
    /// only, for a store behind a Raft log: see [`Store::commit_behind_log`]); an `Err`
    /// (or a panic) writes nothing of it. Changes of concurrent callers share one commit, and a
    /// change may be run again when another change of its batch failed: it must not act outside
    /// `tx` (only its last run counts). If the commit fails, `write` fails. What the change
    /// announced (see [`WriteTx::announce`]) is published to the [`Feed`] once the commit is
    /// durable and before `write` returns, in commit order.
    ///
    /// Only the engine (applying commands through `machine::apply`) and tests write.
    pub fn write<T, E: From<StoreError>>(
        &self,
        change: impl FnMut(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E> {
        self.group.write(self, change)
    }

    /// The feed that committed effects are published to.
    pub fn feed(&self) -> &std::sync::Arc<Feed> {
        &self.feed
    }

    /// A snapshot of committed data. Works while the store is degraded (redb reads on after an
    /// I/O error); refused only for the moment of a reopen.
    pub fn read(&self) -> Result<ReadTx> {
        let db = self.database(WriteOutcome::ReadRefused)?;
        Ok(ReadTx {
            txn: db.begin_read().map_err(db_error)?,
        })
    }
}

/// Recounts `ACTIVE_COUNTS` from `ACTIVE` (one pass over the unfinished instances).
fn rebuild_active_counts(txn: &redb::WriteTransaction) -> Result<()> {
    let active = txn.open_table(ACTIVE).map_err(db_error)?;
    let mut counts = std::collections::BTreeMap::<JobId, u64>::new();
    for entry in active.iter().map_err(db_error)? {
        let (key, _) = entry.map_err(db_error)?;
        *counts.entry(key.value().0).or_default() += 1;
    }
    let mut table = txn.open_table(ACTIVE_COUNTS).map_err(db_error)?;
    table.retain(|_, _| false).map_err(db_error)?;
    for (job_id, count) in counts {
        table.insert(job_id, count).map_err(db_error)?;
    }
    Ok(())
}

/// A consistent snapshot for reading.
pub struct ReadTx {
    txn: redb::ReadTransaction,
}

/// An open write transaction. Methods keep the indexes in step with the records.
pub struct WriteTx {
    txn: redb::WriteTransaction,
    /// Instances this transaction wrote, as written, not yet taken into announced effects.
    written: Vec<Instance>,
    /// Effects to publish once this transaction commits (see [`WriteTx::announce`]).
    announced: Effects,
    /// Encoded commands to record once this transaction commits (see [`WriteTx::journal`]).
    journal: Vec<Vec<u8>>,
    /// Job records read and decoded so far (tests check the state machine's hot paths by it).
    #[cfg(test)]
    pub(crate) job_reads: std::cell::Cell<usize>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our model types serialize infallibly (no maps with non-string keys, no custom errors).
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt {
        table,
        reason: error.to_string(),
    })
}

fn key_ms(ms: UnixMs) -> u64 {
    ms.max(0) as u64
}

/// Reads shared by both transaction kinds, generic over redb's readable tables.
mod reads {
    use super::*;

    pub fn job(table: &impl ReadableTable<JobId, &'static [u8]>, id: JobId) -> Result<Option<Job>> {
        match table.get(id).map_err(db_error)? {
            Some(bytes) => Ok(Some(decode("jobs", bytes.value())?)),
            None => Ok(None),
        }
    }

    pub fn instance(
        table: &impl ReadableTable<InstanceId, &'static [u8]>,
        id: InstanceId,
    ) -> Result<Option<Instance>> {
        match table.get(id).map_err(db_error)? {
            Some(bytes) => Ok(Some(decode("instances", bytes.value())?)),
            None => Ok(None),
        }
    }

    pub fn job_id_by_name(
        table: &impl ReadableTable<&'static str, JobId>,
        name: &str,
    ) -> Result<Option<JobId>> {
        Ok(table.get(name).map_err(db_error)?.map(|v| v.value()))
    }

    pub fn active_count(table: &impl ReadableTable<JobId, u64>, job_id: JobId) -> Result<u64> {
        Ok(table
            .get(job_id)
            .map_err(db_error)?
            .map_or(0, |v| v.value()))
    }
}

/// Every record of one table, as (key, value) rendered to bytes: see [`ReadTx::export`].
pub type TableExport = Vec<(Vec<u8>, Vec<u8>)>;

impl ReadTx {
    /// Every table, record by record, in key order: a consistent export of the whole store (for
    /// checking that two stores are identical, and the shape a snapshot of the store takes).
    /// Keys are rendered by their debug form, values as stored.
    pub fn export(&self) -> Result<Vec<(&'static str, TableExport)>> {
        fn rows<K: redb::Key + 'static, V: redb::Value + 'static>(
            txn: &redb::ReadTransaction,
            table: TableDefinition<K, V>,
            value: impl Fn(V::SelfType<'_>) -> Vec<u8>,
        ) -> Result<TableExport>
        where
            for<'a> K::SelfType<'a>: std::fmt::Debug,
        {
            let table = txn.open_table(table).map_err(db_error)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(db_error)? {
                let (k, v) = entry.map_err(db_error)?;
                out.push((format!("{:?}", k.value()).into_bytes(), value(v.value())));
            }
            Ok(out)
        }
        let txn = &self.txn;
        let unit = |_: ()| Vec::new();
        Ok(vec![
            ("meta", rows(txn, META, |v: u64| v.to_le_bytes().to_vec())?),
            ("jobs", rows(txn, JOBS, |v: &[u8]| v.to_vec())?),
            (
                "job_names",
                rows(txn, JOB_NAMES, |v: u64| v.to_le_bytes().to_vec())?,
            ),
            ("due", rows(txn, DUE, unit)?),
            ("instances", rows(txn, INSTANCES, |v: &[u8]| v.to_vec())?),
            ("job_instances", rows(txn, JOB_INSTANCES, unit)?),
            ("active", rows(txn, ACTIVE, unit)?),
            (
                "active_counts",
                rows(txn, ACTIVE_COUNTS, |v: u64| v.to_le_bytes().to_vec())?,
            ),
            (
                "raft_applied",
                rows(txn, RAFT_APPLIED, |v: &[u8]| v.to_vec())?,
            ),
            ("channels", rows(txn, CHANNELS, |v: &[u8]| v.to_vec())?),
            ("job_health", rows(txn, JOB_HEALTH, |v: &[u8]| v.to_vec())?),
            ("alerts", rows(txn, ALERTS, |v: &[u8]| v.to_vec())?),
            ("alerts_due", rows(txn, ALERTS_DUE, unit)?),
        ])
    }

    pub fn job(&self, id: JobId) -> Result<Option<Job>> {
        reads::job(&self.txn.open_table(JOBS).map_err(db_error)?, id)
    }

    pub fn job_id_by_name(&self, name: &str) -> Result<Option<JobId>> {
        reads::job_id_by_name(&self.txn.open_table(JOB_NAMES).map_err(db_error)?, name)
    }

    pub fn jobs(&self) -> Result<Vec<Job>> {
        let table = self.txn.open_table(JOBS).map_err(db_error)?;
        let mut jobs = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (_, bytes) = entry.map_err(db_error)?;
            jobs.push(decode("jobs", bytes.value())?);
        }
        Ok(jobs)
    }

    pub fn job_count(&self) -> Result<u64> {
        self.txn
            .open_table(JOBS)
            .map_err(db_error)?
            .len()
            .map_err(db_error)
    }

    pub fn instance(&self, id: InstanceId) -> Result<Option<Instance>> {
        reads::instance(&self.txn.open_table(INSTANCES).map_err(db_error)?, id)
    }

    pub fn active_count(&self, job_id: JobId) -> Result<u64> {
        reads::active_count(
            &self.txn.open_table(ACTIVE_COUNTS).map_err(db_error)?,
            job_id,
        )
    }

    /// The earliest scheduled fire strictly after `after`, if any job has one.
    pub fn earliest_due_after(&self, after: UnixMs) -> Result<Option<UnixMs>> {
        let table = self.txn.open_table(DUE).map_err(db_error)?;
        let after = std::ops::Bound::Excluded((key_ms(after), u64::MAX));
        let mut range = table
            .range::<(u64, JobId)>((after, std::ops::Bound::Unbounded))
            .map_err(db_error)?;
        match range.next() {
            Some(entry) => Ok(Some(entry.map_err(db_error)?.0.value().0 as UnixMs)),
            None => Ok(None),
        }
    }

    /// Every non-terminal instance (the dispatcher's working set).
    pub fn active_instances(&self) -> Result<Vec<Instance>> {
        let active = self.txn.open_table(ACTIVE).map_err(db_error)?;
        let instances = self.txn.open_table(INSTANCES).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in active.iter().map_err(db_error)? {
            let (key, _) = entry.map_err(db_error)?;
            if let Some(instance) = reads::instance(&instances, key.value().1)? {
                out.push(instance);
            }
        }
        Ok(out)
    }

    /// The replicated engine's record `key` (see `RAFT_APPLIED`), as the engine encoded it.
    pub fn raft_applied(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let table = self.txn.open_table(RAFT_APPLIED).map_err(db_error)?;
        Ok(table
            .get(key)
            .map_err(db_error)?
            .map(|v| v.value().to_vec()))
    }

    pub fn instance_count(&self) -> Result<u64> {
        self.txn
            .open_table(INSTANCES)
            .map_err(db_error)?
            .len()
            .map_err(db_error)
    }
}

impl WriteTx {
    fn new(txn: redb::WriteTransaction) -> WriteTx {
        WriteTx {
            txn,
            written: Vec::new(),
            announced: Effects::default(),
            journal: Vec::new(),
            #[cfg(test)]
            job_reads: std::cell::Cell::new(0),
        }
    }

    /// The instances written since the last call, as written, in order.
    pub fn take_written(&mut self) -> Vec<Instance> {
        std::mem::take(&mut self.written)
    }

    /// Effects to publish once this transaction is durable (after what was announced before).
    pub fn announce(&mut self, effects: Effects) {
        self.announced.merge(effects);
    }

    /// An encoded command to append to the feed's recording once this transaction is durable.
    pub fn journal(&mut self, command: Vec<u8>) {
        self.journal.push(command);
    }

    /// What to publish at commit: everything announced, then instances written but not taken
    /// (a direct write, as tests make, is still followed); and the commands to record.
    fn into_parts(mut self) -> (redb::WriteTransaction, Effects, Vec<Vec<u8>>) {
        let mut effects = std::mem::take(&mut self.announced);
        effects.written.append(&mut self.written);
        (self.txn, effects, self.journal)
    }

    fn next_id(&mut self, key: &str) -> Result<u64> {
        let mut meta = self.txn.open_table(META).map_err(db_error)?;
        let next = meta.get(key).map_err(db_error)?.map_or(1, |v| v.value());
        meta.insert(key, next + 1).map_err(db_error)?;
        Ok(next)
    }

    /// Records the replicated engine's `key` (see `RAFT_APPLIED`) in this transaction, so that
    /// it commits with the commands it covers.
    pub fn put_raft_applied(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.txn
            .open_table(RAFT_APPLIED)
            .map_err(db_error)?
            .insert(key, value)
            .map_err(db_error)?;
        Ok(())
    }

    pub fn next_job_id(&mut self) -> Result<JobId> {
        self.next_id(NEXT_JOB_KEY)
    }

    pub fn next_instance_id(&mut self) -> Result<InstanceId> {
        self.next_id(NEXT_INSTANCE_KEY)
    }

    pub fn job(&self, id: JobId) -> Result<Option<Job>> {
        #[cfg(test)]
        self.job_reads.set(self.job_reads.get() + 1);
        reads::job(&self.txn.open_table(JOBS).map_err(db_error)?, id)
    }

    pub fn job_id_by_name(&self, name: &str) -> Result<Option<JobId>> {
        reads::job_id_by_name(&self.txn.open_table(JOB_NAMES).map_err(db_error)?, name)
    }

    /// Inserts or replaces a job, keeping the name and due indexes in step.
    pub fn put_job(&mut self, job: &Job) -> Result<()> {
        let old = self.job(job.id)?;
        self.replace_job(old.as_ref(), job)
    }

    /// [`WriteTx::put_job`] for a caller that already holds the stored job: `old` is the job as
    /// read (or last written) in this same transaction, `None` when there is none. It saves
    /// reading and decoding the record again.
    pub fn replace_job(&mut self, old: Option<&Job>, job: &Job) -> Result<()> {
        {
            let mut names = self.txn.open_table(JOB_NAMES).map_err(db_error)?;
            if let Some(old) = old
                && old.def.name != job.def.name
            {
                names.remove(old.def.name.as_str()).map_err(db_error)?;
            }
            names
                .insert(job.def.name.as_str(), job.id)
                .map_err(db_error)?;
        }
        {
            let mut due = self.txn.open_table(DUE).map_err(db_error)?;
            if let Some(fire) = old.and_then(|o| o.next_fire_ms) {
                due.remove((key_ms(fire), job.id)).map_err(db_error)?;
            }
            if let Some(fire) = job.next_fire_ms {
                due.insert((key_ms(fire), job.id), ()).map_err(db_error)?;
            }
        }
        self.txn
            .open_table(JOBS)
            .map_err(db_error)?
            .insert(job.id, encode(job).as_slice())
            .map_err(db_error)?;
        Ok(())
    }

    /// Moves the next fire of `job`, as read in this transaction, to `next`, keeping the due
    /// index in step. The scheduler's hot path: unlike [`WriteTx::put_job`] it neither reads the
    /// job again nor touches the name index.
    pub fn set_next_fire(&mut self, job: &mut Job, next: Option<UnixMs>) -> Result<()> {
        if job.next_fire_ms != next {
            let mut due = self.txn.open_table(DUE).map_err(db_error)?;
            if let Some(fire) = job.next_fire_ms {
                due.remove((key_ms(fire), job.id)).map_err(db_error)?;
            }
            if let Some(fire) = next {
                due.insert((key_ms(fire), job.id), ()).map_err(db_error)?;
            }
        }
        job.next_fire_ms = next;
        self.txn
            .open_table(JOBS)
            .map_err(db_error)?
            .insert(job.id, encode(&*job).as_slice())
            .map_err(db_error)?;
        Ok(())
    }

    /// Removes a job and its indexes. Its instances stay as history.
    pub fn delete_job(&mut self, id: JobId) -> Result<Option<Job>> {
        let Some(job) = self.job(id)? else {
            return Ok(None);
        };
        self.txn
            .open_table(JOB_NAMES)
            .map_err(db_error)?
            .remove(job.def.name.as_str())
            .map_err(db_error)?;
        if let Some(fire) = job.next_fire_ms {
            self.txn
                .open_table(DUE)
                .map_err(db_error)?
                .remove((key_ms(fire), id))
                .map_err(db_error)?;
        }
        self.txn
            .open_table(JOBS)
            .map_err(db_error)?
            .remove(id)
            .map_err(db_error)?;
        Ok(Some(job))
    }

    /// Jobs whose next fire is at or before `until` and after the cursor `after` (a fire time
    /// and job id, as returned), earliest first, at most `limit`. The cursor lets the scheduler
    /// walk past jobs it looked at and left where they were.
    pub fn due_jobs(
        &self,
        after: Option<(UnixMs, JobId)>,
        until: UnixMs,
        limit: usize,
    ) -> Result<Vec<(UnixMs, JobId)>> {
        use std::ops::Bound;
        let due = self.txn.open_table(DUE).map_err(db_error)?;
        let from = match after {
            Some((fire, id)) => Bound::Excluded((key_ms(fire), id)),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for entry in due
            .range::<(u64, JobId)>((from, Bound::Included((key_ms(until), u64::MAX))))
            .map_err(db_error)?
            .take(limit)
        {
            let (fire, id) = entry.map_err(db_error)?.0.value();
            out.push((fire as UnixMs, id));
        }
        Ok(out)
    }

    pub fn instance(&self, id: InstanceId) -> Result<Option<Instance>> {
        reads::instance(&self.txn.open_table(INSTANCES).map_err(db_error)?, id)
    }

    pub fn active_count(&self, job_id: JobId) -> Result<u64> {
        reads::active_count(
            &self.txn.open_table(ACTIVE_COUNTS).map_err(db_error)?,
            job_id,
        )
    }

    /// The unfinished instances of one job.
    pub fn active_of_job(&self, job_id: JobId) -> Result<Vec<Instance>> {
        let active = self.txn.open_table(ACTIVE).map_err(db_error)?;
        let instances = self.txn.open_table(INSTANCES).map_err(db_error)?;
        let mut out = Vec::new();
        for entry in active
            .range((job_id, 0)..=(job_id, u64::MAX))
            .map_err(db_error)?
        {
            let (key, _) = entry.map_err(db_error)?;
            if let Some(instance) = reads::instance(&instances, key.value().1)? {
                out.push(instance);
            }
        }
        Ok(out)
    }

    /// Inserts or replaces an instance. Refuses to move an instance out of a terminal state: that
    /// is the store's last line of defence for "terminal states never change".
    pub fn put_instance(&mut self, instance: &Instance) -> Result<()> {
        let old = self.instance(instance.id)?;
        self.replace_instance(old.as_ref().map(|old| &old.state), instance)
    }

    /// [`WriteTx::put_instance`] for a caller that already knows what is stored: `previous` is
    /// the stored instance's state as read in this same transaction (`None`: there is none, as
    /// for an id just taken from [`WriteTx::next_instance_id`]). It saves reading and decoding
    /// the record again, and touches only the indexes the change moves — on the hot paths
    /// (create, assign, report) that is most of a write's cost.
    pub fn replace_instance(
        &mut self,
        previous: Option<&InstanceState>,
        instance: &Instance,
    ) -> Result<()> {
        if let Some(old) = previous
            && old.is_terminal()
            && *old != instance.state
        {
            return Err(StoreError::Corrupt {
                table: "instances",
                reason: format!(
                    "refused to move instance {} from terminal state {} to {}",
                    instance.id,
                    old.kind().as_str(),
                    instance.state.kind().as_str()
                ),
            });
        }
        let key = (instance.job_id, instance.id);
        let was_active = previous.is_some_and(|old| !old.is_terminal());
        let is_active = !instance.state.is_terminal();
        if was_active != is_active {
            let mut active = self.txn.open_table(ACTIVE).map_err(db_error)?;
            if is_active {
                active.insert(key, ()).map_err(db_error)?;
            } else {
                active.remove(key).map_err(db_error)?;
            }
            drop(active);
            let mut counts = self.txn.open_table(ACTIVE_COUNTS).map_err(db_error)?;
            let count = reads::active_count(&counts, instance.job_id)?;
            let count = if is_active {
                count + 1
            } else {
                count.saturating_sub(1)
            };
            if count == 0 {
                counts.remove(instance.job_id).map_err(db_error)?;
            } else {
                counts.insert(instance.job_id, count).map_err(db_error)?;
            }
        }
        if previous.is_none() {
            self.txn
                .open_table(JOB_INSTANCES)
                .map_err(db_error)?
                .insert(key, ())
                .map_err(db_error)?;
        }
        self.txn
            .open_table(INSTANCES)
            .map_err(db_error)?
            .insert(instance.id, encode(instance).as_slice())
            .map_err(db_error)?;
        self.written.push(instance.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
