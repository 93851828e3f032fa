//! Firing ahead (see [`LOOKAHEAD_MS`]): instances created before their time, held
//! until it, cancelled by a pause, a change of timing or a delete, and never doubled or lost —
//! against a real redb file.

use std::sync::Arc;

use super::{fire_everything_due, fire_round};
use crate::model::{Instance, InstanceState, Job, StateKind, Trigger, UnixMs, now_ms};
use crate::schedule::LOOKAHEAD_MS;
use crate::server::service::Service;
use crate::server::store::{InstanceFilter, Store};
use crate::spec::JobSpec;
use crate::test_support;

fn spec(name: &str, every: &str) -> JobSpec {
    JobSpec {
        every: Some(every.into()),
        max_concurrent: Some(10),
        ..test_support::spec(name)
    }
}

fn add_job(store: &Store, spec: &JobSpec, next_fire: UnixMs) -> Job {
    test_support::store_job(store, spec.validate().unwrap(), Some(next_fire))
}

fn instances_of(store: &Store, job: &Job) -> Vec<Instance> {
    store
        .read()
        .unwrap()
        .instances(&InstanceFilter {
            job_id: Some(job.id),
            limit: 1000,
            ..InstanceFilter::default()
        })
        .unwrap()
}

fn next_fire(store: &Store, job: &Job) -> Option<UnixMs> {
    store
        .read()
        .unwrap()
        .job(job.id)
        .unwrap()
        .and_then(|j| j.next_fire_ms)
}

fn service(store: &Arc<Store>) -> Service {
    Service::new(Arc::new(test_support::engine(store)))
}

#[test]
fn a_fire_within_the_lookahead_is_created_ahead_and_held_until_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let fire = 100_000;
    let job = add_job(&store, &spec("ahead", "1m"), fire);

    // Not yet within the look-ahead: nothing.
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire - LOOKAHEAD_MS - 1).unwrap(),
        0
    );
    // Within it: created now, queued until the fire time, which its dispatch timeout counts from.
    let created_at = fire - LOOKAHEAD_MS / 2;
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), created_at).unwrap(),
        1
    );
    let instances = instances_of(&store, &job);
    assert_eq!(instances.len(), 1);
    let instance = &instances[0];
    assert_eq!(instance.trigger, Trigger::Schedule);
    assert_eq!(instance.fire_at_ms, fire);
    assert_eq!(instance.created_ms, created_at);
    assert_eq!(
        instance.state,
        InstanceState::Queued {
            reason: None,
            not_before_ms: Some(fire),
            since_ms: fire,
        }
    );
    assert!(instance.is_fired_ahead(fire - 1));
    assert!(!instance.is_fired_ahead(fire));
    // The job moved on in the same transaction: firing again, ahead or at the time, doubles
    // nothing.
    assert_eq!(next_fire(&store, &job), Some(fire + 60_000));
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), created_at).unwrap(),
        0
    );
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire).unwrap(),
        0
    );
    assert_eq!(instances_of(&store, &job).len(), 1);
}

#[test]
fn a_fire_committed_ahead_survives_a_crash_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let fire = 100_000;
    let job = {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let job = add_job(&store, &spec("crash", "1m"), fire);
        assert_eq!(
            fire_everything_due(&test_support::engine(&store), fire - 300).unwrap(),
            1
        );
        job
        // The store is dropped here without anything else: a crash right after the commit.
    };
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let instances = instances_of(&store, &job);
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].fire_at_ms, fire);
    assert_eq!(next_fire(&store, &job), Some(fire + 60_000));
    // The restarted scheduler, ahead of the fire or at it, does not create it again.
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire - 200).unwrap(),
        0
    );
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire + 10).unwrap(),
        0
    );
    assert_eq!(store.read().unwrap().active_count(job.id).unwrap(), 1);
}

#[test]
fn misfires_are_judged_against_now_not_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let mut every_second = spec("late", "1s");
    every_second.misfire = Some("skip".into());
    let now = 1_000_000;
    // Missed by more than the grace: skipped, although the horizon is a second later.
    let job = add_job(
        &store,
        &every_second,
        now - crate::schedule::MISFIRE_GRACE_MS - LOOKAHEAD_MS / 2,
    );
    fire_everything_due(&test_support::engine(&store), now).unwrap();
    let fires: Vec<UnixMs> = instances_of(&store, &job)
        .iter()
        .map(|i| i.fire_at_ms)
        .collect();
    assert!(
        fires
            .iter()
            .all(|f| *f >= now - crate::schedule::MISFIRE_GRACE_MS),
        "{fires:?}"
    );
    // The on-time ones up to the horizon are all there, once each.
    let mut sorted = fires.clone();
    sorted.sort_unstable();
    assert!(
        sorted.windows(2).all(|w| w[1] - w[0] == 1_000),
        "{sorted:?}"
    );
    assert!(
        sorted
            .last()
            .is_some_and(|last| *last > now && *last <= now + LOOKAHEAD_MS)
    );
}

