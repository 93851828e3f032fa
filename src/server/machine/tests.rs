//! The state machine as a whole: determinism (the same commands in the same order give the same
//! store, table by table), refusals that write nothing, and the effects each command reports.

use std::sync::Arc;

use super::*;
use crate::server::command::{Command, DispatchStep};
use crate::server::engine::{Engine, LocalEngine, read_recording};
use crate::server::store::Store;
use crate::spec::JobSpec;
use crate::test_support;
use crate::wire::TaskResult;

fn engine() -> (tempfile::TempDir, LocalEngine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    (dir, LocalEngine::new(store))
}

fn every_second(name: &str) -> JobDefinition {
    JobSpec {
        every: Some("1s".into()),
        max_concurrent: Some(100),
        retry: Some(crate::spec::RetrySpec {
            count: 1,
            backoff: Some("1s".into()),
        }),
        ..test_support::spec(name)
    }
    .validate()
    .unwrap()
}

fn finished(instance: u64, attempt: u32, succeeded: bool, at: UnixMs) -> TaskEvent {
    TaskEvent::Finished(TaskResult {
        instance,
        attempt,
        started_ms: at - 10,
        ended_ms: at,
        succeeded,
        http_status: Some(if succeeded { 200 } else { 500 }),
        error: (!succeeded).then(|| "expected status 2xx, got 500".into()),
        excerpt: None,
    })
}

/// A run touching every kind of command, with refusals and stale steps among them.
fn script() -> Vec<Command> {
    let t = 1_000_000;
    vec![
        Command::CreateJob {
            def: every_second("tick"),
            at: t,
        },
        Command::CreateJob {
            def: test_support::on_demand("hand"),
            at: t,
        },
        // Refused: the name is taken.
        Command::CreateJob {
            def: test_support::on_demand("hand"),
            at: t,
        },
        Command::Fire {
            now: t + 1_000,
            after: None,
            limit: 512,
        },
        Command::RunNow {
            job: "hand".into(),
            at: t + 1_100,
        },
        Command::Backfill {
            job: "tick".into(),
            from: t - 5_000,
            to: t,
            at: t + 1_150,
        },
        Command::Dispatch {
            at: t + 2_000,
            steps: vec![
                DispatchStep::Assign {
                    instance: 1,
                    attempt: 1,
                    worker: "w1".into(),
                    lease_until_ms: t + 30_000,
                },
                DispatchStep::Assign {
                    instance: 3,
                    attempt: 1,
                    worker: "w2".into(),
                    lease_until_ms: t + 30_000,
                },
                // Stale: instance 1 is assigned by then.
                DispatchStep::Assign {
                    instance: 1,
                    attempt: 1,
                    worker: "w2".into(),
                    lease_until_ms: t + 30_000,
                },
                DispatchStep::Wait {
                    instance: 2,
                    reason: crate::reason::QueueReason::OwnerAtCapacity {
                        worker: "w1".into(),
                    },
                },
            ],
        },
        Command::Report {
            worker: "w1".into(),
            at: t + 2_100,
            events: vec![
                TaskEvent::Started {
                    instance: 1,
                    attempt: 1,
                    at_ms: t + 2_050,
                },
                finished(1, 1, false, t + 2_100),
                // Refused: w1 does not hold instance 3.
                finished(3, 1, true, t + 2_100),
            ],
        },
        Command::Report {
            worker: "w2".into(),
            at: t + 2_200,
            events: vec![finished(3, 1, true, t + 2_200)],
        },
        Command::Dispatch {
            at: t + 3_200,
            steps: vec![DispatchStep::Assign {
                instance: 1,
                attempt: 2,
                worker: "w2".into(),
                lease_until_ms: t + 40_000,
            }],
        },
        Command::Dispatch {
            at: t + 60_000,
            steps: vec![DispatchStep::Requeue {
                instance: 1,
                attempt: 2,
                worker: "w2".into(),
                why: "lease expired with no report".into(),
            }],
        },
        Command::Cancel {
            instance: 1,
            at: t + 60_100,
        },
        Command::Retry {
            instance: 1,
            at: t + 60_200,
        },
        Command::SetPaused {
            job: "tick".into(),
            paused: true,
            at: t + 60_300,
        },
        Command::UpdateJob {
            job: "hand".into(),
            def: JobSpec {
                max_concurrent: Some(3),
                ..test_support::spec("hand")
            }
            .validate()
            .unwrap_or_else(|_| test_support::on_demand("hand")),
            at: t + 60_400,
        },
        Command::Forget {
            instances: vec![(2, 3), (1, 2)],
        },
        Command::DeleteJob {
            job: "hand".into(),
            at: t + 60_500,
        },
        // The clock went back an hour: tick's next fire comes back with it.
        Command::Reschedule {
            at: t + 60_600 - 3_600_000,
        },
        // Alerts and chains: a failure raises an alert into the outbox and queues the chained
        // job, in the same command; a refused delivery is pending again.
        Command::PutChannel {
            def: channel("ops"),
        },
        Command::PutChannel {
            def: channel("spare"),
        },
        Command::DeleteChannel {
            name: "spare".into(),
        },
        Command::CreateJob {
            def: test_support::on_demand("load"),
            at: t + 61_000,
        },
        Command::CreateJob {
            def: JobSpec {
                on_demand: true,
                on_complete: vec!["load".into()],
                alerts: Some(crate::alert::spec::AlertSpec {
                    channels: vec!["ops".into()],
                    ..Default::default()
                }),
                ..test_support::spec("extract")
            }
            .validate()
            .unwrap(),
            at: t + 61_000,
        },
        Command::RunNow {
            job: "extract".into(),
            at: t + 61_100,
        },
        Command::Dispatch {
            at: t + 61_200,
            steps: vec![DispatchStep::Assign {
                instance: EXTRACT,
                attempt: 1,
                worker: "w1".into(),
                lease_until_ms: t + 90_000,
            }],
        },
        Command::Report {
            worker: "w1".into(),
            at: t + 61_300,
            events: vec![finished(EXTRACT, 1, false, t + 61_300)],
        },
        Command::AlertDelivered {
            alert: 1,
            at: t + 61_400,
            delivery: crate::alert::Delivery::Refused {
                answer: "HTTP 503: busy".into(),
            },
        },
    ]
}

