//! [`RaftEngine`]: the engine seam over a Raft group. A proposed command is appended to the
//! group's log through openraft (`client_write`) and answered once a quorum holds it and this
//! server's state machine has applied it — durably, in its store — so an answer is never given
//! for a command the group could still lose.
//!
//! On a follower, `propose` forwards the command to the leader (`/raft/v1/propose`) and, once the
//! leader answers, waits until this server has applied it too — so a client that wrote through a
//! follower reads its own write there. Without a leader, or without a quorum, a proposal fails
//! at once with [`GroupUnavailable`], naming how many servers are reachable of how many; a
//! proposal that entered the log but was not committed in time is said to have an unknown
//! outcome. This module must never write the store itself: the state machine does, for every
//! server of the group alike.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, RaftNetworkFactory, ServerState};

use super::log_store::LogStore;
use super::network::{PeerWire, WireError, base_url};
use super::state_machine::StateMachine;
use super::types::{Answer, Answers, Forwarded, NodeId, Proposal, TypeConfig};
use crate::server::command::Command;
use crate::server::engine::{Engine, GroupUnavailable};
use crate::server::machine::{ApplyError, Response};
use crate::server::store::{Store, StoreError};

/// How long the leader waits for a quorum to commit a command before saying it could not.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a forwarded command may take, the leader's commit included.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a proposal waits for a leader to be known (an election takes about a second).
const LEADER_WAIT: Duration = Duration::from_secs(3);
/// How long a follower waits to apply what the leader committed for it before answering anyway.
const READ_OWN_WRITE_WAIT: Duration = Duration::from_secs(3);

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

/// Which servers of the group are reachable, as far as this server can tell: a way to count them
/// for the errors that name how many are (gossip's live servers, in a real server).
pub trait Reachability: Send + Sync {
    /// Whether the server whose API is at `addr` (its membership address) is reachable.
    fn is_reachable(&self, addr: &str) -> bool;
}

/// A server's role in its group as gossip and the API name it (`Forming` before it is in one).
pub fn group_role(state: ServerState, in_group: bool) -> shoal_gossip::GroupRole {
    use shoal_gossip::GroupRole;
    match state {
        _ if !in_group => GroupRole::Forming,
        ServerState::Leader => GroupRole::Leader,
        ServerState::Follower => GroupRole::Follower,
        ServerState::Candidate => GroupRole::Candidate,
        ServerState::Learner => GroupRole::Learner,
        ServerState::Shutdown => GroupRole::Forming,
    }
}

/// The replicated engine of one server.
pub struct RaftEngine {
    group: GroupView,
    store: Arc<Store>,
    wire: PeerWire,
    /// Commands waiting to go into the next log entry, when this server leads.
    batches: Arc<Batches>,
    /// The runtime the Raft node runs on; `propose` is called from blocking threads and waits
    /// on it.
    runtime: tokio::runtime::Handle,
}

/// The Raft node, and how many of its group's servers are reachable.
#[derive(Clone)]
struct GroupView {
    id: NodeId,
    raft: Raft<TypeConfig>,
    reachability: Arc<dyn Reachability>,
}

impl GroupView {
    /// Voters of the group, those reachable, and a quorum.
    fn counts(&self) -> (usize, usize, usize) {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let reachable = voters
            .iter()
            .filter(|id| {
                **id == self.id
                    || membership
                        .get_node(id)
                        .is_some_and(|node| self.reachability.is_reachable(&node.addr))
            })
            .count();
        (reachable, voters.len().max(1), voters.len() / 2 + 1)
    }

    fn no_leader(&self) -> GroupUnavailable {
        let (reachable, members, quorum) = self.counts();
        GroupUnavailable::NoLeader {
            reachable,
            members,
            quorum,
        }
    }
}

/// Most commands in one log entry.
const MAX_BATCH: usize = 1_024;

/// Commands proposed on the leader, waiting for the next log entry.
#[derive(Default)]
struct Batches {
    pending: std::sync::Mutex<Vec<(Command, tokio::sync::oneshot::Sender<Forwarded>)>>,
    wake: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
}

