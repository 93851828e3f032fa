//! Every transition of an instance, as a pure function of the instance: it returns the instance
//! as it should become, or why the transition is refused. No store, no clock (the time is an
//! argument), no randomness. "Terminal states never change" is enforced here: no transition
//! accepts a succeeded, failed or cancelled instance.
//!
//! ```text
//!            assign             start               finish (success)
//!   Queued ─────────▶ Assigned ───────▶ Running ─────────────────────▶ Succeeded
//!     ▲  │                │                 │   finish (failure, retries left: backoff)
//!     │  │                └──── requeue ────┼──────────────▶ Queued
//!     │  │ expire (dispatch timeout)        │   finish (failure, none left)
//!     │  └──────────────────▶ Failed ◀──────┘
//!     └── requeue (worker lost)       cancel: any unfinished state ──▶ Cancelled
//! ```

use std::fmt;

use crate::model::{
    Attempt, AttemptOutcome, Instance, InstanceState, RetryPolicy, StateKind, UnixMs,
};
use crate::reason::QueueReason;
use crate::wire::{EXCERPT_LIMIT, TaskResult};

/// Why a transition did not apply. Each renders to the sentence a worker or an operator is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The instance already ended; terminal states never change.
    Terminal { instance: u64, state: StateKind },
    /// A report or decision for an attempt that is not the current one.
    StaleAttempt {
        instance: u64,
        attempt: u32,
        current: u32,
        state: StateKind,
    },
    /// The attempt is held by another worker.
    WrongWorker {
        instance: u64,
        attempt: u32,
        holder: String,
        worker: String,
    },
    /// No worker holds the attempt (it is queued, or ended).
    NotHeld {
        instance: u64,
        attempt: u32,
        state: StateKind,
    },
    /// Only a queued instance can be placed, expired or given a reason.
    NotQueued { instance: u64, state: StateKind },
    /// A queued instance held back until `until` (a retry's backoff, a fire created ahead).
    NotYet { instance: u64, until: UnixMs },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Terminal { instance, state } => write!(
                f,
                "instance {instance} already ended ({}); terminal states never change",
                state.as_str()
            ),
            Refused::StaleAttempt {
                instance,
                attempt,
                current,
                state,
            } => write!(
                f,
                "stale attempt {attempt}: instance {instance} is at attempt {current} ({})",
                state.as_str()
            ),
            Refused::WrongWorker {
                instance,
                attempt,
                holder,
                worker,
            } => write!(
                f,
                "attempt {attempt} of instance {instance} is held by {holder}, not {worker}"
            ),
            Refused::NotHeld {
                instance,
                attempt,
                state,
            } => write!(
                f,
                "instance {instance} is {}; attempt {attempt} no longer runs",
                state.as_str()
            ),
            Refused::NotQueued { instance, state } => {
                write!(f, "instance {instance} is {}, not queued", state.as_str())
            }
            Refused::NotYet { instance, until } => {
                write!(f, "instance {instance} is held until {until}")
            }
        }
    }
}

type Result<T = Instance> = std::result::Result<T, Refused>;

/// Only the current attempt, on the worker that holds it, may report or be taken back.
pub fn fence(instance: &Instance, worker: &str, attempt: u32) -> Result<()> {
    let current = instance.current_attempt().map_or(0, |a| a.number);
    let state = instance.state.kind();
    match instance.state.worker() {
        _ if attempt != current => Err(Refused::StaleAttempt {
            instance: instance.id,
            attempt,
            current,
            state,
        }),
        Some(holder) if holder == worker => Ok(()),
        Some(holder) => Err(Refused::WrongWorker {
            instance: instance.id,
            attempt,
            holder: holder.to_string(),
            worker: worker.to_string(),
        }),
        None => Err(Refused::NotHeld {
            instance: instance.id,
            attempt,
            state,
        }),
    }
}

/// The queued instance's fields, or why it is not queued.
fn queued(instance: &Instance) -> Result<(Option<UnixMs>, UnixMs)> {
    match &instance.state {
        InstanceState::Queued {
            not_before_ms,
            since_ms,
            ..
        } => Ok((*not_before_ms, *since_ms)),
        state if state.is_terminal() => Err(Refused::Terminal {
            instance: instance.id,
            state: state.kind(),
        }),
        state => Err(Refused::NotQueued {
            instance: instance.id,
            state: state.kind(),
        }),
    }
}

/// Hands a queued instance to `worker` as attempt `attempt`, leased until `lease_until_ms`.
/// The attempt number fences the assignment: it must be the instance's next one.
pub fn assign(
    instance: &Instance,
    worker: &str,
    attempt: u32,
    lease_until_ms: UnixMs,
    at: UnixMs,
) -> Result {
    let (not_before, _) = queued(instance)?;
    if let Some(until) = not_before.filter(|t| *t > at) {
        return Err(Refused::NotYet {
            instance: instance.id,
            until,
        });
    }
    let next = instance.next_attempt_number();
    if attempt != next {
        return Err(Refused::StaleAttempt {
            instance: instance.id,
            attempt,
            current: next - 1,
            state: StateKind::Queued,
        });
    }
    if let Some(pinned) = instance.pinned_worker.as_deref().filter(|p| *p != worker) {
        return Err(Refused::WrongWorker {
            instance: instance.id,
            attempt,
            holder: pinned.to_string(),
            worker: worker.to_string(),
        });
    }
    let mut next = instance.clone();
    next.state = InstanceState::Assigned {
        worker: worker.to_string(),
        lease_until_ms,
    };
    next.updated_ms = at;
    next.attempts.push(Attempt {
        number: attempt,
        worker: worker.to_string(),
        assigned_ms: at,
        started_ms: None,
        ended_ms: None,
        outcome: None,
        http_status: None,
        duration_ms: None,
        error: None,
        excerpt: None,
    });
    Ok(next)
}

