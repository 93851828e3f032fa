//! The types Shoal's Raft group is built from: a log entry carries a [`Proposal`] — the
//! commands proposed together, applied in order — and applying it answers one [`Answer`] each; nodes are numbered (`u64`) and reached at an address
//! ([`openraft::BasicNode`]). Also the one encoding used for what the engine writes to disk
//! (log entries, votes, log ids, memberships, snapshots).
//!
//! This module defines values only: it does no I/O and holds no state.

use std::io::Cursor;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::server::command::Command;
use crate::server::machine::{ApplyError, Response};
use crate::spec::FieldError;

openraft::declare_raft_types!(
    /// Shoal's Raft type configuration.
    pub TypeConfig:
        D = Proposal,
        R = Answers,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type NodeId = u64;

/// The commands of one log entry, applied in order in one transaction. The leader gathers the
/// commands proposed while its previous entry was being committed into the next one: openraft
/// makes each entry durable before it takes the next, so one command per entry would bound the
/// group by the disk's fsync rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Proposal(pub Vec<Command>);

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} command(s)", self.0.len())
    }
}

/// What applying one entry answered: one [`Answer`] per command of its proposal (one
/// [`Answer::NoCommand`] for an entry that carries none).
pub type Answers = Vec<Answer>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::storage::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StorageIOError = openraft::StorageIOError<NodeId>;

/// What applying one log entry answered. Every replica applies the same entries to the same
/// store and so computes the same answer; only the leader's reaches the proposer.
// One answer per entry, moved once from the state machine to the proposer: not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Answer {
    /// The command was applied.
    Applied(Response),
    /// The command was refused: nothing of it was written, on any replica. A refusal is an
    /// answer, not a failure of the log.
    Refused(Refusal),
    /// The entry carried no command (a leader's blank entry or a membership change).
    NoCommand,
}

/// The leader's answer to a command forwarded by a follower (`/raft/v1/propose`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Forwarded {
    /// Committed and applied on the leader at log `index`.
    Answered { answer: Answer, index: u64 },
    /// The receiver does not lead (any more); `leader` if it knows who does.
    NotLeader { leader: Option<NodeId> },
    /// The leader could not commit it.
    Unavailable(crate::server::engine::GroupUnavailable),
}

/// Why a command was refused, typed as [`ApplyError`] is (so the API maps it to the same status
/// on every engine), minus the store failure — which is never an answer but a failure of the
/// replica that met it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    Invalid { field: String, reason: String },
    NotFound(String),
    Conflict(String),
}

impl Refusal {
    /// The refusal in `error`, or `Err(error)` when it is a store failure.
    pub fn from_apply_error(
        error: ApplyError,
    ) -> Result<Refusal, crate::server::store::StoreError> {
        match error {
            ApplyError::Invalid(FieldError { field, reason }) => {
                Ok(Refusal::Invalid { field, reason })
            }
            ApplyError::NotFound(what) => Ok(Refusal::NotFound(what)),
            ApplyError::Conflict(why) => Ok(Refusal::Conflict(why)),
            ApplyError::Store(error) => Err(error),
            // `apply` never answers this; were it to, it is this replica's failure, not an answer.
            ApplyError::Group(error) => {
                Err(crate::server::store::StoreError::Commit(error.to_string()))
            }
        }
    }

    pub fn into_apply_error(self) -> ApplyError {
        match self {
            Refusal::Invalid { field, reason } => ApplyError::Invalid(FieldError { field, reason }),
            Refusal::NotFound(what) => ApplyError::NotFound(what),
            Refusal::Conflict(why) => ApplyError::Conflict(why),
        }
    }
}

/// The version byte in front of everything the engine encodes to disk, as for commands.
const ENCODING_VERSION: u8 = 1;

/// Encodes `value` as a version byte and named MessagePack: compact, and self-describing for the
/// model's tagged enums (see `command.rs`).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let mut out = vec![ENCODING_VERSION];
    rmp_serde::encode::write_named(&mut out, value)?;
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("an empty record")]
    Empty,
    #[error("encoding version {0}, this build reads {ENCODING_VERSION}: run a newer shoal")]
    Version(u8),
    #[error(transparent)]
    Body(#[from] rmp_serde::decode::Error),
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&ENCODING_VERSION, body)) => Ok(rmp_serde::from_slice(body)?),
        Some((&other, _)) => Err(DecodeError::Version(other)),
    }
}
