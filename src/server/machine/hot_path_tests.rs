//! The hot paths of commands that end instances read each job once per command, however many
//! of its instances end in it, and still do everything an end sets off: the retry policy, the
//! chain, the alerts, `pause_after_failures`.

use std::sync::Arc;

use super::*;
use crate::reason::QueueReason;
use crate::server::command::{Command, DispatchStep};
use crate::server::engine::{Engine, LocalEngine};
use crate::server::store::{AlertFilter, Store};
use crate::spec::JobSpec;
use crate::test_support;
use crate::wire::TaskResult;

/// How many instances end in the measured command.
const ENDS: u64 = 10;

/// An engine with a default alert channel, a job `next`, and a job `busy` that chains to `next`
/// on completion and pauses itself after 3 failures in a row; `busy` has [`ENDS`] instances
/// queued.
fn setup(dispatch_timeout: &str) -> (tempfile::TempDir, LocalEngine, Vec<InstanceId>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::new(Arc::new(Store::open(dir.path()).unwrap()));
    let channel = crate::alert::spec::ChannelSpec {
        name: "ops".into(),
        kind: "webhook".into(),
        url: Some("http://127.0.0.1:9/hook".into()),
        default: true,
        ..Default::default()
    }
    .validate()
    .unwrap();
    engine
        .propose(Command::PutChannel { def: channel })
        .unwrap();
    let create = |spec: JobSpec| {
        engine
            .propose(Command::CreateJob {
                def: spec.validate().unwrap(),
                at: 1,
            })
            .unwrap()
    };
    create(JobSpec {
        on_demand: true,
        ..test_support::spec("next")
    });
    create(JobSpec {
        on_demand: true,
        max_concurrent: Some(100),
        pause_after_failures: Some(3),
        dispatch_timeout: Some(dispatch_timeout.into()),
        on_complete: vec!["next".into()],
        ..test_support::spec("busy")
    });
    let ids = (0..ENDS)
        .map(|n| {
            match engine.propose(Command::RunNow {
                job: "busy".into(),
                at: 10 + n as i64,
            }) {
                Ok(Response::Instance(instance)) => instance.id,
                other => panic!("run: {other:?}"),
            }
        })
        .collect();
    (dir, engine, ids)
}

/// Applies `command` and returns how many job records it read.
fn job_reads_of(engine: &LocalEngine, command: &Command) -> usize {
    engine
        .store()
        .write(|tx| {
            let before = tx.job_reads.get();
            apply(tx, command)?;
            Ok::<_, ApplyError>(tx.job_reads.get() - before)
        })
        .unwrap()
}

/// What the ends set off: `busy` paused itself at its third failure and counted all of them,
/// `next` got one chained instance per end, and one failure alert was raised.
fn assert_everything_set_off(engine: &LocalEngine) {
    let read = engine.store().read().unwrap();
    let busy = read
        .job(read.job_id_by_name("busy").unwrap().unwrap())
        .unwrap()
        .unwrap();
    assert!(busy.def.paused);
    assert_eq!(busy.health.consecutive_failures, ENDS as u32);
    let why = busy.health.paused_by.unwrap();
    assert!(why.contains("after 3 failed instances"), "{why}");
    let next = read.job_id_by_name("next").unwrap().unwrap();
    let chained = read
        .instances(&crate::server::store::InstanceFilter {
            job_id: Some(next),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(chained.len() as u64, ENDS);
    assert!(chained.iter().all(|i| i.parent.is_some()));
    assert_eq!(read.alerts(&AlertFilter::default()).unwrap().len(), 1);
}

#[test]
fn a_report_ending_many_instances_reads_each_job_once() {
    let (_dir, engine, ids) = setup("10m");
    let steps = ids
        .iter()
        .map(|&instance| DispatchStep::Assign {
            instance,
            attempt: 1,
            worker: "w".into(),
            lease_until_ms: 100_000,
        })
        .collect();
    engine
        .propose(Command::Dispatch { at: 100, steps })
        .unwrap();
    let events = ids
        .iter()
        .map(|&instance| {
            TaskEvent::Finished(TaskResult {
                instance,
                attempt: 1,
                started_ms: 100,
                ended_ms: 200,
                succeeded: false,
                http_status: Some(500),
                error: Some("expected status 2xx, got 500".into()),
                excerpt: None,
            })
        })
        .collect();
    let report = Command::Report {
        worker: "w".into(),
        at: 200,
        events,
    };
    // busy and next, once each (it was 5 reads per end, and one more per job at the end).
    assert_eq!(job_reads_of(&engine, &report), 2);
    assert_everything_set_off(&engine);
}

#[test]
fn a_dispatch_pass_expiring_many_instances_reads_each_job_once() {
    let (_dir, engine, ids) = setup("1s");
    let steps = ids
        .iter()
        .map(|&instance| DispatchStep::Expire {
            instance,
            reason: QueueReason::Other {
                text: "no live worker".into(),
            },
        })
        .collect();
    let expire = Command::Dispatch { at: 60_000, steps };
    assert_eq!(job_reads_of(&engine, &expire), 2);
    assert_everything_set_off(&engine);
}
