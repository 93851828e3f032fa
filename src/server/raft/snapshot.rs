//! Snapshots of the state machine: what one holds, how it is encoded, and where the current one
//! is kept.
//!
//! A snapshot is the store's image ([`StoreImage`]: every table's raw rows, taken in one read
//! transaction) encoded like everything the engine writes (a version byte and MessagePack). The
//! image includes the `raft_applied` table, so the log id and membership a snapshot covers are
//! read from the very transaction its data came from — they cannot disagree.
//!
//! The current snapshot (the last one built or installed) is kept in one file,
//! `raft-snapshot.bin` in the data dir, replaced atomically (written to a temporary file, synced,
//! renamed): a restarted server can still send it to a follower whose log it has purged. Only
//! one is kept; replacing it deletes the one before.
//!
//! This module never writes the store; `state_machine.rs` builds and installs.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::types::{DecodeError, LogId, SnapshotMeta, StoredMembership, decode, encode};
use crate::server::store::{Row, StoreImage};

pub const SNAPSHOT_FILE: &str = "raft-snapshot.bin";

/// The `raft_applied` table's keys: the last applied log id and the last applied membership.
pub const LAST_APPLIED: &str = "last_applied";
pub const MEMBERSHIP: &str = "membership";
const RAFT_APPLIED_TABLE: &str = "raft_applied";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot file {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("decoding a snapshot: {0}")]
    Decode(#[from] DecodeError),
    #[error("encoding a snapshot: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// The snapshot file's content: the snapshot's description and its data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

pub fn encode_image(image: &StoreImage) -> Result<Vec<u8>, SnapshotError> {
    Ok(encode(image)?)
}

pub fn decode_image(data: &[u8]) -> Result<StoreImage, SnapshotError> {
    Ok(decode(data)?)
}

/// The last applied log id and membership recorded in `image` (none and empty for a store that
/// applied nothing yet).
pub fn applied_in_image(
    image: &StoreImage,
) -> Result<(Option<LogId>, StoredMembership), SnapshotError> {
    let value = |key: &str| {
        image
            .tables
            .iter()
            .filter(|table| table.name == RAFT_APPLIED_TABLE)
            .flat_map(|table| table.rows.iter())
            .find(|row| row.key == key.as_bytes())
            .map(|row| row.value.as_slice())
    };
    let last = match value(LAST_APPLIED) {
        Some(bytes) => decode::<Option<LogId>>(bytes)?,
        None => None,
    };
    let membership = match value(MEMBERSHIP) {
        Some(bytes) => decode(bytes)?,
        None => StoredMembership::default(),
    };
    Ok((last, membership))
}

/// Makes `image` record `meta`'s log id and membership as applied (replacing what it recorded),
/// so that installing it writes the data and its position in one transaction.
pub fn set_applied_in_image(
    image: &mut StoreImage,
    meta: &SnapshotMeta,
) -> Result<(), SnapshotError> {
    let mut rows = vec![Row {
        key: LAST_APPLIED.as_bytes().to_vec(),
        value: encode(&meta.last_log_id)?,
    }];
    // A store that never applied a membership has no record of one (it reads as empty): so
    // does its image.
    if meta.last_membership != StoredMembership::default() {
        rows.push(Row {
            key: MEMBERSHIP.as_bytes().to_vec(),
            value: encode(&meta.last_membership)?,
        });
    }
    image
        .tables
        .retain(|table| table.name != RAFT_APPLIED_TABLE);
    image.tables.push(crate::server::store::TableImage {
        name: RAFT_APPLIED_TABLE.to_string(),
        rows,
    });
    Ok(())
}

/// The current snapshot, in the data dir.
pub struct SnapshotFile {
    path: PathBuf,
}

impl SnapshotFile {
    pub fn new(dir: &Path) -> SnapshotFile {
        SnapshotFile {
            path: dir.join(SNAPSHOT_FILE),
        }
    }

    /// Replaces the current snapshot with `meta` and `data`, atomically and durably.
    pub fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), SnapshotError> {
        let bytes = encode(&StoredSnapshot {
            meta: meta.clone(),
            data: data.to_vec(),
        })?;
        let io = |error| SnapshotError::Io {
            path: self.path.clone(),
            error,
        };
        let temporary = self.path.with_extension("bin.partial");
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        // The rename itself must survive a crash too.
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    /// The current snapshot, if one was saved.
    pub fn load(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, SnapshotError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(SnapshotError::Io {
                    path: self.path.clone(),
                    error,
                });
            }
        };
        let stored: StoredSnapshot = decode(&bytes)?;
        Ok(Some((stored.meta, stored.data)))
    }
}