/// The instance id the script's `extract` run gets (the script is deterministic).
const EXTRACT: u64 = 10;

fn channel(name: &str) -> crate::alert::ChannelDefinition {
    crate::alert::spec::ChannelSpec {
        name: name.into(),
        kind: "webhook".into(),
        url: Some("http://127.0.0.1:9/hook".into()),
        hmac_key: Some("0123456789abcdef".into()),
        ..Default::default()
    }
    .validate()
    .unwrap()
}

fn export(engine: &LocalEngine) -> Vec<(&'static str, crate::server::store::TableExport)> {
    engine.store().read().unwrap().export().unwrap()
}

#[test]
fn the_same_commands_in_the_same_order_give_identical_stores() {
    let (_a, first) = engine();
    let (_b, second) = engine();
    let mut outcomes = Vec::new();
    for command in script() {
        let one = first.propose(command.clone());
        let two = second.propose(command);
        assert_eq!(format!("{one:?}"), format!("{two:?}"));
        outcomes.push(one);
    }
    let (one, two) = (export(&first), export(&second));
    for ((name, rows), (_, other)) in one.iter().zip(&two) {
        assert_eq!(rows, other, "table {name} differs");
    }
    // The script did what it says: a refusal, and real changes in every table.
    assert!(matches!(outcomes[2], Err(ApplyError::Conflict(_))));
    // The failure raised its alert (pending again after a refused try) and queued its chain.
    let read = first.store().read().unwrap();
    let alert = read.alert(1).unwrap().unwrap();
    assert_eq!(
        (alert.event, alert.tries),
        (crate::alert::AlertEvent::Failure, 1)
    );
    assert!(matches!(
        alert.status,
        crate::alert::AlertStatus::Pending { .. }
    ));
    let extract = read.instance(EXTRACT).unwrap().unwrap();
    let child = read.instance(extract.children[0]).unwrap().unwrap();
    assert_eq!(
        (child.job_name.as_str(), child.parent),
        ("load", Some(EXTRACT))
    );
    assert!(
        one.iter()
            // (`raft_applied` is the replicated engine's log position: none here.)
            .all(|(name, rows)| !rows.is_empty() || *name == "due" || *name == "raft_applied")
    );
}

