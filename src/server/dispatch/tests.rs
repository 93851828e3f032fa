//! The dispatcher and instances held by `not_before_ms` (fires created ahead, retries in
//! backoff): untouched before their time, looked at from it on, and the pass asks to be woken
//! exactly then. A real redb file; gossip over the in-memory transport, with no worker.

use std::sync::Arc;

use shoal_gossip::{ChannelTransport, GossipConfig, Membership, NodeInfo, Role};

use super::{Dispatcher, PassScope};
use crate::model::InstanceState;
use crate::schedule::LOOKAHEAD_MS;
use crate::server::scheduler::fire_everything_due;
use crate::server::store::{InstanceFilter, Store};
use crate::spec::JobSpec;
use crate::test_support;

/// A dispatcher over `store`, seeing a cluster with no worker.
async fn dispatcher(store: &Arc<Store>) -> Dispatcher {
    let info = NodeInfo {
        id: "server".into(),
        role: Role::Server,
        api_addr: String::new(),
        tags: Vec::new(),
        capacity: 0,
        running: 0,
        version: crate::VERSION.into(),
    };
    let config = GossipConfig::new("test", "127.0.0.1:1".parse().unwrap());
    let membership = Membership::start(config, info, &ChannelTransport::with_mtu(65_507))
        .await
        .unwrap();
    Dispatcher::new(
        Arc::new(test_support::engine(store)),
        Arc::new(membership),
        "127.0.0.1:1".into(),
        0,
    )
}

#[tokio::test]
async fn a_fire_created_ahead_is_not_dispatched_before_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let fire = 1_000_000;
    let def = JobSpec {
        every: Some("1h".into()),
        dispatch_timeout: Some("1m".into()),
        ..test_support::spec("ahead")
    }
    .validate()
    .unwrap();
    let job = test_support::store_job(&store, def, Some(fire));
    assert_eq!(
        fire_everything_due(&test_support::engine(&store), fire - LOOKAHEAD_MS).unwrap(),
        1
    );

    let dispatcher = dispatcher(&store).await;
    let stored = || {
        store
            .read()
            .unwrap()
            .instances(&InstanceFilter {
                job_id: Some(job.id),
                ..InstanceFilter::default()
            })
            .unwrap()
    };

    // Before its time: a pass leaves it exactly as created and asks to be woken at its time.
    let created = stored();
    assert_eq!(
        dispatcher.pass(fire - 1, PassScope::Full).unwrap(),
        Some(fire)
    );
    assert_eq!(stored(), created);

    // At its time it is up for dispatch (with no worker here, it says why it waits).
    assert_eq!(dispatcher.pass(fire, PassScope::Full).unwrap(), None);
    let waiting = stored();
    assert!(
        matches!(
            &waiting[0].state,
            InstanceState::Queued {
                reason: Some(_),
                ..
            }
        ),
        "{:?}",
        waiting[0].state
    );
    // Its dispatch timeout counts from the fire time, not from its creation a second earlier.
    let timeout = job.def.dispatch_timeout_ms as i64;
    dispatcher.pass(fire + timeout, PassScope::Full).unwrap();
    assert_eq!(stored()[0].state.kind(), crate::model::StateKind::Queued);
    dispatcher
        .pass(fire + timeout + 1, PassScope::Full)
        .unwrap();
    assert_eq!(stored()[0].state.kind(), crate::model::StateKind::Failed);
}

/// Fires an overlap policy buffered wait for the job's running instance: the dispatcher holds
/// them, with a reason, even though placement would otherwise look for a worker.
#[tokio::test]
async fn a_buffered_fire_waits_while_its_job_runs_max_concurrent() {
    use crate::server::command::{Command, DispatchStep};
    use crate::server::engine::Engine;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let engine = test_support::engine(&store);
    let t = 50_000_000;
    let def = JobSpec {
        every: Some("1s".into()),
        overlap: Some("buffer-all".into()),
        ..test_support::spec("busy")
    }
    .validate()
    .unwrap();
    let job = test_support::store_job(&store, def, Some(t));
    let fire = |now| Command::Fire {
        now,
        after: None,
        limit: 512,
    };
    engine.propose(fire(t)).unwrap();
    engine
        .propose(Command::Dispatch {
            at: t,
            steps: vec![DispatchStep::Assign {
                instance: 1,
                attempt: 1,
                worker: "w1".into(),
                lease_until_ms: t + 600_000,
            }],
        })
        .unwrap();
    engine.propose(fire(t + 1_000)).unwrap();

    let dispatcher = dispatcher(&store).await;
    dispatcher.pass(t + 1_000, PassScope::Full).unwrap();
    let buffered = store.read().unwrap().instance(2).unwrap().unwrap();
    assert_eq!(buffered.job_id, job.id);
    match &buffered.state {
        InstanceState::Queued {
            reason: Some(reason),
            ..
        } => assert_eq!(
            reason.to_string(),
            "its job already runs 1 instance(s), its max_concurrent of 1; it runs when one ends"
        ),
        other => panic!("the buffered fire should wait with a reason, not be {other:?}"),
    }
}

/// Work handed ahead covers the tasks a worker ends while its outbox is refilled: its capacity
/// at the least (and when a refill is quicker than a task), more as refills slow (a group's
/// replicated commits), never more than the cap.
#[test]
fn work_handed_ahead_covers_a_refill_within_bounds() {
    use super::{PREFETCH_MAX_CAPACITIES, prefetch_allowance};
    // Tasks of 20 ms, refilled in 2: one capacity, as before any refill was measured.
    assert_eq!(prefetch_allowance(16, 20.0, 2.0), 16);
    assert_eq!(prefetch_allowance(16, 20.0, 0.0), 16);
    // Tasks of 2 ms, refilled in 5: three tasks per slot per refill.
    assert_eq!(prefetch_allowance(16, 2.0, 5.0), 48);
    // Tasks of no measurable time: the cap.
    assert_eq!(
        prefetch_allowance(16, 0.0, 5.0),
        16 * PREFETCH_MAX_CAPACITIES
    );
    assert_eq!(prefetch_allowance(0, 0.0, 5.0), 0);
}
