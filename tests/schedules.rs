//! End-to-end with a real server process: Quartz cron, `job next` and `job show`, windows,
//! jitter and backfill through the CLI and the API, and bad values refused naming the field.

mod common;

use chrono::{DateTime, Datelike, Timelike, Utc};
use common::*;

fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn quartz_weekdays_at_noon_in_new_york_with_jitter_next_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let start = now_ms() + 10 * 24 * 3600 * 1000;
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "noon",
        "--cron",
        "0 0 12 ? * MON-FRI",
        "--timezone",
        "America/New_York",
        "--jitter",
        "5m",
        "--start-at",
        &rfc3339(start),
        "--url",
        "http://127.0.0.1:9/noon",
    ]);
    let next = server.cli_json(&["job", "next", "noon", "--count", "7"]);
    assert_eq!(next["job"], "noon");
    let description = next["description"].as_str().unwrap();
    assert!(
        description.starts_with("at 12:00, on Monday"),
        "{description}"
    );
    assert!(description.ends_with("(America/New_York)"), "{description}");
    let fires = next["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 7);
    let mut previous = start;
    for fire in fires {
        let scheduled = fire["scheduled_ms"].as_i64().unwrap();
        let run_at = fire["run_at_ms"].as_i64().unwrap();
        assert!(scheduled >= previous, "after start_at, in order");
        previous = scheduled;
        let local = DateTime::from_timestamp_millis(scheduled)
            .unwrap()
            .with_timezone(&chrono_tz::America::New_York);
        assert_eq!((local.hour(), local.minute()), (12, 0), "{local}");
        assert!(local.weekday().number_from_monday() <= 5, "{local}");
        assert!((scheduled..=scheduled + 300_000).contains(&run_at));
        assert_eq!(
            run_at - scheduled,
            shoal::schedule::jitter_of(1, 300_000, scheduled) as i64,
            "the jitter of a fire is fixed by the job and the fire"
        );
    }
    // `job show` says the same in its comments, and stays a valid job file.
    let out = server.cli(&["job", "show", "noon"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("# schedule: at 12:00, on Monday"), "{text}");
    assert!(
        text.contains(", runs "),
        "jittered fires show when they run: {text}"
    );
    let spec = shoal::spec::JobSpec::from_toml(&text).unwrap();
    assert_eq!(spec.jitter.as_deref(), Some("5m"));
    assert_eq!(spec.cron.as_deref(), Some("0 0 12 ? * MON-FRI"));
    // The count is bounded, and the error names it.
    for bad in ["0", "101", "many"] {
        let (status, body) = http(
            server.api,
            "GET",
            &format!("/api/v1/jobs/noon/next?count={bad}"),
            None,
        )
        .unwrap();
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body.contains("\"field\":\"count\""), "{bad}: {body}");
    }
}

#[test]
fn a_job_past_its_end_stops_firing_and_says_when_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let end = now_ms() + 4_500;
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "brief",
        "--every",
        "500ms",
        "--end-at",
        &rfc3339(end),
        "--max-concurrent",
        "100",
        "--url",
        "http://127.0.0.1:9/brief",
    ]);
    let end_s = end / 1000 * 1000; // RFC 3339 in whole seconds
    eventually("the job to end", || {
        server.cli_json(&["job", "show", "brief"])["next_fire_ms"]
            .is_null()
            .then_some(())
    });
    let instances = server.cli_json(&["instance", "list", "--job", "brief", "--limit", "100"]);
    let fires: Vec<i64> = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["fire_at_ms"].as_i64().unwrap())
        .collect();
    assert!(!fires.is_empty());
    assert!(
        fires.iter().all(|f| *f <= end_s),
        "no fire after end_at: {fires:?}"
    );
    let next = server.cli_json(&["job", "next", "brief"]);
    assert_eq!(next["ended_at_ms"], end_s);
    assert_eq!(next["fires"].as_array().unwrap().len(), 0);
    let out = server.cli(&["job", "show", "brief"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("next fire: - (ended at "), "{text}");
    assert!(
        text.contains("ended at ") && text.contains("no more fires"),
        "{text}"
    );
}

#[test]
fn a_jittered_fire_keeps_its_scheduled_and_its_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let job = server.cli_json(&[
        "job",
        "add",
        "--name",
        "spread",
        "--every",
        "1s",
        "--jitter",
        "900ms",
        "--max-concurrent",
        "100",
        "--url",
        "http://127.0.0.1:9/spread",
    ]);
    let job_id = job["id"].as_u64().unwrap();
    let instance = eventually("a fire", || {
        server
            .cli_json(&["instance", "list", "--job", "spread"])
            .as_array()
            .and_then(|list| list.last().cloned())
    });
    let fire_at = instance["fire_at_ms"].as_i64().unwrap();
    let run_at = instance["run_at_ms"].as_i64().unwrap();
    assert_eq!(instance["trigger"], "schedule");
    assert_eq!(
        run_at - fire_at,
        shoal::schedule::jitter_of(job_id, 900, fire_at) as i64
    );
    let out = server.cli(&["instance", "show", &instance["id"].to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("runs at:"), "{text}");
}

