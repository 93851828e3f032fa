//! End-to-end: the single-process modes. `shoal demo --headless` runs real sample jobs and shows
//! successes, a failure with retries and a queued task with its reason; `shoal up` is a server
//! whose embedded workers run tasks with no other process.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn headless_demo_shows_success_failure_and_a_queued_reason_then_frees_everything() {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_tcp_port());
    let mut demo = Node::spawn(
        "demo",
        dir.path(),
        &["demo", "--headless", "--duration", "15s", "--api", &api],
    );
    let status = demo.wait_exit(Duration::from_secs(90));
    let output = demo.log_text();
    assert!(status.success(), "demo failed:\n{output}");
    for expected in [
        "shoal demo: server http://",
        "succeeded  heartbeat instance",
        "succeeded  eu-sync instance",
        "on demo-w2",
        "failed     flaky-export instance",
        "after 3 attempt(s): attempt 3 failed: expected status 200, got 500",
        "queued     gpu-render instance",
        "no live worker carries tag \"gpu\" (2 live worker(s): demo-w1,demo-w2); start one with: \
         shoal worker --join 127.0.0.1:",
        "demo stopped; removed its data dir",
    ] {
        assert!(
            output.contains(expected),
            "missing {expected:?} in:\n{output}"
        );
    }
    // Nothing is left bound or on disk.
    assert!(
        std::net::TcpListener::bind(&api).is_ok(),
        "the demo's API port {api} is still bound"
    );
    let removed = output
        .lines()
        .find_map(|l| l.strip_prefix("demo stopped; removed its data dir "))
        .unwrap();
    assert!(
        !std::path::Path::new(removed.trim()).exists(),
        "{removed} still exists"
    );
}

#[test]
fn demo_refuses_flags_that_make_no_sense() {
    let out = cli(&["demo", "--duration", "5s"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--headless"));

    let out = cli(&["demo", "--headless", "--api", "0.0.0.0:7071"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only on loopback"));

    // Without a terminal the console cannot open; the error says what to use instead.
    let out = cli(&["demo"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shoal demo --headless"));
}

#[test]
fn up_runs_tasks_on_its_embedded_workers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_up(
        dir.path(),
        &["--id", "box", "--workers", "2", "--worker-tag", "local"],
    );
    eventually("2 embedded workers live", || {
        let members = server.cli_json(&["members"]);
        let live: Vec<String> = members
            .as_array()?
            .iter()
            .filter(|m| m["role"] == "worker" && m["state"] == "live")
            .map(|m| m["id"].as_str().unwrap_or_default().to_string())
            .collect();
        (live == ["box-w1", "box-w2"]).then_some(())
    });

    // The target is the server's own API: a job needs no other process at all.
    let url = format!("{}/api/v1/cluster", server.url);
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "self-check",
        "--on-demand",
        "--url",
        &url,
        "--tag",
        "local",
    ]);
    let id = server.cli_json(&["job", "run", "self-check"])["id"].to_string();
    let done = eventually("the task to succeed on an embedded worker", || {
        let instance = server.cli_json(&["instance", "show", &id]);
        (instance["state"] == "succeeded").then_some(instance)
    });
    let worker = done["attempts"][0]["worker"].as_str().unwrap();
    assert!(worker.starts_with("box-w"), "ran on {worker}");

    // SIGTERM stops the workers and the server, and exits cleanly.
    let mut node = server.node;
    node.signal("TERM");
    let status = node.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "shoal up exited with {status}");
}

#[test]
fn up_refuses_zero_workers() {
    let out = cli(&["up", "--workers", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers must be at least 1"));
}
