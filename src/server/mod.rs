//! The server: one process that keeps the schedules, fires them and hands the work out.
//!
//! ```text
//!  api ─┐
//!  scheduler ─┼─ propose(Command) ─▶ engine ─▶ machine::apply(tx, command) ─▶ store (redb)
//!  dispatcher ┤                         │ durable, in order
//!  retention ─┘                         └─▶ effects feed ─▶ wakes scheduler and dispatcher
//!  alerts ────┘ (records deliveries)                          and the alert delivery loop
//! ```
//!
//! Everything that changes a job or an instance is a [`command::Command`], applied by
//! [`machine::apply`] alone; everything else reads the store. This file wires the pieces to
//! membership and the HTTP listener and takes them down in order.

pub(crate) mod alerts;
pub(crate) mod api;
pub(crate) mod command;
pub mod dispatch;
pub(crate) mod effects;
pub mod engine;
pub mod group;
pub(crate) mod machine;
pub mod metrics;
pub(crate) mod queue_view;
pub mod raft;
pub(crate) mod retention;
pub mod scheduler;
pub mod serve;
pub(crate) mod service;
pub mod ssh;
pub(crate) mod storage_watch;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use shoal_gossip::{Membership, NodeInfo, Role};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::node::GossipSettings;
use crate::shutdown::{self, ShutdownTrigger};
use crate::tls::{ClientTls, ServerTls};
use api::{ApiState, TokenSettings, Tokens};
use dispatch::Dispatcher;
use engine::{Engine, LocalEngine};
use scheduler::Scheduler;
use service::Service;
use store::{Retention, Store};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub id: String,
    pub data_dir: PathBuf,
    pub api_addr: SocketAddr,
    pub gossip: GossipSettings,
    /// The API's tokens and their scopes (`--token` for all).
    pub tokens: TokenSettings,
    /// How much finished instance history to keep, and how often to sweep the rest.
    pub retention: Retention,
    pub retention_interval: std::time::Duration,
    /// Append every applied command to this file (for replaying a real run; see
    /// `engine::LocalEngine::record_commands`).
    pub record_commands: Option<PathBuf>,
    /// Bounds on the API's connections and admin requests.
    pub limits: serve::ConnectionLimits,
    /// The console over SSH (`--ssh`), if served.
    pub ssh: Option<ssh::SshConfig>,
    /// Jobs whose attempts `/metrics` counts under their own name (others: `_other`).
    pub metrics_job_labels: Vec<String>,
    /// Run as a member of a replicated group of servers (`--bootstrap-expect`); `None`: alone.
    pub group: Option<GroupSettings>,
    /// Serve the API and the worker RPC over TLS with this certificate and key.
    pub tls: Option<crate::tls::TlsFiles>,
    /// The CA the other servers' certificates are checked against (a group over TLS); `None`:
    /// this server's own certificate.
    pub peer_ca: Option<PathBuf>,
}

/// How this server takes part in a group of servers.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// Form the group once this many servers (this one included) are seen in gossip.
    pub bootstrap_expect: usize,
    /// Take a snapshot of the store every this many log entries (and compact the log behind it).
    pub snapshot_every: u64,
}

/// Log entries between snapshots unless `--raft-snapshot-every` says otherwise.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 20_000;

impl GroupSettings {
    /// The Raft timings: heartbeats every 100 ms, election timeouts of 0.4–0.7 s — slower than
    /// openraft's defaults (50 ms, 150–300 ms), which a loaded two-core machine misses, electing
    /// without need. A follower that has heard from a leader first waits out that leader's lease
    /// (openraft makes it the longest timeout) and then its own random timeout: it stands after
    /// 1.1–1.4 s of silence, so a dead leader is replaced well within two seconds. (With
    /// 0.5–1 s it took 1.5–2 s, and the first fire of the new leader came as late as 2.02 s.)
    fn raft_config(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 700,
            install_snapshot_timeout: 10_000,
            // A snapshot is an image of the whole store: taken every `snapshot_every` entries,
            // with the last quarter of that kept so that a briefly absent server catches up from
            // the log rather than from a whole image.
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.snapshot_every / 4,
            snapshot_max_chunk_size: 1024 * 1024,
            ..Default::default()
        }
    }
}

/// A started server. Dropping it does not stop it; call [`RunningServer::stop`].
pub struct RunningServer {
    api_addr: SocketAddr,
    tls: Option<ServerTls>,
    membership: Arc<Membership>,
    trigger: ShutdownTrigger,
    api_task: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    service: Service,
    ssh: Option<ssh::SshServer>,
    raft: Option<openraft::Raft<raft::types::TypeConfig>>,
}

