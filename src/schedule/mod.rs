//! When jobs fire: next-fire computation for every schedule kind (cron in a named timezone, fixed
//! rate, fixed delay, one-shot, on demand) inside the job's window, the misfire policy after
//! downtime, and the look-ahead of firing. Pure functions of the job and the times given: no
//! clock, no randomness (a jitter is a hash of the job and the fire), so replaying the same
//! command gives the same fires. The server's scheduler loop (`server::scheduler`) and state
//! machine use them, and so does validation. The [`timing`] module adds jitter, upcoming fires,
//! backfill ranges and descriptions.

pub mod cron_expr;
pub mod timing;

pub use timing::{
    MAX_BACKFILL, MAX_UPCOMING, UpcomingFire, backfill_fires, describe, ended_at, jitter_of,
    run_at, upcoming,
};

use chrono::TimeZone;
use chrono_tz::Tz;

use crate::model::{JobDefinition, MAX_MISFIRE_FIRES, MisfirePolicy, Schedule, UnixMs};

/// How far ahead of its scheduled time a fire is committed. Creating a fire costs 25–40 µs of
/// store work and its batch a durable commit, so 10,000 fires due in the same second take some
/// 300–400 ms to commit: fired at their due time, the last of them would be that late. Committed
/// up to a second ahead, they wait in the dispatcher's memory and become dispatchable at their
/// time. Large enough to cover committing 10,000 fires; small enough that a pause or an edit
/// rarely finds a pre-created instance to cancel.
pub const LOOKAHEAD_MS: i64 = 1_000;

/// A fire later than this is "missed" (the server was down or stalled) and subject to the job's
/// misfire policy; anything closer is simply on time.
pub const MISFIRE_GRACE_MS: i64 = 5_000;

/// Bound on cron steps taken to enumerate missed fires, so a long outage of an every-second job
/// cannot stall the scheduler.
const MAX_ENUMERATION_STEPS: usize = 100_000;

/// The first fire of a newly created (or resumed) job, strictly after `now`, inside its window:
/// not before `start_at` (a fixed rate's grid starts there), none at all past `end_at`.
pub fn initial_fire(def: &JobDefinition, now: UnixMs) -> Option<UnixMs> {
    let start = def.timing.start_at_ms.filter(|start| *start > now);
    let first = match &def.schedule {
        Schedule::Cron { .. } => cron_after(def, start.map_or(now, |start| start - 1)),
        Schedule::FixedRate { every_ms } => Some(start.unwrap_or(now + *every_ms as i64)),
        Schedule::FixedDelay { delay_ms } => {
            Some((now + *delay_ms as i64).max(start.unwrap_or(now)))
        }
        Schedule::Once { at_ms } => Some(*at_ms),
        Schedule::OnDemand => None,
    };
    first.filter(|t| before_end(def, *t))
}

/// The fire of a fixed-delay job after its run ended at `ended`, if still inside its window.
pub fn fire_after_run(def: &JobDefinition, ended: UnixMs) -> Option<UnixMs> {
    let Schedule::FixedDelay { delay_ms } = def.schedule else {
        return None;
    };
    Some(ended + delay_ms as i64).filter(|t| before_end(def, *t))
}

/// Whether a scheduled time is at or before the job's `end_at` (if it has one).
fn before_end(def: &JobDefinition, at: UnixMs) -> bool {
    def.timing.end_at_ms.is_none_or(|end| at <= end)
}

/// The scheduled time that follows `fire` (for fixed delay there is none until the run ends).
pub(crate) fn step(def: &JobDefinition, fire: UnixMs) -> Option<UnixMs> {
    let next = match &def.schedule {
        Schedule::Cron { .. } => cron_after(def, fire),
        Schedule::FixedRate { every_ms } => Some(fire + *every_ms as i64),
        Schedule::FixedDelay { .. } | Schedule::Once { .. } | Schedule::OnDemand => None,
    };
    next.filter(|t| before_end(def, *t))
}

