//! The Raft state machine: committed log entries applied to the store by `machine::apply`, the
//! same state machine the local engine runs.
//!
//! Each `apply` call runs its entries in one write transaction together with the record of the
//! last applied log id (and the membership, when an entry changes it) in the store's
//! `raft_applied` table: after a crash the store and its position in the log always agree, so
//! no entry is applied twice or skipped. A refused command is an answer ([`Answer::Refused`]),
//! written nowhere, so every replica refuses it alike; a store failure is not an answer but a
//! failure of this replica, and stops its Raft node. Effects of applied commands are published
//! to the store's feed once the transaction commits, as the local engine does.
//!
//! The store commits *behind the log* ([`Store::commit_behind_log`]): an entry is applied only
//! once it is committed, that is durable in the logs of a majority, so the store's own commits
//! need no fsync each. It is made durable at most a second apart, and always before a snapshot
//! lets the log before it be compacted; a crash takes the store back to its last durable point,
//! and openraft applies the log again from there on restart. One fsync fewer on every commit
//! round of the group.
//!
//! Snapshots are images of the whole store (see `snapshot.rs`); installing one replaces every
//! table in one transaction.
//!
//! This module must never write the store but through `machine::apply` and the image install.

use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder};

use super::snapshot::{
    LAST_APPLIED, MEMBERSHIP, SnapshotFile, applied_in_image, decode_image, encode_image,
    set_applied_in_image,
};
use super::types::{
    Answer, Answers, Entry, LogId, Proposal, Refusal, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, TypeConfig, decode, encode,
};
use crate::server::machine;
use crate::server::store::{Store, StoreError};

/// How often applied entries are made durable in the store, at the most (see [`Store::persist`]):
/// what a crash makes a server apply again from its log on restart.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// The state machine of one server: its store and its current snapshot.
#[derive(Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    snapshot: Arc<SnapshotFile>,
    /// When the store was last made durable.
    persisted: Arc<Mutex<Instant>>,
}

