//! End-to-end: jobs created through the CLI fire on schedule against a live server, survive a
//! restart, and bad definitions are refused with the field named and nothing stored.

mod common;

use common::*;
use shoal::model::now_ms;
use shoal::schedule::LOOKAHEAD_MS;
use std::time::Duration;

fn instance_count(server: &Server, job: &str) -> usize {
    server
        .cli_json(&["instance", "list", "--job", job, "--limit", "1000"])
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn a_cron_job_every_second_creates_an_instance_about_once_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let created = server.cli_json(&[
        "job",
        "add",
        "--name",
        "tick",
        "--cron",
        "* * * * * *",
        "--url",
        "http://127.0.0.1:9/tick",
        "--max-concurrent",
        "1000",
    ]);
    assert_eq!(created["name"], "tick");
    assert_eq!(created["schedule"]["kind"], "cron");

    eventually("first instance", || {
        (instance_count(&server, "tick") >= 1).then_some(())
    });
    let start = instance_count(&server, "tick");
    // It keeps firing: wait for four more fires, however slow the machine.
    let instances = eventually("four more fires", || {
        let instances = server.cli_json(&["instance", "list", "--job", "tick", "--limit", "1000"]);
        (instances.as_array()?.len() >= start + 4).then_some(instances)
    });
    let listed_by = now_ms();
    let rows = instances.as_array().unwrap();
    // Fire times are whole, distinct seconds, newest first, one per second with none skipped.
    let fires: Vec<i64> = rows
        .iter()
        .map(|i| i["fire_at_ms"].as_i64().unwrap())
        .collect();
    assert!(fires.iter().all(|f| f % 1000 == 0), "{fires:?}");
    assert!(
        fires.windows(2).all(|w| w[0] - w[1] == 1000),
        "one per second: {fires:?}"
    );
    // None is created more than the scheduler's lookahead before its time.
    assert!(
        fires[0] <= listed_by + LOOKAHEAD_MS,
        "newest fire {} is beyond {listed_by} + {LOOKAHEAD_MS} ms",
        fires[0]
    );
    assert!(rows.iter().all(|i| i["state"] == "queued"));
}

#[test]
fn jobs_and_instances_survive_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let job_file = dir.path().join("report.toml");
    std::fs::write(
        &job_file,
        r#"
name = "report"
every = "1h"
timezone = "Europe/Paris"
max_concurrent = 5

[http]
method = "POST"
url = "http://127.0.0.1:9/report"
body = "{}"
headers = { "Content-Type" = "application/json" }
expect_status = [200, 202]

[retry]
count = 2
backoff = "3s"
"#,
    )
    .unwrap();
    let (job, instance) = {
        let server = Server::start(dir.path(), &[]);
        let path = job_file.display().to_string();
        let job = server.cli_json(&["job", "apply", "--file", &path]);
        // Applying the same file again changes nothing and creates nothing new.
        let again = server.cli_json(&["job", "apply", "--file", &path]);
        assert_eq!(again["id"], job["id"]);
        let instance = server.cli_json(&["job", "run", "report"]);
        server.node.signal("TERM");
        let mut node = server.node;
        assert!(node.wait_exit(Duration::from_secs(30)).success());
        (job, instance)
    };
    let server = Server::start(dir.path(), &[]);
    let shown = server.cli_json(&["job", "show", "report"]);
    assert_eq!(shown["id"], job["id"]);
    assert_eq!(shown["http"], job["http"]);
    assert_eq!(shown["retry"]["count"], 2);
    assert_eq!(shown["next_fire_ms"], job["next_fire_ms"]);
    let id = instance["id"].to_string();
    let stored = server.cli_json(&["instance", "show", &id]);
    assert_eq!(stored["job_name"], "report");
    assert_eq!(stored["trigger"], "manual");
}

#[test]
fn bad_definitions_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let base = ["job", "add", "--name", "x"];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--cron", "0 0 25 * * *", "--url", "http://a/"],
            "field 3 (hour): 25 is out of range 0–23",
        ),
        (&["--every", "10s", "--url", "ftp://a/"], "http.url"),
        (
            &[
                "--every",
                "10s",
                "--url",
                "http://a/",
                "--timezone",
                "Nowhere/City",
            ],
            "timezone",
        ),
        (
            &["--every", "10s", "--url", "http://a/", "--method", "YELL"],
            "http.method",
        ),
        (
            &["--every", "10s", "--url", "http://a/", "--timeout", "0s"],
            "http.timeout",
        ),
        (&["--url", "http://a/"], "schedule"),
        (
            &["--at", "2001-01-01T00:00:00Z", "--url", "http://a/"],
            "in the past",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = server.cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let jobs = server.cli_json(&["job", "list"]);
    assert_eq!(jobs.as_array().unwrap().len(), 0, "nothing stored");

    server.cli_json(&[
        "job",
        "add",
        "--name",
        "dup",
        "--every",
        "1h",
        "--url",
        "http://a/",
    ]);
    let out = server.cli(&[
        "job",
        "add",
        "--name",
        "dup",
        "--every",
        "1h",
        "--url",
        "http://a/",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = server.cli(&["job", "show", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = server.cli(&["instance", "cancel", "999"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("instance 999 not found"));
}

#[test]
fn pause_resume_run_cancel_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "p",
        "--every",
        "1h",
        "--url",
        "http://a/",
    ]);
    let paused = server.cli_json(&["job", "pause", "p"]);
    assert_eq!(paused["paused"], true);
    assert!(paused["next_fire_ms"].is_null());
    let resumed = server.cli_json(&["job", "resume", "p"]);
    assert!(resumed["next_fire_ms"].is_i64());
    let instance = server.cli_json(&["job", "run", "p"]);
    let id = instance["id"].to_string();
    let cancelled = server.cli_json(&["instance", "cancel", &id]);
    assert_eq!(cancelled["state"], "cancelled");
    let retried = server.cli_json(&["instance", "retry", &id]);
    assert_ne!(retried["id"], instance["id"]);
    assert_eq!(retried["state"], "queued");
    let updated = server.cli_json(&["job", "update", "p", "--every", "2h"]);
    assert_eq!(updated["schedule"]["every_ms"], 7_200_000);
    assert_eq!(updated["http"]["url"], "http://a/", "other fields kept");
    server.cli_json(&["job", "delete", "p"]);
    let after = server.cli_json(&["instance", "show", &retried["id"].to_string()]);
    assert_eq!(
        after["state"], "cancelled",
        "deleting a job cancels its queue"
    );
}
