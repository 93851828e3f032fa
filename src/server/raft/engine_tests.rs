//! A group of one server, in process, on a real data dir: proposals go through openraft's log
//! and come back applied; a restart resumes from disk.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, RaftNetwork, RaftNetworkFactory};

use super::engine::{RaftEngine, start_node};
use super::types::{NodeId, TypeConfig};
use crate::server::command::Command;
use crate::server::engine::Engine;
use crate::server::machine::{ApplyError, Response};
use crate::server::store::{Store, StoreError};
use crate::test_support;

/// The network of a group of one: there is nobody to call, so openraft never calls it; if it
/// did, the peer is unreachable.
struct NoPeers;

#[derive(Debug, thiserror::Error)]
#[error("a group of one has no peers to reach")]
struct NoPeer;

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeers;
    async fn new_client(&mut self, _target: NodeId, _node: &BasicNode) -> NoPeers {
        NoPeers
    }
}

type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl RaftNetwork<TypeConfig> for NoPeers {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeer)))
    }
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeer)))
    }
    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeer)))
    }
}

const SERVER: NodeId = 1;

/// A group of one reaches itself.
struct AllReachable;

impl super::engine::Reachability for AllReachable {
    fn is_reachable(&self, _addr: &str) -> bool {
        true
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Makes `raft` a group of one (when `initialize`) and waits until it leads it.
fn lead_alone(rt: &tokio::runtime::Runtime, raft: &openraft::Raft<TypeConfig>, initialize: bool) {
    if initialize {
        let members = BTreeMap::from([(SERVER, BasicNode::new("127.0.0.1:0"))]);
        rt.block_on(raft.initialize(members)).unwrap();
    }
    rt.block_on(
        raft.wait(Some(Duration::from_secs(10)))
            .current_leader(SERVER, "the only server leads"),
    )
    .unwrap();
}

/// Starts the node on `dir` and waits until it leads its group of one.
fn start(rt: &tokio::runtime::Runtime, dir: &std::path::Path, initialize: bool) -> RaftEngine {
    // After a shutdown, openraft's state machine task may still be letting go of the files for
    // a moment: opening them meanwhile is refused as "in use", so try again until it is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (store, raft) = loop {
        let opened = Store::open(dir)
            .map_err(anyhow::Error::from)
            .and_then(|store| {
                let store = Arc::new(store);
                let raft = rt.block_on(start_node(
                    SERVER,
                    dir,
                    store.clone(),
                    Config::default(),
                    NoPeers,
                ))?;
                Ok((store, raft))
            });
        match opened {
            Ok(opened) => break opened,
            Err(error)
                if matches!(error.downcast_ref(), Some(StoreError::InUse(_)))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("starting the node: {error:#}"),
        }
    };
    lead_alone(rt, &raft, initialize);
    RaftEngine::new(
        SERVER,
        raft,
        store,
        super::network::PeerWire::new(None, &Default::default()).unwrap(),
        Arc::new(AllReachable),
        rt.handle().clone(),
    )
}

#[test]
fn a_group_of_one_commits_applies_and_resumes_after_a_restart() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&rt, dir.path(), true);

    let created = engine
        .propose(Command::CreateJob {
            def: test_support::on_demand("nightly"),
            at: 1_000,
        })
        .unwrap();
    assert!(matches!(created, Response::Job(job) if job.def.name == "nightly"));
    let again = engine.propose(Command::CreateJob {
        def: test_support::on_demand("nightly"),
        at: 1_001,
    });
    assert!(matches!(again, Err(ApplyError::Conflict(_))), "{again:?}");
    let run = engine
        .propose(Command::RunNow {
            job: "nightly".into(),
            at: 2_000,
        })
        .unwrap();
    let Response::Instance(instance) = run else {
        panic!("RunNow answers the instance, got {run:?}");
    };
    let read = engine.store().read().unwrap();
    assert_eq!(read.job_count().unwrap(), 1);
    assert_eq!(
        read.instance(instance.id).unwrap(),
        Some((*instance).clone())
    );
    drop(read);

    // Down and up again: the node resumes from its data dir (no initialize) and leads again.
    rt.block_on(engine.raft().shutdown()).unwrap();
    drop(engine);
    let engine = start(&rt, dir.path(), false);
    assert_eq!(engine.store().read().unwrap().instance_count().unwrap(), 1);
    // The restarted store still counts the unfinished run against `max_concurrent` (1).
    let refused = engine.propose(Command::RunNow {
        job: "nightly".into(),
        at: 3_000,
    });
    assert!(
        matches!(refused, Err(ApplyError::Conflict(_))),
        "{refused:?}"
    );
    let weekly = engine
        .propose(Command::CreateJob {
            def: test_support::on_demand("weekly"),
            at: 3_001,
        })
        .unwrap();
    assert!(matches!(weekly, Response::Job(job) if job.id != 1));
    assert_eq!(engine.store().read().unwrap().job_count().unwrap(), 2);
    rt.block_on(engine.raft().shutdown()).unwrap();
}

