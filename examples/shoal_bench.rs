//! Shoal's benchmark suite: six measures, each against its goal, printed as one markdown table.
//!
//! ```sh
//! cargo build --release --bins --examples
//! target/release/examples/shoal_bench                 # all six (about 3 minutes)
//! target/release/examples/shoal_bench --quick         # smaller sizes, shorter windows
//! target/release/examples/shoal_bench throughput      # or: fire, failover, scale, gossip, console
//! ```
//!
//! These machines are shared and noisy, so every figure is a ratio or a percentile taken within
//! one run, never an absolute figure compared across runs. Everything runs on 127.0.0.1 with
//! durable redb commits, real `shoal` processes where a process boundary matters (throughput,
//! failover, restart), and in-process where the measure is of one component (scheduler, gossip,
//! console).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shoal::client::{ApiClient, InstanceQuery};
use shoal::model::{
    Attempt, AttemptOutcome, Instance, InstanceState, Job, JobDefinition, Trigger, UnixMs, now_ms,
};
use shoal::schedule::initial_fire;
use shoal::server::engine::LocalEngine;
use shoal::server::scheduler::Scheduler;
use shoal::server::store::{Store, StoreError};
use shoal::spec::{HttpSpec, JobSpec};
use shoal_gossip::{GossipConfig, MemberState, Membership, NodeInfo, Role, UdpTransport};

const WORKER_CAPACITY: u32 = 16;

/// How big each measure is; `--quick` shrinks what takes long.
struct Sizes {
    throughput_instances: usize,
    fire_jobs: usize,
    fire_window: Duration,
    scale_jobs: usize,
    scale_instances: usize,
    /// Job counts of the admin-API measure (each job with queued work no worker can take).
    admin_jobs: Vec<usize>,
    gossip_nodes: usize,
    console_frames: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            throughput_instances: 10_000,
            fire_jobs: 10_000,
            fire_window: Duration::from_secs(10),
            scale_jobs: 100_000,
            scale_instances: 1_000_000,
            admin_jobs: vec![5_000, 15_000],
            gossip_nodes: 50,
            console_frames: 1_000,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            throughput_instances: 2_000,
            fire_jobs: 10_000,
            fire_window: Duration::from_secs(3),
            scale_jobs: 10_000,
            scale_instances: 100_000,
            admin_jobs: vec![5_000],
            gossip_nodes: 50,
            console_frames: 200,
        }
    }
}

/// One line of the result table.
struct Row {
    number: u8,
    measure: String,
    goal: String,
    measured: String,
    /// `None`: a figure we report without a goal.
    ok: Option<bool>,
}

impl Row {
    fn new(number: u8, measure: &str, goal: &str, measured: String, ok: Option<bool>) -> Row {
        Row {
            number,
            measure: measure.into(),
            goal: goal.into(),
            measured,
            ok,
        }
    }
}

const MODES: [&str; 7] = [
    "throughput",
    "fire",
    "failover",
    "scale",
    "gossip",
    "console",
    "group",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let usage = format!("usage: shoal_bench [--quick] [all|{}]…", MODES.join("|"));
    let mut quick = false;
    let mut modes = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!("{usage}");
                return Ok(());
            }
            "all" => modes.extend(MODES.map(String::from)),
            mode if MODES.contains(&mode) => modes.push(mode.to_string()),
            other => {
                eprintln!("unknown argument {other:?}; {usage}");
                std::process::exit(2);
            }
        }
    }
    if modes.is_empty() {
        modes.extend(MODES.map(String::from));
    }
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    println!("{}", machine());
    let mut rows = Vec::new();
    for mode in &modes {
        eprintln!("== {mode}");
        let result = match mode.as_str() {
            "throughput" => throughput(&sizes).await,
            "fire" => fire_precision(&sizes).await,
            "failover" => failover().await,
            "scale" => scale(&sizes).await,
            "gossip" => gossip(&sizes).await,
            "console" => console(&sizes),
            "group" => group(&sizes).await,
            _ => unreachable!("modes are checked above"),
        };
        match result {
            Ok(mut measured) => rows.append(&mut measured),
            Err(error) => rows.push(Row::new(
                0,
                mode,
                "-",
                format!("FAILED: {error:#}"),
                Some(false),
            )),
        }
    }
    println!();
    println!(
        "Command: `target/release/examples/shoal_bench{}{}`",
        if quick { " --quick" } else { "" },
        if modes.len() == MODES.len() {
            String::new()
        } else {
            format!(" {}", modes.join(" "))
        }
    );
    println!();
    println!("| # | measure | goal | measured | ok |");
    println!("| --- | --- | --- | --- | --- |");
    for row in &rows {
        let ok = match row.ok {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        println!(
            "| {} | {} | {} | {} | {ok} |",
            row.number, row.measure, row.goal, row.measured
        );
    }
    Ok(())
}

/// The machine the figures come from: cores, CPU model, memory.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("Machine: {cores} cores, {model}, {ram_gib:.1} GiB RAM")
}

// ---------------------------------------------------------------------------------------------
// Processes on loopback

/// A child process killed and reaped when dropped, so a failed run leaves nothing behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status();
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

fn shoal_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .context("no target dir above this example")?
        .join("shoal");
    if !bin.exists() {
        bail!(
            "{} not found: run `cargo build --release --bins --examples` first",
            bin.display()
        );
    }
    Ok(bin)
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Cluster {
    _dir: Option<tempfile::TempDir>,
    server: Proc,
    gossip: String,
    client: ApiClient,
    /// From spawning the server to its first successful API answer.
    started_in: Duration,
}

