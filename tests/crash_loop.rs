//! Jepsen-style: the server is SIGKILLed at random moments under load (cron jobs firing every
//! second, hundreds of fixed-rate jobs, run-now calls, two workers running the tasks against a
//! real local HTTP target) and restarted on the same data dir and ports, over and over.
//!
//! After each restart, and at the end, Shoal's promises are checked against what the API said:
//! - no job is lost or changed;
//! - every instance the API acknowledged (a run-now answer, or any listing) still exists;
//! - no instance leaves a terminal state, and a terminal record never changes;
//! - no scheduled fire is doubled, and none is lost unless the misfire policy allows it (the
//!   scheduler reached it more than 5 s late, and the policy is not `fire-all`);
//! - once the load stops, every unfinished instance reaches a terminal state.
//!
//! `SHOAL_CRASH_ROUNDS` (default 20) sets the number of crashes, `SHOAL_CRASH_SEED` replays a run
//! (the seed is printed), `SHOAL_CRASH_JOBS` the number of fixed-rate jobs (default 200), and
//! `SHOAL_CRASH_KEEP` keeps the run's directory (logs, data, command recording).
//! A longer run: `SHOAL_CRASH_ROUNDS=100 cargo test --test crash_loop -- --nocapture` (each
//! round lists every instance so far, so rounds slow down as history grows; lower
//! `SHOAL_CRASH_JOBS` for runs of hundreds of rounds).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::group::*;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use shoal::model::now_ms;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the crash loop runs against: one server, or a group of servers.
trait System {
    /// A call that must succeed, at the server whose state is the truth (the leader's, for a
    /// group, once it has applied everything any server has).
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Value;
    /// Every API, for the run-now caller.
    fn apis(&self) -> Vec<SocketAddr>;
    /// The gossip address workers join.
    fn join(&self) -> String;
    /// Kills a server (the leader, for a group), waits `down_ms`, restarts it, and waits until the
    /// system takes writes again. Returns when it was killed and when the system was back (the
    /// server up again, or a new leader elected), in ms.
    fn crash(&mut self, down_ms: u64) -> (i64, i64);
    /// Kills every server.
    fn kill_all(&mut self);
    /// Starts every server again (after `kill_all`) and waits until the system takes writes.
    fn start_all(&mut self);
}

impl System for Crashable {
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        Crashable::call(self, method, path, body)
    }

    fn apis(&self) -> Vec<SocketAddr> {
        vec![self.api]
    }

    fn join(&self) -> String {
        self.gossip.to_string()
    }

    fn crash(&mut self, down_ms: u64) -> (i64, i64) {
        let killed = now_ms();
        self.kill();
        std::thread::sleep(Duration::from_millis(down_ms));
        (killed, self.start())
    }

    fn kill_all(&mut self) {
        self.kill();
    }

    fn start_all(&mut self) {
        self.start();
    }
}

impl System for Group {
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        Group::call(self, method, path, body)
    }

    fn apis(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.api).collect()
    }

    fn join(&self) -> String {
        self.servers[0].gossip.to_string()
    }

    /// Kills the leader and keeps it down until the other two have elected a new one (a
    /// leader restarted at once would resume its own term before anyone noticed), then restarts
    /// it as a follower.
    fn crash(&mut self, down_ms: u64) -> (i64, i64) {
        let leader = self.leader();
        let killed = now_ms();
        self.servers[leader].kill();
        let successor = self.leader();
        assert_ne!(successor, leader, "a killed server cannot lead");
        let took_over = now_ms();
        std::thread::sleep(Duration::from_millis(down_ms));
        self.servers[leader].start();
        self.leader();
        (killed, took_over)
    }

    fn kill_all(&mut self) {
        self.kill_all_servers();
    }

    fn start_all(&mut self) {
        for server in &mut self.servers {
            server.start();
        }
        self.leader();
    }
}

/// A scheduled job's grid: one fire every `period_ms`.
struct Grid {
    name: String,
    period_ms: i64,
    fire_all: bool,
}

/// What the API told us, to hold the server to.
#[derive(Default)]
struct Ledger {
    /// Jobs as created (minus what the server moves on by itself).
    jobs: BTreeMap<String, Value>,
    /// Instance ids acknowledged by run-now answers.
    acknowledged: HashSet<u64>,
    /// Every instance seen in a listing.
    seen: HashSet<u64>,
    /// Terminal records as first seen.
    terminal: HashMap<u64, Value>,
    checks: usize,
}

