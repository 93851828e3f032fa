//! The worker daemon: joins the cluster, finds the server through gossip, runs HTTP tasks and
//! reports their results.

use std::sync::Arc;
use std::time::Duration;

use shoal_gossip::{Membership, MembershipView, NodeInfo, Role};
use tokio::task::JoinHandle;

use crate::node::GossipSettings;
use crate::shutdown::{self, Shutdown, ShutdownTrigger};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: String,
    pub gossip: GossipSettings,
    pub tags: Vec<String>,
    pub capacity: u32,
    pub token: Option<String>,
    /// On shutdown, how long running tasks may take to finish before the worker leaves anyway.
    pub drain_timeout: Duration,
}

pub struct RunningWorker {
    id: String,
    membership: Arc<Membership>,
    trigger: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningWorker {
    pub async fn start(config: WorkerConfig) -> anyhow::Result<RunningWorker> {
        if config.capacity == 0 {
            anyhow::bail!(
                "--capacity must be at least 1 (how many tasks this worker runs at once)"
            );
        }
        let info = NodeInfo {
            id: config.id.clone(),
            role: Role::Worker,
            api_addr: String::new(),
            tags: config.tags.clone(),
            capacity: config.capacity,
            running: 0,
            version: crate::VERSION.to_string(),
        };
        let membership = Arc::new(config.gossip.join(info).await?);
        tracing::info!(
            id = %config.id,
            gossip = %membership.gossip_addr(),
            seeds = ?config.gossip.seeds,
            tags = ?config.tags,
            capacity = config.capacity,
            "worker started"
        );
        let (trigger, shutdown) = shutdown::channel();
        let tasks = vec![tokio::spawn(report_server_reachability(
            membership.clone(),
            config.gossip.seeds.clone(),
            shutdown,
        ))];
        Ok(RunningWorker {
            id: config.id,
            membership,
            trigger,
            tasks,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn gossip_addr(&self) -> std::net::SocketAddr {
        self.membership.gossip_addr()
    }

    /// Stops taking work, lets running tasks finish, then announces the leave.
    pub async fn stop(self) {
        self.trigger.trigger();
        for task in self.tasks {
            let _ = task.await;
        }
        if let Ok(membership) = Arc::try_unwrap(self.membership) {
            membership.leave().await;
        }
        tracing::info!(id = %self.id, "worker stopped");
    }
}

/// Runs a worker until SIGINT/SIGTERM.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let worker = RunningWorker::start(config).await?;
    shutdown::signal().await;
    worker.stop().await;
    Ok(())
}

/// Logs when the server becomes reachable or is lost, and — while it is not — says so at a
/// growing interval rather than silently waiting or spinning.
async fn report_server_reachability(
    membership: Arc<Membership>,
    seeds: Vec<String>,
    mut shutdown: Shutdown,
) {
    let mut watch = membership.watch();
    let mut server: Option<String> = None;
    let mut quiet_for = Duration::from_secs(3);
    loop {
        let current = server_of(&watch.borrow_and_update());
        match (&server, &current) {
            (None, Some(api)) => tracing::info!(server_api = %api, "joined cluster: server found"),
            (Some(_), None) => tracing::warn!("server lost: no live server in the cluster"),
            _ => {}
        }
        if server.is_some() != current.is_some() {
            quiet_for = Duration::from_secs(3);
        }
        server = current;
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = watch.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(quiet_for), if server.is_none() => {
                tracing::warn!(
                    seeds = ?seeds,
                    "no server reachable yet; still trying. Is `shoal server` running, and is \
                     --join its gossip address (the server logs it at start-up)?"
                );
                quiet_for = (quiet_for * 2).min(Duration::from_secs(60));
            }
        }
    }
}

fn server_of(view: &MembershipView) -> Option<String> {
    view.live_server().map(|m| m.info.api_addr.clone())
}
