//! End-to-end: HTTP tasks run on real worker processes against a real local HTTP target —
//! success, status mismatch, timeout, retries, the no-worker queue, failover after SIGKILL, and a
//! late report after failover being refused. A task that must still be running when the test
//! acts waits at a [`Gate`] until the test opens it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// An HTTP target that holds every request until the test opens its gate, then answers 200
/// (after `?ms=N` more, if asked). A task on it cannot end before the test has done what it
/// must while the task runs (kill or freeze its worker, look at what is held), however slow the
/// machine: the tests below wait for what happened, never for a time to pass.
struct Gate {
    addr: SocketAddr,
    shared: Arc<(Mutex<GateState>, Condvar)>,
}

#[derive(Default)]
struct GateState {
    open: bool,
    /// The `X-Shoal-Instance` (`<instance>-<attempt>`) of every request that arrived.
    arrived: Vec<String>,
}

impl Gate {
    fn start() -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new((Mutex::new(GateState::default()), Condvar::new()));
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = accepting.clone();
                std::thread::spawn(move || Gate::serve(stream, &shared));
            }
        });
        Gate { addr, shared }
    }

    fn serve(stream: TcpStream, shared: &(Mutex<GateState>, Condvar)) {
        let mut reader = BufReader::new(&stream);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut instance = None;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.trim().is_empty() => break,
                Ok(_) => {
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("x-shoal-instance")
                    {
                        instance = Some(value.trim().to_string());
                    }
                }
            }
        }
        let after_ms: u64 = request_line
            .split_whitespace()
            .nth(1)
            .and_then(|target| target.split_once("ms="))
            .and_then(|(_, ms)| ms.parse().ok())
            .unwrap_or(0);
        let (state, opened) = shared;
        let mut state = state.lock().unwrap();
        state.arrived.push(instance.unwrap_or_default());
        while !state.open {
            state = opened.wait(state).unwrap();
        }
        drop(state);
        std::thread::sleep(Duration::from_millis(after_ms));
        let _ = (&stream).write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\ngate open",
        );
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests arrived (held or answered).
    fn arrivals(&self) -> usize {
        self.shared.0.lock().unwrap().arrived.len()
    }

    /// Waits until attempt `attempt` of instance `id` reached the gate.
    fn wait_arrival(&self, id: &str, attempt: u32) {
        let tag = format!("{id}-{attempt}");
        eventually(&format!("attempt {tag} at the gate"), || {
            self.shared
                .0
                .lock()
                .unwrap()
                .arrived
                .contains(&tag)
                .then_some(())
        });
    }

    /// Answers every held request, and every later one at once.
    fn open(&self) {
        self.shared.0.lock().unwrap().open = true;
        self.shared.1.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

fn add_on_demand(server: &Server, name: &str, url: &str, extra: &[&str]) {
    let mut args = vec!["job", "add", "--name", name, "--on-demand", "--url", url];
    args.extend_from_slice(extra);
    server.cli_json(&args);
}

fn run(server: &Server, job: &str) -> String {
    server.cli_json(&["job", "run", job])["id"].to_string()
}

fn instance(server: &Server, id: &str) -> Value {
    server.cli_json(&["instance", "show", id])
}

fn wait_state(server: &Server, id: &str, state: &str) -> Value {
    eventually(&format!("instance {id} to be {state}"), || {
        let value = instance(server, id);
        (value["state"] == state).then_some(value)
    })
}

fn live_workers(server: &Server, n: usize) {
    eventually(&format!("{n} live workers"), || {
        let members = server.cli_json(&["members"]);
        let live = members
            .as_array()?
            .iter()
            .filter(|m| m["role"] == "worker" && m["state"] == "live")
            .count();
        (live == n).then_some(())
    });
}

/// Waits until the dispatcher counts exactly `workers` as taking work: live in gossip and
/// polling. Gossip shows a worker live before its first poll, and only a polling worker is handed
/// work (or counted in a queued task's reason). Seen through a probe task that no worker can
/// take: its reason lists the workers taking work; the probe is cancelled after.
fn taking_work(server: &Server, workers: &[&str]) {
    add_on_demand(
        server,
        "probe",
        "http://127.0.0.1:9/",
        &["--tag", "probe-matches-no-worker"],
    );
    let probe = run(server, "probe");
    eventually(&format!("{workers:?} to be taking work"), || {
        let why = instance(server, &probe)["why"].clone();
        let mut live: Vec<String> = why["live"]
            .as_array()?
            .iter()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect();
        live.sort();
        (live == workers).then_some(())
    });
    server.cli_json(&["instance", "cancel", &probe]);
}

#[test]
fn tasks_succeed_fail_time_out_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let server = Server::start(dir.path(), &[]);
    let _worker = server.worker(dir.path(), "w1", &[]);
    live_workers(&server, 1);

    add_on_demand(&server, "ok", &target.url("/ok"), &["--expect-body", "ok"]);
    add_on_demand(&server, "mismatch", &target.url("/fail"), &[]);
    add_on_demand(
        &server,
        "slow",
        &target.url("/slow?ms=5000"),
        &["--timeout", "300ms"],
    );
    add_on_demand(
        &server,
        "flaky",
        &target.url("/fail"),
        &["--retries", "2", "--backoff", "100ms"],
    );

    let ok = run(&server, "ok");
    let done = wait_state(&server, &ok, "succeeded");
    let attempt = &done["attempts"][0];
    assert_eq!(attempt["worker"], "w1");
    assert_eq!(attempt["http_status"], 200);
    assert_eq!(attempt["excerpt"], "ok");
    let seen: Vec<_> = target.target.received();
    assert!(
        seen.iter()
            .any(|r| r.path == "/ok" && r.instance.as_deref() == Some(&format!("{ok}-1"))),
        "the target saw X-Shoal-Instance {ok}-1: {seen:?}"
    );

    let mismatch = run(&server, "mismatch");
    let failed = wait_state(&server, &mismatch, "failed");
    assert_eq!(failed["attempts"][0]["http_status"], 500);
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("expected status 2xx, got 500"),
        "{failed}"
    );
    assert!(
        failed["attempts"][0]["excerpt"]
            .as_str()
            .unwrap()
            .contains("boom")
    );

    let slow = run(&server, "slow");
    let timed_out = wait_state(&server, &slow, "failed");
    assert!(
        timed_out["reason"]
            .as_str()
            .unwrap()
            .contains("timed out after 300ms"),
        "{timed_out}"
    );

    let flaky = run(&server, "flaky");
    let exhausted = wait_state(&server, &flaky, "failed");
    let attempts = exhausted["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "1 try + 2 retries: {exhausted}");
    assert!(attempts.iter().all(|a| a["outcome"] == "failed"));
    assert!(
        exhausted["reason"]
            .as_str()
            .unwrap()
            .contains("retries exhausted")
    );
}

