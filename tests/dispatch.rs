//! End-to-end: HTTP tasks run on real worker processes against a real local HTTP target —
//! success, status mismatch, timeout, retries, the no-worker queue, failover after SIGKILL, and a
//! late report after failover being refused.

mod common;

use common::*;
use serde_json::Value;

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
    let target = TestTarget::start();
    let server = Server::start(dir.path(), &[]);
    let doomed = server.worker(dir.path(), "doomed", &[]);
    live_workers(&server, 1);
    add_on_demand(
        &server,
        "long",
        &target.url("/slow?ms=3000"),
        &["--timeout", "20s"],
    );
    let id = run(&server, "long");
    wait_state(&server, &id, "running");

    let _survivor = server.worker(dir.path(), "survivor", &[]);
    live_workers(&server, 2);
    doomed.signal("KILL");

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
    let server = Server::start(dir.path(), &[]);
    let paused = server.worker(dir.path(), "paused", &[]);
    live_workers(&server, 1);
    add_on_demand(
        &server,
        "slowpoke",
        &target.url("/slow?ms=1500"),
        &["--timeout", "20s"],
    );
    let id = run(&server, "slowpoke");
    wait_state(&server, &id, "running");
    let _other = server.worker(dir.path(), "other", &[]);
    live_workers(&server, 2);

    // Frozen past the failure timeout: the server fails the task over to the other worker.
    paused.signal("STOP");
    let done = wait_state(&server, &id, "succeeded");
    assert_eq!(done["attempts"][1]["worker"], "other");
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

/// The most attempts that ran at the same time, from the workers' own start and end stamps.
fn most_at_once(instances: &[Value]) -> usize {
    let spans: Vec<(i64, i64)> = instances
        .iter()
        .flat_map(|i| i["attempts"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| Some((a["started_ms"].as_i64()?, a["ended_ms"].as_i64()?)))
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

/// A worker whose tasks are short is handed work ahead (more assignments than its capacity,
/// waiting for its slots) yet never runs more than its capacity at once; once its tasks are
/// long it holds no more than its capacity.
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
    eventually("the quick runs to succeed", || {
        let all = instances_of(&server, "quick");
        all.iter().all(|i| i["state"] == "succeeded").then_some(())
    });

    let slow = ["--max-concurrent", "10", "--timeout", "30s"];
    add_on_demand(&server, "slow", &target.url("/slow?ms=2500"), &slow);
    for _ in 0..6 {
        run(&server, "slow");
    }
    eventually("w1 to hold more than its capacity of 2", || {
        (held_by(&server, "slow", "w1") > 2).then_some(())
    });
    let done = eventually("the slow runs to succeed", || {
        let all = instances_of(&server, "slow");
        all.iter().all(|i| i["state"] == "succeeded").then_some(all)
    });
    assert_eq!(done.len(), 6);
    assert_eq!(most_at_once(&done), 2, "{done:?}");

    // After 2.5 s tasks, w1 is no longer handed work ahead.
    for _ in 0..4 {
        run(&server, "slow");
    }
    let mut most_held = 0;
    eventually("the second slow batch to succeed", || {
        most_held = most_held.max(held_by(&server, "slow", "w1"));
        let all = instances_of(&server, "slow");
        all.iter().all(|i| i["state"] == "succeeded").then_some(())
    });
    assert!(most_held <= 2, "w1 held {most_held} with long tasks");
}
