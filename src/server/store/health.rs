//! Storage faults: which redb errors mean the data dir's storage failed (a full disk, an I/O
//! error), the errors a caller gets for them, and the store's degraded state, logged once per
//! change of state. What to do about a fault (reopening the database) is
//! [`Store::try_recover`](super::Store::try_recover); this module never touches the database.
//!
//! What redb 4.6 does after an I/O error (LIBRARY-NOTES §9): the failing commit returns
//! `StorageError::Io`, every later `begin_write` returns `PreviousIo` until the database is
//! closed and opened again, reads of committed data keep working, and the failed commit may turn
//! out durable after the reopen. So a failed commit's outcome is *unknown*, a refused
//! `begin_write` wrote nothing, and only a reopen clears the state.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::model::now_ms;
use crate::wire::admin::{StorageDegraded, StorageFault};

/// Free space below which a reopen after "disk full" is not even tried: it would only fail again.
pub const MIN_FREE_TO_REOPEN: u64 = 1024 * 1024;

/// What became of the change a caller asked for when the storage failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Refused before anything was written (the database refuses writes until it is reopened).
    NotWritten,
    /// The commit itself failed: redb may still have made it durable.
    Unknown,
    /// A read found the database closed for a moment, while it is being reopened.
    ReadRefused,
}

/// The error a caller gets when the storage failed: what happened, on which data dir, what became
/// of the change, and what to do.
#[derive(Debug, Clone)]
pub struct StorageUnavailable {
    pub fault: StorageFault,
    pub dir: PathBuf,
    /// What the operating system or redb said.
    pub detail: String,
    /// Free bytes on the data dir's file system when the error was made, if known.
    pub free_bytes: Option<u64>,
    pub outcome: WriteOutcome,
}

impl std::fmt::Display for StorageUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = self.dir.display();
        let free = match self.free_bytes {
            Some(bytes) => format!(", {} KiB free", bytes / 1024),
            None => String::new(),
        };
        match self.fault {
            StorageFault::NoSpace => write!(
                f,
                "the data dir's disk is full ({}): free space on the file system holding {dir}{free}",
                self.detail
            )?,
            StorageFault::Io => write!(
                f,
                "the data dir's storage failed ({}): check the disk holding {dir} (the kernel log, \
                 its health){free}",
                self.detail
            )?,
        }
        match self.outcome {
            WriteOutcome::NotWritten => write!(
                f,
                "; nothing of this change was written. The server reopens its database by itself \
                 and takes writes again once they succeed (GET /healthz answers ok then): retry \
                 then"
            ),
            WriteOutcome::Unknown => write!(
                f,
                "; the outcome of this change is unknown (its commit failed part-way and may still \
                 turn out durable): check with `shoal job show NAME` or `shoal instance list --job \
                 NAME` before retrying (a retried create of a name that now exists is refused as a \
                 conflict naming the job)"
            ),
            WriteOutcome::ReadRefused => write!(
                f,
                "; the database is being reopened after the failure: retry in a moment"
            ),
        }
    }
}

/// How a redb error relates to the storage.
pub(super) enum Classified {
    /// The storage failed now, with this fault and what the OS said.
    Failed(StorageFault, String),
    /// redb refuses because of an earlier I/O error (`PreviousIo`).
    Previous,
    /// Not a storage fault (a bug, a corrupt record, a lock).
    Other,
}

pub(super) fn classify(error: &redb::Error) -> Classified {
    match error {
        redb::Error::Io(io) => {
            let fault = if is_no_space(io) {
                StorageFault::NoSpace
            } else {
                StorageFault::Io
            };
            Classified::Failed(fault, io.to_string())
        }
        redb::Error::PreviousIo => Classified::Previous,
        _ => Classified::Other,
    }
}

fn is_no_space(error: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    error.kind() == std::io::ErrorKind::StorageFull
        || error.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
}

/// Bytes available to this user on the file system holding `dir`, if the OS says.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The store's degraded state (`None`: healthy), and the bell the recovery loop waits on.
#[derive(Default)]
pub(super) struct Health {
    state: Mutex<Option<StorageDegraded>>,
    degraded_bell: tokio::sync::Notify,
}

impl Health {
    pub(super) fn degraded(&self) -> Option<StorageDegraded> {
        self.lock().clone()
    }

    pub(super) fn degraded_bell(&self) -> &tokio::sync::Notify {
        &self.degraded_bell
    }

    /// Records a storage failure. Logs only when the state changes (healthy to degraded, or
    /// another fault), so a refused write per second does not make a log line per second.
    pub(super) fn failed(&self, fault: StorageFault, detail: &str, dir: &Path) {
        let mut state = self.lock();
        if state.as_ref().is_some_and(|now| now.fault == fault) {
            return;
        }
        let message = match fault {
            StorageFault::NoSpace => format!(
                "the data dir's disk is full: free space on the file system holding {}; writes \
                 resume by themselves",
                dir.display()
            ),
            StorageFault::Io => format!(
                "the data dir's storage failed ({detail}): check the disk holding {}; the server \
                 reopens its database by itself",
                dir.display()
            ),
        };
        tracing::warn!(
            fault = fault.label(),
            free_bytes = free_bytes(dir),
            "storage degraded: {message} ({detail}); writes are refused, reads answer"
        );
        *state = Some(StorageDegraded {
            fault,
            message,
            since_ms: now_ms(),
        });
        drop(state);
        self.degraded_bell.notify_one();
    }

    /// The fault to report for a `PreviousIo` refusal: the one recorded, else an I/O error (the
    /// failure that caused it was not seen through this store, which should not happen).
    pub(super) fn previous(&self, dir: &Path) -> StorageFault {
        if let Some(degraded) = self.degraded() {
            return degraded.fault;
        }
        self.failed(StorageFault::Io, "an earlier I/O error", dir);
        StorageFault::Io
    }

    /// Records that writes succeed again; logs it once. Returns whether it was degraded.
    pub(super) fn recovered(&self) -> bool {
        let Some(was) = self.lock().take() else {
            return false;
        };
        tracing::info!(
            fault = was.fault.label(),
            degraded_for_ms = now_ms() - was.since_ms,
            "storage recovered: writes succeed again"
        );
        true
    }

    fn lock(&self) -> MutexGuard<'_, Option<StorageDegraded>> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}
