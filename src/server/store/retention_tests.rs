use super::*;
use crate::model::{AttemptOutcome, InstanceState, Job, Trigger};
use crate::server::machine::create_instance;
use crate::server::store::{InstanceFilter, StoreError};
use crate::test_support;

fn add_job(store: &Store, name: &str) -> Job {
    let mut spec = test_support::spec(name);
    spec.on_demand = true;
    spec.http.body = Some("x".repeat(500));
    test_support::store_job(store, spec.validate().unwrap(), None)
}

/// `count` instances of `job` created at `at`; finished ones succeed at `at`.
fn add_instances(store: &Store, job: &Job, count: usize, at: UnixMs, finished: bool) -> Vec<u64> {
    store
        .write(|tx| {
            let mut ids = Vec::new();
            for _ in 0..count {
                let mut instance = create_instance(tx, job, Trigger::Manual, at, at)?;
                if finished {
                    instance.finish(InstanceState::Succeeded, AttemptOutcome::Succeeded, at);
                    tx.put_instance(&instance)?;
                }
                ids.push(instance.id);
            }
            Ok::<_, StoreError>(ids)
        })
        .unwrap()
}

fn ids_of(store: &Store, job: &Job) -> Vec<u64> {
    let mut ids: Vec<u64> = store
        .read()
        .unwrap()
        .instances(&InstanceFilter {
            job_id: Some(job.id),
            limit: 1_000_000,
            ..InstanceFilter::default()
        })
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    ids.sort();
    ids
}

const HOUR: i64 = 3600 * 1000;

#[test]
fn old_finished_instances_go_unfinished_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    let job = add_job(&store, "aged");
    let old_done = add_instances(&store, &job, 5, HOUR, true);
    let old_queued = add_instances(&store, &job, 2, HOUR, false);
    let young = add_instances(&store, &job, 3, 10 * HOUR, true);
    let policy = Retention {
        max_age_ms: Some(5 * HOUR as u64),
        per_job: None,
    };
    let swept =
        crate::server::retention::sweep(&test_support::engine(&store), &policy, 12 * HOUR, 2)
            .unwrap();
    assert_eq!(
        swept,
        Swept {
            by_age: 5,
            by_count: 0,
            alerts: 0
        }
    );
    let mut kept = old_queued.clone();
    kept.extend(&young);
    assert_eq!(ids_of(&store, &job), kept);
    assert!(
        old_done
            .iter()
            .all(|id| store.read().unwrap().instance(*id).unwrap().is_none())
    );
    // Queued instances are still the dispatcher's work.
    assert_eq!(store.read().unwrap().active_count(job.id).unwrap(), 2);
    assert_eq!(
        crate::server::retention::sweep(&test_support::engine(&store), &policy, 12 * HOUR, 2)
            .unwrap()
            .total(),
        0
    );
}

#[test]
fn only_the_newest_per_job_are_kept_and_never_an_unfinished_one_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    let busy = add_job(&store, "busy");
    let quiet = add_job(&store, "quiet");
    let unfinished = add_instances(&store, &busy, 1, HOUR, false);
    let busy_ids = add_instances(&store, &busy, 30, HOUR, true);
    let quiet_ids = add_instances(&store, &quiet, 4, HOUR, true);
    let policy = Retention {
        max_age_ms: None,
        per_job: Some(10),
    };
    let swept =
        crate::server::retention::sweep(&test_support::engine(&store), &policy, 2 * HOUR, 7)
            .unwrap();
    // 31 instances of `busy`, 21 too many: the oldest 21 go except the unfinished one.
    assert_eq!(
        swept,
        Swept {
            by_age: 0,
            by_count: 20,
            alerts: 0
        }
    );
    let mut kept = unfinished.clone();
    kept.extend(&busy_ids[20..]);
    assert_eq!(ids_of(&store, &busy), kept);
    assert_eq!(ids_of(&store, &quiet), quiet_ids);
}