/// The first scheduled time strictly after `after`, following the grid that started at `anchor`.
fn next_on_grid(def: &JobDefinition, anchor: UnixMs, after: UnixMs) -> Option<UnixMs> {
    let next = match &def.schedule {
        Schedule::Cron { .. } => cron_after(def, after),
        Schedule::FixedRate { every_ms } => {
            let every = *every_ms as i64;
            let steps = (after - anchor).div_euclid(every) + 1;
            Some(anchor + steps * every)
        }
        _ => step(def, anchor).filter(|t| *t > after),
    };
    next.filter(|t| before_end(def, *t))
}

/// After the wall clock stepped backwards (an NTP correction, a VM restored from a snapshot), a
/// stored next fire computed under the old clock can lie far past where the schedule puts the
/// next fire from `now`: an hour's step would silence a per-second job for an hour. Returns the
/// next fire to use instead when `stored` is later than any first fire the schedule could give
/// from `now` (plus the look-ahead the scheduler fires with); `None` when it is plausible. Only
/// cron, fixed-rate and fixed-delay jobs move (a one-shot's time is the user's); a fixed rate
/// keeps its phase.
pub fn clock_corrected_fire(def: &JobDefinition, stored: UnixMs, now: UnixMs) -> Option<UnixMs> {
    if matches!(def.schedule, Schedule::Once { .. } | Schedule::OnDemand) {
        return None;
    }
    // The latest next fire a job could hold at `now` if the clock never went back: the first
    // fire after the horizon the last round fired up to (and never before `start_at`).
    let latest_plausible = initial_fire(def, now + LOOKAHEAD_MS)?;
    if stored <= latest_plausible {
        return None;
    }
    match &def.schedule {
        Schedule::FixedRate { .. } if def.timing.start_at_ms.is_none_or(|s| s <= now) => {
            next_on_grid(def, stored, now)
        }
        _ => initial_fire(def, now),
    }
}

/// What to do with a job whose next fire `scheduled` is at or before `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// Scheduled times to create instances for, oldest first.
    pub fires: Vec<UnixMs>,
    /// How many due times were skipped by the misfire policy.
    pub skipped: u64,
    /// The job's next fire after these.
    pub next: Option<UnixMs>,
}

/// Applies the schedule and misfire policy to a job whose next fire `scheduled` is at or before
/// `horizon` (`now`, or a little later when firing ahead: see [`LOOKAHEAD_MS`]).
/// Whether a fire was missed is judged against the real `now`, never the horizon: on-time fires
/// (from [`MISFIRE_GRACE_MS`] before `now` up to `horizon`) always fire; older ones are missed and
/// follow the policy: `fire-once` collapses them into one, `skip` drops them, `fire-all` keeps the
/// newest [`MAX_MISFIRE_FIRES`].
pub fn fire_due(def: &JobDefinition, scheduled: UnixMs, now: UnixMs, horizon: UnixMs) -> Firing {
    let on_time_from = now - MISFIRE_GRACE_MS;
    let mut fires = Vec::new();
    let mut skipped = 0u64;

    if scheduled < on_time_from {
        let missed = enumerate_missed(def, scheduled, on_time_from);
        match def.misfire {
            MisfirePolicy::FireOnce => {
                fires.push(scheduled);
                skipped = missed.count.saturating_sub(1);
            }
            MisfirePolicy::Skip => skipped = missed.count,
            MisfirePolicy::FireAll => {
                skipped = missed.count - missed.newest.len() as u64;
                fires.extend(missed.newest);
            }
        }
    }
    // On-time fires: the grid's times in [on_time_from, horizon].
    let mut fire = if scheduled >= on_time_from {
        Some(scheduled)
    } else {
        next_on_grid(def, scheduled, on_time_from - 1)
    };
    while let Some(t) = fire.filter(|t| *t <= horizon) {
        fires.push(t);
        fire = step(def, t);
    }
    Firing {
        fires,
        skipped,
        next: fire,
    }
}