#[test]
fn a_recording_replays_into_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let (_a, recorded) = engine();
    let path = dir.path().join("commands");
    recorded.record_commands(&path).unwrap();
    for command in script() {
        let _ = recorded.propose(command);
    }
    let replayed_commands = read_recording(&path).unwrap();
    // Refused commands wrote nothing and were never recorded.
    assert_eq!(replayed_commands.len(), script().len() - 1);
    let (_b, replayed) = engine();
    for command in replayed_commands {
        replayed.propose(command).unwrap();
    }
    assert_eq!(export(&recorded), export(&replayed));
}

#[test]
fn a_refused_command_writes_nothing() {
    let (_dir, engine) = engine();
    engine
        .propose(Command::CreateJob {
            def: test_support::on_demand("only"),
            at: 5,
        })
        .unwrap();
    let before = export(&engine);
    let refusals = [
        Command::CreateJob {
            def: test_support::on_demand("only"),
            at: 6,
        },
        Command::RunNow {
            job: "missing".into(),
            at: 6,
        },
        Command::Cancel {
            instance: 99,
            at: 6,
        },
        Command::Retry {
            instance: 99,
            at: 6,
        },
    ];
    for command in refusals {
        assert!(engine.propose(command).is_err());
    }
    assert_eq!(export(&engine), before);
}

#[test]
fn effects_say_what_moved() {
    let (_dir, engine) = engine();
    let store = engine.store().clone();
    let apply_one = |command: &Command| {
        store
            .write(|tx| apply(tx, command))
            .unwrap_or_else(|error| panic!("{command:?}: {error}"))
            .effects
    };
    let created = apply_one(&Command::CreateJob {
        def: test_support::on_demand("j"),
        at: 5,
    });
    assert!(created.timing_changed && !created.queued && created.written.is_empty());
    let run = apply_one(&Command::RunNow {
        job: "j".into(),
        at: 6,
    });
    assert!(run.queued && !run.timing_changed);
    assert_eq!(run.written.len(), 1);
    let assigned = apply_one(&Command::Dispatch {
        at: 7,
        steps: vec![DispatchStep::Assign {
            instance: 1,
            attempt: 1,
            worker: "w".into(),
            lease_until_ms: 100,
        }],
    });
    assert!(!assigned.queued && !assigned.freed && !assigned.ended);
    let reported = apply_one(&Command::Report {
        worker: "w".into(),
        at: 8,
        events: vec![finished(1, 1, true, 8)],
    });
    assert!(reported.freed && reported.ended && !reported.queued);
    assert_eq!(reported.written[0].state, InstanceState::Succeeded);
}

/// A job firing every second from `first`, at most one at a time, with `overlap`.
fn overlapping(engine: &LocalEngine, overlap: &str, first: UnixMs) -> Job {
    let def = JobSpec {
        every: Some("1s".into()),
        overlap: Some(overlap.into()),
        ..test_support::spec("busy")
    }
    .validate()
    .unwrap();
    let job = test_support::store_job(engine.store(), def, Some(first));
    // The first fire, assigned and running on w1.
    engine
        .propose(Command::Fire {
            now: first,
            after: None,
            limit: 512,
        })
        .unwrap();
    engine
        .propose(Command::Dispatch {
            at: first,
            steps: vec![DispatchStep::Assign {
                instance: 1,
                attempt: 1,
                worker: "w1".into(),
                lease_until_ms: first + 60_000,
            }],
        })
        .unwrap();
    job
}

/// The job's instances by state name, oldest first.
fn states(engine: &LocalEngine, job: &Job) -> Vec<&'static str> {
    let mut instances = engine
        .store()
        .read()
        .unwrap()
        .instances(&crate::server::store::InstanceFilter {
            job_id: Some(job.id),
            ..Default::default()
        })
        .unwrap();
    instances.reverse();
    instances.iter().map(|i| i.state.kind().as_str()).collect()
}

/// Fires the job at each second after `first` (the look-ahead is covered by firing at the
/// fire time itself).
fn fire_seconds(engine: &LocalEngine, first: UnixMs, seconds: i64) {
    for n in 1..=seconds {
        engine
            .propose(Command::Fire {
                now: first + n * 1_000,
                after: None,
                limit: 512,
            })
            .unwrap();
    }
}

#[test]
fn overlap_skip_drops_fires_while_the_job_is_full() {
    let (_dir, engine) = engine();
    let t = 10_000_000;
    let job = overlapping(&engine, "skip", t);
    fire_seconds(&engine, t, 3);
    assert_eq!(states(&engine, &job), ["assigned"]);
}