#[test]
fn a_full_job_holds_its_fire_ahead_instead_of_skipping_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let mut single = spec("single", "1h");
    single.max_concurrent = Some(1);
    let fire = now_ms() + 3_600_000;
    let job = add_job(&store, &single, fire);
    let service = service(&store);
    let running = service.run_now("single").unwrap();

    // A run is still active ahead of the fire: it may end in time, so the fire is neither
    // created nor skipped yet; the job keeps it as its next fire.
    let round = fire_round(&test_support::engine(&store), fire - 600).unwrap();
    assert_eq!(round.created, 0);
    assert_eq!(round.held_until, Some(fire));
    assert_eq!(next_fire(&store, &job), Some(fire));

    // The run ends before the fire: the next round creates it, ahead.
    service.cancel_instance(running.id).unwrap();
    let round = fire_round(&test_support::engine(&store), fire - 400).unwrap();
    assert_eq!((round.created, round.held_until), (1, None));
    assert_eq!(next_fire(&store, &job), Some(fire + 3_600_000));

    // Still full at its fire time, a fire is skipped as it always was.
    let round = fire_round(&test_support::engine(&store), fire + 3_600_000).unwrap();
    assert_eq!(round.created, 0);
    assert_eq!(next_fire(&store, &job), Some(fire + 7_200_000));
}

/// A job whose next fire is an hour away, fired ahead; returns the job and that fire time.
fn fired_ahead(store: &Arc<Store>, service: &Service, spec: &JobSpec) -> (Job, UnixMs) {
    let job = service.create_job(spec).unwrap();
    let fire = job.next_fire_ms.unwrap();
    assert!(
        fire > now_ms() + 60_000,
        "the fire is well ahead of the real clock"
    );
    assert_eq!(
        fire_everything_due(&test_support::engine(store), fire - 300).unwrap(),
        1
    );
    (job, fire)
}

fn states(store: &Store, job: &Job) -> Vec<(UnixMs, StateKind, String)> {
    let mut states: Vec<_> = instances_of(store, job)
        .into_iter()
        .map(|i| {
            let reason = match &i.state {
                InstanceState::Cancelled { reason } => reason.clone(),
                _ => String::new(),
            };
            (i.fire_at_ms, i.state.kind(), reason)
        })
        .collect();
    states.sort_by_key(|(fire, kind, _)| (*fire, kind.as_str()));
    states
}

#[test]
fn pausing_cancels_fires_created_ahead_and_resuming_fires_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let service = service(&store);
    let (job, fire) = fired_ahead(&store, &service, &spec("paused", "1h"));

    service.set_paused("paused", true).unwrap();
    assert_eq!(
        states(&store, &job),
        vec![(
            fire,
            StateKind::Cancelled,
            "job paused before this fire was due".into()
        )]
    );
    assert_eq!(store.read().unwrap().active_count(job.id).unwrap(), 0);
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire).unwrap(),
        0
    );

    let resumed = service.set_paused("paused", false).unwrap();
    let again = resumed.next_fire_ms.unwrap();
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), again - 300).unwrap(),
        1
    );
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), again).unwrap(),
        0
    );
    assert_eq!(store.read().unwrap().active_count(job.id).unwrap(), 1);
}

#[test]
fn changing_the_timing_cancels_fires_created_ahead_and_nothing_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let service = service(&store);
    let mut hourly = spec("hourly", "1h");
    hourly.every = None;
    // Half an hour from now, so the fire is never close to the real clock whenever the test runs.
    let minute = (now_ms() / 60_000 + 30) % 60;
    hourly.cron = Some(format!("0 {minute} * * * *"));
    hourly.timezone = Some("UTC".into());
    let (job, fire) = fired_ahead(&store, &service, &hourly);

    // Not the timing: the fire created ahead stays (it is handed out with the new definition).
    let mut new_url = hourly.clone();
    new_url.http.url = "http://127.0.0.1:9/elsewhere".into();
    service.update_job("hourly", &new_url).unwrap();
    assert_eq!(
        states(&store, &job),
        vec![(fire, StateKind::Queued, String::new())]
    );
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire - 200).unwrap(),
        0
    );

    // The timing: the fire is cancelled; the recomputed next fire is the same hour, created once.
    let mut other_zone = new_url.clone();
    other_zone.timezone = Some("Etc/UTC".into());
    let updated = service.update_job("hourly", &other_zone).unwrap();
    assert_eq!(updated.next_fire_ms, Some(fire));
    assert_eq!(
        states(&store, &job),
        vec![(
            fire,
            StateKind::Cancelled,
            "job changed before this fire was due".into()
        )]
    );
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire - 200).unwrap(),
        1
    );
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire).unwrap(),
        0
    );
    let active: Vec<_> = states(&store, &job)
        .into_iter()
        .filter(|(_, kind, _)| *kind == StateKind::Queued)
        .collect();
    assert_eq!(active, vec![(fire, StateKind::Queued, String::new())]);
}

#[test]
fn deleting_cancels_fires_created_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let service = service(&store);
    let (job, fire) = fired_ahead(&store, &service, &spec("doomed", "1h"));
    service.delete_job("doomed").unwrap();
    assert_eq!(
        states(&store, &job),
        vec![(
            fire,
            StateKind::Cancelled,
            "job deleted before this fire was due".into()
        )]
    );
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire).unwrap(),
        0
    );
}
