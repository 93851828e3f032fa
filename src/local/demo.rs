//! `shoal demo`: a working cluster in one command. One process runs a server on a temporary data
//! dir, two embedded workers (one tagged `eu`), a local HTTP target and five sample jobs — healthy,
//! tag-routed, failing with retries, unplaceable (tag `gpu`, carried by no worker) and on demand —
//! then opens the console. `--headless` prints progress lines instead. Quitting stops everything
//! and deletes the data dir.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::ApiClient;
use crate::local::target::Target;
use crate::local::{EmbeddedWorker, LocalCluster};
use crate::model::{Instance, InstanceId, InstanceState, StateKind};
use crate::node::GossipSettings;
use crate::server::ServerConfig;
use crate::server::service::Service;
use crate::server::store::InstanceFilter;
use crate::spec::JobSpec;

/// The API address the demo prefers, so the README's CLI commands work without `--server`.
pub const PREFERRED_API: &str = "127.0.0.1:7070";

#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// `None`: the preferred address if free, else any free port.
    pub api: Option<SocketAddr>,
    pub headless: bool,
    /// Headless only: stop after this long (else run until SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    pub console: shoal_tui::Options,
}

/// How often headless mode prints a summary line.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

pub async fn run(config: DemoConfig) -> anyhow::Result<()> {
    let data_dir = tempfile::Builder::new()
        .prefix("shoal-demo-")
        .tempdir()
        .context("cannot create the demo's temporary data dir")?;
    if config.headless {
        crate::telemetry::init_quiet();
    } else {
        crate::client::console::require_terminal()?;
        crate::telemetry::init_to_file(&data_dir.path().join("shoal.log"))?;
    }
    let target = Target::start(loopback(0))
        .await
        .context("cannot start the demo's HTTP target")?;
    let server = ServerConfig {
        id: "demo".into(),
        data_dir: data_dir.path().join("data"),
        api_addr: config.api.unwrap_or_else(pick_api_addr),
        gossip: GossipSettings::new(crate::node::DEFAULT_CLUSTER, loopback(0)),
        tokens: Default::default(),
        retention: crate::server::store::Retention::default(),
        retention_interval: crate::server::retention::DEFAULT_SWEEP_EVERY,
        record_commands: None,
        limits: crate::server::serve::ConnectionLimits::default(),
        ssh: None,
        metrics_job_labels: Vec::new(),
        group: None,
        tls: None,
        peer_ca: None,
    };
    let cluster = LocalCluster::start(server, &demo_workers(), Duration::from_secs(2)).await?;
    let outcome = match create_sample_jobs(cluster.server().service(), &target) {
        Ok(()) if config.headless => headless(&cluster, &target, config.duration).await,
        Ok(()) => console(&cluster, config.console).await,
        Err(error) => Err(error),
    };
    cluster.stop().await?;
    drop(target);
    if config.headless {
        println!(
            "demo stopped; removed its data dir {}",
            data_dir.path().display()
        );
    }
    outcome
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn pick_api_addr() -> SocketAddr {
    let preferred: SocketAddr = PREFERRED_API.parse().unwrap_or_else(|_| loopback(7070));
    // A probe, not a reservation: if another process takes the port in between, the server's own
    // bind reports it with the address named.
    match std::net::TcpListener::bind(preferred) {
        Ok(_) => preferred,
        Err(_) => loopback(0),
    }
}

fn demo_workers() -> Vec<EmbeddedWorker> {
    vec![
        EmbeddedWorker {
            id: "demo-w1".into(),
            tags: Vec::new(),
            capacity: 4,
        },
        EmbeddedWorker {
            id: "demo-w2".into(),
            tags: vec!["eu".into()],
            capacity: 4,
        },
    ]
}

/// The sample jobs, in the same TOML format as `shoal job add --file`. `{target}` is the local
/// target's base URL.
const SAMPLE_JOBS: &[&str] = &[
    r#"
name = "heartbeat"
cron = "*/2 * * * * *"          # every 2 seconds
[http]
url = "{target}/ok"
"#,
    r#"
name = "eu-sync"
every = "3s"
[http]
method = "POST"
url = "{target}/slow?ms=400"
body = '{"region":"eu"}'
[target]
tags = ["eu"]                   # only demo-w2 carries it
"#,
    r#"
name = "flaky-export"
every = "5s"
[http]
url = "{target}/fail"           # answers 500
expect_status = [200]
[retry]
count = 2
backoff = "1s"
"#,
    r#"
name = "gpu-render"
every = "5s"
dispatch_timeout = "30s"        # then it fails, saying no worker took it
[http]
url = "{target}/ok"
[target]
tags = ["gpu"]                  # no worker carries it: queued, with the reason and the fix
"#,
    r#"
name = "hello"
on_demand = true                # press r on it in the console
[http]
url = "{target}/ok"
"#,
];

fn create_sample_jobs(service: &Service, target: &Target) -> anyhow::Result<()> {
    let base = target.url("");
    for template in SAMPLE_JOBS {
        let spec = JobSpec::from_toml(&template.replace("{target}", &base))
            .context("a built-in sample job does not parse")?;
        service
            .create_job(&spec)
            .with_context(|| format!("cannot create sample job {}", spec.name))?;
    }
    Ok(())
}

async fn console(cluster: &LocalCluster, options: shoal_tui::Options) -> anyhow::Result<()> {
    let client = ApiClient::new(&cluster.api_url(), None, &cluster.server().own_client_tls())?;
    crate::client::console::run(client, options).await
}

async fn headless(
    cluster: &LocalCluster,
    target: &Target,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let api = cluster.api_url();
    let gossip = cluster.server().gossip_addr();
    println!("shoal demo: server {api} (gossip {gossip}), workers demo-w1 and demo-w2 (tag eu)");
    println!(
        "  target   {}  (shows what it received at /requests)",
        target.url("")
    );
    println!("  jobs     heartbeat, eu-sync, flaky-export, gpu-render, hello (on demand)");
    println!("  try      shoal job list --server {api}");
    println!("           shoal tui --server {api}");
    println!("  stop     Ctrl-C");
    let started = Instant::now();
    let mut progress = Progress::default();
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.tick().await;
    let stop = async {
        match duration {
            Some(limit) => tokio::time::sleep(limit).await,
            None => crate::shutdown::signal().await,
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => {}
        }
        let instances = cluster
            .server()
            .service()
            .instances_page(&InstanceFilter {
                limit: 10_000,
                ..InstanceFilter::default()
            })
            .context("cannot read instances")?
            .items;
        for line in progress.news(&instances) {
            println!("  {line}");
        }
        println!(
            "[{:>3}s] {}",
            started.elapsed().as_secs(),
            summary(&instances)
        );
    }
    Ok(())
}

/// Remembers what headless mode already told, so each event is printed once.
#[derive(Default)]
struct Progress {
    told_instances: HashSet<InstanceId>,
    told_success: HashSet<String>,
    told_reasons: HashMap<String, crate::reason::QueueReason>,
}

impl Progress {
    fn news(&mut self, instances: &[Instance]) -> Vec<String> {
        let mut lines = Vec::new();
        for instance in instances.iter().rev() {
            match &instance.state {
                InstanceState::Succeeded if self.told_success.insert(instance.job_name.clone()) => {
                    let worker = instance.attempts.last().map_or("?", |a| a.worker.as_str());
                    lines.push(format!(
                        "succeeded  {} instance {} on {worker} (further successes counted only)",
                        instance.job_name, instance.id
                    ));
                }
                InstanceState::Failed { reason } if self.told_instances.insert(instance.id) => {
                    lines.push(format!(
                        "failed     {} instance {} after {} attempt(s): {reason}",
                        instance.job_name,
                        instance.id,
                        instance.attempts.len()
                    ));
                }
                InstanceState::Queued {
                    reason: Some(reason),
                    ..
                } if self.told_reasons.get(&instance.job_name) != Some(reason) => {
                    self.told_reasons
                        .insert(instance.job_name.clone(), reason.clone());
                    lines.push(format!(
                        "queued     {} instance {}: {reason}",
                        instance.job_name, instance.id
                    ));
                }
                _ => {}
            }
        }
        lines
    }
}

fn summary(instances: &[Instance]) -> String {
    let count = |kind: StateKind| instances.iter().filter(|i| i.state.kind() == kind).count();
    format!(
        "{} succeeded, {} failed, {} queued, {} running",
        count(StateKind::Succeeded),
        count(StateKind::Failed),
        count(StateKind::Queued),
        count(StateKind::Assigned) + count(StateKind::Running),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_job_is_valid() {
        for template in SAMPLE_JOBS {
            let spec = JobSpec::from_toml(&template.replace("{target}", "http://127.0.0.1:9"))
                .expect("parses");
            spec.validate().expect("valid");
        }
    }
}
