//! A whole cluster in one process: a server and embedded workers that join it by gossip over
//! loopback, exactly as separate processes would. `shoal up` runs one as a daemon so a one-box
//! install always has a worker; `shoal demo` runs one with a local target and sample jobs.

pub mod demo;
pub mod target;

use std::net::SocketAddr;
use std::time::Duration;

use crate::server::{RunningServer, ServerConfig};
use crate::worker::{RunningWorker, WorkerConfig};

/// The embedded workers: how many, and what each one is like.
#[derive(Debug, Clone)]
pub struct EmbeddedWorker {
    pub id: String,
    pub tags: Vec<String>,
    pub capacity: u32,
}

pub struct LocalCluster {
    server: RunningServer,
    workers: Vec<RunningWorker>,
}

impl LocalCluster {
    /// Starts the server, then each worker joined to the server's gossip address. If a worker
    /// cannot start, everything started so far is stopped before the error is returned.
    pub async fn start(
        server: ServerConfig,
        workers: &[EmbeddedWorker],
        drain_timeout: Duration,
    ) -> anyhow::Result<LocalCluster> {
        let gossip = server.gossip.clone();
        let token = server.tokens.worker_token();
        let server = RunningServer::start(server).await?;
        // The embedded workers reach their own server: with TLS they trust exactly its
        // certificate, as its other in-process clients do.
        let tls = server.own_client_tls();
        let mut cluster = LocalCluster {
            server,
            workers: Vec::with_capacity(workers.len()),
        };
        for spec in workers {
            let mut settings = gossip.clone();
            // Same interface as the server (its advertised address), any free port.
            settings.listen = SocketAddr::new(cluster.server.gossip_addr().ip(), 0);
            settings.advertise = None;
            settings.seeds = vec![cluster.server.gossip_addr().to_string()];
            let config = WorkerConfig {
                id: spec.id.clone(),
                gossip: settings,
                tags: spec.tags.clone(),
                capacity: spec.capacity,
                token: token.clone(),
                drain_timeout,
                tls: tls.clone(),
            };
            match RunningWorker::start(config).await {
                Ok(worker) => cluster.workers.push(worker),
                Err(error) => {
                    cluster.stop().await?;
                    return Err(error.context(format!("cannot start embedded worker {}", spec.id)));
                }
            }
        }
        Ok(cluster)
    }

    pub fn server(&self) -> &RunningServer {
        &self.server
    }

    pub fn api_url(&self) -> String {
        self.server.api_url()
    }

    /// Workers first, so they drain and report to a server that is still there.
    pub async fn stop(self) -> anyhow::Result<()> {
        for worker in self.workers {
            worker.stop().await;
        }
        self.server.stop().await
    }
}

/// Worker ids `<server>-w1`, `<server>-w2`, … with the same tags and capacity.
pub fn uniform_workers(
    server_id: &str,
    count: u32,
    tags: &[String],
    capacity: u32,
) -> Vec<EmbeddedWorker> {
    (1..=count)
        .map(|n| EmbeddedWorker {
            id: format!("{server_id}-w{n}"),
            tags: tags.to_vec(),
            capacity,
        })
        .collect()
}