#[test]
fn a_task_without_a_matching_worker_waits_with_the_fix_then_runs_when_one_joins() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let server = Server::start(dir.path(), &[]);
    let _plain = server.worker(dir.path(), "plain", &[]);
    live_workers(&server, 1);
    // The reason names the workers taking work: wait for plain's first poll.
    taking_work(&server, &["plain"]);
    add_on_demand(
        &server,
        "billing",
        &target.url("/ok"),
        &["--tag", "billing"],
    );
    let id = run(&server, "billing");

    let queued = eventually("a no-worker reason", || {
        let value = instance(&server, &id);
        value["reason"].as_str().map(str::to_string)
    });
    let join = server.gossip.to_string();
    assert_eq!(
        queued,
        format!(
            "no live worker carries tag \"billing\" (1 live worker(s): plain); start one with: \
             shoal worker --join {join} --tag billing"
        )
    );
    let shown = String::from_utf8(server.cli(&["instance", "show", &id]).stdout).unwrap();
    assert!(
        shown.contains("state:    queued") && shown.contains("--tag billing"),
        "{shown}"
    );

    let _billing = server.worker(dir.path(), "billing-1", &["--tag", "billing"]);
    let done = wait_state(&server, &id, "succeeded");
    assert_eq!(done["attempts"][0]["worker"], "billing-1");
}