#[test]
fn the_file_stops_growing_under_a_steady_load_with_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    let job = add_job(&store, "steady");
    let policy = Retention {
        max_age_ms: None,
        per_job: Some(500),
    };
    let mut sizes = Vec::new();
    for round in 0..30 {
        for _ in 0..10 {
            add_instances(&store, &job, 50, round * HOUR, true);
        }
        crate::server::retention::sweep(&test_support::engine(&store), &policy, round * HOUR, 1000)
            .unwrap();
        sizes.push(store.file_size());
    }
    assert_eq!(ids_of(&store, &job).len(), 500);
    // 15 000 instances written in all; the file holds about 500 of them. Its size after the
    // warm-up must not keep growing.
    let warm = sizes[9];
    let last = sizes[29];
    println!("redb file size by round (bytes): {sizes:?}");
    assert!(
        last <= warm + warm / 2,
        "the file kept growing: {warm} bytes after round 10, {last} after round 30 ({sizes:?})"
    );
}

/// An alert of job 1 raised at `created`, in `status`.
fn alert(id: u64, created: UnixMs, status: crate::alert::AlertStatus) -> crate::alert::Alert {
    crate::alert::Alert {
        id,
        channel: "ops".into(),
        event: crate::alert::AlertEvent::Failure,
        job_id: 1,
        job_name: "job".into(),
        instance: id,
        attempts: 1,
        reason: "HTTP 500".into(),
        created_ms: created,
        status,
        tries: 1,
        answer: None,
    }
}

#[test]
fn alerts_settled_past_the_age_limit_go_pending_ones_stay() {
    use crate::alert::AlertStatus::{Failed, Pending, Sent};
    use crate::server::command::Command;
    use crate::server::engine::Engine;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    let alerts = [
        alert(1, HOUR, Sent { at_ms: HOUR + 1 }),
        alert(2, HOUR, Failed { at_ms: 2 * HOUR }),
        // Raised long ago but still being tried: never forgotten.
        alert(
            3,
            HOUR,
            Pending {
                next_at_ms: 20 * HOUR,
            },
        ),
        alert(4, 2 * HOUR, Sent { at_ms: 2 * HOUR }),
        // Raised before the cutoff, settled after it: kept, its outcome is recent.
        alert(5, 3 * HOUR, Failed { at_ms: 9 * HOUR }),
        alert(6, 10 * HOUR, Sent { at_ms: 10 * HOUR }),
    ];
    store
        .write(|tx| {
            for a in &alerts {
                tx.put_alert(None, a)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let kept = |store: &Store| {
        let mut ids: Vec<u64> = store
            .read()
            .unwrap()
            .alerts(&crate::server::store::AlertFilter::default())
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect();
        ids.sort();
        ids
    };
    // Keeping everything by age keeps every alert.
    let forever = Retention {
        max_age_ms: None,
        per_job: Some(1),
    };
    let engine = test_support::engine(&store);
    crate::server::retention::sweep(&engine, &forever, 100 * HOUR, 2).unwrap();
    assert_eq!(kept(&store), [1, 2, 3, 4, 5, 6]);

    let policy = Retention {
        max_age_ms: Some(5 * HOUR as u64),
        per_job: None,
    };
    // Batches of 2: the sweep goes on while a batch is full.
    let swept = crate::server::retention::sweep(&engine, &policy, 12 * HOUR, 2).unwrap();
    assert_eq!(swept.alerts, 3);
    assert_eq!(kept(&store), [3, 5, 6]);
    // The pending one is due later, still where the delivery loop finds it.
    let (due, _) = store.read().unwrap().due_alerts(20 * HOUR, 10).unwrap();
    assert_eq!(due.iter().map(|a| a.id).collect::<Vec<_>>(), [3]);

    // The command itself never forgets a pending alert, whatever it is given.
    let forgot = engine
        .propose(Command::ForgetAlerts {
            alerts: vec![3, 5, 99],
        })
        .unwrap();
    assert_eq!(
        forgot,
        crate::server::machine::Response::ForgotAlerts(1),
        "only the settled one"
    );
    assert_eq!(kept(&store), [3, 6]);
}
