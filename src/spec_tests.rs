use super::*;

fn valid() -> JobSpec {
    JobSpec {
        name: "nightly-report".into(),
        cron: Some("0 0 3 * * *".into()),
        timezone: Some("Europe/Paris".into()),
        http: HttpSpec {
            url: "http://127.0.0.1:8080/report".into(),
            ..HttpSpec::default()
        },
        ..JobSpec::default()
    }
}

#[test]
fn a_valid_spec_round_trips_through_toml() {
    let mut spec = valid();
    spec.retry = Some(RetrySpec {
        count: 3,
        backoff: Some("2s".into()),
    });
    spec.target = Some(TargetSpec {
        tags: vec!["billing".into()],
        workers: vec![],
    });
    spec.http
        .headers
        .insert("Authorization".into(), "Bearer x".into());
    spec.http.expect_status = Some(vec![200, 204]);
    let def = spec.validate().unwrap();
    assert_eq!(def.retry.count, 3);
    assert_eq!(def.retry.backoff_ms, 2000);
    assert_eq!(def.http.method, "GET");
    let text = toml::to_string(&def.to_spec()).unwrap();
    let again = JobSpec::from_toml(&text).unwrap().validate().unwrap();
    assert_eq!(again, def);
}

/// Found by `cargo fuzz run job_json`: a backoff without retries was dropped by `to_spec`, so
/// `shoal job update` (which starts from `to_spec`) silently reset it.
#[test]
fn a_backoff_without_retries_round_trips() {
    let mut spec = valid();
    spec.retry = Some(RetrySpec {
        count: 0,
        backoff: Some("100ms".into()),
    });
    let def = spec.validate().unwrap();
    assert_eq!(def.retry.backoff_ms, 100);
    assert_eq!(def.to_spec().validate().unwrap(), def);
}

#[test]
fn a_window_and_jitter_round_trip_through_toml() {
    let text = "name = \"w\"\ncron = \"0 0 12 ? * MON-FRI\"\ntimezone = \"Europe/Berlin\"\n\
                start_at = \"2030-01-01T00:00:00Z\"\nend_at = \"2030-06-30T18:00:00+02:00\"\n\
                jitter = \"5m\"\n[http]\nurl = \"https://example.test/\"\n";
    let def = JobSpec::from_toml(text).unwrap().validate().unwrap();
    assert_eq!(def.timing.start_at_ms, Some(1_893_456_000_000));
    assert_eq!(def.timing.end_at_ms, Some(1_909_065_600_000));
    assert_eq!(def.timing.jitter_ms, 300_000);
    let again = JobSpec::from_toml(&toml::to_string(&def.to_spec()).unwrap())
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(again, def);
    // A job stored before windows existed reads back with none.
    let mut json = serde_json::to_value(&def).unwrap();
    json.as_object_mut().unwrap().remove("timing");
    let old: JobDefinition = serde_json::from_value(json).unwrap();
    assert!(old.timing.is_unset());
}

#[test]
fn every_schedule_kind_parses_from_toml() {
    let cases = [
        ("cron = \"*/5 * * * *\"", "cron"),
        ("every = \"30s\"", "fixed-rate"),
        ("delay = \"1m\"", "fixed-delay"),
        ("at = \"2030-01-01T00:00:00Z\"", "once"),
        ("on_demand = true", "on-demand"),
    ];
    for (line, kind) in cases {
        let text = format!("name = \"j\"\n{line}\n[http]\nurl = \"https://example.test/\"\n");
        let def = JobSpec::from_toml(&text).unwrap().validate().unwrap();
        let json = serde_json::to_value(&def.schedule).unwrap();
        assert_eq!(json["kind"], kind, "{line}");
    }
}