impl Cluster {
    async fn start() -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let mut cluster = Cluster::start_on(&data).await?;
        cluster._dir = Some(dir);
        Ok(cluster)
    }

    /// A server on an existing data dir (kept when the cluster is dropped).
    async fn start_on(data: &Path) -> anyhow::Result<Cluster> {
        let api = format!("127.0.0.1:{}", free_tcp_port()?);
        let gossip = format!("127.0.0.1:{}", free_udp_port()?);
        let spawned = Instant::now();
        let server = Proc(
            Command::new(shoal_binary()?)
                .args(["server", "--api", &api, "--gossip", &gossip, "--data-dir"])
                .arg(data)
                .env("SHOAL_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()?,
        );
        let client = ApiClient::new(
            &format!("http://{api}"),
            None,
            &shoal::tls::ClientTls::system(),
        )?;
        let one = InstanceQuery {
            limit: Some(1),
            ..InstanceQuery::default()
        };
        // Serving means answering from the store, not just accepting connections.
        while client.instances(&one).await.is_err() {
            if spawned.elapsed() > Duration::from_secs(120) {
                bail!("server did not answer within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Cluster {
            _dir: None,
            server,
            gossip,
            client,
            started_in: spawned.elapsed(),
        })
    }

    fn worker(&self, id: &str) -> anyhow::Result<Proc> {
        Ok(Proc(
            Command::new(shoal_binary()?)
                .args(["worker", "--join", &self.gossip, "--id", id])
                .args(["--capacity", &WORKER_CAPACITY.to_string()])
                .env("SHOAL_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()?,
        ))
    }

    async fn wait_live(&self, id: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let members = self.client.members().await.unwrap_or_default();
            if members
                .iter()
                .any(|m| m.id == id && m.state.to_string() == "live")
            {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("worker {id} never became live");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The newest `limit` instances of `job`, in the given states (all when `None`).
    async fn instances_of(
        &self,
        job: &str,
        state: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Vec<Instance>> {
        Ok(self
            .client
            .instances(&InstanceQuery {
                job: Some(job.into()),
                state: state.map(String::from),
                limit: Some(limit),
            })
            .await?
            .into_iter()
            .map(|view| view.instance)
            .collect())
    }
}

fn on_demand_job(name: &str, url: String) -> JobSpec {
    JobSpec {
        name: name.into(),
        on_demand: true,
        max_concurrent: Some(10_000),
        http: HttpSpec {
            url,
            timeout: Some("30s".into()),
            ..HttpSpec::default()
        },
        ..JobSpec::default()
    }
}

/// The value at `fraction` (0..=1) of sorted samples.
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

// ---------------------------------------------------------------------------------------------
// 1. End-to-end throughput

/// What one throughput run measured.
struct RunRate {
    /// Instances per second from the first run request to the last instance finished.
    end_to_end: f64,
    /// Instances per second draining a full queue: every instance enqueued first (the tasks
    /// handed out meanwhile held at a gate), then the gate opened and the queue timed to empty.
    drain: f64,
    /// Of the `n` instances of each measure, those that succeeded.
    succeeded: usize,
    drain_succeeded: usize,
}

/// An HTTP endpoint that holds every request until it is opened, then answers 200 at once: how
/// the drain measure fills the queue before timing it.
struct Gate {
    addr: std::net::SocketAddr,
    open: tokio::sync::watch::Sender<bool>,
    /// Requests that reached the gate, and requests answered.
    arrived: Arc<std::sync::atomic::AtomicUsize>,
    answered: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    async fn start() -> anyhow::Result<Gate> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (open, opened) = tokio::sync::watch::channel(false);
        let arrived = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let counts = (arrived.clone(), answered.clone());
        let app = axum::Router::new().route(
            "/gated",
            axum::routing::get(move || {
                let mut opened = opened.clone();
                let (arrived, answered) = counts.clone();
                async move {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    let _ = opened.wait_for(|open| *open).await;
                    answered.fetch_add(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Gate {
            addr,
            open,
            arrived,
            answered,
            task,
        })
    }

    fn url(&self) -> String {
        format!("http://{}/gated", self.addr)
    }

    fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn answered(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asks for `n` runs of `job` through `client`, from as many concurrent callers as a busy API
/// client pool would make.
async fn submit_runs(client: &ApiClient, job: &str, n: usize) -> anyhow::Result<()> {
    let submitters = 64;
    let mut submits = tokio::task::JoinSet::new();
    for first in 0..submitters {
        let client = client.clone();
        let job = job.to_string();
        submits.spawn(async move {
            for _ in (first..n).step_by(submitters) {
                client.run_job(&job).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = submits.join_next().await {
        done??;
    }
    Ok(())
}

/// Waits until no instance of `job` is queued, assigned or running.
async fn wait_all_ended(client: &ApiClient, job: &str) -> anyhow::Result<()> {
    let open = InstanceQuery {
        job: Some(job.into()),
        state: Some("queued,assigned,running".into()),
        limit: Some(1),
    };
    while !client.instances(&open).await?.is_empty() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// How many instances of `job` failed or were cancelled.
async fn unsuccessful(client: &ApiClient, job: &str) -> anyhow::Result<usize> {
    Ok(client
        .instances(&InstanceQuery {
            job: Some(job.into()),
            state: Some("failed,cancelled".into()),
            limit: Some(10_000),
        })
        .await?
        .len())
}

/// Runs `n` no-op instances of a fresh on-demand job through `client` (any server of the
/// cluster whose gossip `gossip` two new workers join) and times them to the end; then fills
/// the queue with `n` more, held, and times its drain.
async fn run_rate(
    client: &ApiClient,
    gossip: &str,
    target: &shoal::local::target::Target,
    n: usize,
) -> anyhow::Result<RunRate> {
    let spawn_worker = |id: &str| -> anyhow::Result<Proc> {
        Ok(Proc(
            Command::new(shoal_binary()?)
                .args(["worker", "--join", gossip, "--id", id])
                .args(["--capacity", &WORKER_CAPACITY.to_string()])
                .env("SHOAL_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()?,
        ))
    };
    let _w1 = spawn_worker("w1")?;
    let _w2 = spawn_worker("w2")?;
    for id in ["w1", "w2"] {
        let start = Instant::now();
        while !client
            .members()
            .await
            .unwrap_or_default()
            .iter()
            .any(|m| m.id == id && m.state.to_string() == "live")
        {
            if start.elapsed() > Duration::from_secs(60) {
                bail!("worker {id} never became live");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // End to end: run requests and the work they queue, at once.
    let received_before = target.received_count();
    client
        .create_job(&on_demand_job("noop", target.url("/ok")))
        .await?;
    // Let both workers' first polls arrive, so the run starts with the cluster ready.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    submit_runs(client, "noop", n).await?;
    let enqueued = start.elapsed();
    let received = || target.received_count() - received_before;
    eprintln!(
        "throughput: all {n} enqueued after {:.2} s, {} done by then",
        enqueued.as_secs_f64(),
        received()
    );
    while received() < n {
        if start.elapsed() > Duration::from_secs(600) {
            bail!("only {} of {n} requests arrived", received());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    wait_all_ended(client, "noop").await?;
    let elapsed = start.elapsed();
    // Every run request was answered, so n instances exist; none is open any more.
    let succeeded = n - unsuccessful(client, "noop").await?;
    let end_to_end = succeeded as f64 / elapsed.as_secs_f64();
    eprintln!(
        "throughput: {succeeded}/{n} succeeded in {:.2} s: {end_to_end:.0}/s",
        elapsed.as_secs_f64()
    );

    // Drain: the queue full first. The workers take what they can hold and wait at the gate;
    // the rest queues. Then the gate opens and the whole queue is timed to empty, the API quiet.
    let gate = Gate::start().await?;
    client
        .create_job(&on_demand_job("gated", gate.url()))
        .await?;
    submit_runs(client, "gated", n).await?;
    let held = 2 * WORKER_CAPACITY as usize;
    let filling = Instant::now();
    while gate.arrived() < held {
        if filling.elapsed() > Duration::from_secs(60) {
            bail!(
                "only {} tasks reached the gate, {held} expected",
                gate.arrived()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let start = Instant::now();
    gate.open.send_replace(true);
    while gate.answered() < n {
        if start.elapsed() > Duration::from_secs(600) {
            bail!("only {} of {n} gated requests answered", gate.answered());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    wait_all_ended(client, "gated").await?;
    let drained_in = start.elapsed();
    let drain = n as f64 / drained_in.as_secs_f64();
    let drained_unsuccessful = unsuccessful(client, "gated").await?;
    eprintln!(
        "throughput: a full queue of {n} drained in {:.2} s: {drain:.0}/s \
         ({drained_unsuccessful} unsuccessful)",
        drained_in.as_secs_f64()
    );
    Ok(RunRate {
        end_to_end,
        drain,
        succeeded,
        drain_succeeded: n - drained_unsuccessful,
    })
}

async fn throughput(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let n = sizes.throughput_instances;
    let target = shoal::local::target::Target::start("127.0.0.1:0".parse()?).await?;
    let cluster = Cluster::start().await?;
    let RunRate {
        end_to_end: shoal_rate,
        drain: drain_rate,
        succeeded,
        drain_succeeded,
    } = run_rate(&cluster.client, &cluster.gossip, &target, n).await?;
    drop(cluster);

    // The raw limit: a pooled reqwest loop with the two workers' total concurrency.
    let concurrency = 2 * WORKER_CAPACITY as usize;
    let http = reqwest::Client::new();
    let url = target.url("/ok");
    let raw_start = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for first in 0..concurrency {
        let http = http.clone();
        let url = url.clone();
        loops.spawn(async move {
            for _ in (first..n).step_by(concurrency) {
                http.get(&url).send().await?.bytes().await?;
            }
            Ok::<_, reqwest::Error>(())
        });
    }
    while let Some(done) = loops.join_next().await {
        done??;
    }
    let raw_rate = n as f64 / raw_start.elapsed().as_secs_f64();
    let ratio = shoal_rate / raw_rate;
    let drain_ratio = drain_rate / raw_rate;
    eprintln!("throughput: raw reqwest, concurrency {concurrency}: {raw_rate:.0}/s");
    Ok(vec![
        Row::new(
            1,
            &format!(
                "throughput: {n} on-demand no-op tasks, 1 server + 2 workers, durable, \
                 enqueued through the API meanwhile"
            ),
            "≥ 50 % of a raw pooled reqwest loop",
            format!(
                "{:.1} % ({shoal_rate:.0} instances/s vs {raw_rate:.0} req/s; {succeeded}/{n} \
                 succeeded)",
                ratio * 100.0
            ),
            Some(ratio >= 0.5 && succeeded == n),
        ),
        Row::new(
            1,
            "throughput draining a full queue (dispatch, run, report; the API quiet)",
            "≥ 50 % of a raw pooled reqwest loop",
            format!(
                "{:.1} % ({drain_rate:.0} instances/s vs {raw_rate:.0} req/s; \
                 {drain_succeeded}/{n} succeeded)",
                drain_ratio * 100.0
            ),
            Some(drain_ratio >= 0.5 && drain_succeeded == n),
        ),
    ])
}

// ---------------------------------------------------------------------------------------------
// 2. Fire precision

/// The `i`-th of the fire-precision jobs: a mix of cron every second, cron every 2 s (both fire
/// on the second, all together), and fixed rates of 1 s and 3 s (on grids set by creation time).
fn cron_job(i: usize) -> anyhow::Result<JobDefinition> {
    let (cron, every) = match i % 4 {
        0 => (Some("* * * * * *"), None),
        1 => (Some("*/2 * * * * *"), None),
        2 => (None, Some("1s")),
        _ => (None, Some("3s")),
    };
    let spec = JobSpec {
        name: format!("tick-{i:05}"),
        cron: cron.map(String::from),
        every: every.map(String::from),
        // No dispatcher runs here: let instances pile up rather than have fires skipped.
        max_concurrent: Some(10_000),
        http: HttpSpec {
            url: "http://127.0.0.1:9/".into(),
            ..HttpSpec::default()
        },
        ..JobSpec::default()
    };
    Ok(spec.validate()?)
}

/// The `i`-th job of the spread scenario: fixed rates of 1, 2 and 5 s whose phases are spread over
/// their period (jobs created at different moments), so fires arrive evenly rather than at once.
fn spread_job(i: usize, jobs: usize, now: UnixMs) -> anyhow::Result<(JobDefinition, UnixMs)> {
    let period_ms = [1_000, 2_000, 5_000][i % 3];
    let spec = JobSpec {
        name: format!("spread-{i:05}"),
        every: Some(format!("{}ms", period_ms)),
        max_concurrent: Some(10_000),
        http: HttpSpec {
            url: "http://127.0.0.1:9/".into(),
            ..HttpSpec::default()
        },
        ..JobSpec::default()
    };
    let phase = (i as i64 * period_ms / jobs as i64) % period_ms;
    Ok((spec.validate()?, now + 1_000 + phase))
}

async fn fire_precision(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let jobs = sizes.fire_jobs;
    let now = now_ms();
    let aligned = (0..jobs)
        .map(|i| Ok((cron_job(i)?, None)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let spread = (0..jobs)
        .map(|i| spread_job(i, jobs, now).map(|(def, first)| (def, Some(first))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for (scenario, definitions) in [
        (
            "cron/rate jobs (1–3 s), fires aligned on the second",
            aligned,
        ),
        ("rate jobs (1–5 s), phases spread over the period", spread),
    ] {
        let lateness = fire_lateness(definitions, sizes.fire_window).await?;
        let fires = lateness.len();
        let (p50, p99, max) = (
            percentile(&lateness, 0.5),
            percentile(&lateness, 0.99),
            percentile(&lateness, 1.0),
        );
        eprintln!(
            "fire ({scenario}): {fires} fires in {:.0} s from {jobs} jobs; lateness p50 {p50:.1} \
             ms, p99 {p99:.1} ms, max {max:.1} ms",
            sizes.fire_window.as_secs_f64()
        );
        rows.push(Row::new(
            2,
            &format!("fire precision: {jobs} active {scenario}; dispatch − scheduled"),
            "p99 < 5 ms",
            format!("p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({fires} fires)"),
            Some(p99 < 5.0),
        ));
    }
    Ok(rows)
}

/// Runs the real scheduler over `definitions` (each with its first fire, or `None` for the
/// schedule's own) on a fresh redb file; returns the sorted lateness of every fire in the window.
async fn fire_lateness(
    definitions: Vec<(JobDefinition, Option<UnixMs>)>,
    window: Duration,
) -> anyhow::Result<Vec<f64>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path())?);
    for chunk in definitions.chunks(1_000) {
        let now = now_ms();
        store.write(|tx| {
            for (def, first) in chunk {
                let job = Job {
                    id: tx.next_job_id()?,
                    next_fire_ms: first.or_else(|| initial_fire(def, now)),
                    health: Default::default(),
                    def: def.clone(),
                    created_ms: now,
                    updated_ms: now,
                };
                tx.put_job(&job)?;
            }
            Ok::<_, StoreError>(())
        })?;
    }

    let (trigger, shutdown) = shoal::shutdown::channel();
    // The dispatcher's bell: the feed rings it once each committed batch of fires is durable.
    let feed = store.feed().clone();
    let scheduler = Scheduler::new(Arc::new(LocalEngine::new(store.clone())));
    let scheduler_task = tokio::spawn(scheduler.run(shutdown));

    // "Dispatch time" is when the dispatcher could hand the instance to a worker: it has been
    // committed (the scheduler rang the bell the dispatcher waits on) and its time has come (the
    // scheduler fires up to a second ahead, with `not_before` = the fire time). We stand in for
    // the dispatcher and wait as it does: on the bell, or on a timer for the earliest pending
    // `not_before`; each instance counts as dispatched when a wake-up finds it both committed and
    // due. Lateness = that moment − the scheduled fire time.
    let warmup = Duration::from_secs(2);
    let measure_from = now_ms() + warmup.as_millis() as i64;
    let measure_until = measure_from + window.as_millis() as i64;
    let mut next_id = 1;
    let mut lateness = Vec::new();
    // (dispatchable from, scheduled fire time), earliest first.
    let mut pending = BinaryHeap::<Reverse<(UnixMs, UnixMs)>>::new();
    while now_ms() < measure_until + 2_000 {
        let wait = pending
            .peek()
            .map_or(1_000, |Reverse((at, _))| (at - now_ms()).clamp(0, 1_000));
        tokio::select! {
            _ = feed.dispatcher_bell().notified() => {
                // As the dispatcher does: new instances are read after a fire that is about to
                // be due has gone out, not while it falls due.
                if let Some(Reverse((at, _))) = pending.peek() {
                    let gap = at - now_ms();
                    if (0..=shoal::server::dispatch::DUE_GUARD_MS).contains(&gap) {
                        tokio::time::sleep(Duration::from_millis(gap as u64)).await;
                    }
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
        }
        let now = now_ms();
        while let Some(Reverse((from, fire_at))) = pending.peek().copied() {
            if from > now {
                break;
            }
            pending.pop();
            lateness.push((now - fire_at) as f64);
        }
        let read = store.read()?;
        while let Some(instance) = read.instance(next_id)? {
            next_id += 1;
            if (measure_from..measure_until).contains(&instance.fire_at_ms) {
                let from = match instance.state {
                    InstanceState::Queued {
                        not_before_ms: Some(at),
                        ..
                    } => at,
                    _ => i64::MIN,
                };
                pending.push(Reverse((from, instance.fire_at_ms)));
            }
        }
        drop(read);
        let now = now_ms();
        while let Some(Reverse((from, fire_at))) = pending.peek().copied() {
            if from > now {
                break;
            }
            pending.pop();
            lateness.push((now - fire_at) as f64);
        }
    }
    trigger.trigger();
    let _ = scheduler_task.await;
    Ok(sorted(lateness))
}

// ---------------------------------------------------------------------------------------------
// 3. Failover

async fn failover() -> anyhow::Result<Vec<Row>> {
    let target = shoal::local::target::Target::start("127.0.0.1:0".parse()?).await?;
    let cluster = Cluster::start().await?;
    let doomed = cluster.worker("doomed")?;
    cluster.wait_live("doomed").await?;
    cluster
        .client
        .create_job(&on_demand_job("slow", target.url("/slow?ms=10000")))
        .await?;
    let tasks = 8;
    for _ in 0..tasks {
        cluster.client.run_job("slow").await?;
    }
    let start = Instant::now();
    loop {
        let running = cluster.instances_of("slow", Some("running"), 100).await?;
        if running.len() == tasks {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the tasks never all ran on the first worker");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _survivor = cluster.worker("survivor")?;
    cluster.wait_live("survivor").await?;
    // Let the failure detector learn the survivor's and the doomed worker's heartbeat rhythm.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = now_ms();
    doomed.signal("KILL");
    let mut delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while delays.len() < tasks && Instant::now() < deadline {
        let all = cluster.instances_of("slow", None, 100).await?;
        delays = all
            .iter()
            .filter_map(|i| {
                let attempt = i.attempts.iter().find(|a| a.worker == "survivor")?;
                Some((attempt.started_ms? - killed_at) as f64)
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lost = tasks - delays.len();
    let delays = sorted(delays);
    let (p50, max) = (percentile(&delays, 0.5), percentile(&delays, 1.0));
    eprintln!(
        "failover: {} of {tasks} tasks running elsewhere; p50 {p50:.0} ms, max {max:.0} ms",
        delays.len()
    );
    Ok(vec![Row::new(
        3,
        &format!("failover: SIGKILL of a worker running {tasks} tasks → each running on another"),
        "< 3 s, 0 lost",
        format!("p50 {p50:.0} ms, max {max:.0} ms, {lost} lost"),
        Some(lost == 0 && max < 3_000.0),
    )])
}

// ---------------------------------------------------------------------------------------------
// 4. Scale

/// Writes `jobs` jobs and `instances` finished instances straight through the store, in large
/// transactions (the fast way to a big file; the server then opens it as it would after years).
fn build_big_store(dir: &Path, jobs: usize, instances: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let store = Store::open(dir)?;
    let template = JobSpec {
        name: String::new(),
        every: Some("1h".into()),
        http: HttpSpec {
            url: "http://127.0.0.1:9/report".into(),
            ..HttpSpec::default()
        },
        ..JobSpec::default()
    };
    let now = now_ms();
    let mut ids = Vec::with_capacity(jobs);
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(5_000) {
        let mut created = Vec::new();
        store.write(|tx| {
            created.clear();
            for &i in chunk {
                let mut spec = template.clone();
                spec.name = format!("job-{i:06}");
                let def = spec
                    .validate()
                    .map_err(|e| StoreError::Commit(e.to_string()))?;
                let job = Job {
                    id: tx.next_job_id()?,
                    def,
                    created_ms: now,
                    updated_ms: now,
                    // Spread over the hour ahead, so the restarted server has nothing due.
                    next_fire_ms: Some(now + 3_600_000 + (i % 3_600) as i64 * 1_000),
                    health: Default::default(),
                };
                tx.put_job(&job)?;
                created.push((job.id, job.def.name));
            }
            Ok::<_, StoreError>(())
        })?;
        ids.append(&mut created);
    }
    let mut written = 0;
    while written < instances {
        let batch = (instances - written).min(20_000);
        store.write(|tx| {
            for k in 0..batch {
                let (job_id, job_name) = &ids[(written + k) % ids.len()];
                let at = now - 1_000 * (instances - written - k) as i64;
                let instance = Instance {
                    id: tx.next_instance_id()?,
                    job_id: *job_id,
                    job_name: job_name.clone(),
                    trigger: Trigger::Schedule,
                    fire_at_ms: at,
                    run_at_ms: None,
                    created_ms: at,
                    updated_ms: at + 40,
                    state: InstanceState::Succeeded,
                    attempts: vec![Attempt {
                        number: 1,
                        worker: "worker-1".into(),
                        assigned_ms: at + 1,
                        started_ms: Some(at + 2),
                        ended_ms: Some(at + 40),
                        outcome: Some(AttemptOutcome::Succeeded),
                        http_status: Some(200),
                        duration_ms: Some(38),
                        error: None,
                        excerpt: Some("ok".into()),
                    }],
                    pinned_worker: None,
                    parent: None,
                    children: Vec::new(),
                };
                tx.put_instance(&instance)?;
            }
            Ok::<_, StoreError>(())
        })?;
        written += batch;
    }
    Ok(start.elapsed())
}

fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kb / 1024.0)
}

async fn scale(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let (jobs, instances) = (sizes.scale_jobs, sizes.scale_instances);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let built_in = tokio::task::spawn_blocking({
        let data = data.clone();
        move || build_big_store(&data, jobs, instances)
    })
    .await??;
    let file_mib =
        std::fs::metadata(data.join(shoal::server::store::DB_FILE))?.len() as f64 / 1048576.0;
    let cluster = Cluster::start_on(&data).await?;
    let restart = cluster.started_in;
    let rss_start = rss_mib(cluster.server.pid())?;
    // A typical operator query against the full history: the newest 100 instances of one job.
    let query_start = Instant::now();
    let page = cluster.instances_of("job-000042", None, 100).await?;
    let query = query_start.elapsed();
    let rss_after = rss_mib(cluster.server.pid())?;
    eprintln!(
        "scale: built {jobs} jobs + {instances} instances in {:.1} s; file {file_mib:.0} MiB \
         ({:.0} B/instance); restart to API {:.0} ms; RSS {rss_start:.0} MiB, {rss_after:.0} MiB \
         after a {}-row history query ({:.1} ms)",
        built_in.as_secs_f64(),
        file_mib * 1048576.0 / instances as f64,
        restart.as_secs_f64() * 1e3,
        page.len(),
        query.as_secs_f64() * 1e3
    );
    drop(cluster);
    let what = format!("{jobs} jobs, {instances} instance records");
    let mut rows = vec![
        Row::new(
            4,
            &format!("scale: server restart to first API answer ({what})"),
            "< 1 s",
            format!("{:.0} ms", restart.as_secs_f64() * 1e3),
            Some(restart < Duration::from_secs(1)),
        ),
        Row::new(
            4,
            "scale: server RSS after restart and a history query",
            "< 256 MiB",
            format!("{rss_after:.0} MiB"),
            Some(rss_after < 256.0),
        ),
        Row::new(
            4,
            "scale: redb file size",
            "bounded by retention",
            format!(
                "{file_mib:.0} MiB ({:.0} B per instance) before retention; under write + sweep \
                 the file stays flat (`cargo test --lib the_file_stops_growing`)",
                file_mib * 1048576.0 / instances as f64
            ),
            None,
        ),
    ];
    for &jobs in &sizes.admin_jobs {
        rows.extend(admin_api_at(jobs, QUEUED_PER_JOB).await?);
    }
    Ok(rows)
}

/// Queued instances per job in the admin-API measure.
const QUEUED_PER_JOB: usize = 3;
/// A tag no worker of the measure has: every queued instance waits with a no-worker reason.
const NOBODYS_TAG: &str = "bench-nobody";

/// Writes `jobs` jobs that want [`NOBODYS_TAG`], each with `per_job` queued instances, straight
/// through the store.
fn build_queued_store(dir: &Path, jobs: usize, per_job: usize) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let template = JobSpec {
        name: String::new(),
        every: Some("1h".into()),
        http: HttpSpec {
            url: "http://127.0.0.1:9/never".into(),
            ..HttpSpec::default()
        },
        target: Some(shoal::spec::TargetSpec {
            tags: vec![NOBODYS_TAG.into()],
            workers: Vec::new(),
        }),
        ..JobSpec::default()
    };
    let now = now_ms();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(2_500) {
        store.write(|tx| {
            for &i in chunk {
                let mut spec = template.clone();
                spec.name = format!("queued-{i:06}");
                let def = spec
                    .validate()
                    .map_err(|e| StoreError::Commit(e.to_string()))?;
                let job = Job {
                    id: tx.next_job_id()?,
                    def,
                    created_ms: now,
                    updated_ms: now,
                    next_fire_ms: Some(now + 3_600_000 + (i % 3_600) as i64 * 1_000),
                    health: Default::default(),
                };
                tx.put_job(&job)?;
                for k in 0..per_job {
                    let at = now - 1_000 * (per_job - k) as i64;
                    let id = tx.next_instance_id()?;
                    tx.put_instance(&Instance {
                        id,
                        job_id: job.id,
                        job_name: job.def.name.clone(),
                        trigger: Trigger::Backfill,
                        fire_at_ms: at,
                        run_at_ms: None,
                        created_ms: at,
                        updated_ms: at,
                        state: InstanceState::queued(at),
                        attempts: Vec::new(),
                        pinned_worker: None,
                        parent: None,
                        children: Vec::new(),
                    })?;
                }
            }
            Ok::<_, StoreError>(())
        })?;
    }
    Ok(())
}

/// Median and worst of `samples` in ms.
fn median_max(samples: &[Duration]) -> (f64, f64) {
    let ms = sorted(samples.iter().map(|d| d.as_secs_f64() * 1e3).collect());
    (percentile(&ms, 0.5), ms.last().copied().unwrap_or(0.0))
}

/// The admin API and the console's refresh with `jobs` jobs, each with `per_job` queued
/// instances no worker can take: a page of jobs, all of them page by page, the queue summary,
/// and the console's whole refresh (`ApiSource::refresh`, what `shoal tui` does every tick).
async fn admin_api_at(jobs: usize, per_job: usize) -> anyhow::Result<Vec<Row>> {
    let queued = jobs * per_job;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    tokio::task::spawn_blocking({
        let data = data.clone();
        move || build_queued_store(&data, jobs, per_job)
    })
    .await??;
    let cluster = Cluster::start_on(&data).await?;
    let client = cluster.client.clone();
    // Measure the steady state: once the dispatcher has recorded every instance's reason.
    let start = Instant::now();
    while client.queue().await?.unplaceable.queued < queued as u64 {
        if start.elapsed() > Duration::from_secs(300) {
            bail!("the dispatcher did not record the reasons of {queued} instances in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut first_page = Vec::new();
    let mut queue = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let page = client.jobs_page(None, None).await?;
        first_page.push(t.elapsed());
        anyhow::ensure!(!page.items.is_empty(), "an empty first page");
        let t = Instant::now();
        client.queue().await?;
        queue.push(t.elapsed());
    }
    let mut all_pages = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let all = client.jobs().await?;
        all_pages.push(t.elapsed());
        anyhow::ensure!(all.len() == jobs, "{} of {jobs} jobs listed", all.len());
    }
    let handle = tokio::runtime::Handle::current();
    let console_client = client.clone();
    let (console, banner) = tokio::task::spawn_blocking(move || {
        use shoal_tui::DataSource;
        let mut source = shoal::client::console::ApiSource::new(console_client, handle);
        let mut took = Vec::new();
        let mut banner = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let snapshot = source.refresh().map_err(anyhow::Error::msg)?;
            took.push(t.elapsed());
            banner = snapshot.unplaceable_totals.queued;
        }
        Ok::<_, anyhow::Error>((took, banner))
    })
    .await??;
    anyhow::ensure!(
        banner == queued as u64,
        "the console's banner counts {banner} of {queued}"
    );
    let (page_p50, page_max) = median_max(&first_page);
    let (all_p50, all_max) = median_max(&all_pages);
    let (queue_p50, queue_max) = median_max(&queue);
    let (console_p50, console_max) = median_max(&console);
    eprintln!(
        "scale: {jobs} jobs, {queued} queued: first page p50 {page_p50:.1} ms (max \
         {page_max:.1}), all {} pages p50 {all_p50:.1} ms (max {all_max:.1}), queue p50 \
         {queue_p50:.1} ms (max {queue_max:.1}), console refresh p50 {console_p50:.1} ms (max \
         {console_max:.1})",
        jobs.div_ceil(shoal::client::JOBS_PAGE)
    );
    let what = format!("{jobs} jobs, {queued} queued no worker can take");
    Ok(vec![
        Row::new(
            4,
            &format!("scale: list jobs ({what}): a page of 1000 / every page"),
            "p50 < 300 ms a page",
            format!(
                "page p50 {page_p50:.0} ms (max {page_max:.0}); all {} pages p50 {all_p50:.0} ms",
                jobs.div_ceil(shoal::client::JOBS_PAGE)
            ),
            Some(page_p50 < 300.0),
        ),
        Row::new(
            4,
            &format!("scale: queue summary, GET /api/v1/queue ({what})"),
            "p50 < 300 ms",
            format!("p50 {queue_p50:.0} ms (max {queue_max:.0})"),
            Some(queue_p50 < 300.0),
        ),
        Row::new(
            4,
            &format!(
                "scale: console refresh: header, banner, jobs view (at most {}) ({what})",
                shoal::client::console::JOB_LIMIT
            ),
            "p50 < 1 s (the refresh tick)",
            format!("p50 {console_p50:.0} ms (max {console_max:.0}); banner counts all {queued}"),
            Some(console_p50 < 1_000.0),
        ),
    ])
}

// ---------------------------------------------------------------------------------------------
// 5. Gossip

/// A free port is only free until someone else takes it (the other measures' processes, other
/// tests on the machine): try a few before giving up.
async fn start_gossip_node(info: NodeInfo, seeds: Vec<String>) -> anyhow::Result<Membership> {
    let mut last_error = None;
    for _ in 0..5 {
        let port = free_udp_port()?;
        let mut config = GossipConfig::new("bench-gossip", format!("127.0.0.1:{port}").parse()?);
        config.seeds = seeds.clone();
        match Membership::start(config, info.clone(), &UdpTransport).await {
            Ok(node) => return Ok(node),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.context("no attempt made")?.into())
}

async fn gossip(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let count = sizes.gossip_nodes;
    let start = Instant::now();
    let mut nodes: Vec<Membership> = Vec::with_capacity(count);
    for i in 0..count {
        let info = NodeInfo {
            id: format!("n{i:02}"),
            role: if i == 0 { Role::Server } else { Role::Worker },
            api_addr: String::new(),
            tags: Vec::new(),
            capacity: 4,
            running: 0,
            version: shoal::VERSION.into(),
        };
        let seeds: Vec<String> = nodes
            .first()
            .map(|seed| vec![seed.gossip_addr().to_string()])
            .unwrap_or_default();
        nodes.push(start_gossip_node(info, seeds).await?);
    }
    let all_live = |node: &Membership| {
        let view = node.view();
        view.members.len() == count && view.members.iter().all(|m| m.is_live())
    };
    while !nodes.iter().all(all_live) {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("{count} gossip nodes did not converge in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let converged = start.elapsed();
    // As in a running cluster, let the failure detectors learn the heartbeat rhythm first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = nodes.pop().context("no nodes")?;
    let victim_id = victim.self_id().to_string();
    let killed = Instant::now();
    drop(victim);
    let mut first_saw: Option<Duration> = None;
    loop {
        let seeing = nodes
            .iter()
            .filter(|n| {
                n.view()
                    .get(&victim_id)
                    .is_some_and(|m| m.state == MemberState::Dead)
            })
            .count();
        if seeing > 0 && first_saw.is_none() {
            first_saw = Some(killed.elapsed());
        }
        if seeing == nodes.len() {
            break;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            bail!(
                "only {seeing} of {} nodes saw the dead node in 60 s",
                nodes.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_saw = killed.elapsed();
    let first_saw = first_saw.unwrap_or(all_saw);
    eprintln!(
        "gossip: {count} nodes all live everywhere after {:.0} ms; a dropped node dead for the \
         first after {:.0} ms, for all after {:.0} ms",
        converged.as_secs_f64() * 1e3,
        first_saw.as_secs_f64() * 1e3,
        all_saw.as_secs_f64() * 1e3
    );
    Ok(vec![
        Row::new(
            5,
            &format!(
                "gossip: {count} in-process nodes (UDP, 200 ms rounds) until all see all live"
            ),
            "< 5 s",
            format!("{:.0} ms", converged.as_secs_f64() * 1e3),
            Some(converged < Duration::from_secs(5)),
        ),
        Row::new(
            5,
            "gossip: a node stops → every other node sees it dead",
            "< 3 s (inside the failover goal)",
            format!(
                "first {:.0} ms, all {:.0} ms",
                first_saw.as_secs_f64() * 1e3,
                all_saw.as_secs_f64() * 1e3
            ),
            Some(all_saw < Duration::from_secs(3)),
        ),
    ])
}

// ---------------------------------------------------------------------------------------------
// 6. Console

fn console(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    use shoal_tui::fixtures::{big_snapshot, frame_times, press};
    let mut app = shoal_tui::App::new(shoal_tui::Options::default());
    app.apply_snapshot(Ok(big_snapshot(1_000, 10_000)));
    let to_ms =
        |samples: Vec<Duration>| sorted(samples.iter().map(|d| d.as_secs_f64() * 1e3).collect());
    let workers = to_ms(frame_times(&app, 200, 60, 50, sizes.console_frames));
    press(&mut app, '3');
    let instances = to_ms(frame_times(&app, 200, 60, 50, sizes.console_frames));
    let worst_p99 = percentile(&workers, 0.99).max(percentile(&instances, 0.99));
    eprintln!(
        "console: workers view p50 {:.2} ms p99 {:.2} ms; instances view p50 {:.2} ms p99 {:.2} ms",
        percentile(&workers, 0.5),
        percentile(&workers, 0.99),
        percentile(&instances, 0.5),
        percentile(&instances, 0.99)
    );
    Ok(vec![Row::new(
        6,
        "console: one 200×60 frame, 1,000 workers and 10,000 instances",
        "p99 < 16 ms (one 60 Hz frame)",
        format!(
            "workers view p50 {:.2} / p99 {:.2} ms; instances view p50 {:.2} / p99 {:.2} ms",
            percentile(&workers, 0.5),
            percentile(&workers, 0.99),
            percentile(&instances, 0.5),
            percentile(&instances, 0.99)
        ),
        Some(worst_p99 < 16.0),
    )])
}

// ---------------------------------------------------------------------------------------------
// 7. A group of three servers

/// Three servers forming a Raft group on loopback, each its own process.
struct Group {
    _dir: tempfile::TempDir,
    servers: Vec<Option<Proc>>,
    apis: Vec<String>,
    gossip: String,
    /// A client of all three (it moves to the next when one does not answer).
    client: ApiClient,
}

impl Group {
    async fn start() -> anyhow::Result<Group> {
        let dir = tempfile::tempdir()?;
        let apis: Vec<String> = (0..3)
            .map(|_| Ok(format!("127.0.0.1:{}", free_tcp_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let gossips: Vec<String> = (0..3)
            .map(|_| Ok(format!("127.0.0.1:{}", free_udp_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let mut servers = Vec::new();
        for k in 0..3 {
            let data = dir.path().join(format!("data-{k}"));
            servers.push(Some(Proc(
                Command::new(shoal_binary()?)
                    .args(["server", "--id", &format!("s{k}"), "--api", &apis[k]])
                    .args(["--gossip", &gossips[k], "--join", &gossips[0]])
                    .args(["--bootstrap-expect", "3", "--data-dir"])
                    .arg(&data)
                    .env("SHOAL_LOG", "warn")
                    .stdout(Stdio::null())
                    .spawn()?,
            )));
        }
        let urls: Vec<String> = apis.iter().map(|a| format!("http://{a}")).collect();
        let client = ApiClient::new(&urls.join(","), None, &Default::default())?;
        let group = Group {
            _dir: dir,
            servers,
            apis,
            gossip: gossips[0].clone(),
            client,
        };
        group.leader(Duration::from_secs(120)).await?;
        Ok(group)
    }

    /// The index of the server that leads, once one does.
    async fn leader(&self, within: Duration) -> anyhow::Result<usize> {
        let start = Instant::now();
        loop {
            for (k, api) in self.apis.iter().enumerate() {
                if self.servers[k].is_none() {
                    continue;
                }
                let client = ApiClient::new(&format!("http://{api}"), None, &Default::default())?;
                if let Ok(Ok(cluster)) =
                    tokio::time::timeout(Duration::from_millis(500), client.cluster()).await
                    && cluster
                        .group
                        .is_some_and(|g| g.role == shoal_gossip::GroupRole::Leader)
                {
                    return Ok(k);
                }
            }
            if start.elapsed() > within {
                bail!("no leader within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn group(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let n = sizes.throughput_instances;
    let target = shoal::local::target::Target::start("127.0.0.1:0".parse()?).await?;

    // Throughput of one server and of a group of three, in this run, the same way.
    let single = {
        let cluster = Cluster::start().await?;
        run_rate(&cluster.client, &cluster.gossip, &target, n).await?
    };
    let replicated = {
        let group = Group::start().await?;
        run_rate(&group.client, &group.gossip, &target, n).await?
    };
    let ratio = replicated.end_to_end / single.end_to_end;
    let drain_ratio = replicated.drain / single.drain;

    // Leader SIGKILL → the first fire the new leader hands out.
    let mut group = Group::start().await?;
    let _worker = Proc(
        Command::new(shoal_binary()?)
            .args(["worker", "--join", &group.gossip, "--id", "w1"])
            .env("SHOAL_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    group
        .client
        .create_job(&JobSpec {
            name: "tick".into(),
            cron: Some("* * * * * *".into()),
            max_concurrent: Some(100),
            http: HttpSpec {
                url: target.url("/ok"),
                ..HttpSpec::default()
            },
            ..JobSpec::default()
        })
        .await?;
    let ticks = |client: ApiClient| async move {
        client
            .instances(&InstanceQuery {
                job: Some("tick".into()),
                state: None,
                limit: Some(1_000),
            })
            .await
    };
    // Steady state: fires running for a few seconds.
    let start = Instant::now();
    while ticks(group.client.clone())
        .await?
        .iter()
        .filter(|i| i.instance.attempts.iter().any(|a| a.started_ms.is_some()))
        .count()
        < 3
    {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the per-second job never ran");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leader = group.leader(Duration::from_secs(10)).await?;
    let killed_at = now_ms();
    if let Some(server) = group.servers[leader].take() {
        server.signal("KILL");
    }
    let new_leader = group.leader(Duration::from_secs(60)).await?;
    let elected_in = now_ms() - killed_at;
    let start = Instant::now();
    let first_assigned = loop {
        let assigned_after: Option<i64> = ticks(group.client.clone())
            .await
            .unwrap_or_default()
            .iter()
            .flat_map(|i| &i.instance.attempts)
            .map(|a| a.assigned_ms)
            .filter(|at| *at > killed_at)
            .min();
        if let Some(at) = assigned_after {
            break at;
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the new leader dispatched nothing within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let takeover_ms = first_assigned - killed_at;
    eprintln!(
        "group: server s{leader} killed; s{new_leader} led after {elected_in} ms (as seen by \
         polling), first fire dispatched {takeover_ms} ms after the kill"
    );
    Ok(vec![
        Row::new(
            7,
            "group of 3: leader SIGKILL → first fire dispatched by the new leader (per-second \
             cron, 1 worker)",
            "< 2 s",
            format!("{takeover_ms} ms (a new leader answered after {elected_in} ms)"),
            Some(takeover_ms < 2_000),
        ),
        Row::new(
            7,
            &format!(
                "group of 3: throughput of {n} no-op tasks through the group vs one server, \
                 same run, enqueued through the API meanwhile"
            ),
            "≥ 50 % of one server",
            format!(
                "{:.1} % ({:.0} vs {:.0} instances/s; {}/{n} succeeded)",
                ratio * 100.0,
                replicated.end_to_end,
                single.end_to_end,
                replicated.succeeded
            ),
            Some(ratio >= 0.5 && replicated.succeeded == n),
        ),
        Row::new(
            7,
            "group of 3: throughput draining a full queue, vs one server",
            "≥ 50 % of one server",
            format!(
                "{:.1} % ({:.0} vs {:.0} instances/s; {}/{n} succeeded)",
                drain_ratio * 100.0,
                replicated.drain,
                single.drain,
                replicated.drain_succeeded
            ),
            Some(drain_ratio >= 0.5 && replicated.drain_succeeded == n),
        ),
    ])
}