impl Batches {
    fn take(&self) -> Vec<(Command, tokio::sync::oneshot::Sender<Forwarded>)> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let take = pending.len().min(MAX_BATCH);
        let rest = pending.split_off(take);
        std::mem::replace(&mut *pending, rest)
    }
}

/// Commits the waiting commands, as many as are waiting in one entry, one entry at a time: while
/// an entry is being committed the next one fills (group commit, as the local engine's).
async fn batch_loop(group: GroupView, batches: Arc<Batches>) {
    loop {
        let batch = batches.take();
        if batch.is_empty() {
            if batches.closed.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            batches.wake.notified().await;
            continue;
        }
        let (commands, waiting): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
        let outcome = commit(&group, commands).await;
        for (k, waiter) in waiting.into_iter().enumerate() {
            let answer = match &outcome {
                Ok((answers, index)) => match answers.get(k) {
                    Some(answer) => Forwarded::Answered {
                        answer: answer.clone(),
                        index: *index,
                    },
                    None => Forwarded::Answered {
                        answer: Answer::NoCommand,
                        index: *index,
                    },
                },
                Err(other) => other.clone(),
            };
            let _ = waiter.send(answer);
        }
    }
}

/// Commits one entry of `commands`: their answers and the entry's index, or why not.
async fn commit(group: &GroupView, commands: Vec<Command>) -> Result<(Answers, u64), Forwarded> {
    let (reachable, members, quorum) = group.counts();
    // Refused before it enters the log: a command appended without a quorum would take effect
    // whenever servers came back, long after its caller was told it failed.
    if reachable < quorum {
        return Err(Forwarded::Unavailable(GroupUnavailable::NoQuorum {
            reachable,
            members,
            quorum,
            outcome_unknown: false,
        }));
    }
    let written =
        tokio::time::timeout(COMMIT_TIMEOUT, group.raft.client_write(Proposal(commands))).await;
    match written {
        Ok(Ok(written)) => Ok((written.data, written.log_id.index)),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            Err(Forwarded::NotLeader {
                leader: forward.leader_id,
            })
        }
        Ok(Err(error)) => Err(Forwarded::Unavailable(GroupUnavailable::NoQuorum {
            reachable,
            members,
            quorum,
            outcome_unknown: !matches!(error, RaftError::APIError(_)),
        })),
        Err(_elapsed) => {
            let (reachable, members, quorum) = group.counts();
            Err(Forwarded::Unavailable(GroupUnavailable::NoQuorum {
                reachable,
                members,
                quorum,
                outcome_unknown: true,
            }))
        }
    }
}

