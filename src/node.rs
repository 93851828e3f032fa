//! What server and worker daemons share: gossip settings and how a node joins.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_gossip::{GossipConfig, Membership, NodeInfo, UdpTransport};

pub const DEFAULT_CLUSTER: &str = "shoal";
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;

/// Gossip settings common to both roles. See `shoal_gossip::GossipConfig` for their meaning.
#[derive(Debug, Clone)]
pub struct GossipSettings {
    pub cluster: String,
    /// Port 0 means "pick a free port".
    pub listen: SocketAddr,
    pub advertise: Option<SocketAddr>,
    pub seeds: Vec<String>,
    pub interval: Duration,
    pub phi_threshold: f64,
}

impl GossipSettings {
    pub fn new(cluster: impl Into<String>, listen: SocketAddr) -> Self {
        GossipSettings {
            cluster: cluster.into(),
            listen,
            advertise: None,
            seeds: Vec::new(),
            interval: shoal_gossip::DEFAULT_GOSSIP_INTERVAL,
            phi_threshold: shoal_gossip::DEFAULT_PHI_THRESHOLD,
        }
    }

    /// Binds the gossip socket (on a free port if asked) and joins the cluster.
    pub async fn join(&self, info: NodeInfo) -> anyhow::Result<Membership> {
        let listen = crate::net::pick_free_udp_port(self.listen)?;
        let advertise = match self.advertise {
            Some(addr) => addr,
            None if listen.ip().is_unspecified() => anyhow::bail!(
                "--gossip {listen} binds every interface: also pass --advertise HOST:PORT, the \
                 address other nodes should use to reach this one"
            ),
            None => listen,
        };
        let mut config = GossipConfig::new(self.cluster.clone(), listen);
        config.advertise_addr = advertise;
        config.seeds = self.seeds.clone();
        config.gossip_interval = self.interval;
        config.phi_threshold = self.phi_threshold;
        Ok(Membership::start(config, info, &UdpTransport).await?)
    }
}

/// Raises this process's soft limit of open files to its hard limit, so that connection bounds,
/// not the common default of 1,024, decide how many clients the daemon can hold.
pub fn raise_open_file_limit() {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).ok();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => tracing::info!(
            open_file_limit = now,
            was = before.map(|(soft, _)| soft),
            "open-file limit raised to the hard limit"
        ),
        Err(error) => tracing::warn!(%error, was = before.map(|(soft, _)| soft),
            "cannot raise the open-file limit; connections are bounded by it"),
    }
}
