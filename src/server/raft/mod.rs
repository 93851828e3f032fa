//! The replicated engine: a Raft group of servers (openraft) whose log carries [`Command`]s and
//! whose state machine is `machine::apply` on each server's own store.
//!
//! - `types.rs`: the Raft type configuration (entries carry commands, applying answers an
//!   [`types::Answer`]) and the on-disk encoding.
//! - `log_store.rs`: the log, vote and committed pointer in `raft-log.redb`.
//! - `state_machine.rs`: committed entries applied to the store with their log position, in one
//!   transaction; snapshots built from and installed into the store.
//! - `snapshot.rs`: the snapshot format (an image of the store) and the current snapshot file.
//! - `engine.rs`: [`engine::RaftEngine`], the engine seam over the group (propose = commit by
//!   a quorum, then applied here).
//!
//! This module must never write jobs or instances but through `machine::apply`, nor answer a
//! proposer before its command is committed by the group and applied.
//!
//! [`Command`]: crate::server::command::Command

// openraft's storage traits fix the error type (`StorageError`, ~224 bytes); its own examples
// allow this lint as well.
#![allow(clippy::result_large_err)]

pub mod engine;
pub mod log_store;
pub mod network;
pub mod snapshot;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod tests;