#[test]
fn overlap_buffer_one_keeps_one_fire_waiting_and_drops_the_rest() {
    let (_dir, engine) = engine();
    let t = 10_000_000;
    let job = overlapping(&engine, "buffer-one", t);
    fire_seconds(&engine, t, 3);
    assert_eq!(states(&engine, &job), ["assigned", "queued"]);
}

#[test]
fn overlap_buffer_all_keeps_every_fire_waiting_in_order() {
    let (_dir, engine) = engine();
    let t = 10_000_000;
    let job = overlapping(&engine, "buffer-all", t);
    fire_seconds(&engine, t, 3);
    assert_eq!(
        states(&engine, &job),
        ["assigned", "queued", "queued", "queued"]
    );
}

#[test]
fn overlap_cancel_running_cancels_the_old_run_for_the_new_fire() {
    let (_dir, engine) = engine();
    let t = 10_000_000;
    let job = overlapping(&engine, "cancel-running", t);
    fire_seconds(&engine, t, 1);
    assert_eq!(states(&engine, &job), ["cancelled", "queued"]);
    let old = engine.store().read().unwrap().instance(1).unwrap().unwrap();
    assert_eq!(
        old.state,
        InstanceState::Cancelled {
            reason: "cancelled to make room for a newer fire (overlap = cancel-running)".into()
        }
    );
    // The worker's late report of the cancelled run is refused.
    let Response::Reported(ack) = engine
        .propose(Command::Report {
            worker: "w1".into(),
            at: t + 1_500,
            events: vec![finished(1, 1, true, t + 1_500)],
        })
        .unwrap()
    else {
        panic!("not a report answer")
    };
    assert_eq!((ack.applied, ack.refused.len()), (0, 1));
}

#[test]
fn a_job_pauses_itself_after_its_failures_in_a_row_and_a_success_resets_the_count() {
    let (_dir, engine) = engine();
    let def = JobSpec {
        every: Some("1h".into()),
        max_concurrent: Some(10),
        pause_after_failures: Some(2),
        ..test_support::spec("flaky")
    }
    .validate()
    .unwrap();
    let job = test_support::store_job(engine.store(), def, Some(99_000_000));
    let mut instance = 0;
    let mut run = |succeeded: bool, at: UnixMs| {
        let Response::Instance(queued) = engine
            .propose(Command::RunNow {
                job: "flaky".into(),
                at,
            })
            .unwrap()
        else {
            panic!("not an instance")
        };
        instance = queued.id;
        engine
            .propose(Command::Dispatch {
                at,
                steps: vec![DispatchStep::Assign {
                    instance,
                    attempt: 1,
                    worker: "w".into(),
                    lease_until_ms: at + 60_000,
                }],
            })
            .unwrap();
        engine
            .propose(Command::Report {
                worker: "w".into(),
                at: at + 10,
                events: vec![finished(instance, 1, succeeded, at + 10)],
            })
            .unwrap();
        engine.store().read().unwrap().job(job.id).unwrap().unwrap()
    };
    assert_eq!(run(false, 1_000).health.consecutive_failures, 1);
    assert_eq!(run(true, 2_000).health.consecutive_failures, 0);
    assert!(!run(false, 3_000).def.paused);
    let paused = run(false, 4_000);
    assert!(paused.def.paused);
    assert_eq!(paused.next_fire_ms, None);
    let why = paused.health.paused_by.clone().unwrap();
    assert!(
        why.starts_with("paused itself after 2 failed instances in a row"),
        "{why}"
    );
    assert!(why.contains("shoal job resume flaky"), "{why}");
    let Response::Job(resumed) = engine
        .propose(Command::SetPaused {
            job: "flaky".into(),
            paused: false,
            at: 5_000,
        })
        .unwrap()
    else {
        panic!("not a job")
    };
    assert!(!resumed.def.paused && resumed.health.is_clear());
}