#[test]
fn a_task_that_never_finds_a_worker_fails_after_its_dispatch_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    add_on_demand(
        &server,
        "orphan",
        "http://127.0.0.1:9/",
        &["--dispatch-timeout", "1s"],
    );
    let id = run(&server, "orphan");
    let failed = wait_state(&server, &id, "failed");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.starts_with("not dispatched within 1s: no live worker in the cluster; start one with: shoal worker --join"), "{reason}");
}

#[test]
fn a_killed_workers_task_runs_again_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::start();
    let server = Server::start(dir.path(), &[]);
    let mut doomed = server.worker(dir.path(), "doomed", &[]);
    live_workers(&server, 1);
    // A timeout longer than any wait below: the task ends only once the gate opens.
    add_on_demand(&server, "long", &gate.url("/long"), &["--timeout", "5m"]);
    let id = run(&server, "long");
    gate.wait_arrival(&id, 1);
    wait_state(&server, &id, "running");

    let _survivor = server.worker(dir.path(), "survivor", &[]);
    live_workers(&server, 2);
    doomed.signal("KILL");
    doomed.wait_exit(Duration::from_secs(60));
    // The doomed worker is gone before its request can be answered; the next attempt's is at once.
    gate.open();

    let done = wait_state(&server, &id, "succeeded");
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{done}");
    assert_eq!(attempts[0]["worker"], "doomed");
    assert_eq!(attempts[0]["outcome"], "lost");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("worker doomed lost")
    );
    assert_eq!(attempts[1]["worker"], "survivor");
    assert_eq!(attempts[1]["outcome"], "succeeded");
}

#[test]
fn a_late_report_after_failover_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let gate = Gate::start();
    let server = Server::start(dir.path(), &[]);
    let paused = server.worker(dir.path(), "paused", &[]);
    live_workers(&server, 1);
    add_on_demand(
        &server,
        "slowpoke",
        &gate.url("/slowpoke"),
        &["--timeout", "5m"],
    );
    let id = run(&server, "slowpoke");
    gate.wait_arrival(&id, 1);
    wait_state(&server, &id, "running");
    let _other = server.worker(dir.path(), "other", &[]);
    live_workers(&server, 2);

    // Frozen while its request is held, past the failure timeout: the server fails the task
    // over to the other worker, whose request is answered at once. Attempt 1's answer waits
    // for the frozen worker in its socket.
    paused.pause();
    gate.open();
    let done = wait_state(&server, &id, "succeeded");
    assert_eq!(done["attempts"][1]["worker"], "other", "{done}");
    paused.signal("CONT");

    // The thawed worker finishes attempt 1 and reports it; the server refuses it.
    eventually("the stale report to be refused", || {
        server
            .node
            .log_text()
            .lines()
            .any(|l| l.contains("report refused") && l.contains("stale attempt 1"))
            .then_some(())
    });
    let after = instance(&server, &id);
    assert_eq!(after["state"], "succeeded");
    assert_eq!(
        after["attempts"], done["attempts"],
        "nothing of the late report applied"
    );
    // The thawed worker rejoins and takes new work.
    live_workers(&server, 2);
    add_on_demand(
        &server,
        "after-thaw",
        &target.url("/ok"),
        &["--worker", "paused"],
    );
    let next = run(&server, "after-thaw");
    let done = wait_state(&server, &next, "succeeded");
    assert_eq!(done["attempts"][0]["worker"], "paused", "{done}");
}

