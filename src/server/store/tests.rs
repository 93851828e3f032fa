use super::*;
use crate::model::{InstanceState, Job, MisfirePolicy, Trigger};
use std::sync::Arc;

use crate::server::machine::create_instance;
use crate::server::scheduler::fire_everything_due;
use crate::spec::JobSpec;
use crate::test_support;

fn spec(name: &str) -> JobSpec {
    JobSpec {
        every: Some("1m".into()),
        ..test_support::spec(name)
    }
}

fn add_job(store: &Store, name: &str, next_fire: Option<i64>) -> Job {
    test_support::store_job(store, spec(name).validate().unwrap(), next_fire)
}

#[test]
fn jobs_and_instances_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (job, instance) = {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let job = add_job(&store, "survivor", Some(5_000));
        let instance = store
            .write(|tx| create_instance(tx, &job, Trigger::Manual, 10, 10))
            .unwrap();
        (job, instance)
    };
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let read = store.read().unwrap();
    assert_eq!(read.job(job.id).unwrap(), Some(job.clone()));
    assert_eq!(read.job_id_by_name("survivor").unwrap(), Some(job.id));
    assert_eq!(read.instance(instance.id).unwrap(), Some(instance.clone()));
    assert_eq!(read.earliest_due_after(0).unwrap(), Some(5_000));
    assert_eq!(read.active_count(job.id).unwrap(), 1);
    // Ids keep growing after a restart.
    let next = add_job(&store, "second", None);
    assert!(next.id > job.id);
}

#[test]
fn a_second_open_of_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let error = Store::open(dir.path()).err().unwrap();
    assert!(matches!(error, StoreError::InUse(_)), "{error}");
    assert!(error.to_string().contains("already in use"));
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        add_job(&store, "keep-me", None);
        store
            .write(|tx| {
                tx.txn
                    .open_table(META)
                    .map_err(db_error)?
                    .insert(SCHEMA_KEY, SCHEMA_VERSION + 1)
                    .map_err(db_error)?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
    let error = Store::open(dir.path()).err().unwrap();
    assert!(matches!(error, StoreError::NewerSchema { .. }), "{error}");
    assert!(error.to_string().contains("newer"));
    // Its records and version are as they were.
    let db = redb::ReadOnlyDatabase::open(dir.path().join(DB_FILE)).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert_eq!(
        meta.get(SCHEMA_KEY).unwrap().unwrap().value(),
        SCHEMA_VERSION + 1
    );
    assert_eq!(txn.open_table(JOB_NAMES).unwrap().len().unwrap(), 1);
}

#[test]
fn a_failed_change_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let result: Result<(), StoreError> = store.write(|tx| {
        let job = Job {
            id: tx.next_job_id()?,
            def: spec("ghost").validate().unwrap(),
            created_ms: 1,
            updated_ms: 1,
            next_fire_ms: Some(1),
            health: Default::default(),
        };
        tx.put_job(&job)?;
        Err(StoreError::Corrupt {
            table: "test",
            reason: "abort".into(),
        })
    });
    assert!(result.is_err());
    let read = store.read().unwrap();
    assert_eq!(read.job_count().unwrap(), 0);
    assert_eq!(read.job_id_by_name("ghost").unwrap(), None);
    assert_eq!(read.earliest_due_after(0).unwrap(), None);
}

#[test]
fn terminal_states_never_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let job = add_job(&store, "j", None);
    let mut instance = store
        .write(|tx| create_instance(tx, &job, Trigger::Manual, 1, 1))
        .unwrap();
    instance.state = InstanceState::Succeeded;
    store.write(|tx| tx.put_instance(&instance)).unwrap();
    assert_eq!(store.read().unwrap().active_count(job.id).unwrap(), 0);
    instance.state = InstanceState::queued(2);
    let error = store.write(|tx| tx.put_instance(&instance)).unwrap_err();
    assert!(error.to_string().contains("terminal"), "{error}");
    let stored = store
        .read()
        .unwrap()
        .instance(instance.id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, InstanceState::Succeeded);
}

