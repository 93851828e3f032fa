//! A running gossip node and the member list it maintains.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::transport::Transport;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion,
    spawn_chitchat,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::config::{GossipConfig, GossipError};
use crate::group_status::{GroupRole, GroupStatus};
use crate::node_info::{NodeInfo, keys, validate_tag};

/// How a member is seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Heartbeats arrive: the node can take work.
    Live,
    /// Silent past the failure detector's threshold (crashed, partitioned or paused).
    Dead,
    /// Announced a graceful shutdown.
    Left,
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemberState::Live => "live",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    #[serde(flatten)]
    pub info: NodeInfo,
    pub state: MemberState,
    /// Grows on every restart of the node.
    pub generation: u64,
    pub gossip_addr: SocketAddr,
    /// Wall-clock time (ms since the epoch) this node last saw the member's heartbeat advance.
    pub last_seen_ms: u64,
    /// A server's place in its replicated group, when it publishes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupStatus>,
}

impl Member {
    pub fn is_live(&self) -> bool {
        self.state == MemberState::Live
    }

    /// Everything but `last_seen_ms`, which moves every gossip round and is not a membership change.
    fn same_as(&self, other: &Member) -> bool {
        self.info == other.info
            && self.state == other.state
            && self.generation == other.generation
            && self.gossip_addr == other.gossip_addr
            && match (&self.group, &other.group) {
                (Some(a), Some(b)) => a.same_place(b),
                (a, b) => a.is_none() && b.is_none(),
            }
    }
}

/// The member list at one moment, sorted by id. The local node is always included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MembershipView {
    pub members: Vec<Member>,
}

impl MembershipView {
    pub fn get(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.info.id == id)
    }

    pub fn live_workers(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| m.is_live() && m.info.role == crate::Role::Worker)
    }

    /// The live server to talk to, if any: the leader of the highest term among servers that
    /// publish a group status, else the first live server (a single server, not in a group).
    pub fn live_server(&self) -> Option<&Member> {
        let servers = || {
            self.members
                .iter()
                .filter(|m| m.is_live() && m.info.role == crate::Role::Server)
        };
        servers()
            .filter(|m| m.group.is_some_and(|g| g.role == GroupRole::Leader))
            .max_by_key(|m| m.group.map(|g| g.term))
            .or_else(|| servers().find(|m| m.group.is_none()))
    }

    /// The live servers, the leader (by [`MembershipView::live_server`]) first.
    pub fn live_servers(&self) -> Vec<&Member> {
        let leader = self.live_server();
        let mut servers: Vec<&Member> = leader.into_iter().collect();
        servers.extend(self.members.iter().filter(|m| {
            m.is_live()
                && m.info.role == crate::Role::Server
                && leader.is_none_or(|l| l.info.id != m.info.id)
        }));
        servers
    }

    fn same_membership(&self, other: &MembershipView) -> bool {
        self.members.len() == other.members.len()
            && self
                .members
                .iter()
                .zip(&other.members)
                .all(|(a, b)| a.same_as(b))
    }
}

/// A node taking part in gossip. Dropping it stops gossip abruptly (peers will see it dead);
/// call [`Membership::leave`] for a graceful exit.
pub struct Membership {
    handle: Option<ChitchatHandle>,
    self_id: ChitchatId,
    info: Mutex<NodeInfo>,
    view_rx: watch::Receiver<MembershipView>,
    refresher: JoinHandle<()>,
    gossip_interval: Duration,
}