impl StateMachine {
    /// The state machine over `store`, keeping its current snapshot in `dir`. From now on the
    /// store commits behind the log ([`Store::commit_behind_log`]).
    pub fn new(store: Arc<Store>, dir: &Path) -> StateMachine {
        store.commit_behind_log();
        StateMachine {
            store,
            snapshot: Arc::new(SnapshotFile::new(dir)),
            persisted: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Makes the store durable if it has not been for [`PERSIST_EVERY`]. Blocking.
    fn persist_if_due(&self) -> Result<(), StoreError> {
        let mut persisted = self.persisted.lock().unwrap_or_else(|p| p.into_inner());
        if persisted.elapsed() >= PERSIST_EVERY {
            self.store.persist()?;
            *persisted = Instant::now();
        }
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// Runs `work` on a blocking thread (redb commits wait for the disk).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| StorageIOError::write_state_machine(&join))?
}

/// Applies `entries` in one write transaction and records the last one as applied.
fn apply_entries(store: &Store, entries: &[Entry]) -> Result<Vec<Answers>, StoreError> {
    let encoding = |error: rmp_serde::encode::Error| StoreError::Corrupt {
        table: "raft_applied",
        reason: error.to_string(),
    };
    store.write(|tx| {
        let mut answers = Vec::with_capacity(entries.len());
        let mut membership = None;
        for entry in entries {
            let answer = match &entry.payload {
                EntryPayload::Blank => vec![Answer::NoCommand],
                EntryPayload::Normal(Proposal(commands)) => {
                    let mut each = Vec::with_capacity(commands.len());
                    for command in commands {
                        each.push(match machine::apply(tx, command) {
                            Ok(applied) => {
                                tx.announce(applied.effects);
                                Answer::Applied(applied.response)
                            }
                            // A refusal wrote nothing; a store failure abandons the whole batch.
                            Err(error) => Answer::Refused(Refusal::from_apply_error(error)?),
                        });
                    }
                    each
                }
                EntryPayload::Membership(changed) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), changed.clone()));
                    vec![Answer::NoCommand]
                }
            };
            answers.push(answer);
        }
        let last: Option<LogId> = entries.last().map(|entry| entry.log_id);
        tx.put_raft_applied(LAST_APPLIED, &encode(&last).map_err(encoding)?)?;
        if let Some(membership) = &membership {
            tx.put_raft_applied(MEMBERSHIP, &encode(membership).map_err(encoding)?)?;
        }
        Ok(answers)
    })
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let read = || {
            let tx = self.store.read()?;
            Ok::<_, StoreError>((tx.raft_applied(LAST_APPLIED)?, tx.raft_applied(MEMBERSHIP)?))
        };
        let (last, membership) = read().map_err(|e| StorageIOError::read_state_machine(&e))?;
        let corrupt = |e: super::types::DecodeError| StorageIOError::read_state_machine(&e);
        let last = match last {
            Some(bytes) => decode::<Option<LogId>>(&bytes).map_err(corrupt)?,
            None => None,
        };
        let membership = match membership {
            Some(bytes) => decode(&bytes).map_err(corrupt)?,
            None => StoredMembership::default(),
        };
        Ok((last, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Answers>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|entry| entry.log_id) else {
            return Ok(Vec::new());
        };
        let machine = self.clone();
        blocking(move || {
            let answers = apply_entries(&machine.store, &entries)
                .and_then(|answers| machine.persist_if_due().map(|()| answers));
            answers.map_err(|e| StorageIOError::apply(last, &e).into())
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let store = self.store.clone();
        let file = self.snapshot.clone();
        let meta = meta.clone();
        blocking(move || {
            let failed = |e: &dyn std::fmt::Display| {
                StorageIOError::read_snapshot(
                    Some(meta.signature()),
                    &std::io::Error::other(e.to_string()),
                )
            };
            let mut image = decode_image(&data).map_err(|e| failed(&e))?;
            set_applied_in_image(&mut image, &meta).map_err(|e| failed(&e))?;
            // Durable before the snapshot is kept: the log before it may be compacted then.
            store.install_image(&image).map_err(|e| failed(&e))?;
            store.persist().map_err(|e| failed(&e))?;
            tracing::info!(
                snapshot = %meta.snapshot_id,
                last_log_index = meta.last_log_id.map(|id| id.index).unwrap_or(0),
                "installed a snapshot of the group's state from the leader"
            );
            // Kept as the current snapshot only once the store holds it.
            file.save(&meta, &data).map_err(|e| {
                StorageIOError::write_snapshot(
                    Some(meta.signature()),
                    &std::io::Error::other(e.to_string()),
                )
            })?;
            Ok(())
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let file = self.snapshot.clone();
        let loaded = blocking(move || {
            file.load().map_err(|e| {
                StorageIOError::read_snapshot(None, &std::io::Error::other(e.to_string())).into()
            })
        })
        .await?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    /// An image of the store, taken in one read transaction, with the log id and membership that
    /// transaction recorded as applied; saved as the current snapshot.
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let store = self.store.clone();
        let file = self.snapshot.clone();
        blocking(move || {
            let failed = |e: &dyn std::fmt::Display| {
                StorageIOError::write_snapshot(None, &std::io::Error::other(e.to_string()))
            };
            let image = store.export_image().map_err(|e| failed(&e))?;
            // What the image holds made durable before openraft, holding the snapshot, compacts
            // the log before it: a crash must never take the store back behind a compacted log.
            // (Applies that came after the image are made durable too; that is harmless.)
            store.persist().map_err(|e| failed(&e))?;
            let (last_log_id, last_membership) =
                applied_in_image(&image).map_err(|e| failed(&e))?;
            let data = encode_image(&image).map_err(|e| failed(&e))?;
            let position = match &last_log_id {
                Some(id) => format!("{}-{}", id.leader_id, id.index),
                None => "empty".to_string(),
            };
            let meta = SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id: format!("{position}-{}", ulid::Ulid::new()),
            };
            file.save(&meta, &data).map_err(|e| failed(&e))?;
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            })
        })
        .await
    }
}