/// The parts of a job that only its owner may change.
fn job_identity(job: &Value) -> Value {
    let mut job = job.clone();
    if let Some(map) = job.as_object_mut() {
        for key in [
            "next_fire_ms",
            "updated_ms",
            "queued",
            "running",
            "last_result",
        ] {
            map.remove(key);
        }
    }
    job
}

fn all_instances(server: &dyn System) -> Vec<Value> {
    every_instance(|path| server.call("GET", path, None))
}

/// Every instance, page by page, through `get` (a GET of the path given).
fn every_instance(get: impl Fn(&str) -> Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before = String::new();
    loop {
        let page = get(&format!("/api/v1/instances?limit=10000{before}"));
        let page = page.as_array().cloned().unwrap_or_default();
        let done = page.len() < 10_000;
        if let Some(last) = page.last() {
            before = format!("&before={}", last["id"]);
        }
        out.extend(page);
        if done {
            return out;
        }
    }
}

fn is_terminal(instance: &Value) -> bool {
    matches!(
        instance["state"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

/// Checks every promise against the server's current state; returns the instances.
fn check(server: &dyn System, ledger: &mut Ledger, when: &str) -> Vec<Value> {
    ledger.checks += 1;
    // One page holds them all: a page takes up to 5,000 jobs, far more than SHOAL_CRASH_JOBS.
    let jobs = server.call("GET", "/api/v1/jobs?limit=5000", None);
    let jobs: BTreeMap<String, Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap().to_string(), job_identity(j)))
        .collect();
    assert_eq!(jobs.len(), ledger.jobs.len(), "{when}: job count changed");
    for (name, job) in &ledger.jobs {
        assert_eq!(
            jobs.get(name),
            Some(job),
            "{when}: job {name} lost or changed"
        );
    }
    let instances = all_instances(server);
    let ids: HashSet<u64> = instances
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        instances.len(),
        "{when}: an instance listed twice"
    );
    let missing: Vec<_> = ledger.acknowledged.difference(&ids).collect();
    assert!(
        missing.is_empty(),
        "{when}: acknowledged instances lost: {missing:?}"
    );
    let vanished: Vec<_> = ledger.seen.difference(&ids).collect();
    assert!(
        vanished.is_empty(),
        "{when}: instances seen before are gone: {vanished:?}"
    );
    for instance in &instances {
        let id = instance["id"].as_u64().unwrap();
        ledger.seen.insert(id);
        if let Some(first) = ledger.terminal.get(&id) {
            assert_eq!(
                instance, first,
                "{when}: instance {id} changed after reaching a terminal state"
            );
        } else if is_terminal(instance) {
            ledger.terminal.insert(id, instance.clone());
        }
    }
    instances
}

/// Fires later than this are missed and follow the misfire policy (`schedule::MISFIRE_GRACE_MS`).
const MISFIRE_GRACE_MS: i64 = 5_000;

/// No scheduled fire doubled, and none lost unless the misfire policy allows it: a job that is
/// not `fire-all` may miss a fire only if the scheduler reached it more than the misfire grace
/// late (the server was down, or stalled), which shows in when the next instance was created.
/// Returns (fires checked, fires excused by the policy).
fn check_fires(grids: &[Grid], instances: &[Value], until_ms: i64) -> (usize, usize) {
    let (mut checked, mut excused) = (0, 0);
    for grid in grids {
        let mut fires: Vec<(i64, i64)> = instances
            .iter()
            .filter(|i| i["job_name"] == grid.name.as_str() && i["trigger"] == "schedule")
            .map(|i| {
                (
                    i["fire_at_ms"].as_i64().unwrap(),
                    i["created_ms"].as_i64().unwrap(),
                )
            })
            .collect();
        fires.sort();
        let before = fires.len();
        fires.dedup_by_key(|(fire, _)| *fire);
        assert_eq!(before, fires.len(), "job {}: a fire was doubled", grid.name);
        checked += fires.len();
        for pair in fires.windows(2) {
            let ((a, _), (b, b_created)) = (pair[0], pair[1]);
            assert_eq!(
                (b - a) % grid.period_ms,
                0,
                "job {}: fires {a} and {b} are off the grid",
                grid.name
            );
            let mut missing = a + grid.period_ms;
            while missing < b && missing < until_ms {
                let late = b_created - missing;
                assert!(
                    !grid.fire_all && late > MISFIRE_GRACE_MS,
                    "job {}: the fire at {missing} was lost (neighbours {a} and {b}, the \
                     scheduler reached it {late} ms late)",
                    grid.name
                );
                excused += 1;
                missing += grid.period_ms;
            }
        }
    }
    (checked, excused)
}

