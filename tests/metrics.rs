//! `GET /metrics`: a real server with an embedded worker does a little work, and its scrape,
//! parsed by a real Prometheus text parser (`prometheus-parse`), shows the counters moving with
//! it: fires by trigger, attempts by outcome (per job only for the job named by
//! `--metrics-job-labels`), commands by kind, commits, worker slots and the store's size.

mod common;

use common::*;
use prometheus_parse::{Sample, Scrape, Value};

fn scrape(server: &Server) -> (String, Scrape) {
    let (status, text) = http(server.api, "GET", "/metrics", None).expect("scrape /metrics");
    assert_eq!(status, 200, "GET /metrics: {text}");
    assert!(
        text.trim_end().ends_with("# EOF"),
        "an OpenMetrics exposition ends with # EOF: {text}"
    );
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse the scrape");
    (text, scrape)
}

/// The sum of the samples named `name` whose labels include all of `labels` (a histogram counts
/// its observations), or `None` when no sample matches.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    (!matching.is_empty()).then(|| {
        matching
            .iter()
            .map(|sample| match &sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
                Value::Summary(_) => panic!("{name} is a summary"),
            })
            .sum()
    })
}

fn count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, name, labels).unwrap_or(0.0)
}

#[test]
fn the_scrape_parses_and_its_counters_move_with_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let server = Server::start_up(
        dir.path(),
        &[
            "--workers",
            "1",
            "--worker-capacity",
            "4",
            "--metrics-job-labels",
            "labelled",
        ],
    );
    let before = eventually("one live worker with 4 free slots", || {
        let (_, before) = scrape(&server);
        (value(&before, "shoal_worker_slots", &[("slots", "free")]) == Some(4.0)).then_some(before)
    });
    assert_eq!(
        count(&before, "shoal_worker_slots", &[("slots", "used")]),
        0.0
    );
    assert_eq!(count(&before, "shoal_workers_live", &[]), 1.0);
    assert_eq!(count(&before, "shoal_fires_total", &[]), 0.0);
    assert!(count(&before, "shoal_store_file_bytes", &[]) > 0.0);

    let ok = target.url("/ok");
    let fail = target.url("/fail");
    for (name, url) in [("labelled", &ok), ("unlabelled", &ok), ("failing", &fail)] {
        let out = server.cli(&["job", "add", "--name", name, "--on-demand", "--url", url]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for name in ["labelled", "labelled", "unlabelled", "failing"] {
        let out = server.cli(&["job", "run", name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = eventually("the four runs to end in the metrics", || {
        let (_, after) = scrape(&server);
        (count(&after, "shoal_instances_ended_total", &[]) >= 4.0).then_some(after)
    });

    assert_eq!(
        count(&after, "shoal_fires_total", &[("trigger", "manual")]),
        4.0
    );
    assert_eq!(
        count(
            &after,
            "shoal_commands_total",
            &[("kind", "create-job"), ("result", "applied")]
        ),
        3.0
    );
    assert_eq!(
        count(
            &after,
            "shoal_attempts_total",
            &[("outcome", "succeeded"), ("shoal_job", "labelled")]
        ),
        2.0,
        "the named job has its own series"
    );
    assert_eq!(
        count(
            &after,
            "shoal_attempts_total",
            &[("outcome", "succeeded"), ("shoal_job", "_other")]
        ),
        1.0
    );
    assert_eq!(
        count(
            &after,
            "shoal_attempts_total",
            &[("outcome", "failed"), ("shoal_job", "_other")]
        ),
        1.0
    );
    assert!(
        !after
            .samples
            .iter()
            .any(|s| s.labels.get("shoal_job").is_some_and(|j| j == "unlabelled")),
        "a job not named by --metrics-job-labels has no series of its own"
    );
    assert_eq!(
        count(
            &after,
            "shoal_instances_ended_total",
            &[("state", "failed")]
        ),
        1.0
    );
    assert!(
        count(&after, "shoal_dispatch_latency_seconds", &[]) >= 4.0,
        "each attempt's start is observed"
    );
    assert!(
        count(&after, "shoal_commit_batch_size", &[])
            > count(&before, "shoal_commit_batch_size", &[]),
        "commits are observed"
    );
    assert!(count(&after, "shoal_commit_latency_seconds", &[]) > 0.0);
    assert_eq!(count(&after, "shoal_jobs", &[]), 3.0);
    for state in ["queued", "assigned", "running"] {
        assert!(
            value(&after, "shoal_instances", &[("state", state)]).is_some(),
            "shoal_instances{{state={state}}} is always present"
        );
    }
    for reason in ["ready", "held", "no-worker", "at-capacity", "retrying"] {
        assert!(
            value(&after, "shoal_queue_depth", &[("reason", reason)]).is_some(),
            "shoal_queue_depth{{reason={reason}}} is always present"
        );
    }
}

#[test]
fn a_scheduled_fire_is_counted_with_its_lateness_and_a_queue_reason_shows() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestTarget::start();
    let server = Server::start_up(dir.path(), &["--workers", "1"]);
    let ok = target.url("/ok");
    let out = server.cli(&[
        "job", "add", "--name", "tick", "--every", "1s", "--url", &ok,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&[
        "job",
        "add",
        "--name",
        "gpu",
        "--on-demand",
        "--url",
        &ok,
        "--tag",
        "gpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.cli(&["job", "run", "gpu"]).status.success());
    let after = eventually("two scheduled fires and a queued gpu task", || {
        let (_, after) = scrape(&server);
        (count(&after, "shoal_fire_lateness_seconds", &[]) >= 2.0
            && count(&after, "shoal_queue_depth", &[("reason", "no-worker")]) == 1.0)
            .then_some(after)
    });
    assert!(count(&after, "shoal_fires_total", &[("trigger", "schedule")]) >= 2.0);
    assert!(count(&after, "shoal_instances", &[("state", "queued")]) >= 1.0);
}