/// The worker says attempt `attempt` started at `started_ms`.
pub fn start(
    instance: &Instance,
    worker: &str,
    attempt: u32,
    started_ms: UnixMs,
    at: UnixMs,
) -> Result {
    fence(instance, worker, attempt)?;
    let mut next = instance.clone();
    if let InstanceState::Assigned {
        worker,
        lease_until_ms,
    } = &instance.state
    {
        next.state = InstanceState::Running {
            worker: worker.clone(),
            lease_until_ms: *lease_until_ms,
        };
    }
    if let Some(current) = next.current_attempt_mut() {
        current.started_ms = Some(started_ms);
    }
    next.updated_ms = at;
    Ok(next)
}

/// The worker reports how attempt `result.attempt` ended. A success ends the instance; a failure
/// goes back to the queue after the retry policy's backoff while retries are left (lost workers
/// do not count against them), and fails the instance once they are spent.
pub fn finish(
    instance: &Instance,
    worker: &str,
    result: &TaskResult,
    retry: &RetryPolicy,
    at: UnixMs,
) -> Result {
    fence(instance, worker, result.attempt)?;
    let mut next = instance.clone();
    if let Some(attempt) = next.current_attempt_mut() {
        attempt.started_ms.get_or_insert(result.started_ms);
        attempt.http_status = result.http_status;
        attempt.duration_ms = Some((result.ended_ms - result.started_ms).max(0) as u64);
        attempt.error = result.error.as_deref().map(capped);
        attempt.excerpt = result.excerpt.as_deref().map(capped);
    }
    if result.succeeded {
        next.finish(InstanceState::Succeeded, AttemptOutcome::Succeeded, at);
        return Ok(next);
    }
    let error = result
        .error
        .as_deref()
        .map_or_else(|| "failed".to_string(), capped);
    let number = result.attempt;
    // Close this attempt as failed first, so that it counts.
    if let Some(attempt) = next.current_attempt_mut() {
        attempt.outcome = Some(AttemptOutcome::Failed);
        attempt.ended_ms = Some(at);
    }
    let failed = next.failed_attempts();
    if failed <= retry.count {
        let delay = retry.delay_before(failed + 1);
        let retry_at = at + delay as i64;
        next.finish(
            InstanceState::Queued {
                reason: Some(QueueReason::Retrying {
                    attempt: number,
                    error,
                    retry: failed,
                    retries: retry.count,
                    delay_ms: delay,
                }),
                not_before_ms: Some(retry_at),
                since_ms: retry_at,
            },
            AttemptOutcome::Failed,
            at,
        );
    } else {
        let retries = if retry.count > 0 {
            format!(" (retries exhausted: {failed} attempts)")
        } else {
            String::new()
        };
        next.finish(
            InstanceState::Failed {
                reason: format!("attempt {number} failed: {error}{retries}"),
            },
            AttemptOutcome::Failed,
            at,
        );
    }
    Ok(next)
}

/// `worker` was lost while holding attempt `attempt` (`why`: dead, left, lease expired): the
/// attempt ends as lost and the instance waits for another worker.
pub fn requeue(instance: &Instance, worker: &str, attempt: u32, why: &str, at: UnixMs) -> Result {
    fence(instance, worker, attempt)?;
    let mut next = instance.clone();
    next.finish(
        InstanceState::Queued {
            reason: Some(QueueReason::Requeued {
                worker: worker.to_string(),
                why: why.to_string(),
            }),
            not_before_ms: None,
            since_ms: at,
        },
        AttemptOutcome::Lost,
        at,
    );
    if let Some(attempt) = next.current_attempt_mut() {
        attempt.error = Some(format!("worker {worker} lost ({why})"));
    }
    Ok(next)
}

/// Ends an unfinished instance as cancelled; a worker still running it will have its report
/// refused.
pub fn cancel(instance: &Instance, reason: &str, at: UnixMs) -> Result {
    if instance.state.is_terminal() {
        return Err(Refused::Terminal {
            instance: instance.id,
            state: instance.state.kind(),
        });
    }
    let mut next = instance.clone();
    next.finish(
        InstanceState::Cancelled {
            reason: reason.to_string(),
        },
        AttemptOutcome::Cancelled,
        at,
    );
    Ok(next)
}

/// A queued instance waited past its job's dispatch timeout (`timeout_text`, e.g. "1m"): it fails
/// with why it could not be placed.
pub fn expire(instance: &Instance, reason: &QueueReason, timeout_text: &str, at: UnixMs) -> Result {
    queued(instance)?;
    let mut next = instance.clone();
    next.finish(
        InstanceState::Failed {
            reason: format!("not dispatched within {timeout_text}: {reason}"),
        },
        AttemptOutcome::Failed,
        at,
    );
    Ok(next)
}

/// A queued instance still cannot be placed: records why (and releases any hold, which has
/// passed by the time the dispatcher looks at it).
pub fn wait(instance: &Instance, reason: &QueueReason) -> Result {
    let (_, since_ms) = queued(instance)?;
    let mut next = instance.clone();
    next.state = InstanceState::Queued {
        reason: Some(reason.clone()),
        not_before_ms: None,
        since_ms,
    };
    Ok(next)
}

/// The most text of a worker's report (response excerpt, error) that is stored. Our workers cap
/// excerpts themselves; the server does not rely on it.
pub const MAX_STORED_TEXT: usize = EXCERPT_LIMIT;

/// `text` cut to [`MAX_STORED_TEXT`] bytes at a character boundary, marked when cut.
fn capped(text: &str) -> String {
    if text.len() <= MAX_STORED_TEXT {
        return text.to_string();
    }
    let mut end = MAX_STORED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests;