struct Missed {
    count: u64,
    newest: Vec<UnixMs>,
}

/// Counts the scheduled times in `[from, until)` and keeps the newest few.
fn enumerate_missed(def: &JobDefinition, from: UnixMs, until: UnixMs) -> Missed {
    if let Schedule::FixedRate { every_ms } = &def.schedule {
        let every = *every_ms as i64;
        // Times past the window's end are not fires at all.
        let until = def.timing.end_at_ms.map_or(until, |end| until.min(end + 1));
        let count = ((until - 1 - from).div_euclid(every) + 1).max(0) as u64;
        let keep = count.min(MAX_MISFIRE_FIRES as u64) as i64;
        let last = from + (count as i64 - 1) * every;
        let newest = (0..keep).rev().map(|k| last - k * every).collect();
        return Missed { count, newest };
    }
    let mut newest = std::collections::VecDeque::with_capacity(MAX_MISFIRE_FIRES);
    let mut count = 0u64;
    let mut fire = Some(from);
    let mut steps = 0;
    while let Some(t) = fire.filter(|t| *t < until) {
        count += 1;
        if newest.len() == MAX_MISFIRE_FIRES {
            newest.pop_front();
        }
        newest.push_back(t);
        steps += 1;
        if steps >= MAX_ENUMERATION_STEPS {
            break;
        }
        fire = step(def, t);
    }
    Missed {
        count,
        newest: newest.into(),
    }
}

fn timezone(def: &JobDefinition) -> Tz {
    // Validated when the job was stored; UTC is only a fallback for a hand-edited file.
    def.timezone.parse().unwrap_or(chrono_tz::UTC)
}

/// The first cron time strictly after `after`, in the job's timezone.
pub fn cron_after(def: &JobDefinition, after: UnixMs) -> Option<UnixMs> {
    let Schedule::Cron { expr } = &def.schedule else {
        return None;
    };
    let tz = timezone(def);
    let start = tz.timestamp_millis_opt(after).single()?;
    with_parsed_cron(expr, |schedule| {
        next_cron_time(schedule, &start).map(|t| t.timestamp_millis())
    })
}

/// The first time strictly after `after` whose wall clock the expression names.
///
/// On the day the clocks go forward, a wall-clock time inside the skipped hour does not exist:
/// croner moves such a fire to the first instant after the gap (03:00 for a 02:30 job); Shoal
/// skips it instead, as Quartz does and as Shoal always has, so that a fire happens only at a
/// time the expression names. In the repeated hour when the clocks go back, a fixed time fires
/// once (the first of the two) and a wildcard hour fires in both (croner's rule).
pub(crate) fn next_cron_time(
    schedule: &croner::Cron,
    after: &chrono::DateTime<Tz>,
) -> Option<chrono::DateTime<Tz>> {
    let mut from = *after;
    // A gap is crossed at most once or twice a year: a few tries always suffice.
    for _ in 0..4 {
        let next = schedule.find_next_occurrence(&from, false).ok()?;
        if schedule.is_time_matching(&next).unwrap_or(false) {
            return Some(next);
        }
        from = next;
    }
    None
}

/// Parsing a cron expression costs far more than stepping it, and the scheduler steps the same
/// few expressions over and over: keep the parsed forms (bounded, per thread).
pub(crate) fn with_parsed_cron<T>(
    expr: &str,
    use_it: impl FnOnce(&croner::Cron) -> Option<T>,
) -> Option<T> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static PARSED: RefCell<HashMap<String, croner::Cron>> = RefCell::new(HashMap::new());
    }
    PARSED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(expr) {
            if cache.len() >= 20_000 {
                cache.clear();
            }
            let parsed = cron_expr::parse(expr).ok()?;
            cache.insert(expr.to_string(), parsed.schedule);
        }
        use_it(cache.get(expr)?)
    })
}

#[cfg(test)]
mod quartz_tests;
#[cfg(test)]
mod tests;
