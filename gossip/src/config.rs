//! Gossip settings and the errors of starting a node.

use std::net::SocketAddr;
use std::time::Duration;

/// How a node takes part in gossip. Every field has a sensible default (see [`GossipConfig::new`]).
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// Nodes of another cluster id are never members of ours.
    pub cluster_id: String,
    /// UDP address the gossip socket binds.
    pub listen_addr: SocketAddr,
    /// Address other nodes should gossip with (differs from `listen_addr` when binding 0.0.0.0).
    pub advertise_addr: SocketAddr,
    /// Addresses (`host:port`) of nodes already in the cluster. Unreachable seeds are retried forever.
    pub seeds: Vec<String>,
    /// One gossip round per interval. Failure detection time scales with it.
    pub gossip_interval: Duration,
    /// Phi-accrual threshold above which a silent node is declared dead. Lower is faster and
    /// more prone to false positives under load.
    pub phi_threshold: f64,
    /// How long a dead node stays listed (as dead) before it is forgotten.
    pub dead_node_grace_period: Duration,
}

/// The default gossip interval. With phi 8 this gives sub-second-to-seconds failure detection on a
/// LAN or loopback (chitchat's own default of 1 s gossip and a 5 s prior gives 8–40 s).
pub const DEFAULT_GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
pub const DEFAULT_PHI_THRESHOLD: f64 = 8.0;
pub const DEFAULT_DEAD_NODE_GRACE_PERIOD: Duration = Duration::from_secs(600);

impl GossipConfig {
    pub fn new(cluster_id: impl Into<String>, listen_addr: SocketAddr) -> Self {
        Self {
            cluster_id: cluster_id.into(),
            listen_addr,
            advertise_addr: listen_addr,
            seeds: Vec::new(),
            gossip_interval: DEFAULT_GOSSIP_INTERVAL,
            phi_threshold: DEFAULT_PHI_THRESHOLD,
            dead_node_grace_period: DEFAULT_DEAD_NODE_GRACE_PERIOD,
        }
    }

    pub fn with_seeds(mut self, seeds: Vec<String>) -> Self {
        self.seeds = seeds;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error(
        "cannot bind gossip socket on {addr}: {source}; pick another port with --gossip HOST:PORT \
         (or stop the process that holds it)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: anyhow::Error,
    },
    #[error("invalid gossip setting {field}: {reason}")]
    InvalidSetting { field: &'static str, reason: String },
}