impl RaftEngine {
    /// `store` must be the store the node's state machine applies to.
    pub fn new(
        id: NodeId,
        raft: Raft<TypeConfig>,
        store: Arc<Store>,
        wire: PeerWire,
        reachability: Arc<dyn Reachability>,
        runtime: tokio::runtime::Handle,
    ) -> RaftEngine {
        let group = GroupView {
            id,
            raft,
            reachability,
        };
        let batches = Arc::new(Batches::default());
        runtime.spawn(batch_loop(group.clone(), batches.clone()));
        RaftEngine {
            group,
            store,
            wire,
            batches,
            runtime,
        }
    }

    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.group.raft
    }

    /// The group as this server sees it, for `/api/v1/cluster` and the console's header.
    pub fn view(&self) -> crate::wire::admin::ClusterGroup {
        let metrics = self.group.raft.metrics().borrow().clone();
        let (reachable, members, quorum) = self.group.counts();
        let membership = metrics.membership_config.membership();
        let in_group = membership.voter_ids().next().is_some();
        crate::wire::admin::ClusterGroup {
            role: group_role(metrics.state, in_group),
            term: metrics.current_term,
            applied: metrics.last_applied.map(|id| id.index).unwrap_or(0),
            leader_api: metrics
                .current_leader
                .and_then(|id| membership.get_node(&id))
                .map(|node| node.addr.clone()),
            reachable,
            members,
            quorum,
        }
    }

    fn no_leader(&self) -> GroupUnavailable {
        self.group.no_leader()
    }

    /// The leader's API URL when another server leads: what a follower's answers name in
    /// [`LEADER_HEADER`](crate::wire::admin::LEADER_HEADER).
    pub fn leader_elsewhere(&self) -> Option<String> {
        let metrics = self.group.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader.filter(|id| *id != self.group.id)?;
        metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|node| base_url(&node.addr))
    }

    /// The wire to the other servers of the group.
    pub fn wire(&self) -> &PeerWire {
        &self.wire
    }

    /// Commits `command` as the leader, in the next log entry with whatever else is proposed
    /// meanwhile. `NotLeader` when this server does not lead (any more).
    pub async fn propose_as_leader(&self, command: Command) -> Forwarded {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.batches
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((command, done));
        self.batches.wake.notify_one();
        match answer.await {
            Ok(answer) => answer,
            // The batch loop stopped (the server is stopping) with the command taken.
            Err(_) => {
                let (reachable, members, quorum) = self.group.counts();
                Forwarded::Unavailable(GroupUnavailable::NoQuorum {
                    reachable,
                    members,
                    quorum,
                    outcome_unknown: true,
                })
            }
        }
    }

    /// Hands `command` to the leader `leader` and waits to apply what it committed.
    async fn forward(&self, leader: NodeId, command: &Command) -> Result<Answer, ApplyError> {
        let metrics = self.group.raft.metrics().borrow().clone();
        let Some(node) = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
        else {
            return Err(self.no_leader().into());
        };
        let answer: Forwarded = self
            .wire
            .call(&base_url(&node.addr), "propose", command, FORWARD_TIMEOUT)
            .await
            .map_err(|error| {
                let cause = match &error {
                    WireError::Unreachable { cause, .. } | WireError::Refused { cause, .. } => {
                        cause.clone()
                    }
                };
                GroupUnavailable::LeaderUnreachable {
                    leader: node.addr.clone(),
                    cause,
                }
            })?;
        match answer {
            Forwarded::Answered { answer, index } => {
                // Read-your-writes on this server; the answer stands even if applying lags.
                let _ = self
                    .group
                    .raft
                    .wait(Some(READ_OWN_WRITE_WAIT))
                    .applied_index_at_least(Some(index), "the forwarded command is applied here")
                    .await;
                Ok(answer)
            }
            Forwarded::NotLeader { .. } => Err(self.no_leader().into()),
            Forwarded::Unavailable(error) => Err(error.into()),
        }
    }

    async fn propose_async(&self, command: Command) -> Result<Response, ApplyError> {
        // During an election (or before a new server hears from the group) there is briefly no
        // leader: wait for one rather than refuse at once.
        let _ = self
            .group
            .raft
            .wait(Some(LEADER_WAIT))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await;
        let metrics = self.group.raft.metrics().borrow().clone();
        let id = self.group.id;
        let answer = match metrics.current_leader {
            Some(leader) if leader == id && metrics.state == ServerState::Leader => {
                match self.propose_as_leader(command.clone()).await {
                    Forwarded::Answered { answer, .. } => answer,
                    // Deposed meanwhile: hand it to the new leader, if there is one.
                    Forwarded::NotLeader {
                        leader: Some(leader),
                    } if leader != id => self.forward(leader, &command).await?,
                    Forwarded::NotLeader { .. } => return Err(self.no_leader().into()),
                    Forwarded::Unavailable(error) => return Err(error.into()),
                }
            }
            Some(leader) if leader != id => self.forward(leader, &command).await?,
            _ => return Err(self.no_leader().into()),
        };
        match answer {
            Answer::Applied(response) => Ok(response),
            Answer::Refused(refusal) => Err(refusal.into_apply_error()),
            Answer::NoCommand => Err(ApplyError::Store(StoreError::Commit(
                "the log answered a command with an entry that carries none".into(),
            ))),
        }
    }
}

impl Drop for RaftEngine {
    fn drop(&mut self) {
        self.batches
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.batches.wake.notify_one();
    }
}

impl Engine for RaftEngine {
    /// Blocking, like every engine's: never call it on a runtime thread.
    fn propose(&self, command: Command) -> Result<Response, ApplyError> {
        self.runtime.block_on(self.propose_async(command))
    }

    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}
