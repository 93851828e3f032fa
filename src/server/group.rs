//! The server's place in a Raft group of servers: forming the group once the expected servers
//! are seen in gossip (`--bootstrap-expect`), publishing this server's role, term and progress in
//! gossip, and doing the leader's work — scheduler, dispatcher, retention, alert delivery — only
//! while this server leads, for one term at a time.
//!
//! On becoming leader of a term the work starts after a linearizable barrier (everything the
//! group committed before is applied here), from the store as it then is: the dispatcher
//! rebuilds its working set and redelivers committed assignments, the scheduler fires what the
//! election made late by each job's misfire policy. On losing the lead the term's work stops
//! before anything else is proposed in its name; its dispatcher's assignments carry the term, so
//! a worker that saw a newer one refuses them.
//!
//! A single server without `--bootstrap-expect` is not in a group: [`LeaderSlot::single`] holds
//! its work for as long as it runs. This module must never write the store; it proposes nothing
//! itself but membership changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::{BasicNode, Raft, ServerState};
use sha2::Digest;
use shoal_gossip::{GroupRole, GroupStatus, Membership, Role};
use tokio::task::JoinHandle;

use crate::server::dispatch::Dispatcher;
use crate::server::effects::Feed;
use crate::server::raft::engine::{Reachability, group_role};
use crate::server::raft::types::{NodeId, TypeConfig};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};

/// A server's Raft id: derived from its `--id`, so that every server computes every other's
/// from gossip, and a server restarted (or wiped and restarted) under its name is the same member.
pub fn node_id(server_id: &str) -> NodeId {
    let digest = sha2::Sha256::digest(server_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // Ids are shown to people: keep them to 53 bits (exact in JSON numbers), and never 0.
    (u64::from_le_bytes(bytes) >> 11).max(1)
}

/// The leader's work of the current term, as far as the API needs it: the dispatcher that
/// answers worker polls, and the term it serves.
#[derive(Clone, Default)]
pub struct LeaderSlot {
    current: Arc<RwLock<Option<(u64, Dispatcher)>>>,
    /// Where the leader's API is, when this server is not it (for "ask there" answers).
    leader_api: Arc<RwLock<Option<String>>>,
}

impl LeaderSlot {
    /// A single server's slot: it always leads.
    pub fn single(dispatcher: Dispatcher) -> LeaderSlot {
        let slot = LeaderSlot::default();
        slot.set(Some((0, dispatcher)));
        slot
    }

    fn set(&self, work: Option<(u64, Dispatcher)>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = work;
    }

    /// The dispatcher, while this server leads.
    pub fn dispatcher(&self) -> Option<Dispatcher> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, dispatcher)| dispatcher.clone())
    }

    /// The leader's API address, as this server knows it (None while it leads, or knows none).
    pub fn leader_api(&self) -> Option<String> {
        self.leader_api
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_leader_api(&self, api: Option<String>) {
        *self.leader_api.write().unwrap_or_else(|p| p.into_inner()) = api;
    }
}

/// Starts the leader's background work for one term; returns the dispatcher and the tasks.
pub type StartLeaderWork =
    Arc<dyn Fn(u64, Shutdown) -> (Dispatcher, Vec<JoinHandle<()>>) + Send + Sync>;

/// Gossip's view of which servers are reachable.
pub struct GossipReachability(pub Arc<Membership>);

impl Reachability for GossipReachability {
    /// A member's address is the API address it announced in gossip when it joined the group,
    /// so the two compare equal.
    fn is_reachable(&self, addr: &str) -> bool {
        self.0
            .view()
            .members
            .iter()
            .any(|m| m.is_live() && m.info.role == Role::Server && m.info.api_addr.as_str() == addr)
    }
}

/// This server as a member of its group: what the group's side of it needs to run.
pub struct GroupMember {
    pub raft: Raft<TypeConfig>,
    pub self_id: NodeId,
    pub bootstrap_expect: usize,
    pub membership: Arc<Membership>,
    pub slot: LeaderSlot,
    pub start_work: StartLeaderWork,
    pub feed: Arc<Feed>,
}

impl GroupMember {
    /// Runs the group's side of this server until shutdown: formation, gossip status,
    /// leadership.
    pub async fn run(self, shutdown: Shutdown) {
        let forming = tokio::spawn(form(
            self.raft.clone(),
            self.self_id,
            self.bootstrap_expect,
            self.membership.clone(),
            shutdown.clone(),
        ));
        let status = tokio::spawn(publish_status(
            self.raft.clone(),
            self.membership,
            shutdown.clone(),
        ));
        lead(
            self.raft,
            self.self_id,
            self.slot,
            self.start_work,
            self.feed,
            shutdown,
        )
        .await;
        let _ = forming.await;
        let _ = status.await;
    }
}