#[test]
fn the_server_survives_sigkill_under_load_without_losing_or_doubling_work() {
    let rounds: usize = env_or("SHOAL_CRASH_ROUNDS", 20);
    let fixed_jobs: usize = env_or("SHOAL_CRASH_JOBS", 200);
    let dir = run_dir();
    let mut server = Crashable::new(dir.path(), "server");
    let recording = dir.path().join("commands");
    server.extra = vec!["--record-commands".into(), recording.display().to_string()];
    server.start();
    crash_loop(&mut server, &dir, rounds, fixed_jobs);
    let commands = replays_identically(&recording);
    println!("its {commands} commands replayed into two fresh stores gave identical tables");
}

/// The same load and promises with three servers in a Raft group, the leader SIGKILLed each
/// round and restarted: a new leader takes over; nothing acknowledged is lost, no fire doubled,
/// no terminal state changed. At the end the three stores hold the same instances.
#[test]
fn a_group_of_three_survives_its_leader_killed_under_load() {
    let rounds: usize = env_or("SHOAL_GROUP_CRASH_ROUNDS", 10);
    let fixed_jobs: usize = env_or("SHOAL_CRASH_JOBS", 100);
    let dir = run_dir();
    let mut group = Group::start(dir.path());
    crash_loop(&mut group, &dir, rounds, fixed_jobs);
    // Every server applied the same commands: once they agree on the applied index, their
    // listings of every instance are identical.
    let applied = eventually("the three servers at the same applied index", || {
        let views = group.views();
        let first = views.first()?.1["applied"].clone();
        (views.len() == 3 && views.iter().all(|(_, g)| g["applied"] == first)).then_some(first)
    });
    let listings: Vec<Vec<Value>> = group
        .servers
        .iter()
        .map(|server| every_instance(|path| server.call("GET", path, None)))
        .collect();
    for (k, listing) in listings.iter().enumerate().skip(1) {
        assert!(
            listing == &listings[0],
            "server {} holds other instances than server 1 at applied index {applied}",
            k + 1
        );
    }
    println!(
        "the three servers hold the same {} instances at applied index {applied}",
        listings[0].len()
    );
    group.kill_all();
}

/// A temp dir for a run (kept with `SHOAL_CRASH_KEEP`).
fn run_dir() -> KeptDir {
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("SHOAL_CRASH_KEEP").is_some() {
        // The logs and data of a failing run, for a post-mortem.
        println!("keeping {}", dir.path().display());
    }
    KeptDir::new(dir)
}