/// The scheduler after a simulated hour of downtime, for each misfire policy, against a real file.
#[test]
fn misfire_policies_after_downtime() {
    let hour_ago = 1_000_000_000_000;
    let now = hour_ago + 3_600_000 + 500;
    for (policy, expected) in [
        (MisfirePolicy::FireOnce, 2), // the collapsed missed fires + the on-time one
        (MisfirePolicy::Skip, 1),
        (MisfirePolicy::FireAll, 61),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut def = spec("every-minute").validate().unwrap();
        def.misfire = policy;
        def.max_concurrent = 1000;
        let job = test_support::store_job(&store, def, Some(hour_ago));
        let created = fire_everything_due(&test_support::engine(&store), now).unwrap();
        assert_eq!(created, expected, "{policy:?}");
        let read = store.read().unwrap();
        let next = read.job(job.id).unwrap().unwrap().next_fire_ms.unwrap();
        assert_eq!(next, hour_ago + 61 * 60_000, "{policy:?}");
        // Firing again at the same moment doubles nothing.
        drop(read);
        assert_eq!(
            fire_everything_due(&test_support::engine(&store), now).unwrap(),
            0
        );
    }
}

#[test]
fn max_concurrent_caps_queued_fires() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let job = add_job(&store, "capped", Some(1_000));
    // max_concurrent defaults to 1: the first fire queues, later ones are skipped while it waits.
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), 1_000).unwrap(),
        1
    );
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), 61_000).unwrap(),
        0
    );
    assert_eq!(store.read().unwrap().active_count(job.id).unwrap(), 1);
}

#[test]
fn active_counts_follow_every_transition_and_are_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (job, other) = {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let job = add_job(&store, "counted", None);
        let other = add_job(&store, "other", None);
        let mut made = Vec::new();
        for _ in 0..3 {
            made.push(
                store
                    .write(|tx| create_instance(tx, &job, Trigger::Manual, 1, 1))
                    .unwrap(),
            );
        }
        store
            .write(|tx| create_instance(tx, &other, Trigger::Manual, 1, 1))
            .unwrap();
        assert_eq!(store.read().unwrap().active_count(job.id).unwrap(), 3);
        // Queued → assigned keeps it unfinished; → succeeded ends it; a repeat write changes
        // nothing.
        let mut moving = made[0].clone();
        moving.state = InstanceState::Assigned {
            worker: "w".into(),
            lease_until_ms: 10,
        };
        store.write(|tx| tx.put_instance(&moving)).unwrap();
        assert_eq!(store.read().unwrap().active_count(job.id).unwrap(), 3);
        moving.state = InstanceState::Succeeded;
        store.write(|tx| tx.put_instance(&moving)).unwrap();
        store.write(|tx| tx.put_instance(&moving)).unwrap();
        assert_eq!(store.read().unwrap().active_count(job.id).unwrap(), 2);
        assert_eq!(store.read().unwrap().active_count(other.id).unwrap(), 1);
        // A count that went wrong (say, a file written by a build that did not keep counts)...
        store
            .write(|tx| {
                let mut counts = tx.txn.open_table(ACTIVE_COUNTS).map_err(db_error)?;
                counts.insert(job.id, 99).map_err(db_error)?;
                counts.remove(other.id).map_err(db_error)?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        (job, other)
    };
    // ...is recounted from the index of unfinished instances when the file is opened.
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let read = store.read().unwrap();
    assert_eq!(read.active_count(job.id).unwrap(), 2);
    assert_eq!(read.active_count(other.id).unwrap(), 1);
}

/// After an I/O error a store reopens its database in place and resumes — unless it commits
/// behind a Raft group's log: reopening would drop commits the group counts applied, so it says a
/// restart is needed and stays degraded (writes refused) until then.
#[test]
fn a_store_behind_a_log_is_not_reopened_in_place_after_an_io_error() {
    use crate::wire::admin::StorageFault;

    let alone = tempfile::tempdir().unwrap();
    let store = Store::open(alone.path()).unwrap();
    store
        .health
        .failed(StorageFault::Io, "a test's I/O error", alone.path());
    assert!(store.degraded().is_some());
    assert!(matches!(store.try_recover(), Recovery::Recovered));
    assert!(store.degraded().is_none());

    let grouped = tempfile::tempdir().unwrap();
    let store = Store::open(grouped.path()).unwrap();
    store.commit_behind_log();
    store
        .health
        .failed(StorageFault::Io, "a test's I/O error", grouped.path());
    assert!(matches!(store.try_recover(), Recovery::RestartNeeded));
    assert!(store.degraded().is_some(), "writes stay refused");
}