impl Membership {
    /// Joins the cluster: binds the gossip socket and starts gossiping with the seeds.
    /// Unreachable seeds are not an error: chitchat keeps trying them every round.
    pub async fn start(
        config: GossipConfig,
        info: NodeInfo,
        transport: &dyn Transport,
    ) -> Result<Membership, GossipError> {
        for tag in &info.tags {
            validate_tag(tag).map_err(|reason| GossipError::InvalidSetting {
                field: "tag",
                reason,
            })?;
        }
        if config.gossip_interval < Duration::from_millis(10) {
            return Err(GossipError::InvalidSetting {
                field: "gossip interval",
                reason: "must be at least 10ms".into(),
            });
        }
        if config.phi_threshold.is_nan() || config.phi_threshold <= 0.0 {
            return Err(GossipError::InvalidSetting {
                field: "phi threshold",
                reason: "must be a positive number".into(),
            });
        }
        // A restarted node must carry a larger generation, or peers ignore its fresh state.
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let self_id = ChitchatId::new(info.id.clone(), generation, config.advertise_addr);
        let chitchat_config = ChitchatConfig {
            chitchat_id: self_id.clone(),
            cluster_id: config.cluster_id.clone(),
            gossip_interval: config.gossip_interval,
            listen_addr: config.listen_addr,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: config.phi_threshold,
                sampling_window_size: 1_000,
                max_interval: (config.gossip_interval * 50).max(Duration::from_secs(10)),
                // The prior mean of heartbeat intervals: matching the gossip interval is what
                // makes detection take seconds rather than tens of seconds after start-up.
                initial_interval: config.gossip_interval,
                dead_node_grace_period: config.dead_node_grace_period,
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let handle = spawn_chitchat(chitchat_config, info.to_key_values(), transport)
            .await
            .map_err(|source| GossipError::Bind {
                addr: config.listen_addr,
                source,
            })?;

        let (view_tx, view_rx) = watch::channel(MembershipView::default());
        let refresher = tokio::spawn(refresh_view(
            handle.chitchat(),
            view_tx,
            config.gossip_interval,
        ));
        Ok(Membership {
            handle: Some(handle),
            self_id,
            info: Mutex::new(info),
            view_rx,
            refresher,
            gossip_interval: config.gossip_interval,
        })
    }

    pub fn self_id(&self) -> &str {
        &self.self_id.node_id
    }

    pub fn gossip_addr(&self) -> SocketAddr {
        self.self_id.gossip_advertise_addr
    }

    /// A watch of the member list: `changed()` fires on join, death, leave, restart or a change
    /// of any advertised field — not on mere heartbeats.
    pub fn watch(&self) -> watch::Receiver<MembershipView> {
        self.view_rx.clone()
    }

    pub fn view(&self) -> MembershipView {
        self.view_rx.borrow().clone()
    }

    /// Publishes how many tasks this node runs now.
    pub async fn set_running(&self, running: u32) {
        let mut info = self.info.lock().await;
        if info.running != running {
            info.running = running;
            self.publish(keys::RUNNING, running.to_string()).await;
        }
    }

    /// Publishes this server's place in its replicated group.
    pub async fn set_group(&self, status: GroupStatus) {
        self.publish(keys::GROUP, status.encode()).await;
    }

    pub async fn info(&self) -> NodeInfo {
        self.info.lock().await.clone()
    }

    async fn publish(&self, key: &str, value: String) {
        if let Some(handle) = &self.handle {
            handle
                .chitchat()
                .lock()
                .await
                .self_node_state()
                .set(key, value);
        }
    }

    /// Announces that this node is leaving, waits long enough for the announcement to spread
    /// (a few gossip rounds), then stops gossiping. Takes `&self` so that a node can leave while
    /// other parts of it still hold the membership.
    pub async fn leave(&self) {
        self.publish(keys::LEAVING, "1".into()).await;
        tokio::time::sleep(self.gossip_interval * 3).await;
        self.refresher.abort();
        if let Some(handle) = &self.handle
            && let Err(error) = handle.initiate_shutdown()
        {
            tracing::debug!(%error, "gossip shutdown");
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.refresher.abort();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Keeps the member list current. Wakes on chitchat's live-set changes and on a timer (deaths and
/// heartbeat ages are only visible by looking).
async fn refresh_view(
    chitchat: Arc<Mutex<chitchat::Chitchat>>,
    view_tx: watch::Sender<MembershipView>,
    interval: Duration,
) {
    let mut live_watch = chitchat.lock().await.live_nodes_watcher();
    let mut ticker = tokio::time::interval(interval / 2);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heartbeats: HashMap<ChitchatId, (u64, u64)> = HashMap::new();
    loop {
        let view = {
            let chitchat = chitchat.lock().await;
            compute_view(&chitchat, &mut last_heartbeats)
        };
        view_tx.send_if_modified(|current| {
            let changed = !current.same_membership(&view);
            *current = view;
            changed
        });
        tokio::select! {
            _ = ticker.tick() => {}
            changed = live_watch.changed() => if changed.is_err() { return },
        }
    }
}

fn compute_view(
    chitchat: &chitchat::Chitchat,
    last_heartbeats: &mut HashMap<ChitchatId, (u64, u64)>,
) -> MembershipView {
    let now_ms = now_ms();
    let self_id = chitchat.self_chitchat_id();
    let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
    // One entry per node id: a restarted node's older generations linger until collected.
    let mut newest: BTreeMap<&str, (&ChitchatId, &chitchat::NodeState)> = BTreeMap::new();
    for (id, state) in chitchat.node_states() {
        match newest.get(&*id.node_id) {
            Some((seen, _)) if seen.generation_id >= id.generation_id => {}
            _ => {
                newest.insert(&id.node_id, (id, state));
            }
        }
    }
    let mut seen_ids = HashSet::new();
    let members = newest
        .into_values()
        .filter_map(|(id, state)| {
            let info = NodeInfo::from_node_state(&id.node_id, state)?;
            let heartbeat = u64::from(state.heartbeat());
            let entry = last_heartbeats
                .entry(id.clone())
                .or_insert((heartbeat, now_ms));
            if entry.0 != heartbeat || id == self_id {
                *entry = (heartbeat, now_ms);
            }
            seen_ids.insert(id.clone());
            let member_state = if state.get(keys::LEAVING).is_some() {
                MemberState::Left
            } else if live.contains(id) {
                MemberState::Live
            } else {
                MemberState::Dead
            };
            Some(Member {
                info,
                state: member_state,
                generation: id.generation_id,
                gossip_addr: id.gossip_advertise_addr,
                last_seen_ms: entry.1,
                group: state.get(keys::GROUP).and_then(GroupStatus::decode),
            })
        })
        .collect();
    last_heartbeats.retain(|id, _| seen_ids.contains(id));
    MembershipView { members }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;
    use chitchat::transport::ChannelTransport;
    use std::time::Instant;

    fn info(id: &str, role: Role, tags: &[&str]) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            role,
            api_addr: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            capacity: 4,
            running: 0,
            version: "test".into(),
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn config(port: u16, seeds: &[u16]) -> GossipConfig {
        let mut config = GossipConfig::new("test-cluster", addr(port));
        config.gossip_interval = Duration::from_millis(50);
        config.seeds = seeds.iter().map(|p| addr(*p).to_string()).collect();
        config
    }

    /// Waits until `check` holds for the node's view, or panics after a generous deadline.
    async fn wait_for(
        node: &Membership,
        what: &str,
        check: impl Fn(&MembershipView) -> bool,
    ) -> Duration {
        let start = Instant::now();
        let mut watch = node.watch();
        loop {
            if check(&watch.borrow_and_update()) {
                return start.elapsed();
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("timed out waiting for {what}; view: {:#?}", node.view());
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        }
    }

    fn state_of(view: &MembershipView, id: &str) -> Option<MemberState> {
        view.get(id).map(|m| m.state)
    }

    #[tokio::test]
    async fn nodes_discover_each_other_and_see_advertised_fields() {
        let transport = ChannelTransport::with_mtu(65_507);
        let server = Membership::start(
            config(10_001, &[]),
            info("s", Role::Server, &[]),
            &transport,
        )
        .await
        .unwrap();
        let w1 = Membership::start(
            config(10_002, &[10_001]),
            info("w1", Role::Worker, &["billing"]),
            &transport,
        )
        .await
        .unwrap();
        let w2 = Membership::start(
            config(10_003, &[10_001]),
            info("w2", Role::Worker, &[]),
            &transport,
        )
        .await
        .unwrap();
        for node in [&server, &w1, &w2] {
            wait_for(node, "3 live members", |v| {
                v.members.len() == 3 && v.members.iter().all(Member::is_live)
            })
            .await;
        }
        let view = w2.view();
        let w1_seen = view.get("w1").unwrap();
        assert_eq!(w1_seen.info.tags, vec!["billing".to_string()]);
        assert_eq!(w1_seen.info.role, Role::Worker);
        assert_eq!(view.live_server().unwrap().info.id, "s");
        assert_eq!(view.live_workers().count(), 2);

        w1.set_running(3).await;
        wait_for(&server, "running count to spread", |v| {
            v.get("w1").is_some_and(|m| m.info.running == 3)
        })
        .await;
    }

    #[tokio::test]
    async fn a_silent_node_is_declared_dead_and_a_leaving_node_left() {
        let transport = ChannelTransport::with_mtu(65_507);
        let server = Membership::start(
            config(11_001, &[]),
            info("s", Role::Server, &[]),
            &transport,
        )
        .await
        .unwrap();
        let crashed = Membership::start(
            config(11_002, &[11_001]),
            info("crashed", Role::Worker, &[]),
            &transport,
        )
        .await
        .unwrap();
        let leaving = Membership::start(
            config(11_003, &[11_001]),
            info("leaving", Role::Worker, &[]),
            &transport,
        )
        .await
        .unwrap();
        wait_for(&server, "both workers live", |v| {
            v.live_workers().count() == 2
        })
        .await;
        // Let the failure detector learn the heartbeat rhythm before we stop one.
        tokio::time::sleep(Duration::from_millis(500)).await;

        drop(crashed);
        wait_for(&server, "crashed node dead", |v| {
            state_of(v, "crashed") == Some(MemberState::Dead)
        })
        .await;

        leaving.leave().await;
        wait_for(&server, "leaving node left", |v| {
            state_of(v, "leaving") == Some(MemberState::Left)
        })
        .await;
    }

    #[tokio::test]
    async fn a_node_of_another_cluster_is_not_a_member() {
        let transport = ChannelTransport::with_mtu(65_507);
        let server = Membership::start(
            config(12_001, &[]),
            info("s", Role::Server, &[]),
            &transport,
        )
        .await
        .unwrap();
        let mut foreign_config = config(12_002, &[12_001]);
        foreign_config.cluster_id = "someone-else".into();
        let _foreign = Membership::start(
            foreign_config,
            info("foreign", Role::Worker, &[]),
            &transport,
        )
        .await
        .unwrap();
        let member = Membership::start(
            config(12_003, &[12_001]),
            info("ours", Role::Worker, &[]),
            &transport,
        )
        .await
        .unwrap();
        wait_for(&server, "our worker live", |v| {
            state_of(v, "ours") == Some(MemberState::Live)
        })
        .await;
        // Several gossip rounds later, the foreign node is still unknown to both of ours.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(server.view().get("foreign").is_none());
        assert!(member.view().get("foreign").is_none());
    }

    #[tokio::test]
    async fn a_restarted_node_rejoins_with_a_new_generation() {
        let transport = ChannelTransport::with_mtu(65_507);
        let server = Membership::start(
            config(13_001, &[]),
            info("s", Role::Server, &[]),
            &transport,
        )
        .await
        .unwrap();
        let first = Membership::start(
            config(13_002, &[13_001]),
            info("w", Role::Worker, &[]),
            &transport,
        )
        .await
        .unwrap();
        wait_for(&server, "w live", |v| {
            state_of(v, "w") == Some(MemberState::Live)
        })
        .await;
        let first_generation = server.view().get("w").unwrap().generation;
        drop(first);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut restarted_info = info("w", Role::Worker, &["new"]);
        restarted_info.capacity = 9;
        let _second = Membership::start(config(13_002, &[13_001]), restarted_info, &transport)
            .await
            .unwrap();
        wait_for(&server, "w back with new state", |v| {
            v.get("w").is_some_and(|m| {
                m.is_live() && m.generation > first_generation && m.info.capacity == 9
            })
        })
        .await;
        assert_eq!(
            server
                .view()
                .members
                .iter()
                .filter(|m| m.info.id == "w")
                .count(),
            1,
            "one entry per node id"
        );
    }

    #[tokio::test]
    async fn invalid_tags_are_refused() {
        let transport = ChannelTransport::with_mtu(65_507);
        let error = Membership::start(
            config(14_001, &[]),
            info("w", Role::Worker, &["a b"]),
            &transport,
        )
        .await
        .err()
        .unwrap();
        assert!(error.to_string().contains("tag"), "{error}");
    }
}