/// Crashes `system` `rounds` times under load and checks every promise after each crash, and
/// once more after the load stops and everything has finished.
fn crash_loop(system: &mut dyn System, dir: &KeptDir, rounds: usize, fixed_jobs: usize) {
    let seed: u64 = env_or("SHOAL_CRASH_SEED", now_ms() as u64);
    println!("crash loop: {rounds} rounds, seed {seed} (replay with SHOAL_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let target = TestTarget::start();
    let join = system.join();
    let _workers: Vec<Node> = ["w1", "w2"]
        .iter()
        .map(|id| {
            Node::spawn(
                id,
                dir.path(),
                &["worker", "--join", &join, "--id", id, "--capacity", "16"],
            )
        })
        .collect();

    let mut ledger = Ledger::default();
    let mut grids = Vec::new();
    let create = |server: &dyn System, ledger: &mut Ledger, spec: Value| {
        let job = server.call("POST", "/api/v1/jobs", Some(&spec.to_string()));
        ledger.jobs.insert(
            job["name"].as_str().unwrap().to_string(),
            job_identity(&job),
        );
    };
    let http_ok = json!({ "url": target.url("/ok"), "timeout": "5s" });
    for policy in ["fire-all", "fire-once", "skip"] {
        let name = format!("cron-{policy}");
        create(
            &*system,
            &mut ledger,
            json!({ "name": name, "cron": "* * * * * *", "misfire": policy,
                    "max_concurrent": 10000, "http": http_ok }),
        );
        grids.push(Grid {
            name,
            period_ms: 1000,
            fire_all: policy == "fire-all",
        });
    }
    for k in 0..fixed_jobs {
        let name = format!("rate-{k}");
        let every_ms = 2_000 + 500 * (k as i64 % 5);
        create(
            &*system,
            &mut ledger,
            json!({ "name": name, "every": format!("{every_ms}ms"), "max_concurrent": 10000,
                    "http": http_ok }),
        );
        grids.push(Grid {
            name,
            period_ms: every_ms,
            fire_all: false,
        });
    }
    let on_demand: Vec<String> = (0..4).map(|k| format!("manual-{k}")).collect();
    for name in &on_demand {
        create(
            &*system,
            &mut ledger,
            json!({ "name": name, "on_demand": true, "max_concurrent": 10000,
                    "http": { "url": target.url("/slow?ms=200"), "timeout": "5s" } }),
        );
    }

    // Run-now calls all along; only answered ones count as acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<u64>::new()));
    let caller = {
        let (stop, acknowledged, apis) = (stop.clone(), acknowledged.clone(), system.apis());
        std::thread::spawn(move || {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let path = format!("/api/v1/jobs/{}/run", on_demand[k % on_demand.len()]);
                // Any server takes a write (a follower forwards it to the leader).
                match http(apis[k % apis.len()], "POST", &path, None) {
                    Some((201, body)) => {
                        let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
                            .as_u64()
                            .unwrap();
                        acknowledged.lock().unwrap().push(id);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    // A group without a leader for a moment (an election) refuses writes, saying
                    // so; such a call was not acknowledged.
                    Some((503, body))
                        if [
                            "no_leader",
                            "no_quorum",
                            "no_quorum_outcome_unknown",
                            "leader_unreachable",
                        ]
                        .iter()
                        .any(|code| body.contains(&format!("\"error\":\"{code}\""))) =>
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Some((status, body)) => panic!("run-now refused: {status} {body}"),
                    None => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
    };

    let started_ms = now_ms();
    for round in 1..=rounds {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1500)));
        let (killed, up) = system.crash(rng.random_range(0..300));
        ledger
            .acknowledged
            .extend(acknowledged.lock().unwrap().iter().copied());
        let instances = check(&*system, &mut ledger, &format!("after crash {round}"));
        check_fires(&grids, &instances, killed - 3_000);
        println!(
            "crash {round}/{rounds}: back after {} ms, {} instances, {} acknowledged by run-now",
            up - killed,
            instances.len(),
            ledger.acknowledged.len()
        );
    }

    // Stop the load: no more run-now calls, every scheduled job paused.
    stop.store(true, Ordering::Relaxed);
    caller.join().unwrap();
    ledger
        .acknowledged
        .extend(acknowledged.lock().unwrap().iter().copied());
    let paused_at = now_ms();
    let mut pause_asked: HashMap<String, i64> = HashMap::new();
    for grid in &grids {
        pause_asked.insert(grid.name.clone(), now_ms());
        let job = system.call("POST", &format!("/api/v1/jobs/{}/pause", grid.name), None);
        ledger.jobs.insert(grid.name.clone(), job_identity(&job));
    }
    // Generous: a lease outlives a task's timeout by 15 s, and a long run lists many instances.
    let draining = Instant::now();
    let instances = loop {
        let instances = check(&*system, &mut ledger, "draining");
        if instances.iter().all(is_terminal) {
            break instances;
        }
        let open: Vec<&Value> = instances
            .iter()
            .filter(|i| !is_terminal(i))
            .take(3)
            .collect();
        assert!(
            draining.elapsed() < Duration::from_secs(180),
            "instances still unfinished 180 s after the load stopped, e.g. {open:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let (fires, excused) = check_fires(&grids, &instances, paused_at - 3_000);
    // The scheduler creates fires up to a second ahead; pausing cancels those whose time had not
    // come. Such a fire never happened, so it is the one outcome besides success allowed here.
    let history = instances.clone();
    let (cancelled_ahead, instances): (Vec<Value>, Vec<Value>) =
        instances.into_iter().partition(|i| {
            i["state"] == "cancelled"
                && i["reason"] == "job paused before this fire was due"
                && i["attempts"].as_array().is_some_and(Vec::is_empty)
                && pause_asked
                    .get(i["job_name"].as_str().unwrap_or_default())
                    .is_some_and(|asked| i["fire_at_ms"].as_i64().unwrap_or(0) > *asked)
        });
    let succeeded = instances
        .iter()
        .filter(|i| i["state"] == "succeeded")
        .count();
    let not_ok: Vec<&Value> = instances
        .iter()
        .filter(|i| i["state"] != "succeeded")
        .take(5)
        .collect();
    assert_eq!(
        succeeded,
        instances.len(),
        "every task targets /ok or /slow and must succeed in the end; first others: {not_ok:?}"
    );
    // Every success really happened: the target saw that very attempt. Deliveries beyond one
    // per attempt are the at-least-once duplicates a crash may cause (counted, not forbidden).
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for request in target.target.received() {
        if let Some(key) = request.instance {
            *deliveries.entry(key).or_default() += 1;
        }
    }
    for instance in &instances {
        let attempt = instance["attempts"].as_array().unwrap().last().unwrap();
        let key = format!("{}-{}", instance["id"], attempt["number"]);
        assert!(
            deliveries.contains_key(&key),
            "instance {} succeeded but the target never saw attempt {key}",
            instance["id"]
        );
    }
    let duplicates: usize = deliveries.values().map(|n| n - 1).sum();
    // One last crash on the quiet system, then everything must be exactly as it was.
    system.kill_all();
    system.start_all();
    let after = check(&*system, &mut ledger, "after the final crash");
    assert_eq!(after, history, "the final crash changed finished history");
    println!(
        "crash loop done in {} s: {} crashes survived, {} instances checked ({} acknowledged \
         by run-now, {} scheduled fires on {} grids, {} missed fires dropped by the misfire \
         policy after a stall or downtime over 5 s, {} fires created ahead and cancelled by \
         the final pause), {} consistency checks, {} duplicate deliveries seen by the target",
        (now_ms() - started_ms) / 1000,
        rounds + 1,
        instances.len(),
        ledger.acknowledged.len(),
        fires,
        grids.len(),
        excused,
        cancelled_ahead.len(),
        ledger.checks,
        duplicates,
    );
}

/// The run's directory, kept after the test when `SHOAL_CRASH_KEEP` is set.
struct KeptDir(Option<tempfile::TempDir>);

impl KeptDir {
    fn new(dir: tempfile::TempDir) -> KeptDir {
        KeptDir(Some(dir))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().map_or(Path::new("."), |dir| dir.path())
    }
}

impl Drop for KeptDir {
    fn drop(&mut self) {
        if std::env::var_os("SHOAL_CRASH_KEEP").is_some()
            && let Some(dir) = self.0.take()
        {
            let _ = dir.keep();
        }
    }
}

/// The state machine is deterministic: the commands the server applied during the whole run (a
/// recording across every restart), applied again to two fresh stores, give identical stores,
/// table by table. Returns how many commands there were.
fn replays_identically(recording: &Path) -> usize {
    use shoal::server::engine::{Engine, LocalEngine, read_recording};
    let commands = read_recording(recording).expect("the server's command recording");
    assert!(
        commands.len() > 100,
        "only {} commands recorded",
        commands.len()
    );
    let replay = || {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(shoal::server::store::Store::open(dir.path()).unwrap());
        let engine = LocalEngine::new(store.clone());
        let answers: Vec<String> = commands
            .iter()
            .map(|command| format!("{:?}", engine.propose(command.clone())))
            .collect();
        let tables = store.read().unwrap().export().unwrap();
        (dir, answers, tables)
    };
    let (_a, first_answers, first) = replay();
    let (_b, second_answers, second) = replay();
    assert_eq!(
        first_answers, second_answers,
        "the replays answered differently"
    );
    assert_eq!(first.len(), second.len());
    for ((name, rows), (_, other)) in first.iter().zip(&second) {
        assert!(
            rows == other,
            "table {name} differs between the two replays"
        );
    }
    let instances = first.iter().find(|(name, _)| *name == "instances").unwrap();
    assert!(!instances.1.is_empty(), "the replay made no instances");
    commands.len()
}
