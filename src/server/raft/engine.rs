//! [`RaftEngine`]: the engine seam over a Raft group. A proposed command is appended to the
//! group's log through openraft (`client_write`) and answered once a quorum holds it and this
//! server's state machine has applied it — durably, in its store — so an answer is never given
//! for a command the group could still lose.
//!
//! Only the leader accepts proposals; on a follower `propose` fails with the leader's id (the
//! API's forwarding comes with the network). This module must never write the store itself:
//! the state machine does, for every server of the group alike.

use std::path::Path;
use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, RaftNetworkFactory};

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::types::{Answer, NodeId, TypeConfig};
use crate::server::command::Command;
use crate::server::engine::Engine;
use crate::server::machine::{ApplyError, Response};
use crate::server::store::{Store, StoreError};

/// Starts this server's Raft node over its data dir: the log in `raft-log.redb`, the state
/// machine on `store` (opened from the same dir), the current snapshot beside them. A pristine
/// node must then be made part of a group (`Raft::initialize` on a new group); a restarted one
/// resumes from what it stored.
pub async fn start_node<N: RaftNetworkFactory<TypeConfig>>(
    id: NodeId,
    dir: &Path,
    store: Arc<Store>,
    config: Config,
    network: N,
) -> anyhow::Result<Raft<TypeConfig>> {
    let config = Arc::new(config.validate()?);
    let log = LogStore::open(dir)?;
    let machine = StateMachine::new(store, dir);
    Ok(Raft::new(id, config, network, log, machine).await?)
}

/// The replicated engine of one server.
pub struct RaftEngine {
    raft: Raft<TypeConfig>,
    store: Arc<Store>,
    /// The runtime the Raft node runs on; `propose` is called from blocking threads and waits
    /// on it.
    runtime: tokio::runtime::Handle,
}

impl RaftEngine {
    /// `store` must be the store the node's state machine applies to.
    pub fn new(
        raft: Raft<TypeConfig>,
        store: Arc<Store>,
        runtime: tokio::runtime::Handle,
    ) -> RaftEngine {
        RaftEngine {
            raft,
            store,
            runtime,
        }
    }

    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }
}

impl Engine for RaftEngine {
    /// Blocking, like every engine's: never call it on a runtime thread.
    fn propose(&self, command: Command) -> Result<Response, ApplyError> {
        match self.runtime.block_on(self.raft.client_write(command)) {
            Ok(written) => match written.data {
                Answer::Applied(response) => Ok(response),
                Answer::Refused(refusal) => Err(refusal.into_apply_error()),
                Answer::NoCommand => Err(not_committed(
                    "the log answered a command with an entry that carries none",
                )),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(not_committed(&match forward.leader_id {
                    Some(leader) => format!(
                        "this server is not the group's leader; server {leader} is: send the \
                         write there"
                    ),
                    None => "the group has no leader right now (an election is under way, or \
                             too few servers are reachable for a quorum): try again shortly"
                        .to_string(),
                }))
            }
            Err(error) => Err(not_committed(&error.to_string())),
        }
    }

    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// A proposal the group did not commit: nothing of it was applied.
fn not_committed(why: &str) -> ApplyError {
    ApplyError::Store(StoreError::Commit(format!(
        "not committed by the group: {why}"
    )))
}