impl RunningServer {
    pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
        check_token_for_exposed_api(&config)?;
        config.limits.validate()?;
        let tls = config.tls.as_ref().map(ServerTls::load).transpose()?;
        ensure_writable_dir(&config.data_dir)?;
        let store = Arc::new(Store::open(&config.data_dir)?);
        let listener = TcpListener::bind(config.api_addr).await.with_context(|| {
            format!(
                "cannot listen on --api {}: is another server already running there? \
                 Pick another address with --api HOST:PORT",
                config.api_addr
            )
        })?;
        let api_addr = listener.local_addr()?;
        let api_url = api_url(api_addr, tls.is_some());
        let info = NodeInfo {
            id: config.id.clone(),
            role: Role::Server,
            api_addr: crate::net::advertised_api(
                announced_api(api_addr, &config.gossip),
                tls.is_some(),
            ),
            tags: Vec::new(),
            capacity: 0,
            running: 0,
            version: crate::VERSION.to_string(),
        };
        let membership = Arc::new(config.gossip.join(info).await?);
        tracing::info!(
            id = %config.id,
            api = %api_url,
            gossip = %membership.gossip_addr(),
            cluster = %config.gossip.cluster,
            data_dir = %config.data_dir.display(),
            "server started; workers join with: shoal worker --join {}",
            membership.gossip_addr()
        );

