use super::*;
use crate::model::{HttpTask, RetryPolicy, Strategy, Target};

fn job(schedule: Schedule, timezone: &str, misfire: MisfirePolicy) -> JobDefinition {
    JobDefinition {
        name: "j".into(),
        schedule,
        timezone: timezone.into(),
        http: HttpTask {
            method: "GET".into(),
            url: "http://127.0.0.1/".into(),
            headers: vec![],
            body: None,
            timeout_ms: 1000,
            expect_status: vec![],
            expect_body: None,
            expect_body_regex: None,
            client: Default::default(),
        },
        retry: RetryPolicy::default(),
        target: Target::default(),
        strategy: Strategy::default(),
        max_concurrent: 1,
        dispatch_timeout_ms: 60_000,
        misfire,
        paused: false,
        timing: Default::default(),
        overlap: Default::default(),
        pause_after_failures: None,
        alerts: None,
        chain: Default::default(),
    }
}

fn cron(expr: &str, tz: &str) -> JobDefinition {
    job(
        Schedule::Cron { expr: expr.into() },
        tz,
        MisfirePolicy::FireOnce,
    )
}

fn at(text: &str) -> UnixMs {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

#[test]
fn cron_next_fire_in_utc() {
    let def = cron("0 */5 * * * *", "UTC");
    assert_eq!(
        cron_after(&def, at("2026-06-01T10:02:03Z")),
        Some(at("2026-06-01T10:05:00Z"))
    );
    // Strictly after: a time on the grid moves to the next one.
    assert_eq!(
        cron_after(&def, at("2026-06-01T10:05:00Z")),
        Some(at("2026-06-01T10:10:00Z"))
    );
}

#[test]
fn cron_keeps_local_wall_time_across_dst_changes() {
    let def = cron("0 0 9 * * *", "Europe/Paris");
    // 09:00 CET is 08:00Z; after the spring change 09:00 CEST is 07:00Z.
    assert_eq!(
        cron_after(&def, at("2026-03-28T08:00:00Z")),
        Some(at("2026-03-29T07:00:00Z"))
    );
    // And back in autumn: 09:00 CEST = 07:00Z on the 24th, 09:00 CET = 08:00Z on the 25th.
    assert_eq!(
        cron_after(&def, at("2026-10-24T07:00:00Z")),
        Some(at("2026-10-25T08:00:00Z"))
    );
}

#[test]
fn cron_in_a_skipped_hour_does_not_fire_at_a_time_that_does_not_exist() {
    // 02:30 does not exist in Paris on 2026-03-29 (02:00 jumps to 03:00).
    let def = cron("0 30 2 * * *", "Europe/Paris");
    let next = cron_after(&def, at("2026-03-28T01:30:00Z")).unwrap();
    let local = chrono::DateTime::from_timestamp_millis(next)
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Paris);
    assert!(next > at("2026-03-28T01:30:00Z"));
    assert_eq!(local.format("%H:%M").to_string(), "02:30", "{local}");
    assert_ne!(
        local.format("%Y-%m-%d").to_string(),
        "2026-03-29",
        "{local}"
    );
}

#[test]
fn cron_in_a_repeated_hour_fires_at_most_twice_and_moves_on() {
    // 02:30 happens twice in Paris on 2026-10-25 (03:00 CEST falls back to 02:00 CET).
    let def = cron("0 30 2 * * *", "Europe/Paris");
    let first = cron_after(&def, at("2026-10-24T12:00:00Z")).unwrap();
    assert!(first == at("2026-10-25T00:30:00Z") || first == at("2026-10-25T01:30:00Z"));
    let mut later = first;
    for _ in 0..3 {
        later = cron_after(&def, later).unwrap();
    }
    assert!(later > at("2026-10-26T00:00:00Z"), "moves on to later days");
}

#[test]
fn initial_fire_of_each_kind() {
    let now = at("2026-06-01T10:00:00Z");
    let rate = job(
        Schedule::FixedRate { every_ms: 30_000 },
        "UTC",
        MisfirePolicy::FireOnce,
    );
    assert_eq!(initial_fire(&rate, now), Some(now + 30_000));
    let delay = job(
        Schedule::FixedDelay { delay_ms: 5_000 },
        "UTC",
        MisfirePolicy::FireOnce,
    );
    assert_eq!(initial_fire(&delay, now), Some(now + 5_000));
    let once = job(
        Schedule::Once { at_ms: now + 1 },
        "UTC",
        MisfirePolicy::FireOnce,
    );
    assert_eq!(initial_fire(&once, now), Some(now + 1));
    let on_demand = job(Schedule::OnDemand, "UTC", MisfirePolicy::FireOnce);
    assert_eq!(initial_fire(&on_demand, now), None);
}

#[test]
fn an_on_time_fire_fires_once_and_moves_on() {
    let def = cron("* * * * * *", "UTC");
    let scheduled = at("2026-06-01T10:00:00Z");
    let firing = fire_due(&def, scheduled, scheduled + 3, scheduled + 3);
    assert_eq!(firing.fires, vec![scheduled]);
    assert_eq!(firing.next, Some(scheduled + 1000));
    assert_eq!(firing.skipped, 0);
}

#[test]
fn a_busy_scheduler_within_grace_loses_no_fire() {
    let def = job(
        Schedule::FixedRate { every_ms: 1000 },
        "UTC",
        MisfirePolicy::Skip,
    );
    let scheduled = at("2026-06-01T10:00:00Z");
    let firing = fire_due(&def, scheduled, scheduled + 2500, scheduled + 2500);
    assert_eq!(
        firing.fires,
        vec![scheduled, scheduled + 1000, scheduled + 2000]
    );
    assert_eq!(firing.next, Some(scheduled + 3000));
}

