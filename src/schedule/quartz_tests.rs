//! Quartz's documented cron examples against fire times worked out by hand from a 2026 calendar,
//! in UTC and across the 2026 clock changes of America/New_York (8 March, 1 November) and
//! Europe/Berlin (29 March, 25 October).

use super::*;
use crate::test_support::spec;

fn cron(expr: &str, tz: &str) -> JobDefinition {
    crate::spec::JobSpec {
        cron: Some(expr.into()),
        timezone: Some(tz.into()),
        ..spec("quartz")
    }
    .validate()
    .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn at(text: &str) -> UnixMs {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// The next `count` fires strictly after `after`, as UTC RFC 3339 strings.
fn fires(expr: &str, tz: &str, after: &str, count: usize) -> Vec<String> {
    let def = cron(expr, tz);
    let mut out = Vec::new();
    let mut from = at(after);
    for _ in 0..count {
        from = cron_after(&def, from).unwrap_or_else(|| panic!("{expr} stopped"));
        out.push(
            chrono::DateTime::from_timestamp_millis(from)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        );
    }
    out
}

#[test]
fn quartz_examples_in_utc() {
    let cases: &[(&str, &str, &[&str])] = &[
        // Noon on weekdays: Friday 5 June, then Monday 8 June.
        (
            "0 0 12 ? * MON-FRI",
            "2026-06-05T11:00:00Z",
            &[
                "2026-06-05T12:00:00Z",
                "2026-06-08T12:00:00Z",
                "2026-06-09T12:00:00Z",
            ],
        ),
        // The last day of each month.
        (
            "0 15 10 L * ?",
            "2026-02-01T00:00:00Z",
            &[
                "2026-02-28T10:15:00Z",
                "2026-03-31T10:15:00Z",
                "2026-04-30T10:15:00Z",
            ],
        ),
        // The last Friday of each month (Quartz numbering: 6 = FRI).
        (
            "0 15 10 ? * 6L",
            "2026-02-01T00:00:00Z",
            &[
                "2026-02-27T10:15:00Z",
                "2026-03-27T10:15:00Z",
                "2026-04-24T10:15:00Z",
            ],
        ),
        (
            "0 15 10 ? * FRIL",
            "2026-02-01T00:00:00Z",
            &["2026-02-27T10:15:00Z"],
        ),
        // The third Friday of each month.
        (
            "0 15 10 ? * 6#3",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-16T10:15:00Z",
                "2026-02-20T10:15:00Z",
                "2026-03-20T10:15:00Z",
            ],
        ),
        // The weekday nearest the 15th: Sunday 15 Feb and 15 Mar move to Monday, Saturday 15 Aug
        // to Friday.
        (
            "0 0 12 15W * ?",
            "2026-02-01T00:00:00Z",
            &[
                "2026-02-16T12:00:00Z",
                "2026-03-16T12:00:00Z",
                "2026-04-15T12:00:00Z",
            ],
        ),
        (
            "0 0 12 15W * ?",
            "2026-08-01T00:00:00Z",
            &["2026-08-14T12:00:00Z"],
        ),
        // Saturday 1 August: the nearest weekday in the same month is Monday the 3rd.
        (
            "0 0 12 1W * ?",
            "2026-07-31T00:00:00Z",
            &["2026-08-03T12:00:00Z"],
        ),
        // The last weekday: Saturday 31 January moves back to Friday the 30th.
        (
            "0 0 12 LW * ?",
            "2026-01-01T00:00:00Z",
            &["2026-01-30T12:00:00Z"],
        ),
        // Quartz's "every 5 minutes starting at minute 5" and a plain minute list.
        (
            "0 5/15 * * * ?",
            "2026-06-01T10:00:00Z",
            &[
                "2026-06-01T10:05:00Z",
                "2026-06-01T10:20:00Z",
                "2026-06-01T10:35:00Z",
            ],
        ),
        // Weekday 1 is Sunday, as in Quartz (and as the cron crate Shoal used before).
        (
            "0 0 8 ? * 1",
            "2026-06-01T00:00:00Z",
            &["2026-06-07T08:00:00Z"],
        ),
        // Day of month and day of week both restricted: the day must match both (the meaning
        // these expressions had before Quartz syntax was added). The 13th that is a Friday.
        (
            "0 0 0 13 * FRI",
            "2026-01-01T00:00:00Z",
            &[
                "2026-02-13T00:00:00Z",
                "2026-03-13T00:00:00Z",
                "2026-11-13T00:00:00Z",
            ],
        ),
        // A year field.
        (
            "0 0 0 1 1 ? 2030",
            "2026-06-01T00:00:00Z",
            &["2030-01-01T00:00:00Z"],
        ),
    ];
    for (expr, after, expected) in cases {
        assert_eq!(
            fires(expr, "UTC", after, expected.len()),
            *expected,
            "{expr} after {after}"
        );
    }
}

#[test]
fn weekdays_at_noon_keep_local_noon_across_new_york_changes() {
    // Friday 6 March is EST (-5), Monday 9 March EDT (-4); in autumn back again.
    assert_eq!(
        fires(
            "0 0 12 ? * MON-FRI",
            "America/New_York",
            "2026-03-06T00:00:00Z",
            2
        ),
        ["2026-03-06T17:00:00Z", "2026-03-09T16:00:00Z"]
    );
    assert_eq!(
        fires(
            "0 0 12 ? * MON-FRI",
            "America/New_York",
            "2026-10-30T00:00:00Z",
            2
        ),
        ["2026-10-30T16:00:00Z", "2026-11-02T17:00:00Z"]
    );
}

#[test]
fn last_friday_keeps_local_time_across_berlin_changes() {
    // 27 March is CET (+1), 24 April CEST (+2); 30 October CET again.
    assert_eq!(
        fires("0 15 10 ? * 6L", "Europe/Berlin", "2026-03-01T00:00:00Z", 2),
        ["2026-03-27T09:15:00Z", "2026-04-24T08:15:00Z"]
    );
    assert_eq!(
        fires("0 15 10 ? * 6L", "Europe/Berlin", "2026-10-01T00:00:00Z", 1),
        ["2026-10-30T09:15:00Z"]
    );
    assert_eq!(
        fires(
            "0 15 10 ? * 6#3",
            "Europe/Berlin",
            "2026-10-01T00:00:00Z",
            2
        ),
        ["2026-10-16T08:15:00Z", "2026-11-20T09:15:00Z"]
    );
}

#[test]
fn a_time_in_the_skipped_hour_is_skipped_that_day() {
    // 02:30 does not exist in New York on 8 March 2026: the next fire is 9 March 02:30 EDT.
    assert_eq!(
        fires(
            "0 30 2 * * *",
            "America/New_York",
            "2026-03-07T07:30:00Z",
            1
        ),
        ["2026-03-09T06:30:00Z"]
    );
    assert_eq!(
        fires("0 30 2 * * *", "Europe/Berlin", "2026-03-28T01:30:00Z", 1),
        ["2026-03-30T00:30:00Z"]
    );
}

#[test]
fn a_time_in_the_repeated_hour_fires_once() {
    // 01:30 happens twice in New York on 1 November 2026: it fires at the first (EDT) only.
    assert_eq!(
        fires(
            "0 30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            2
        ),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
    assert_eq!(
        fires("0 30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
}

#[test]
fn an_hourly_job_fires_every_real_hour_across_both_changes() {
    // Spring: 01:00 EST, then 03:00 EDT (02:00 does not exist) — an hour apart in real time.
    assert_eq!(
        fires("0 0 * * * *", "America/New_York", "2026-03-08T05:30:00Z", 3),
        [
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z"
        ]
    );
    // Autumn: 01:00 EDT and 01:00 EST both fire.
    assert_eq!(
        fires("0 0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", 3),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z"
        ]
    );
}