/// The log keeps its newest entries in memory and older ones only in its file (see
/// `log_store.rs`): reads across both give every entry, in order, while the node runs and from
/// the file alone after a restart.
#[test]
fn the_log_reads_alike_from_memory_and_file_while_running_and_after_a_restart() {
    use openraft::storage::RaftLogStorage;
    use openraft::{EntryPayload, Raft, RaftLogReader};

    use super::log_store::LogStore;
    use super::state_machine::StateMachine;
    use super::types::Proposal;

    // More entries than the log keeps in memory once they are durable.
    const PROPOSALS: usize = 600;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let log = LogStore::open(dir.path()).unwrap();
    let machine = StateMachine::new(store, dir.path());
    let config = Arc::new(Config::default().validate().unwrap());
    let raft: Raft<TypeConfig> = rt
        .block_on(Raft::new(SERVER, config, NoPeers, log.clone(), machine))
        .unwrap();
    lead_alone(&rt, &raft, true);
    for k in 0..PROPOSALS {
        let create = Command::CreateJob {
            def: test_support::on_demand(&format!("job-{k:04}")),
            at: 1_000 + k as i64,
        };
        rt.block_on(raft.client_write(Proposal(vec![create])))
            .unwrap();
    }
    let last = raft.metrics().borrow().last_log_index.unwrap();

    // Every index from the first to the last, each once, the proposals in the order made.
    let check = |entries: &[super::types::Entry]| {
        let indexes: Vec<u64> = entries.iter().map(|entry| entry.log_id.index).collect();
        let first = indexes[0];
        assert_eq!(indexes, (first..=last).collect::<Vec<_>>());
        let names: Vec<String> = entries
            .iter()
            .filter_map(|entry| match &entry.payload {
                EntryPayload::Normal(Proposal(commands)) => match &commands[..] {
                    [Command::CreateJob { def, .. }] => Some(def.name.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let made: Vec<String> = (0..PROPOSALS).map(|k| format!("job-{k:04}")).collect();
        assert_eq!(names, made);
    };
    let mut reader = log.clone();
    let running = rt.block_on(reader.try_get_log_entries(0..)).unwrap();
    check(&running);
    // A range across where memory takes over from the file, and one past the end.
    let middle = last - 256;
    let across = rt
        .block_on(reader.try_get_log_entries(middle - 10..middle + 10))
        .unwrap();
    let indexes: Vec<u64> = across.iter().map(|entry| entry.log_id.index).collect();
    assert_eq!(indexes, (middle - 10..middle + 10).collect::<Vec<_>>());
    assert!(
        rt.block_on(reader.try_get_log_entries(last + 1..last + 5))
            .unwrap()
            .is_empty()
    );

    rt.block_on(raft.shutdown()).unwrap();
    drop((raft, log, reader));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut reopened = loop {
        match LogStore::open(dir.path()) {
            Ok(log) => break log,
            Err(StoreError::InUse(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("reopening the log: {error}"),
        }
    };
    let state = rt.block_on(reopened.get_log_state()).unwrap();
    assert_eq!(state.last_log_id.map(|id| id.index), Some(last));
    let restarted = rt.block_on(reopened.try_get_log_entries(0..)).unwrap();
    check(&restarted);
    assert_eq!(
        restarted.iter().map(|e| e.log_id).collect::<Vec<_>>(),
        running.iter().map(|e| e.log_id).collect::<Vec<_>>()
    );
}