#[test]
fn reschedule_brings_back_only_next_fires_a_backward_step_left_far_ahead() {
    let (_dir, engine) = engine();
    let t = 10_000_000;
    for name in ["tick", "later"] {
        let mut def = every_second(name);
        if name == "later" {
            // A window that opens in an hour: its far first fire is right.
            def.timing.start_at_ms = Some(t + 3_600_000);
        }
        engine.propose(Command::CreateJob { def, at: t }).unwrap();
    }
    // Nothing is implausible at the time the jobs were made.
    let unchanged = engine.propose(Command::Reschedule { at: t }).unwrap();
    assert_eq!(unchanged, Response::Rescheduled(Vec::new()));
    // An hour earlier (the clock stepped back): tick's fire at t + 1 s is an hour off.
    let back = t - 3_600_000;
    let Response::Rescheduled(moved) = engine.propose(Command::Reschedule { at: back }).unwrap()
    else {
        panic!("a reschedule answers with what it moved");
    };
    assert_eq!(
        moved,
        vec![("tick".to_string(), t + 1_000, Some(back + 1_000))]
    );
    let read = engine.store().read().unwrap();
    let tick = read.job(1).unwrap().unwrap();
    assert_eq!(tick.next_fire_ms, Some(back + 1_000));
    assert_eq!(read.earliest_due_after(back).unwrap(), Some(back + 1_000));
}

fn chained(name: &str, on_success: &[&str]) -> JobDefinition {
    JobSpec {
        on_demand: true,
        on_success: on_success.iter().map(|s| s.to_string()).collect(),
        ..test_support::spec(name)
    }
    .validate()
    .unwrap()
}

#[test]
fn chains_refuse_unknown_jobs_and_cycles_naming_the_field_and_the_cycle() {
    let (_dir, engine) = engine();
    let create = |def| engine.propose(Command::CreateJob { def, at: 5 });
    let refused = create(chained("a", &["nope"])).unwrap_err().to_string();
    assert!(
        refused.starts_with("on_success: no job named \"nope\""),
        "{refused}"
    );
    create(chained("c", &[])).unwrap();
    create(chained("b", &["c"])).unwrap();
    create(chained("a", &["b"])).unwrap();
    let cycle = engine
        .propose(Command::UpdateJob {
            job: "c".into(),
            def: chained("c", &["a"]),
            at: 6,
        })
        .unwrap_err()
        .to_string();
    assert!(cycle.contains("c → a → b → c"), "{cycle}");
    let in_use = engine
        .propose(Command::DeleteJob {
            job: "b".into(),
            at: 7,
        })
        .unwrap_err()
        .to_string();
    assert!(in_use.contains("chained from a"), "{in_use}");
    let no_channel = create(
        JobSpec {
            on_demand: true,
            alerts: Some(crate::alert::spec::AlertSpec {
                channels: vec!["pager".into()],
                ..Default::default()
            }),
            ..test_support::spec("d")
        }
        .validate()
        .unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        no_channel.starts_with("alerts.channels: no channel named \"pager\""),
        "{no_channel}"
    );
}

#[test]
fn a_job_failing_ten_times_raises_one_alert_then_one_recovery() {
    let (_dir, engine) = engine();
    engine
        .propose(Command::PutChannel {
            def: channel("ops"),
        })
        .unwrap();
    // A default channel: a job without [alerts] alerts there.
    let mut def = channel("ops");
    def.default = true;
    engine.propose(Command::PutChannel { def }).unwrap();
    engine
        .propose(Command::CreateJob {
            def: test_support::on_demand("flaky"),
            at: 1,
        })
        .unwrap();
    let mut at = 10;
    for n in 0..11 {
        let Ok(Response::Instance(instance)) = engine.propose(Command::RunNow {
            job: "flaky".into(),
            at,
        }) else {
            panic!("run {n}")
        };
        let steps = vec![DispatchStep::Assign {
            instance: instance.id,
            attempt: 1,
            worker: "w".into(),
            lease_until_ms: at + 1000,
        }];
        engine.propose(Command::Dispatch { at, steps }).unwrap();
        let events = vec![finished(instance.id, 1, n == 10, at + 5)];
        engine
            .propose(Command::Report {
                worker: "w".into(),
                at: at + 5,
                events,
            })
            .unwrap();
        at += 60_000;
    }
    let alerts = engine
        .store()
        .read()
        .unwrap()
        .alerts(&crate::server::store::AlertFilter::default())
        .unwrap();
    let events: Vec<_> = alerts.iter().rev().map(|a| (a.event, a.instance)).collect();
    use crate::alert::AlertEvent::{Failure, Recovery};
    assert_eq!(events, vec![(Failure, 1), (Recovery, 11)]);
}