#[test]
fn fixed_delay_and_one_shot_have_no_next_until_something_happens() {
    let scheduled = at("2026-06-01T10:00:00Z");
    let delay = job(
        Schedule::FixedDelay { delay_ms: 5_000 },
        "UTC",
        MisfirePolicy::FireOnce,
    );
    let firing = fire_due(&delay, scheduled, scheduled + 1, scheduled + 1);
    assert_eq!((firing.fires, firing.next), (vec![scheduled], None));
    let once = job(
        Schedule::Once { at_ms: scheduled },
        "UTC",
        MisfirePolicy::FireOnce,
    );
    let firing = fire_due(&once, scheduled, scheduled + 1, scheduled + 1);
    assert_eq!((firing.fires, firing.next), (vec![scheduled], None));
}

/// An hour of downtime for an every-minute job: 60 missed fires.
fn after_downtime(policy: MisfirePolicy) -> (Firing, UnixMs, UnixMs) {
    let mut def = cron("0 * * * * *", "UTC");
    def.misfire = policy;
    let scheduled = at("2026-06-01T10:00:00Z");
    let now = at("2026-06-01T11:00:00.500Z");
    (fire_due(&def, scheduled, now, now), scheduled, now)
}

#[test]
fn misfire_fire_once_collapses_missed_fires_into_one() {
    let (firing, scheduled, _) = after_downtime(MisfirePolicy::FireOnce);
    // The missed 10:00..10:59 collapse into one; 11:00 is on time and fires too.
    assert_eq!(firing.fires, vec![scheduled, at("2026-06-01T11:00:00Z")]);
    assert_eq!(firing.skipped, 59);
    assert_eq!(firing.next, Some(at("2026-06-01T11:01:00Z")));
}

#[test]
fn misfire_skip_drops_missed_fires() {
    let (firing, _, _) = after_downtime(MisfirePolicy::Skip);
    assert_eq!(firing.fires, vec![at("2026-06-01T11:00:00Z")]);
    assert_eq!(firing.skipped, 60);
}

#[test]
fn misfire_fire_all_fires_each_missed_time() {
    let (firing, scheduled, _) = after_downtime(MisfirePolicy::FireAll);
    assert_eq!(firing.fires.len(), 61);
    assert_eq!(firing.fires[0], scheduled);
    assert!(firing.fires.windows(2).all(|w| w[1] - w[0] == 60_000));
    assert_eq!(firing.skipped, 0);
}

#[test]
fn misfire_fire_all_is_bounded() {
    let def = job(
        Schedule::FixedRate { every_ms: 1000 },
        "UTC",
        MisfirePolicy::FireAll,
    );
    let scheduled = at("2026-06-01T10:00:00Z");
    let now = at("2026-06-02T10:00:00Z");
    let firing = fire_due(&def, scheduled, now, now);
    let on_time = firing
        .fires
        .iter()
        .filter(|t| **t >= now - MISFIRE_GRACE_MS)
        .count();
    assert_eq!(firing.fires.len() - on_time, MAX_MISFIRE_FIRES);
    assert!(firing.skipped > 80_000);
    assert!(firing.fires.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(firing.next, Some(now + 1000));
}

#[test]
fn fires_up_to_the_horizon_are_fired_ahead_and_the_next_is_after_it() {
    let def = cron("* * * * * *", "UTC");
    let scheduled = at("2026-06-01T10:00:00Z");
    let now = scheduled - 700;
    let firing = fire_due(&def, scheduled, now, now + 1000);
    assert_eq!(firing.fires, vec![scheduled]);
    assert_eq!(firing.next, Some(scheduled + 1000));
    assert_eq!(firing.skipped, 0);
}

#[test]
fn a_next_fire_left_far_ahead_by_a_backward_clock_step_is_brought_back() {
    let now = at("2026-06-01T10:00:00.300Z");
    let hour = 3_600_000;
    // A per-second cron whose next fire was computed an hour ahead of this clock.
    let def = cron("* * * * * *", "UTC");
    let corrected = clock_corrected_fire(&def, at("2026-06-01T11:00:01Z"), now);
    assert_eq!(corrected, Some(at("2026-06-01T10:00:01Z")));
    // Where it would be without a step: left alone.
    assert_eq!(
        clock_corrected_fire(&def, at("2026-06-01T10:00:01Z"), now),
        None
    );
    assert_eq!(
        clock_corrected_fire(&def, at("2026-06-01T10:00:02Z"), now),
        None
    );
    // A fixed rate keeps its phase.
    let rate = job(
        Schedule::FixedRate { every_ms: 10_000 },
        "UTC",
        MisfirePolicy::FireOnce,
    );
    let stored = now + hour + 4_000;
    assert_eq!(clock_corrected_fire(&rate, stored, now), Some(now + 4_000));
    assert_eq!(clock_corrected_fire(&rate, now + 4_000, now), None);
    // A yearly cron's far fire is plausible; a one-shot's time is the user's.
    let yearly = cron("0 0 0 1 1 ?", "UTC");
    assert_eq!(
        clock_corrected_fire(&yearly, at("2027-01-01T00:00:00Z"), now),
        None
    );
    let once = job(
        Schedule::Once { at_ms: now + hour },
        "UTC",
        MisfirePolicy::FireOnce,
    );
    assert_eq!(clock_corrected_fire(&once, now + hour, now), None);
    // A window that opens later keeps its start.
    let mut windowed = cron("* * * * * *", "UTC");
    windowed.timing.start_at_ms = Some(now + hour);
    assert_eq!(clock_corrected_fire(&windowed, now + hour, now), None);
}
