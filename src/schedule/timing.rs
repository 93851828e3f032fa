//! Pure functions over a job's fires beyond "what comes next": the jitter of a fire, when a fire
//! runs, the next few fires (`shoal job next`), the fires of a past range (`shoal job backfill`)
//! and a schedule in words. No clock and no randomness here: the same job and times always give
//! the same answer, on every node and after every restart.

use super::{cron_after, step, with_parsed_cron};
use crate::model::{Job, JobDefinition, JobId, Schedule, UnixMs, human_ms};
use crate::spec::FieldError;

/// Most fires `shoal job next` lists.
pub const MAX_UPCOMING: usize = 100;
/// Most fires one backfill creates: more would flood the queue; split the range instead.
pub const MAX_BACKFILL: usize = 1000;

/// The jitter of the fire of job `job_id` scheduled at `scheduled`: a delay in `0..=bound_ms`.
///
/// A hash of the job and the scheduled time, not a random draw: a fire keeps its jitter across
/// restarts and whichever node computes it, and a replicated state machine applying the same
/// command gets the same value. Spread evenly enough that many jobs firing at the same second
/// are spread over the bound.
pub fn jitter_of(job_id: JobId, bound_ms: u64, scheduled: UnixMs) -> u64 {
    if bound_ms == 0 {
        return 0;
    }
    mix(mix(job_id) ^ scheduled as u64) % (bound_ms + 1)
}

/// SplitMix64's finalizer: a fixed, well-known bijection that scatters neighbouring inputs (job
/// ids 1, 2, 3; fire times a second apart) over the whole range. Written out rather than taken
/// from a hasher because its output must never change between Rust or crate versions.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// When the fire scheduled at `scheduled` runs: that time plus its jitter, but never past the
/// job's `end_at` (a window bounds when fires run, not only when they are scheduled).
pub fn run_at(job_id: JobId, def: &JobDefinition, scheduled: UnixMs) -> UnixMs {
    let jittered =
        scheduled.saturating_add(jitter_of(job_id, def.timing.jitter_ms, scheduled) as i64);
    match def.timing.end_at_ms {
        Some(end) => jittered.min(end.max(scheduled)),
        None => jittered,
    }
}

/// One fire to come: its scheduled time and when it runs (later by its jitter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpcomingFire {
    pub scheduled_ms: UnixMs,
    pub run_at_ms: UnixMs,
}

/// Up to `count` fires of `job` from its next fire on, oldest first. A fixed-delay job lists only
/// its next fire (the ones after depend on when each run ends); a paused, ended or on-demand job
/// none.
pub fn upcoming(job: &Job, count: usize) -> Vec<UpcomingFire> {
    let mut fires = Vec::new();
    let mut fire = job.next_fire_ms;
    while let Some(scheduled) = fire.filter(|_| fires.len() < count.min(MAX_UPCOMING)) {
        fires.push(UpcomingFire {
            scheduled_ms: scheduled,
            run_at_ms: run_at(job.id, &job.def, scheduled),
        });
        fire = step(&job.def, scheduled);
    }
    fires
}

/// When `job` ended, if its window has closed: it has no next fire and none will come (a
/// fixed-delay job between runs has no next fire either, but is still going until its end).
pub fn ended_at(job: &Job, now: UnixMs) -> Option<UnixMs> {
    let end = job.def.timing.end_at_ms?;
    let waiting_for_a_run = matches!(job.def.schedule, Schedule::FixedDelay { .. }) && end > now;
    (job.next_fire_ms.is_none() && !job.def.paused && !waiting_for_a_run).then_some(end)
}

/// The scheduled times of `job` in `[from, to)` that lie inside its window, oldest first, for a
/// backfill. A cron job follows its expression; a fixed-rate job the grid of its next fire (or of
/// its `start_at`, or `from` when it has neither). Other kinds have no times to backfill. More
/// than [`MAX_BACKFILL`] times are refused, naming the bound, so that nothing is half done.
pub fn backfill_fires(job: &Job, from: UnixMs, to: UnixMs) -> Result<Vec<UnixMs>, FieldError> {
    let refuse = |field: &str, reason: String| FieldError {
        field: field.to_string(),
        reason,
    };
    if from >= to {
        return Err(refuse("to", "must be after from".into()));
    }
    let timing = job.def.timing;
    let from = timing.start_at_ms.map_or(from, |start| from.max(start));
    let to = timing.end_at_ms.map_or(to, |end| to.min(end + 1));
    let too_many = |count: String| {
        refuse(
            "to",
            format!(
                "{count} fires between from and to; one backfill creates at most {MAX_BACKFILL}: \
                 split the range"
            ),
        )
    };
    let mut fires = Vec::new();
    match &job.def.schedule {
        Schedule::Cron { .. } => {
            let mut fire = cron_after(&job.def, from - 1);
            while let Some(at) = fire.filter(|at| *at < to) {
                if fires.len() == MAX_BACKFILL {
                    return Err(too_many(format!("more than {MAX_BACKFILL}")));
                }
                fires.push(at);
                fire = cron_after(&job.def, at);
            }
        }
        Schedule::FixedRate { every_ms } => {
            let every = *every_ms as i64;
            let anchor = job.next_fire_ms.or(timing.start_at_ms).unwrap_or(from);
            // The first grid time at or after `from`.
            let first = anchor + (from - anchor + every - 1).div_euclid(every) * every;
            let count = if first < to {
                (to - 1 - first) / every + 1
            } else {
                0
            };
            if count as usize > MAX_BACKFILL {
                return Err(too_many(count.to_string()));
            }
            fires.extend((0..count).map(|k| first + k * every));
        }
        other => {
            return Err(refuse(
                "schedule",
                format!(
                    "backfill needs a cron or every schedule; this job's is {}",
                    other.describe(&job.def.timezone)
                ),
            ));
        }
    }
    Ok(fires)
}

/// The schedule in words, e.g. "at 12:00 on Monday to Friday (Europe/Berlin)" or "every 30s".
pub fn describe(def: &JobDefinition) -> String {
    match &def.schedule {
        Schedule::Cron { expr } => {
            let words = with_parsed_cron(expr, |cron| Some(in_a_sentence(&cron.describe())))
                .unwrap_or_else(|| format!("cron {expr}"));
            format!("{words} ({})", def.timezone)
        }
        Schedule::FixedRate { every_ms } => format!("every {}", human_ms(*every_ms)),
        other => other.describe(&def.timezone),
    }
}

/// croner's English ("At every 30 seconds.") as a part of a sentence: "every 30 seconds".
fn in_a_sentence(words: &str) -> String {
    let words = words.trim_end_matches('.');
    let words = words
        .strip_prefix("At every ")
        .map_or(words.to_string(), |rest| format!("every {rest}"));
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => words,
    }
}

#[cfg(test)]
#[path = "timing_tests.rs"]
mod tests;