/// Each invalid definition is rejected, and the error names the field to blame.
#[test]
fn invalid_definitions_name_their_field() {
    type Edit = fn(&mut JobSpec);
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("empty name", |s| s.name = String::new(), "name"),
        ("name with space", |s| s.name = "a b".into(), "name"),
        ("name too long", |s| s.name = "x".repeat(200), "name"),
        ("all-digit name", |s| s.name = "123".into(), "name"),
        ("no schedule", |s| s.cron = None, "schedule"),
        ("two schedules", |s| s.every = Some("1s".into()), "schedule"),
        (
            "cron hour 25",
            |s| s.cron = Some("0 0 25 * * *".into()),
            "cron",
        ),
        ("cron 3 fields", |s| s.cron = Some("* * *".into()), "cron"),
        (
            "cron garbage",
            |s| s.cron = Some("a b c d e f".into()),
            "cron",
        ),
        (
            "cron zero step",
            |s| s.cron = Some("*/0 * * * * *".into()),
            "cron",
        ),
        (
            "cron in the past",
            |s| s.cron = Some("0 0 0 1 1 * 1999".into()),
            "cron",
        ),
        (
            "unknown Quartz token",
            |s| s.cron = Some("0 15 10 ? * FRX#3".into()),
            "cron",
        ),
        (
            "bad start_at",
            |s| s.start_at = Some("tomorrow".into()),
            "start_at",
        ),
        (
            "end_at before start_at",
            |s| {
                s.start_at = Some("2030-01-02T00:00:00Z".into());
                s.end_at = Some("2030-01-01T00:00:00Z".into())
            },
            "end_at",
        ),
        (
            "window on a one-shot",
            |s| {
                s.cron = None;
                s.at = Some("2030-01-01T00:00:00Z".into());
                s.end_at = Some("2030-01-02T00:00:00Z".into())
            },
            "end_at",
        ),
        ("bad jitter", |s| s.jitter = Some("a bit".into()), "jitter"),
        (
            "jitter over a day",
            |s| {
                s.cron = None;
                s.every = Some("7d".into());
                s.jitter = Some("2d".into())
            },
            "jitter",
        ),
        (
            "jitter not shorter than the rate",
            |s| {
                s.cron = None;
                s.every = Some("30s".into());
                s.jitter = Some("30s".into())
            },
            "jitter",
        ),
        (
            "jitter not shorter than the cron's shortest gap",
            // Daily at 03:00 has gaps of a day; weekdays at noon have gaps of one and three days.
            |s| {
                s.cron = Some("0 0 12 ? * MON-FRI".into());
                s.jitter = Some("1d".into())
            },
            "jitter",
        ),
        (
            "jitter on demand",
            |s| {
                s.cron = None;
                s.on_demand = true;
                s.jitter = Some("1s".into())
            },
            "jitter",
        ),
        (
            "unknown timezone",
            |s| s.timezone = Some("Mars/Olympus".into()),
            "timezone",
        ),
        (
            "zero rate",
            |s| {
                s.cron = None;
                s.every = Some("0s".into())
            },
            "every",
        ),
        (
            "too fast rate",
            |s| {
                s.cron = None;
                s.every = Some("1ms".into())
            },
            "every",
        ),
        (
            "bad rate",
            |s| {
                s.cron = None;
                s.every = Some("often".into())
            },
            "every",
        ),
        (
            "negative delay",
            |s| {
                s.cron = None;
                s.delay = Some("-5s".into())
            },
            "delay",
        ),
        (
            "bad time",
            |s| {
                s.cron = None;
                s.at = Some("tomorrow".into())
            },
            "at",
        ),
        ("missing url", |s| s.http.url = String::new(), "http.url"),
        (
            "url without scheme",
            |s| s.http.url = "example.com/x".into(),
            "http.url",
        ),
        (
            "ftp url",
            |s| s.http.url = "ftp://example.com/".into(),
            "http.url",
        ),
        ("url no host", |s| s.http.url = "http://".into(), "http.url"),
        (
            "url with CRLF",
            |s| s.http.url = "http://a/\r\nHost: b".into(),
            "http.url",
        ),
        (
            "unknown method",
            |s| s.http.method = Some("FETCH".into()),
            "http.method",
        ),
        (
            "zero timeout",
            |s| s.http.timeout = Some("0s".into()),
            "http.timeout",
        ),
        (
            "huge timeout",
            |s| s.http.timeout = Some("400days".into()),
            "http.timeout",
        ),
        (
            "header with CRLF",
            |s| {
                s.http.headers.insert("X-A".into(), "a\r\nX-Evil: 1".into());
            },
            "http.headers.X-A",
        ),
        (
            "bad header name",
            |s| {
                s.http.headers.insert("Bad Name".into(), "v".into());
            },
            "http.headers.Bad Name",
        ),
        (
            "reserved header",
            |s| {
                s.http.headers.insert("X-Shoal-Instance".into(), "1".into());
            },
            "http.headers.X-Shoal-Instance",
        ),
        (
            "oversized body",
            |s| s.http.body = Some("x".repeat(MAX_TASK_BODY + 1)),
            "http.body",
        ),
        (
            "status 999",
            |s| s.http.expect_status = Some(vec![999]),
            "http.expect_status",
        ),
        (
            "empty expect_body",
            |s| s.http.expect_body = Some(String::new()),
            "http.expect_body",
        ),
        (
            "too many retries",
            |s| {
                s.retry = Some(RetrySpec {
                    count: 1000,
                    backoff: None,
                })
            },
            "retry.count",
        ),
        (
            "bad backoff",
            |s| {
                s.retry = Some(RetrySpec {
                    count: 1,
                    backoff: Some("x".into()),
                })
            },
            "retry.backoff",
        ),
        (
            "bad tag",
            |s| {
                s.target = Some(TargetSpec {
                    tags: vec!["a,b".into()],
                    workers: vec![],
                })
            },
            "target.tags",
        ),
        (
            "empty worker id",
            |s| {
                s.target = Some(TargetSpec {
                    tags: vec![],
                    workers: vec![String::new()],
                })
            },
            "target.workers",
        ),
        (
            "unknown strategy",
            |s| s.strategy = Some("fastest".into()),
            "strategy",
        ),
        (
            "zero concurrency",
            |s| s.max_concurrent = Some(0),
            "max_concurrent",
        ),
        (
            "bad dispatch timeout",
            |s| s.dispatch_timeout = Some("0ms".into()),
            "dispatch_timeout",
        ),
        (
            "unknown misfire",
            |s| s.misfire = Some("retry".into()),
            "misfire",
        ),
    ];
    assert!(cases.len() >= 25);
    for (what, edit, field) in cases {
        let mut spec = valid();
        edit(&mut spec);
        let error = spec
            .validate()
            .err()
            .unwrap_or_else(|| panic!("{what}: should be rejected"));
        assert_eq!(error.field, field, "{what}: {error}");
        assert!(!error.reason.is_empty(), "{what}");
    }
}

#[test]
fn toml_errors_name_the_key() {
    let unknown = "name = \"j\"\nevery = \"1s\"\nretries = 3\n[http]\nurl = \"http://a/\"\n";
    let error = JobSpec::from_toml(unknown).unwrap_err();
    assert!(error.reason.contains("retries"), "{error}");
    let wrong_type = "name = \"j\"\nevery = 5\n[http]\nurl = \"http://a/\"\n";
    let error = JobSpec::from_toml(wrong_type).unwrap_err();
    assert!(error.reason.contains("every"), "{error}");
    let missing_http = "name = \"j\"\nevery = \"5s\"\n";
    assert!(
        JobSpec::from_toml(missing_http)
            .unwrap_err()
            .reason
            .contains("http")
    );
}