/// Forms the group once `expect` servers (this one included) announce themselves in gossip,
/// none of them yet in a group: the one with the lowest Raft id initializes it with all of them.
/// A server whose log already holds a membership (a restart), or that sees a group already
/// formed (a wiped server rejoining, a server being added), never initializes one.
async fn form(
    raft: Raft<TypeConfig>,
    self_id: NodeId,
    expect: usize,
    membership: Arc<Membership>,
    mut shutdown: Shutdown,
) {
    let mut logged_waiting = usize::MAX;
    loop {
        let in_group = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some();
        if in_group {
            return;
        }
        let view = membership.view();
        let servers: Vec<_> = view
            .members
            .iter()
            .filter(|m| m.is_live() && m.info.role == Role::Server && m.group.is_some())
            .collect();
        let formed_elsewhere = servers
            .iter()
            .any(|m| m.group.is_some_and(|g| g.role != GroupRole::Forming));
        if formed_elsewhere {
            if logged_waiting != 0 {
                tracing::info!(
                    "a server group already exists: waiting for its leader to replicate to this \
                     server (a server new to the group is added with `shoal servers add ID`)"
                );
                logged_waiting = 0;
            }
        } else if servers.len() >= expect {
            let nodes: BTreeMap<NodeId, BasicNode> = servers
                .iter()
                .map(|m| (node_id(&m.info.id), BasicNode::new(m.info.api_addr.clone())))
                .collect();
            if nodes.keys().next() == Some(&self_id) {
                tracing::info!(servers = ?servers.iter().map(|m| &m.info.id).collect::<Vec<_>>(),
                    "the expected servers are here: forming the group");
                match raft.initialize(nodes).await {
                    Ok(()) => return,
                    Err(error) => tracing::warn!(%error, "forming the group failed; retrying"),
                }
            }
        } else if logged_waiting != servers.len() {
            tracing::info!(
                seen = servers.len(),
                expect,
                "waiting for {} more server(s) to form the group (--bootstrap-expect {expect})",
                expect - servers.len()
            );
            logged_waiting = servers.len();
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Publishes role and term at once on every change, and the applied index at most twice a
/// second (it moves with every command).
async fn publish_status(
    raft: Raft<TypeConfig>,
    membership: Arc<Membership>,
    mut shutdown: Shutdown,
) {
    let mut metrics = raft.metrics();
    let mut published: Option<GroupStatus> = None;
    loop {
        let status = {
            let m = metrics.borrow_and_update();
            let in_group = m
                .membership_config
                .membership()
                .voter_ids()
                .next()
                .is_some()
                || m.membership_config
                    .membership()
                    .learner_ids()
                    .next()
                    .is_some();
            GroupStatus {
                role: group_role(m.state, in_group),
                term: m.current_term,
                applied: m.last_applied.map(|id| id.index).unwrap_or(0),
            }
        };
        if published != Some(status) {
            membership.set_group(status).await;
            published = Some(status);
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
        // Role changes go out at once; mere progress waits out the rest of the half second.
        let next = metrics.borrow().clone();
        if published
            .is_some_and(|p| p.term == next.current_term && p.role == group_role(next.state, true))
        {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// The work of one term this server leads.
struct Term {
    term: u64,
    trigger: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
}

impl Term {
    async fn stop(self, slot: &LeaderSlot, feed: &Feed) {
        slot.set(None);
        self.trigger.trigger();
        for task in self.tasks {
            let _ = task.await;
        }
        feed.unfollow_written();
        tracing::info!(term = self.term, "stopped the leader's work");
    }
}

/// How long a new leader waits for its barrier before looking at its role again.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the leader's work while this server leads, a fresh start each term.
async fn lead(
    raft: Raft<TypeConfig>,
    self_id: NodeId,
    slot: LeaderSlot,
    start_work: StartLeaderWork,
    feed: Arc<Feed>,
    mut shutdown: Shutdown,
) {
    let mut metrics = raft.metrics();
    let mut current: Option<Term> = None;
    loop {
        let (leading_term, leader_api) = {
            let m = metrics.borrow_and_update();
            let leading = m.state == ServerState::Leader && m.current_leader == Some(self_id);
            let leader_api = m
                .current_leader
                .filter(|id| *id != self_id)
                .and_then(|id| m.membership_config.membership().get_node(&id).cloned())
                .map(|node| node.addr);
            (leading.then_some(m.current_term), leader_api)
        };
        slot.set_leader_api(leader_api);
        if current.as_ref().map(|t| t.term) != leading_term {
            if let Some(term) = current.take() {
                term.stop(&slot, &feed).await;
            }
            if let Some(term) = leading_term {
                // Everything committed before this term is applied here before the work reads
                // the store: a linearizable barrier.
                match tokio::time::timeout(BARRIER_TIMEOUT, raft.ensure_linearizable()).await {
                    Ok(Ok(_)) => {
                        let (trigger, term_shutdown) = shutdown::channel();
                        let (dispatcher, tasks) = start_work(term, term_shutdown);
                        slot.set(Some((term, dispatcher)));
                        tracing::info!(term, "leading the group: scheduling and dispatching");
                        current = Some(Term {
                            term,
                            trigger,
                            tasks,
                        });
                    }
                    Ok(Err(error)) => {
                        tracing::info!(%error, term, "lost the lead before taking up its work");
                    }
                    Err(_elapsed) => {
                        tracing::warn!(
                            term,
                            "no quorum confirmed this server's lead in time; \
                            looking again"
                        );
                        // Looked at again at once, not at the next change of the metrics.
                        continue;
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait() => break,
            changed = metrics.changed() => if changed.is_err() {
                // The Raft node stopped by itself: a fatal error (a storage failure, a bug). A
                // server without its node serves nothing true; exit for a supervisor to restart
                // it, from what is durable.
                tracing::error!(
                    "this server's Raft node stopped (see the error above); exiting so that it \
                     is restarted from its data dir"
                );
                std::process::exit(70);
            },
        }
    }
    if let Some(term) = current.take() {
        term.stop(&slot, &feed).await;
    }
}

/// The servers of the group as the membership holds them: each voter's and learner's Raft id and
/// address.
pub fn members_of(raft: &Raft<TypeConfig>) -> (BTreeSet<NodeId>, BTreeMap<NodeId, String>) {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters = membership.voter_ids().collect();
    let nodes = membership
        .nodes()
        .map(|(id, node)| (*id, node.addr.clone()))
        .collect();
    (voters, nodes)
}