#[test]
fn the_worker_rpc_and_the_api_require_the_cluster_token() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let server = Server::start_with_token(dir.path(), "s3cret");
    let authed = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--token", "s3cret", "--output", "json"]);
        let out = server.cli(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    // Without the token the API refuses, naming the fix.
    let out = server.cli(&["members"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHOAL_TOKEN"));

    let intruder = server.worker(dir.path(), "intruder", &[]);
    authed(&[
        "job",
        "add",
        "--name",
        "t",
        "--on-demand",
        "--url",
        &target.url("/ok"),
    ]);
    let id = authed(&["job", "run", "t"])["id"].to_string();
    eventually("the tokenless worker to be refused", || {
        intruder
            .log_text()
            .contains("the server refused our token")
            .then_some(())
    });
    assert_eq!(
        authed(&["instance", "show", &id])["attempts"],
        serde_json::json!([])
    );

    let _member = server.worker(dir.path(), "member", &["--token", "s3cret"]);
    eventually("the task to run on the worker with the token", || {
        let shown = authed(&["instance", "show", &id]);
        (shown["state"] == "succeeded").then_some(shown["attempts"][0]["worker"].clone())
    });
    assert_eq!(
        authed(&["instance", "show", &id])["attempts"][0]["worker"],
        "member"
    );
}

fn instances_of(server: &Server, job: &str) -> Vec<Value> {
    server
        .cli_json(&["instance", "list", "--job", job])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Broadcast: one run fans out into a copy per live matching worker, each runs on its own worker;
/// a retried copy stays on its worker; with no matching worker it waits with the usual reason.
#[test]
fn a_broadcast_runs_once_on_every_matching_worker() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let server = Server::start(dir.path(), &[]);
    let _w1 = server.worker(dir.path(), "w1", &["--tag", "fleet"]);
    let _w2 = server.worker(dir.path(), "w2", &["--tag", "fleet"]);
    let _w3 = server.worker(dir.path(), "w3", &[]);
    live_workers(&server, 3);
    // A broadcast fans out to the workers taking work when it is placed.
    taking_work(&server, &["w1", "w2", "w3"]);

    let broadcast = ["--tag", "fleet", "--strategy", "broadcast"];
    add_on_demand(&server, "fanout", &target.url("/ok"), &broadcast);
    run(&server, "fanout");
    let copies = eventually("a succeeded copy on each fleet worker", || {
        let copies = instances_of(&server, "fanout");
        (copies.len() == 2 && copies.iter().all(|c| c["state"] == "succeeded")).then_some(copies)
    });
    let mut pinned: Vec<&str> = copies
        .iter()
        .map(|c| c["pinned_worker"].as_str().unwrap_or_default())
        .collect();
    pinned.sort();
    assert_eq!(pinned, ["w1", "w2"], "{copies:?}");
    for copy in &copies {
        assert_eq!(copy["attempts"][0]["worker"], copy["pinned_worker"]);
        let key = format!("{}-1", copy["id"]);
        assert!(
            target
                .target
                .received()
                .iter()
                .any(|r| r.instance.as_deref() == Some(key.as_str())),
            "the target never saw {key}"
        );
    }

    add_on_demand(&server, "fanout-fails", &target.url("/fail"), &broadcast);
    run(&server, "fanout-fails");
    let failed = eventually("both copies failed", || {
        let copies = instances_of(&server, "fanout-fails");
        (copies.len() == 2 && copies.iter().all(|c| c["state"] == "failed")).then_some(copies)
    });
    let retried_from = &failed[0];
    let retried = server.cli_json(&["instance", "retry", &retried_from["id"].to_string()]);
    let done = wait_state(&server, &retried["id"].to_string(), "failed");
    assert_eq!(done["pinned_worker"], retried_from["pinned_worker"]);
    assert_eq!(done["attempts"][0]["worker"], retried_from["pinned_worker"]);
    assert_eq!(
        instances_of(&server, "fanout-fails").len(),
        3,
        "a retried copy is not fanned out again"
    );

    add_on_demand(
        &server,
        "fanout-gpu",
        &target.url("/ok"),
        &["--tag", "gpu", "--strategy", "broadcast"],
    );
    let waiting = run(&server, "fanout-gpu");
    eventually(
        "the broadcast without a gpu worker to wait with its reason",
        || {
            let value = instance(&server, &waiting);
            (value["state"] == "queued"
                && value["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("no live worker carries tag \"gpu\"")))
            .then_some(())
        },
    );
    assert_eq!(instances_of(&server, "fanout-gpu").len(), 1);
}

/// Instances of `job` assigned to or running on `worker` right now.
fn held_by(server: &Server, job: &str, worker: &str) -> usize {
    instances_of(server, job)
        .iter()
        .filter(|i| (i["state"] == "assigned" || i["state"] == "running") && i["worker"] == worker)
        .count()
}

fn attempts_of(instances: &[Value]) -> Vec<Value> {
    instances
        .iter()
        .flat_map(|i| i["attempts"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// An attempt's time on its worker, by the worker's own stamps: from its start, for as long as
/// the worker measured it. Not up to the attempt's `ended_ms`: that is when the server committed
/// the report, and a worker that was handed work ahead starts its next task as soon as a slot
/// frees, often before that commit.
fn span_on_worker(attempt: &Value) -> Option<(i64, i64)> {
    let started = attempt["started_ms"].as_i64()?;
    Some((started, started + attempt["duration_ms"].as_i64()?))
}

/// The most attempts that ran at the same time, by the workers' own stamps.
fn most_at_once(instances: &[Value]) -> usize {
    let spans: Vec<(i64, i64)> = attempts_of(instances)
        .iter()
        .filter_map(span_on_worker)
        .collect();
    spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The most attempts held at once at any assignment: assigned by then and not yet ended on the
/// worker. Without work handed ahead, no more than the worker's capacity.
fn most_held_at_an_assignment(instances: &[Value]) -> usize {
    let held: Vec<(i64, i64)> = attempts_of(instances)
        .iter()
        .filter_map(|a| Some((a["assigned_ms"].as_i64()?, span_on_worker(a)?.1)))
        .collect();
    held.iter()
        .map(|(at, _)| {
            held.iter()
                .filter(|(assigned, end)| assigned <= at && at < end)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn all_succeeded(server: &Server, job: &str, what: &str) -> Vec<Value> {
    eventually(what, || {
        let all = instances_of(server, job);
        all.iter().all(|i| i["state"] == "succeeded").then_some(all)
    })
}

/// A worker whose tasks are short is handed work ahead (more assignments than its capacity,
/// waiting for its slots) yet never runs more than its capacity at once; once its tasks are
/// long it holds no more than its capacity. Tasks wait at closed gates while the test looks, so
/// nothing depends on how fast the machine is.
#[test]
fn work_handed_ahead_waits_for_a_slot_and_stops_when_tasks_are_long() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let server = Server::start(dir.path(), &[]);
    let _w1 = server.worker(dir.path(), "w1", &["--capacity", "2"]);
    live_workers(&server, 1);

    // Enough short tasks that one slow outlier on a busy machine cannot keep the average up.
    add_on_demand(
        &server,
        "quick",
        &target.url("/ok"),
        &["--max-concurrent", "20"],
    );
    for _ in 0..20 {
        run(&server, "quick");
    }
    all_succeeded(&server, "quick", "the quick runs to succeed");

    // Six tasks held at a closed gate (each answered 2.5 s after it opens): w1 runs two and,
    // its tasks having been short, is handed more than its 2 slots meanwhile.
    let ahead = Gate::start();
    let slow = ["--max-concurrent", "10", "--timeout", "5m"];
    add_on_demand(&server, "slow", &ahead.url("/slow?ms=2500"), &slow);
    for _ in 0..6 {
        run(&server, "slow");
    }
    eventually("w1 to hold more than its capacity of 2", || {
        (ahead.arrivals() >= 2 && held_by(&server, "slow", "w1") > 2).then_some(())
    });
    assert_eq!(ahead.arrivals(), 2, "w1 runs at most 2 at once");
    ahead.open();
    let done = all_succeeded(&server, "slow", "the slow runs to succeed");
    assert_eq!(done.len(), 6);
    assert_eq!(most_at_once(&done), 2, "{done:?}");

    // After 2.5 s tasks, w1 is no longer handed work ahead: with both its slots held at a
    // closed gate, the other two runs wait in the queue at capacity.
    let long = Gate::start();
    add_on_demand(&server, "long", &long.url("/long"), &slow);
    for _ in 0..4 {
        run(&server, "long");
    }
    eventually(
        "two long runs at the gate and two queued at capacity",
        || {
            let at_capacity = instances_of(&server, "long")
                .iter()
                .filter(|i| i["state"] == "queued" && i["why"]["kind"] == "at-capacity")
                .count();
            (long.arrivals() == 2 && at_capacity == 2).then_some(())
        },
    );
    assert_eq!(held_by(&server, "long", "w1"), 2);
    long.open();
    let done = all_succeeded(&server, "long", "the long runs to succeed");
    assert_eq!(done.len(), 4);
    assert_eq!(most_held_at_an_assignment(&done), 2, "{done:?}");
}
