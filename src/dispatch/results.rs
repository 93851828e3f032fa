//! Applying workers' reports: `Started` moves an assignment to running; `Finished` ends the
//! attempt and then the instance (succeeded, failed, or back to the queue for a retry with
//! backoff). Every event is fenced: it applies only to the instance's current attempt, on the
//! worker it was assigned to, in a non-terminal state. Anything else is refused and logged.

use std::collections::BTreeSet;

use crate::api::types::{Refusal, ReportAck, TaskEvent, TaskResult};
use crate::model::{AttemptOutcome, Instance, InstanceState, JobId, UnixMs, human_ms};
use crate::schedule::scheduler::instance_ended;
use crate::store::{Store, StoreError, WriteTx};

pub struct Applied {
    pub ack: ReportAck,
    /// A worker slot was freed (the dispatcher may place more work).
    pub freed: bool,
    /// An instance reached a terminal state.
    pub ended: bool,
}

pub fn apply(
    store: &Store,
    worker: &str,
    events: &[TaskEvent],
    now: UnixMs,
) -> Result<Applied, StoreError> {
    let applied = store.write(|tx| {
        let mut out = Applied {
            ack: ReportAck::default(),
            freed: false,
            ended: false,
        };
        let mut ended_jobs = BTreeSet::new();
        for event in events {
            match apply_one(tx, worker, event, now)? {
                Ok(effect) => {
                    out.ack.applied += 1;
                    out.freed |= effect.freed;
                    if let Some(job_id) = effect.ended {
                        out.ended = true;
                        ended_jobs.insert(job_id);
                    }
                }
                Err(reason) => {
                    let (instance, attempt) = event.key();
                    out.ack.refused.push(Refusal {
                        instance,
                        attempt,
                        reason,
                    });
                }
            }
        }
        // Once per job, after all of its instances in this report moved.
        for job_id in ended_jobs {
            instance_ended(tx, job_id, now)?;
        }
        Ok::<_, StoreError>(out)
    })?;
    for refusal in &applied.ack.refused {
        tracing::warn!(worker, instance = refusal.instance, attempt = refusal.attempt,
            reason = %refusal.reason, "report refused");
    }
    Ok(applied)
}

#[derive(Default)]
struct Effect {
    freed: bool,
    /// The instance reached a terminal state: its job.
    ended: Option<JobId>,
}

fn apply_one(
    tx: &mut WriteTx,
    worker: &str,
    event: &TaskEvent,
    now: UnixMs,
) -> Result<Result<Effect, String>, StoreError> {
    let (id, attempt) = event.key();
    let Some(mut instance) = tx.instance(id)? else {
        return Ok(Err(format!("instance {id} does not exist")));
    };
    if let Err(reason) = fence(&instance, worker, attempt) {
        return Ok(Err(reason));
    }
    let previous = instance.state.clone();
    let effect = match event {
        TaskEvent::Started { at_ms, .. } => {
            if let InstanceState::Assigned {
                worker,
                lease_until_ms,
            } = &instance.state
            {
                instance.state = InstanceState::Running {
                    worker: worker.clone(),
                    lease_until_ms: *lease_until_ms,
                };
            }
            if let Some(current) = instance.current_attempt_mut() {
                current.started_ms = Some(*at_ms);
            }
            instance.updated_ms = now;
            Effect::default()
        }
        TaskEvent::Finished(result) => {
            finish_attempt(tx, &mut instance, result, now)?;
            Effect {
                freed: true,
                ended: instance.state.is_terminal().then_some(instance.job_id),
            }
        }
    };
    tx.replace_instance(Some(&previous), &instance)?;
    Ok(Ok(effect))
}

/// Only the current attempt, on the worker that holds it, may report.
fn fence(instance: &Instance, worker: &str, attempt: u32) -> Result<(), String> {
    let current = instance.current_attempt().map_or(0, |a| a.number);
    match instance.state.worker() {
        _ if attempt != current => Err(format!(
            "stale attempt {attempt}: instance {} is at attempt {current} ({})",
            instance.id,
            instance.state.kind().as_str()
        )),
        Some(holder) if holder == worker => Ok(()),
        Some(holder) => Err(format!(
            "attempt {attempt} of instance {} is held by {holder}, not {worker}",
            instance.id
        )),
        None => Err(format!(
            "instance {} is {}; attempt {attempt} no longer runs",
            instance.id,
            instance.state.kind().as_str()
        )),
    }
}

fn finish_attempt(
    tx: &mut WriteTx,
    instance: &mut Instance,
    result: &TaskResult,
    now: UnixMs,
) -> Result<(), StoreError> {
    if let Some(attempt) = instance.current_attempt_mut() {
        attempt.started_ms.get_or_insert(result.started_ms);
        attempt.http_status = result.http_status;
        attempt.duration_ms = Some((result.ended_ms - result.started_ms).max(0) as u64);
        attempt.error = result.error.as_deref().map(capped);
        attempt.excerpt = result.excerpt.as_deref().map(capped);
    }
    if result.succeeded {
        instance.finish(InstanceState::Succeeded, AttemptOutcome::Succeeded, now);
        return Ok(());
    }
    let error = result
        .error
        .as_deref()
        .map_or_else(|| "failed".to_string(), capped);
    let number = instance.current_attempt().map_or(0, |a| a.number);
    // Close this attempt as failed first, so it counts.
    if let Some(attempt) = instance.current_attempt_mut() {
        attempt.outcome = Some(AttemptOutcome::Failed);
        attempt.ended_ms = Some(now);
    }
    let failed = instance.failed_attempts();
    let policy = tx
        .job(instance.job_id)?
        .map(|job| job.def.retry)
        .unwrap_or_default();
    if failed <= policy.count {
        let delay = policy.delay_before(failed + 1);
        instance.finish(
            InstanceState::Queued {
                reason: Some(format!(
                    "attempt {number} failed: {error}; retry {failed} of {} in {}",
                    policy.count,
                    human_ms(delay)
                )),
                not_before_ms: Some(now + delay as i64),
                since_ms: now + delay as i64,
            },
            AttemptOutcome::Failed,
            now,
        );
    } else {
        let retries = if policy.count > 0 {
            format!(" (retries exhausted: {} attempts)", failed)
        } else {
            String::new()
        };
        instance.finish(
            InstanceState::Failed {
                reason: format!("attempt {number} failed: {error}{retries}"),
            },
            AttemptOutcome::Failed,
            now,
        );
    }
    Ok(())
}

/// The most text of a worker's report (response excerpt, error) that is stored. Our workers cap
/// excerpts themselves; the server does not rely on it.
pub const MAX_STORED_TEXT: usize = crate::worker::executor::EXCERPT_LIMIT;

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