        let (trigger, shutdown) = shutdown::channel();
        let metrics = Arc::new(metrics::Metrics::new(config.metrics_job_labels.clone()));
        let mut raft_node = None;
        let mut group_engine = None;
        let inner: Arc<dyn Engine> = match &config.group {
            None => {
                let local = LocalEngine::new(store.clone());
                if let Some(path) = &config.record_commands {
                    local
                        .record_commands(path)
                        .with_context(|| format!("cannot record commands to {}", path.display()))?;
                }
                Arc::new(local)
            }
            Some(settings) => {
                if config.record_commands.is_some() {
                    bail!(
                        "--record-commands records a single server's commands; a group's are in its Raft log"
                    );
                }
                let peer_tls = match (&config.peer_ca, &tls) {
                    (Some(ca), _) => ClientTls::ca_file("--ca", ca)?,
                    (None, Some(tls)) => tls.own_certificate(),
                    (None, None) => ClientTls::default(),
                };
                let wire = raft::network::PeerWire::new(config.tokens.server_token(), &peer_tls)?;
                let id = group::node_id(&config.id);
                let node = raft::engine::start_node(
                    id,
                    &config.data_dir,
                    store.clone(),
                    settings.raft_config(),
                    raft::network::PeerNetwork::new(wire.clone()),
                )
                .await?;
                let engine = Arc::new(raft::engine::RaftEngine::new(
                    id,
                    node.clone(),
                    store.clone(),
                    wire,
                    Arc::new(group::GossipReachability(membership.clone())),
                    tokio::runtime::Handle::current(),
                ));
                raft_node = Some(node);
                group_engine = Some(engine.clone());
                engine
            }
        };
        let engine: Arc<dyn Engine> =
            Arc::new(metrics::ObservedEngine::new(inner, metrics.clone()));
        let service = Service::new(engine.clone());
        let start_work: group::StartLeaderWork = {
            let engine = engine.clone();
            let membership = membership.clone();
            let join_hint = dispatch::placement::join_hint(
                membership.gossip_addr(),
                &config.gossip.cluster,
                config.tokens.worker_token().is_some(),
                tls.is_some(),
            );
            let retention = config.retention;
            let api_url = api_url.clone();
            let retention_interval = config.retention_interval;
            Arc::new(move |term, shutdown: shutdown::Shutdown| {
                let dispatcher =
                    Dispatcher::new(engine.clone(), membership.clone(), join_hint.clone(), term);
                let scheduler = Scheduler::new(engine.clone());
                let tasks = vec![
                    tokio::spawn(scheduler.run(shutdown.clone())),
                    tokio::spawn(dispatcher.clone().run(shutdown.clone())),
                    tokio::spawn(alerts::run(
                        engine.clone(),
                        api_url.clone(),
                        shutdown.clone(),
                    )),
                    tokio::spawn(retention::run(
                        engine.clone(),
                        retention,
                        retention_interval,
                        shutdown,
                    )),
                ];
                (dispatcher, tasks)
            })
        };
        let mut background = vec![tokio::spawn(storage_watch::run(
            engine.store().clone(),
            trigger.subscribe(),
        ))];
        let leader = match (&config.group, &raft_node) {
            (Some(settings), Some(node)) => {
                let slot = group::LeaderSlot::default();
                let member = group::GroupMember {
                    raft: node.clone(),
                    self_id: group::node_id(&config.id),
                    bootstrap_expect: settings.bootstrap_expect,
                    membership: membership.clone(),
                    slot: slot.clone(),
                    start_work,
                    feed: engine.store().feed().clone(),
                };
                background.push(tokio::spawn(member.run(trigger.subscribe())));
                slot
            }
            _ => {
                let (dispatcher, tasks) = start_work(0, trigger.subscribe());
                background.extend(tasks);
                group::LeaderSlot::single(dispatcher)
            }
        };
        let state = ApiState {
            cluster: config.gossip.cluster.clone(),
            membership: membership.clone(),
            service: service.clone(),
            leader,
            group: group_engine,
            metrics,
            shutdown: trigger.subscribe(),
        };
        let router = api::router(state, Tokens::new(&config.tokens)).layer(
            axum::middleware::from_fn_with_state(
                serve::AdminGate::new(&config.limits),
                serve::admin_gate,
            ),
        );
        let api_task = tokio::spawn(serve::serve(
            listener,
            router,
            config.limits.clone(),
            tls.as_ref().map(|tls| tls.acceptor().clone()),
            shutdown,
        ));
        let ssh = match config.ssh {
            Some(ssh_config) => {
                let started = ssh::SshServer::start(
                    ssh_config,
                    config.data_dir.clone(),
                    ssh::OwnApi {
                        addr: api_addr,
                        tls: tls.clone(),
                    },
                    // The consoles act for operators: the broadest token the server holds.
                    config
                        .tokens
                        .all
                        .clone()
                        .or_else(|| config.tokens.admin.first().cloned())
                        .or_else(|| config.tokens.operator.first().cloned())
                        .or_else(|| config.tokens.read.first().cloned()),
                    trigger.subscribe(),
                )
                .await;
                match started {
                    Ok(ssh) => Some(ssh),
                    Err(error) => {
                        // Take down what already runs, so a failed start leaves nothing behind.
                        trigger.trigger();
                        let _ = api_task.await;
                        for task in background {
                            let _ = task.await;
                        }
                        membership.leave().await;
                        return Err(error);
                    }
                }
            }
            None => None,
        };
        Ok(RunningServer {
            api_addr,
            tls,
            membership,
            trigger,
            api_task,
            background,
            service,
            ssh,
            raft: raft_node,
        })
    }

    /// The SSH console's address, when it is served.
    pub fn ssh_addr(&self) -> Option<SocketAddr> {
        self.ssh.as_ref().map(ssh::SshServer::addr)
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The API's URL: `https://` when it is served over TLS.
    pub fn api_url(&self) -> String {
        api_url(self.api_addr, self.tls.is_some())
    }

    /// The trust of a client in this process (`shoal up`'s workers, the demo's console): this
    /// server's own certificate when it serves TLS.
    pub fn own_client_tls(&self) -> ClientTls {
        self.tls
            .as_ref()
            .map(ServerTls::own_certificate)
            .unwrap_or_default()
    }

    pub fn gossip_addr(&self) -> SocketAddr {
        self.membership.gossip_addr()
    }

    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Stops taking requests, announces the leave to the cluster, and waits for the API to close.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.trigger.trigger();
        if let Some(ssh) = self.ssh {
            ssh.stopped().await;
        }
        let api_result = self.api_task.await;
        for task in self.background {
            let _ = task.await;
        }
        if let Some(raft) = self.raft {
            if let Err(error) = raft.shutdown().await {
                tracing::warn!(%error, "stopping the Raft node");
            }
            // A group's store commits behind its log: what it applied last is made durable, so
            // a restart has nothing to apply again.
            let store = self.service.store().clone();
            match tokio::task::spawn_blocking(move || store.persist()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "making the store durable at stop"),
                Err(error) => tracing::error!(%error, "the task making the store durable panicked"),
            }
        }
        drop(self.service);
        self.membership.leave().await;
        api_result
            .context("API task panicked")?
            .context("API server failed")?;
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Runs a server until SIGINT/SIGTERM.
pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let server = RunningServer::start(config).await?;
    shutdown::signal().await;
    server.stop().await
}