#[test]
fn backfill_counts_asks_creates_and_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    server.cli_json(&[
        "job",
        "add",
        "--name",
        "hourly",
        "--cron",
        "0 0 * * * ?",
        "--url",
        "http://127.0.0.1:9/hourly",
    ]);
    let hour = 3_600_000;
    let to = now_ms() / hour * hour;
    let from = to - 10 * hour;
    let (from, to) = (rfc3339(from), rfc3339(to));
    let range = ["--from", from.as_str(), "--to", to.as_str()];
    let mut dry = vec!["job", "backfill", "hourly", "--dry-run"];
    dry.extend(range);
    let counted = server.cli_json(&dry);
    assert_eq!(
        (counted["count"].as_u64(), counted["dry_run"].as_bool()),
        (Some(10), Some(true))
    );
    // Without --yes it asks; no answer (stdin closed) creates nothing.
    let mut ask = vec!["job", "backfill", "hourly"];
    ask.extend(range);
    let out = server.cli(&ask);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("create 10 fire(s) of job \"hourly\""),
        "{}",
        stderr_of(&out)
    );
    assert!(
        stderr_of(&out).contains("not confirmed"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        server
            .cli_json(&["instance", "list", "--job", "hourly"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let mut yes = ask.clone();
    yes.push("--yes");
    let created = server.cli_json(&yes);
    assert_eq!(created["count"], 10);
    assert_eq!(created["instances"].as_array().unwrap().len(), 10);
    let instances = server.cli_json(&["instance", "list", "--job", "hourly"]);
    let instances = instances.as_array().unwrap();
    assert_eq!(instances.len(), 10);
    assert!(instances.iter().all(|i| i["trigger"] == "backfill"));
    assert!(
        instances
            .iter()
            .all(|i| i["fire_at_ms"].as_i64().unwrap() % hour == 0)
    );
    let table = server.cli(&["instance", "list", "--job", "hourly"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("backfill"));
    let show = server.cli(&["instance", "show", &instances[0]["id"].to_string()]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("trigger:  backfill"));

    // Refusals name the field: over the bound, `to` in the future, `to` before `from`.
    let long_ago = rfc3339(now_ms() / hour * hour - 2_000 * hour);
    let future = rfc3339(now_ms() + hour);
    let cases: [(&str, &str, &str); 4] = [
        (
            long_ago.as_str(),
            to.as_str(),
            "to: more than 1000 fires between from and to; one backfill creates at most 1000",
        ),
        (from.as_str(), future.as_str(), "is in the future"),
        (to.as_str(), from.as_str(), "to: must be after from"),
        (
            "yesterday",
            to.as_str(),
            "from: \"yesterday\" is not an RFC 3339 time",
        ),
    ];
    for (from, to, expected) in cases {
        let out = server.cli(&[
            "job", "backfill", "hourly", "--yes", "--from", from, "--to", to,
        ]);
        assert!(!out.status.success());
        assert!(
            stderr_of(&out).contains(expected),
            "{from}..{to}: {}",
            stderr_of(&out)
        );
    }
    assert_eq!(
        server
            .cli_json(&["instance", "list", "--job", "hourly"])
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn bad_schedule_values_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--cron", "0 15 10 ? * FRX#3"],
            "cron: field 6 (day of week): \"FRX\" is not a weekday",
        ),
        (
            &["--cron", "0 15 10 L-3 * ?"],
            "cron: field 4 (day of month): \"L-3\"",
        ),
        (
            &[
                "--every",
                "1h",
                "--start-at",
                "2030-01-02T00:00:00Z",
                "--end-at",
                "2030-01-01T00:00:00Z",
            ],
            "end_at: 2030-01-01T00:00:00.000Z is not after start_at",
        ),
        (
            &["--every", "30s", "--jitter", "1m"],
            "jitter: 1m is not shorter than the schedule's period",
        ),
        (
            &["--every", "1h", "--end-at", "soon"],
            "end_at: \"soon\" is not an RFC 3339 time",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["job", "add", "--name", "bad", "--url", "http://a/"];
        args.extend_from_slice(extra);
        let out = server.cli(&args);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            stderr_of(&out).contains(expected),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    // The API refuses the same, naming the field, and stores nothing.
    let body = r#"{"name":"bad","every":"1h","start_at":"2030-01-02T00:00:00Z","end_at":"2030-01-01T00:00:00Z","http":{"url":"http://a/"}}"#;
    let (status, answer) = http(server.api, "POST", "/api/v1/jobs", Some(body)).unwrap();
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("\"field\":\"end_at\""), "{answer}");
    assert!(
        server
            .cli_json(&["job", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}
