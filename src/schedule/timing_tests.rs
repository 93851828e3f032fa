//! Windows, jitter, upcoming fires, backfill ranges and descriptions.

use super::*;
use crate::model::{FireTiming, MisfirePolicy};
use crate::schedule::{fire_after_run, fire_due, initial_fire};
use crate::spec::JobSpec;
use crate::test_support::spec;

fn at(text: &str) -> UnixMs {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

fn def(edit: impl FnOnce(&mut JobSpec)) -> JobDefinition {
    let mut spec = spec("timing");
    edit(&mut spec);
    spec.validate().unwrap()
}

fn job(id: JobId, def: JobDefinition, next_fire_ms: Option<UnixMs>) -> Job {
    Job {
        next_fire_ms,
        ..crate::test_support::job(id, def)
    }
}

#[test]
fn jitter_stays_within_its_bound_and_is_the_same_every_time() {
    let scheduled = at("2026-06-01T10:00:00Z");
    let mut seen = std::collections::BTreeSet::new();
    for job_id in 1..=2_000 {
        let jitter = jitter_of(job_id, 30_000, scheduled);
        assert!(jitter <= 30_000, "{jitter}");
        assert_eq!(jitter, jitter_of(job_id, 30_000, scheduled), "drawn once");
        seen.insert(jitter / 3_000);
    }
    // 2,000 jobs due at the same second are spread over every tenth of the bound.
    assert_eq!(seen.len(), 10, "{seen:?}");
    // Another fire of the same job gets its own jitter; no jitter means none.
    let firsts: Vec<u64> = (0..10)
        .map(|k| jitter_of(7, 30_000, scheduled + k * 60_000))
        .collect();
    assert!(firsts.windows(2).any(|w| w[0] != w[1]), "{firsts:?}");
    assert_eq!(jitter_of(7, 0, scheduled), 0);
}

#[test]
fn jitter_values_are_fixed_forever() {
    // Values worked out with a Python SplitMix64. A fire's jitter must not change with a Rust or crate upgrade: a restarted server (or
    // another replica) must hold the same fire until the same moment.
    assert_eq!(jitter_of(1, 59_999, 1_780_000_000_000), 25_534);
    assert_eq!(jitter_of(42, 1_000, 0), 191);
}

#[test]
fn a_jittered_fire_runs_later_but_never_past_end_at() {
    let scheduled = at("2026-06-01T10:00:00Z");
    let jittered = def(|s| {
        s.every = Some("1m".into());
        s.on_demand = false;
        s.jitter = Some("30s".into());
    });
    let run = run_at(3, &jittered, scheduled);
    assert_eq!(run, scheduled + jitter_of(3, 30_000, scheduled) as i64);
    let mut ending = jittered.clone();
    ending.timing.end_at_ms = Some(scheduled + 1);
    assert!(run_at(3, &ending, scheduled) <= scheduled + 1);
    assert!(run_at(3, &ending, scheduled) >= scheduled);
}

fn every_minute(start: Option<&str>, end: Option<&str>) -> JobDefinition {
    def(|s| {
        s.on_demand = false;
        s.every = Some("1m".into());
        s.start_at = start.map(str::to_string);
        s.end_at = end.map(str::to_string);
    })
}

#[test]
fn no_fire_before_start_at() {
    let now = at("2026-06-01T10:00:00Z");
    // A fixed rate's grid starts at start_at.
    let rate = every_minute(Some("2026-06-01T12:00:00Z"), None);
    assert_eq!(initial_fire(&rate, now), Some(at("2026-06-01T12:00:00Z")));
    // A start already past changes nothing.
    let started = every_minute(Some("2026-06-01T09:00:00Z"), None);
    assert_eq!(initial_fire(&started, now), Some(now + 60_000));
    // Cron: the first matching time at or after start_at.
    let cron = def(|s| {
        s.on_demand = false;
        s.cron = Some("0 0 * * * *".into());
        s.start_at = Some("2026-06-01T12:00:00Z".into());
    });
    assert_eq!(initial_fire(&cron, now), Some(at("2026-06-01T12:00:00Z")));
    let delay = def(|s| {
        s.on_demand = false;
        s.delay = Some("1m".into());
        s.start_at = Some("2026-06-01T12:00:00Z".into());
    });
    assert_eq!(initial_fire(&delay, now), Some(at("2026-06-01T12:00:00Z")));
}

#[test]
fn no_fire_after_end_at_and_the_job_then_has_no_next() {
    let rate = every_minute(None, Some("2026-06-01T10:02:30Z"));
    let scheduled = at("2026-06-01T10:01:00Z");
    let firing = fire_due(&rate, scheduled, scheduled, scheduled);
    assert_eq!(firing.fires, vec![scheduled]);
    assert_eq!(firing.next, Some(at("2026-06-01T10:02:00Z")));
    let last = fire_due(
        &rate,
        firing.next.unwrap(),
        at("2026-06-01T10:02:00Z"),
        at("2026-06-01T10:02:00Z"),
    );
    assert_eq!(last.next, None, "10:03 is past end_at");
    // Created after its end: no fire at all.
    assert_eq!(initial_fire(&rate, at("2026-06-01T11:00:00Z")), None);
    // A fixed delay after a run that ended too late.
    let delay = def(|s| {
        s.on_demand = false;
        s.delay = Some("1m".into());
        s.end_at = Some("2026-06-01T10:00:30Z".into());
    });
    assert_eq!(
        fire_after_run(&delay, at("2026-06-01T09:59:00Z")),
        Some(at("2026-06-01T10:00:00Z"))
    );
    assert_eq!(fire_after_run(&delay, at("2026-06-01T09:59:31Z")), None);
}

#[test]
fn missed_fires_after_downtime_stop_at_end_at() {
    for policy in [
        MisfirePolicy::FireAll,
        MisfirePolicy::FireOnce,
        MisfirePolicy::Skip,
    ] {
        for schedule in ["every", "cron"] {
            let mut d = def(|s| {
                s.on_demand = false;
                if schedule == "every" {
                    s.every = Some("1m".into());
                } else {
                    s.cron = Some("0 * * * * *".into());
                }
                s.end_at = Some("2026-06-01T10:09:30Z".into());
            });
            d.misfire = policy;
            // Down from 10:00 to 11:00: only 10:00..10:09 were fires at all.
            let firing = fire_due(
                &d,
                at("2026-06-01T10:00:00Z"),
                at("2026-06-01T11:00:00Z"),
                at("2026-06-01T11:00:00Z"),
            );
            let fired = firing.fires.len() as u64;
            assert_eq!(
                fired + firing.skipped,
                10,
                "{policy:?} {schedule}: {firing:?}"
            );
            assert!(
                firing
                    .fires
                    .iter()
                    .all(|t| *t <= at("2026-06-01T10:09:30Z"))
            );
            assert_eq!(firing.next, None, "{policy:?} {schedule}");
        }
    }
}

#[test]
fn upcoming_lists_fires_with_their_run_times_up_to_the_end() {
    let mut d = every_minute(None, Some("2026-06-01T10:03:00Z"));
    d.timing.jitter_ms = 10_000;
    let job = job(9, d, Some(at("2026-06-01T10:00:00Z")));
    let fires = upcoming(&job, 5);
    let scheduled: Vec<UnixMs> = fires.iter().map(|f| f.scheduled_ms).collect();
    assert_eq!(
        scheduled,
        [
            at("2026-06-01T10:00:00Z"),
            at("2026-06-01T10:01:00Z"),
            at("2026-06-01T10:02:00Z"),
            at("2026-06-01T10:03:00Z")
        ]
    );
    for fire in &fires {
        assert_eq!(fire.run_at_ms, run_at(9, &job.def, fire.scheduled_ms));
        assert!((fire.scheduled_ms..=fire.scheduled_ms + 10_000).contains(&fire.run_at_ms));
    }
    assert_eq!(upcoming(&job, 2).len(), 2);
    let ended = Job {
        next_fire_ms: None,
        ..job
    };
    assert!(upcoming(&ended, 5).is_empty());
}

#[test]
fn backfill_enumerates_the_range_half_open() {
    let weekdays = def(|s| {
        s.on_demand = false;
        s.cron = Some("0 0 12 ? * MON-FRI".into());
    });
    let job1 = job(1, weekdays, None);
    // 1–14 June 2026: ten weekdays; `to` is excluded.
    let fires = backfill_fires(
        &job1,
        at("2026-06-01T12:00:00Z"),
        at("2026-06-15T12:00:00Z"),
    )
    .unwrap();
    assert_eq!(fires.len(), 10);
    assert_eq!(fires[0], at("2026-06-01T12:00:00Z"));
    assert_eq!(*fires.last().unwrap(), at("2026-06-12T12:00:00Z"));
    // A fixed rate follows the grid of its next fire.
    let rate = job(
        2,
        every_minute(None, None),
        Some(at("2026-06-01T10:00:30Z")),
    );
    let fires = backfill_fires(
        &rate,
        at("2026-06-01T09:00:00Z"),
        at("2026-06-01T09:10:00Z"),
    )
    .unwrap();
    assert_eq!(fires.len(), 10);
    assert_eq!(fires[0], at("2026-06-01T09:00:30Z"));
    // Inside the window only.
    let windowed = job(
        3,
        every_minute(Some("2026-06-01T09:05:00Z"), Some("2026-06-01T09:07:00Z")),
        None,
    );
    let fires = backfill_fires(
        &windowed,
        at("2026-06-01T09:00:00Z"),
        at("2026-06-01T09:10:00Z"),
    )
    .unwrap();
    assert_eq!(
        fires,
        [
            at("2026-06-01T09:05:00Z"),
            at("2026-06-01T09:06:00Z"),
            at("2026-06-01T09:07:00Z")
        ]
    );
}

#[test]
fn backfill_is_bounded_and_refuses_what_has_no_grid() {
    let every_second = def(|s| {
        s.on_demand = false;
        s.cron = Some("* * * * * *".into());
    });
    let job1 = job(1, every_second, None);
    let from = at("2026-06-01T00:00:00Z");
    assert_eq!(
        backfill_fires(&job1, from, from + 1_000_000).unwrap().len(),
        MAX_BACKFILL
    );
    let error = backfill_fires(&job1, from, from + 1_001_000).unwrap_err();
    assert_eq!(error.field, "to");
    assert!(error.reason.contains("at most 1000"), "{}", error.reason);
    let rate = job(2, every_minute(None, None), None);
    let error = backfill_fires(&rate, from, from + 2_000 * 60_000).unwrap_err();
    assert!(error.reason.starts_with("2000 fires"), "{}", error.reason);
    let error = backfill_fires(&rate, from, from).unwrap_err();
    assert_eq!(error.field, "to");
    let on_demand = job(3, def(|s| s.on_demand = true), None);
    assert_eq!(
        backfill_fires(&on_demand, from, from + 1)
            .unwrap_err()
            .field,
        "schedule"
    );
}

#[test]
fn descriptions_say_the_schedule_in_words() {
    let cron = def(|s| {
        s.on_demand = false;
        s.cron = Some("0 0 12 ? * MON-FRI".into());
        s.timezone = Some("Europe/Berlin".into());
    });
    assert_eq!(
        describe(&cron),
        "at 12:00, on Monday, Tuesday, Wednesday, Thursday, and Friday (Europe/Berlin)"
    );
    let every = def(|s| {
        s.on_demand = false;
        s.cron = Some("*/30 * * * * *".into());
    });
    assert_eq!(describe(&every), "every 30 seconds (UTC)");
    assert_eq!(describe(&every_minute(None, None)), "every 1m");
    assert_eq!(describe(&def(|s| s.on_demand = true)), "on demand");
    let timing = FireTiming::default();
    assert!(timing.is_unset());
}