/// The API address other nodes are told: the bound one, or — bound to every interface — this
/// host's gossip address with the API's port (an address of 0.0.0.0 would send a worker on
/// another machine to itself).
fn announced_api(api_addr: SocketAddr, gossip: &GossipSettings) -> SocketAddr {
    if !api_addr.ip().is_unspecified() {
        return api_addr;
    }
    let host = gossip.advertise.unwrap_or(gossip.listen).ip();
    if host.is_unspecified() {
        return crate::net::reachable(api_addr);
    }
    SocketAddr::new(host, api_addr.port())
}

/// The API's URL for clients: its address as `http://` or, with TLS, `https://`, with an
/// unspecified bind address (0.0.0.0) read as loopback.
fn api_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", crate::net::reachable(addr))
}

fn check_token_for_exposed_api(config: &ServerConfig) -> anyhow::Result<()> {
    config.tokens.validate()?;
    let has_token = config.tokens.any();
    if !config.api_addr.ip().is_loopback() && !has_token {
        bail!(
            "refusing to serve the API on {} without a token: anyone who reaches it could run \
             HTTP requests from your workers. Pass --token (or set SHOAL_TOKEN), or bind to \
             127.0.0.1",
            config.api_addr
        );
    }
    if let Some(warning) = tokens_in_clear(config) {
        tracing::warn!(api = %config.api_addr, "{warning}");
    }
    Ok(())
}

/// The start-up warning of a server whose token would cross the network in clear: its API is
/// bound beyond loopback, with a token, without TLS.
fn tokens_in_clear(config: &ServerConfig) -> Option<String> {
    (!config.api_addr.ip().is_loopback() && config.tokens.any() && config.tls.is_none()).then(
        || {
            format!(
                "!!! the API on {} is served beyond loopback in plain HTTP: every client's token \
             travels in clear, readable by anyone on the path. Serve it over TLS with \
             --tls-cert and --tls-key (README: Production, TLS) !!!",
                config.api_addr
            )
        },
    )
}

fn ensure_writable_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create --data-dir {}: choose a directory this user can write",
            dir.display()
        )
    })?;
    let probe = dir.join(".shoal-write-probe");
    std::fs::write(&probe, b"probe").with_context(|| {
        format!(
            "--data-dir {} is not writable: choose a directory this user can write",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_bound_to_every_interface_is_announced_at_the_gossip_host() {
        let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
        let mut gossip = GossipSettings::new("shoal", addr("0.0.0.0:7946"));
        gossip.advertise = Some(addr("10.0.0.5:7946"));
        assert_eq!(
            announced_api(addr("0.0.0.0:7070"), &gossip),
            addr("10.0.0.5:7070")
        );
        assert_eq!(
            announced_api(addr("10.0.0.9:7070"), &gossip),
            addr("10.0.0.9:7070")
        );
        let local = GossipSettings::new("shoal", addr("127.0.0.1:7946"));
        assert_eq!(
            announced_api(addr("0.0.0.0:7070"), &local),
            addr("127.0.0.1:7070")
        );
        assert_eq!(
            api_url(addr("0.0.0.0:7070"), true),
            "https://127.0.0.1:7070"
        );
    }

    #[test]
    fn a_token_beyond_loopback_without_tls_is_warned_about() {
        let config = |api: &str, token: Option<&str>, tls: bool| ServerConfig {
            id: "server".into(),
            data_dir: PathBuf::from("unused"),
            api_addr: api.parse().unwrap(),
            gossip: GossipSettings::new("shoal", "127.0.0.1:7946".parse().unwrap()),
            tokens: TokenSettings {
                all: token.map(str::to_string),
                ..TokenSettings::default()
            },
            retention: Retention::default(),
            retention_interval: std::time::Duration::from_secs(60),
            record_commands: None,
            limits: serve::ConnectionLimits::default(),
            ssh: None,
            metrics_job_labels: Vec::new(),
            group: None,
            peer_ca: None,
            tls: tls.then(|| crate::tls::TlsFiles {
                cert: "cert.pem".into(),
                key: "key.pem".into(),
            }),
        };
        let warning = tokens_in_clear(&config("0.0.0.0:7070", Some("t"), false))
            .expect("a token in clear beyond loopback");
        assert!(warning.contains("--tls-cert"), "{warning}");
        assert!(tokens_in_clear(&config("0.0.0.0:7070", Some("t"), true)).is_none());
        assert!(tokens_in_clear(&config("127.0.0.1:7070", Some("t"), false)).is_none());
        assert!(check_token_for_exposed_api(&config("0.0.0.0:7070", None, false)).is_err());
    }
}
