//! Every transition, and every refusal: a terminal instance, a stale attempt, a wrong worker.

use super::*;
use crate::model::{StateKind, Trigger};

const AT: UnixMs = 1_000;

fn queued() -> Instance {
    Instance {
        id: 7,
        job_id: 1,
        job_name: "j".into(),
        trigger: Trigger::Manual,
        fire_at_ms: 500,
        run_at_ms: None,
        created_ms: 500,
        updated_ms: 500,
        state: InstanceState::queued(500),
        attempts: Vec::new(),
        pinned_worker: None,
        parent: None,
        children: Vec::new(),
    }
}

fn assigned() -> Instance {
    assign(&queued(), "w1", 1, 20_000, AT).unwrap()
}

fn running() -> Instance {
    start(&assigned(), "w1", 1, AT + 5, AT + 10).unwrap()
}

fn result(attempt: u32, succeeded: bool) -> TaskResult {
    TaskResult {
        instance: 7,
        attempt,
        started_ms: AT + 5,
        ended_ms: AT + 105,
        succeeded,
        http_status: Some(if succeeded { 200 } else { 500 }),
        error: (!succeeded).then(|| "expected status 2xx, got 500".into()),
        excerpt: Some("body".into()),
    }
}

fn terminal_instances() -> Vec<Instance> {
    let retry = RetryPolicy::default();
    vec![
        finish(&running(), "w1", &result(1, true), &retry, AT + 200).unwrap(),
        finish(&running(), "w1", &result(1, false), &retry, AT + 200).unwrap(),
        cancel(&queued(), "cancelled by operator", AT).unwrap(),
    ]
}

#[test]
fn assign_opens_the_next_attempt_on_the_worker() {
    let next = assigned();
    assert_eq!(
        next.state,
        InstanceState::Assigned {
            worker: "w1".into(),
            lease_until_ms: 20_000
        }
    );
    assert_eq!(next.attempts.len(), 1);
    assert_eq!(
        (next.attempts[0].number, next.attempts[0].assigned_ms),
        (1, AT)
    );
    assert_eq!(next.updated_ms, AT);
}

#[test]
fn assign_refuses_a_wrong_attempt_a_held_instance_an_early_one_and_another_workers_copy() {
    assert!(matches!(
        assign(&queued(), "w1", 2, 20_000, AT),
        Err(Refused::StaleAttempt {
            attempt: 2,
            current: 0,
            ..
        })
    ));
    assert!(matches!(
        assign(&assigned(), "w2", 2, 20_000, AT),
        Err(Refused::NotQueued {
            state: StateKind::Assigned,
            ..
        })
    ));
    let mut held = queued();
    held.state = InstanceState::Queued {
        reason: None,
        not_before_ms: Some(AT + 1),
        since_ms: AT + 1,
    };
    assert_eq!(
        assign(&held, "w1", 1, 20_000, AT),
        Err(Refused::NotYet {
            instance: 7,
            until: AT + 1
        })
    );
    assert!(assign(&held, "w1", 1, 20_000, AT + 1).is_ok());
    let mut pinned = queued();
    pinned.pinned_worker = Some("w2".into());
    assert!(matches!(
        assign(&pinned, "w1", 1, 20_000, AT),
        Err(Refused::WrongWorker { .. })
    ));
    assert!(assign(&pinned, "w2", 1, 20_000, AT).is_ok());
}

#[test]
fn start_moves_an_assignment_to_running_and_is_fenced() {
    let next = running();
    assert_eq!(
        next.state,
        InstanceState::Running {
            worker: "w1".into(),
            lease_until_ms: 20_000
        }
    );
    assert_eq!(next.attempts[0].started_ms, Some(AT + 5));
    // Twice is harmless: the instance stays running.
    assert_eq!(
        start(&next, "w1", 1, AT + 5, AT + 20).unwrap().state,
        next.state
    );
    assert_eq!(
        start(&assigned(), "w2", 1, AT, AT).unwrap_err().to_string(),
        "attempt 1 of instance 7 is held by w1, not w2"
    );
    assert_eq!(
        start(&assigned(), "w1", 2, AT, AT).unwrap_err().to_string(),
        "stale attempt 2: instance 7 is at attempt 1 (assigned)"
    );
}

#[test]
fn a_success_ends_the_instance_and_records_the_attempt() {
    let done = finish(
        &running(),
        "w1",
        &result(1, true),
        &RetryPolicy::default(),
        AT + 200,
    )
    .unwrap();
    assert_eq!(done.state, InstanceState::Succeeded);
    let attempt = &done.attempts[0];
    assert_eq!(attempt.outcome, Some(AttemptOutcome::Succeeded));
    assert_eq!(
        (attempt.http_status, attempt.duration_ms, attempt.ended_ms),
        (Some(200), Some(100), Some(AT + 200))
    );
}

