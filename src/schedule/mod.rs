//! When jobs fire: next-fire computation for every schedule kind (cron in a named timezone, fixed
//! rate, fixed delay, one-shot, on demand), the misfire policy after downtime, and the
//! look-ahead of firing. Pure functions of a job's definition and the time; the server's scheduler
//! loop (`server::scheduler`) and state machine use them, and so does validation.

pub mod cron_expr;

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

/// The first fire of a newly created (or resumed) job, strictly after `now`.
pub fn initial_fire(def: &JobDefinition, now: UnixMs) -> Option<UnixMs> {
    match &def.schedule {
        Schedule::Cron { .. } => cron_after(def, now),
        Schedule::FixedRate { every_ms } => Some(now + *every_ms as i64),
        Schedule::FixedDelay { delay_ms } => Some(now + *delay_ms as i64),
        Schedule::Once { at_ms } => Some(*at_ms),
        Schedule::OnDemand => None,
    }
}

/// The scheduled time that follows `fire` (for fixed delay there is none until the run ends).
fn step(def: &JobDefinition, fire: UnixMs) -> Option<UnixMs> {
    match &def.schedule {
        Schedule::Cron { .. } => cron_after(def, fire),
        Schedule::FixedRate { every_ms } => Some(fire + *every_ms as i64),
        Schedule::FixedDelay { .. } | Schedule::Once { .. } | Schedule::OnDemand => None,
    }
}

/// The first scheduled time strictly after `after`, following the grid that started at `anchor`.
fn next_on_grid(def: &JobDefinition, anchor: UnixMs, after: UnixMs) -> Option<UnixMs> {
    match &def.schedule {
        Schedule::Cron { .. } => cron_after(def, after),
        Schedule::FixedRate { every_ms } => {
            let every = *every_ms as i64;
            let steps = (after - anchor).div_euclid(every) + 1;
            Some(anchor + steps * every)
        }
        _ => step(def, anchor).filter(|t| *t > after),
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
        schedule.after(&start).next().map(|t| t.timestamp_millis())
    })
}

/// Parsing a cron expression costs far more than stepping it, and the scheduler steps the same
/// few expressions over and over: keep the parsed forms (bounded, per thread).
fn with_parsed_cron<T>(expr: &str, use_it: impl FnOnce(&cron::Schedule) -> Option<T>) -> Option<T> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static PARSED: RefCell<HashMap<String, cron::Schedule>> = RefCell::new(HashMap::new());
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
mod tests;
