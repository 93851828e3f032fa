//! Whole-cluster benchmark on loopback with real `shoal` processes.
//!
//! ```sh
//! cargo build --release --bins --examples
//! target/release/examples/cluster_bench            # all sections
//! target/release/examples/cluster_bench membership # or: throughput, failover
//! ```
//!
//! Prints: SIGKILL → dead and SIGTERM → left as seen by the server; instances completed per second
//! by 1 server + 2 workers against a no-op local target next to a plain pooled reqwest loop with
//! the same concurrency (the ratio); and the time from a worker's SIGKILL until each of its tasks
//! runs on the other worker.

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal::client::{ApiClient, InstanceQuery};
use shoal::spec::{HttpSpec, JobSpec};

const WORKER_CAPACITY: u32 = 16;

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
}

fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let bin = dir.join("shoal");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --release --bins --examples` first",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    _dir: tempfile::TempDir,
    _server: Proc,
    gossip: String,
    client: ApiClient,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let api = format!("127.0.0.1:{}", free_port());
        let gossip = format!("127.0.0.1:{}", free_udp());
        let server = Proc(
            Command::new(binary())
                .args(["server", "--api", &api, "--gossip", &gossip, "--data-dir"])
                .arg(dir.path().join("data"))
                .env("SHOAL_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let client = ApiClient::new(&format!("http://{api}"), None).unwrap();
        let start = Instant::now();
        while client.members().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Cluster {
            _dir: dir,
            _server: server,
            gossip,
            client,
        }
    }

    fn worker(&self, id: &str) -> Proc {
        Proc(
            Command::new(binary())
                .args(["worker", "--join", &self.gossip, "--id", id])
                .args(["--capacity", &WORKER_CAPACITY.to_string()])
                .env("SHOAL_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    async fn member_state(&self, id: &str) -> Option<String> {
        let members = self.client.members().await.ok()?;
        members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.state.to_string())
    }

    async fn wait_member(&self, id: &str, state: &str) -> Duration {
        let start = Instant::now();
        loop {
            if self.member_state(id).await.as_deref() == Some(state) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{id} never {state}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn summary(mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    format!(
        "median {median:.0} ms, max {max:.0} ms over {} runs",
        samples.len()
    )
}

async fn membership() {
    let cluster = Cluster::start().await;
    let (mut killed, mut left) = (Vec::new(), Vec::new());
    for round in 0..5 {
        let a = cluster.worker(&format!("k{round}"));
        let b = cluster.worker(&format!("t{round}"));
        cluster.wait_member(&format!("k{round}"), "live").await;
        cluster.wait_member(&format!("t{round}"), "live").await;
        // Let the failure detector learn the heartbeat rhythm, as in a running cluster.
        tokio::time::sleep(Duration::from_secs(2)).await;
        a.signal("KILL");
        killed.push(
            cluster
                .wait_member(&format!("k{round}"), "dead")
                .await
                .as_secs_f64()
                * 1e3,
        );
        b.signal("TERM");
        left.push(
            cluster
                .wait_member(&format!("t{round}"), "left")
                .await
                .as_secs_f64()
                * 1e3,
        );
    }
    println!("membership  SIGKILL -> dead: {}", summary(killed));
    println!("membership  SIGTERM -> left: {}", summary(left));
}

fn job(name: &str, url: String) -> JobSpec {
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

async fn throughput(n: usize) {
    let target = shoal::target::Target::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cluster = Cluster::start().await;
    let _w1 = cluster.worker("w1");
    let _w2 = cluster.worker("w2");
    cluster.wait_member("w1", "live").await;
    cluster.wait_member("w2", "live").await;
    cluster
        .client
        .create_job(&job("noop", target.url("/ok")))
        .await
        .unwrap();

    let start = Instant::now();
    let mut submits = tokio::task::JoinSet::new();
    for chunk in 0..16 {
        let client = cluster.client.clone();
        submits.spawn(async move {
            for _ in (chunk..n).step_by(16) {
                client.run_job("noop").await.unwrap();
            }
        });
    }
    while submits.join_next().await.is_some() {}
    let enqueued = start.elapsed();
    loop {
        let open = cluster
            .client
            .instances(&InstanceQuery {
                job: Some("noop".into()),
                state: Some("queued,assigned,running".into()),
                limit: Some(1),
            })
            .await
            .unwrap();
        if open.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    let done = cluster
        .client
        .instances(&InstanceQuery {
            job: Some("noop".into()),
            state: Some("succeeded".into()),
            limit: Some(10_000),
        })
        .await
        .unwrap()
        .len();
    let shoal_rate = done as f64 / elapsed.as_secs_f64();

    // The raw limit: a pooled reqwest loop with the same concurrency as the two workers.
    let concurrency = 2 * WORKER_CAPACITY as usize;
    let http = reqwest::Client::new();
    let url = target.url("/ok");
    let raw_start = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let http = http.clone();
        let url = url.clone();
        loops.spawn(async move {
            for _ in (worker..n).step_by(concurrency) {
                http.get(&url).send().await.unwrap().bytes().await.unwrap();
            }
        });
    }
    while loops.join_next().await.is_some() {}
    let raw_rate = n as f64 / raw_start.elapsed().as_secs_f64();
    println!(
        "throughput  {done}/{n} instances succeeded in {:.2} s (enqueued in {:.2} s): {shoal_rate:.0} instances/s",
        elapsed.as_secs_f64(),
        enqueued.as_secs_f64()
    );
    println!(
        "throughput  raw pooled reqwest loop, concurrency {concurrency}: {raw_rate:.0} requests/s; ratio {:.1} %",
        100.0 * shoal_rate / raw_rate
    );
}

async fn failover() {
    let target = shoal::target::Target::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cluster = Cluster::start().await;
    let doomed = cluster.worker("doomed");
    cluster.wait_member("doomed", "live").await;
    cluster
        .client
        .create_job(&job("slow", target.url("/slow?ms=4000")))
        .await
        .unwrap();
    let tasks = 8;
    for _ in 0..tasks {
        cluster.client.run_job("slow").await.unwrap();
    }
    loop {
        let running = cluster
            .client
            .instances(&InstanceQuery {
                job: Some("slow".into()),
                state: Some("running".into()),
                limit: Some(100),
            })
            .await
            .unwrap();
        if running.len() == tasks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _survivor = cluster.worker("survivor");
    cluster.wait_member("survivor", "live").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = shoal::model::now_ms();
    doomed.signal("KILL");
    let mut delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while delays.len() < tasks && Instant::now() < deadline {
        let all = cluster
            .client
            .instances(&InstanceQuery {
                job: Some("slow".into()),
                state: None,
                limit: Some(100),
            })
            .await
            .unwrap();
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
    println!(
        "failover    SIGKILL of a worker holding {tasks} running tasks -> running elsewhere: {}; tasks lost: {lost}",
        summary(delays)
    );
}

#[tokio::main]
async fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    if which == "all" || which == "membership" {
        membership().await;
    }
    if which == "all" || which == "throughput" {
        throughput(n).await;
    }
    if which == "all" || which == "failover" {
        failover().await;
    }
}