#[test]
fn a_failure_retries_after_the_backoff_then_fails_when_retries_are_spent() {
    let retry = RetryPolicy {
        count: 1,
        backoff_ms: 1_000,
    };
    let again = finish(&running(), "w1", &result(1, false), &retry, AT + 200).unwrap();
    assert_eq!(
        again.state,
        InstanceState::Queued {
            reason: Some(QueueReason::Retrying {
                attempt: 1,
                error: "expected status 2xx, got 500".into(),
                retry: 1,
                retries: 1,
                delay_ms: 1_000
            }),
            not_before_ms: Some(AT + 1_200),
            since_ms: AT + 1_200,
        }
    );
    assert_eq!(again.attempts[0].outcome, Some(AttemptOutcome::Failed));
    let second = assign(&again, "w2", 2, 40_000, AT + 1_200).unwrap();
    let failed = finish(&second, "w2", &result(2, false), &retry, AT + 1_300).unwrap();
    assert_eq!(
        failed.state,
        InstanceState::Failed {
            reason:
                "attempt 2 failed: expected status 2xx, got 500 (retries exhausted: 2 attempts)"
                    .into()
        }
    );
}

#[test]
fn a_lost_worker_does_not_count_against_the_retries() {
    let retry = RetryPolicy {
        count: 1,
        backoff_ms: 0,
    };
    let lost = requeue(&running(), "w1", 1, "dead", AT + 50).unwrap();
    assert_eq!(
        lost.state,
        InstanceState::Queued {
            reason: Some(QueueReason::Requeued {
                worker: "w1".into(),
                why: "dead".into()
            }),
            not_before_ms: None,
            since_ms: AT + 50,
        }
    );
    assert_eq!(lost.attempts[0].outcome, Some(AttemptOutcome::Lost));
    assert_eq!(
        lost.attempts[0].error.as_deref(),
        Some("worker w1 lost (dead)")
    );
    let second = assign(&lost, "w2", 2, 40_000, AT + 60).unwrap();
    let retried = finish(&second, "w2", &result(2, false), &retry, AT + 100).unwrap();
    assert!(
        matches!(retried.state, InstanceState::Queued { .. }),
        "{retried:?}"
    );
}

#[test]
fn requeue_is_fenced_like_a_report() {
    assert!(matches!(
        requeue(&running(), "w2", 1, "dead", AT),
        Err(Refused::WrongWorker { .. })
    ));
    assert!(matches!(
        requeue(&running(), "w1", 0, "dead", AT),
        Err(Refused::StaleAttempt { .. })
    ));
    assert!(matches!(
        requeue(&queued(), "w1", 0, "dead", AT),
        Err(Refused::NotHeld { .. })
    ));
}

#[test]
fn cancel_closes_the_open_attempt() {
    let cancelled = cancel(&running(), "cancelled by operator", AT + 30).unwrap();
    assert_eq!(
        cancelled.state,
        InstanceState::Cancelled {
            reason: "cancelled by operator".into()
        }
    );
    assert_eq!(
        cancelled.attempts[0].outcome,
        Some(AttemptOutcome::Cancelled)
    );
    // A report of the cancelled attempt is refused.
    assert_eq!(
        finish(
            &cancelled,
            "w1",
            &result(1, true),
            &RetryPolicy::default(),
            AT + 40
        )
        .unwrap_err()
        .to_string(),
        "instance 7 is cancelled; attempt 1 no longer runs"
    );
}

#[test]
fn expire_fails_a_queued_instance_with_why_it_could_not_be_placed() {
    let reason = QueueReason::Other {
        text: "no live worker in the cluster".into(),
    };
    let failed = expire(&queued(), &reason, "1m", AT).unwrap();
    assert_eq!(
        failed.state,
        InstanceState::Failed {
            reason: "not dispatched within 1m: no live worker in the cluster".into()
        }
    );
    assert!(matches!(
        expire(&assigned(), &reason, "1m", AT),
        Err(Refused::NotQueued { .. })
    ));
}

#[test]
fn wait_records_the_reason_and_keeps_when_the_wait_began() {
    let reason = QueueReason::OwnerAtCapacity { worker: "w".into() };
    let waiting = wait(&queued(), &reason).unwrap();
    assert_eq!(
        waiting.state,
        InstanceState::Queued {
            reason: Some(reason.clone()),
            not_before_ms: None,
            since_ms: 500
        }
    );
    assert!(matches!(
        wait(&running(), &reason),
        Err(Refused::NotQueued { .. })
    ));
}

#[test]
fn no_transition_moves_a_terminal_instance() {
    let reason = QueueReason::Other { text: "x".into() };
    let retry = RetryPolicy::default();
    for instance in terminal_instances() {
        let attempt = instance.current_attempt().map_or(0, |a| a.number);
        let tries = [
            assign(&instance, "w1", attempt + 1, 1, AT),
            start(&instance, "w1", attempt, AT, AT),
            finish(&instance, "w1", &result(attempt, true), &retry, AT),
            requeue(&instance, "w1", attempt, "dead", AT),
            cancel(&instance, "again", AT),
            expire(&instance, &reason, "1m", AT),
            wait(&instance, &reason),
        ];
        for (n, outcome) in tries.into_iter().enumerate() {
            assert!(
                outcome.is_err(),
                "transition {n} moved a {} instance",
                instance.state.kind().as_str()
            );
        }
        assert!(matches!(
            cancel(&instance, "again", AT),
            Err(Refused::Terminal { .. })
        ));
    }
}

#[test]
fn stored_text_is_capped_at_a_character_boundary() {
    let mut long = result(1, false);
    long.error = Some("é".repeat(MAX_STORED_TEXT));
    let failed = finish(&running(), "w1", &long, &RetryPolicy::default(), AT).unwrap();
    let error = failed.attempts[0].error.clone().unwrap();
    assert!(error.len() <= MAX_STORED_TEXT + '…'.len_utf8());
    assert!(error.ends_with('…'));
}
