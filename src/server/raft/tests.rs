//! The log store and the state machine against openraft's own storage test suite, and the
//! state machine applying real commands.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload};

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::types::{Answer, Entry, LogId, Proposal, Refusal, StorageError, TypeConfig};
use crate::server::command::Command;
use crate::server::machine::Response;
use crate::server::store::Store;
use crate::test_support;

/// Each store of the suite in a fresh data dir, kept while the test runs.
struct FreshDirs;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for FreshDirs {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("a temporary data dir");
        let store = Arc::new(Store::open(dir.path()).expect("a fresh store"));
        let log = LogStore::open(dir.path()).expect("a fresh log");
        let machine = StateMachine::new(store, dir.path());
        Ok((dir, log, machine))
    }
}

#[test]
fn log_store_and_state_machine_pass_openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(FreshDirs)
}

fn entry(index: u64, command: Command) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(Proposal(vec![command])),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_commands_are_applied_refusals_answered_and_the_position_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let mut machine = StateMachine::new(store.clone(), dir.path());
    let create = Command::CreateJob {
        def: test_support::on_demand("nightly"),
        at: 1_000,
    };
    let answers = machine
        .apply([
            entry(1, create.clone()),
            // The same name again: refused, on every replica alike.
            entry(2, create),
            entry(
                3,
                Command::RunNow {
                    job: "nightly".into(),
                    at: 2_000,
                },
            ),
        ])
        .await
        .unwrap();
    // One answer per entry, each one per command of its proposal.
    let answers: Vec<&Answer> = answers.iter().flatten().collect();
    assert!(matches!(answers[0], Answer::Applied(Response::Job(job)) if job.def.name == "nightly"));
    assert!(
        matches!(answers[1], Answer::Refused(Refusal::Conflict(why)) if why.contains("nightly")),
        "{:?}",
        answers[1]
    );
    assert!(matches!(answers[2], Answer::Applied(Response::Instance(_))));
    assert_eq!(store.read().unwrap().job_count().unwrap(), 1);
    assert_eq!(store.read().unwrap().instance_count().unwrap(), 1);

    // The position survives a restart with the store.
    drop(machine);
    let store = Arc::try_unwrap(store).ok().expect("the only handle");
    drop(store);
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let mut machine = StateMachine::new(store, dir.path());
    let (last, _) = machine.applied_state().await.unwrap();
    assert_eq!(last.map(|id| id.index), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_installed_on_a_fresh_server_gives_an_identical_store() {
    use openraft::RaftSnapshotBuilder;

    let leader_dir = tempfile::tempdir().unwrap();
    let leader_store = Arc::new(Store::open(leader_dir.path()).unwrap());
    let mut leader = StateMachine::new(leader_store.clone(), leader_dir.path());
    let mut entries = Vec::new();
    for n in 0..4 {
        entries.push(entry(
            2 * n + 1,
            Command::CreateJob {
                def: test_support::on_demand(&format!("job-{n}")),
                at: 1_000,
            },
        ));
        entries.push(entry(
            2 * n + 2,
            Command::RunNow {
                job: format!("job-{n}"),
                at: 2_000,
            },
        ));
    }
    leader.apply(entries).await.unwrap();
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id.map(|id| id.index), Some(8));

    let follower_dir = tempfile::tempdir().unwrap();
    let follower_store = Arc::new(Store::open(follower_dir.path()).unwrap());
    let mut follower = StateMachine::new(follower_store.clone(), follower_dir.path());
    // Something only the follower has, which the snapshot must replace.
    follower
        .apply([entry(
            1,
            Command::CreateJob {
                def: test_support::on_demand("stray"),
                at: 5,
            },
        )])
        .await
        .unwrap();
    follower
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();

    let export = |store: &Store| store.read().unwrap().export().unwrap();
    assert_eq!(export(&follower_store), export(&leader_store));
    assert!(
        follower_store
            .read()
            .unwrap()
            .job_id_by_name("stray")
            .unwrap()
            .is_none()
    );
    assert_eq!(
        follower.applied_state().await.unwrap(),
        leader.applied_state().await.unwrap()
    );
    let current = follower
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("kept as current");
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_of_several_commands_answers_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let mut machine = StateMachine::new(store.clone(), dir.path());
    let create = |name: &str| Command::CreateJob {
        def: test_support::on_demand(name),
        at: 1_000,
    };
    let answers = machine
        .apply([Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), 1),
            // The second is refused (the name is taken); the first and third still apply.
            payload: EntryPayload::Normal(Proposal(vec![create("a"), create("a"), create("b")])),
        }])
        .await
        .unwrap();
    assert_eq!(answers.len(), 1, "one answer list per entry");
    let each = &answers[0];
    assert_eq!(each.len(), 3);
    assert!(matches!(&each[0], Answer::Applied(Response::Job(job)) if job.def.name == "a"));
    assert!(
        matches!(&each[1], Answer::Refused(Refusal::Conflict(_))),
        "{:?}",
        each[1]
    );
    assert!(matches!(&each[2], Answer::Applied(Response::Job(job)) if job.def.name == "b"));
    assert_eq!(store.read().unwrap().job_count().unwrap(), 2);
}
