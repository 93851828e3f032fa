//! Choosing a worker for a task: which live workers match a job's target, which of them has room,
//! and — when none does — a reason a person can act on.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use shoal_gossip::{Member, MembershipView, Role};

use crate::model::{JobDefinition, JobId, Strategy};
use crate::reason::{QueueReason, Unmatched};

/// A live worker as the dispatcher sees it: gossip's view plus the server's own count of tasks
/// assigned to it (more current than the advertised running count).
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub member: &'a Member,
    pub assigned: u32,
    /// Assignments it may hold beyond its capacity, waiting in its outbox for a slot (see
    /// `Dispatcher::prefetch`).
    pub prefetch: u32,
}

impl Candidate<'_> {
    pub fn id(&self) -> &str {
        &self.member.info.id
    }

    pub fn free(&self) -> u32 {
        (self.member.info.capacity + self.prefetch).saturating_sub(self.assigned)
    }

    fn load(&self) -> f64 {
        f64::from(self.assigned) / f64::from(self.member.info.capacity.max(1))
    }
}

/// Live workers that are polling for work, with their current assignment counts and prefetch
/// allowances, sorted by id.
pub fn candidates<'a>(
    view: &'a MembershipView,
    assigned: &HashMap<String, u32>,
    prefetch: &HashMap<String, u32>,
    polling: &HashSet<String>,
) -> Vec<Candidate<'a>> {
    view.live_workers()
        .filter(|member| polling.contains(&member.info.id))
        .map(|member| Candidate {
            member,
            assigned: assigned.get(&member.info.id).copied().unwrap_or(0),
            prefetch: prefetch.get(&member.info.id).copied().unwrap_or(0),
        })
        .collect()
}

/// The workers a broadcast fire fans out to: every live, polling worker the job's target matches,
/// whatever its load (each copy waits for a slot on its own worker). Sorted, so the original
/// instance always goes to the same one.
pub fn broadcast_workers(def: &JobDefinition, candidates: &[Candidate]) -> Vec<String> {
    let mut workers: Vec<String> = candidates
        .iter()
        .filter(|c| def.target.matches(c.id(), &c.member.info.tags))
        .map(|c| c.id().to_string())
        .collect();
    workers.sort();
    workers
}

/// Why a broadcast copy waits: its own worker is not there to take it.
pub fn pinned_worker_gone(worker: &str) -> QueueReason {
    QueueReason::NoWorker {
        unmatched: Unmatched::PinnedWorker {
            worker: worker.to_string(),
        },
        live: Vec::new(),
        silent: Vec::new(),
        fix: None,
    }
}

/// Picks the worker for one task of `job` among `candidates`, by the job's strategy.
/// `round_robin` holds each job's rotation position.
pub fn choose<'c, 'a>(
    job_id: JobId,
    def: &JobDefinition,
    candidates: &'c [Candidate<'a>],
    round_robin: &mut HashMap<JobId, usize>,
    join_hint: &str,
) -> Result<&'c Candidate<'a>, QueueReason> {
    let matching: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| def.target.matches(c.id(), &c.member.info.tags))
        .collect();
    if matching.is_empty() {
        return Err(no_match_reason(def, candidates, join_hint));
    }
    let with_room: Vec<&Candidate> = matching.iter().copied().filter(|c| c.free() > 0).collect();
    if with_room.is_empty() {
        return Err(QueueReason::AtCapacity {
            workers: matching.iter().map(|c| c.id().to_string()).collect(),
            fix: worker_command(join_hint, &def.target.tags),
        });
    }
    let chosen = match def.strategy {
        // A broadcast copy is offered only its own worker (see `broadcast_workers`).
        Strategy::LeastLoaded | Strategy::Broadcast => with_room
            .iter()
            .min_by(|a, b| a.load().total_cmp(&b.load()).then(a.id().cmp(b.id())))
            .copied(),
        Strategy::RoundRobin => {
            let position = round_robin.entry(job_id).or_insert(0);
            let pick = with_room[*position % with_room.len()];
            *position = position.wrapping_add(1);
            Some(pick)
        }
        Strategy::Random => {
            use rand::Rng;
            let index = rand::rng().random_range(0..with_room.len());
            Some(with_room[index])
        }
        Strategy::ConsistentHash => {
            // Rendezvous hashing over all matching workers (not only those with room), so a job
            // stays on its worker while that worker lives; when it is full the job waits for it.
            let owner = matching
                .iter()
                .max_by_key(|c| rendezvous(job_id, c.id()))
                .copied();
            match owner {
                Some(owner) if owner.free() > 0 => Some(owner),
                Some(owner) => {
                    return Err(QueueReason::OwnerAtCapacity {
                        worker: owner.id().to_string(),
                    });
                }
                None => None,
            }
        }
    };
    chosen.ok_or_else(|| QueueReason::Other {
        text: "no worker with room".into(),
    })
}

fn rendezvous(job_id: JobId, worker: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    job_id.hash(&mut hasher);
    worker.hash(&mut hasher);
    hasher.finish()
}

/// When nothing could be placed but live workers that match are not polling, says so: they are
/// in the cluster (gossip needs no token) yet cannot take work — usually a wrong `--token`.
pub fn note_silent_workers(
    unplaced: QueueReason,
    def: &JobDefinition,
    view: &MembershipView,
    polling: &HashSet<String>,
) -> QueueReason {
    let QueueReason::NoWorker {
        unmatched,
        live,
        fix,
        ..
    } = unplaced
    else {
        return unplaced;
    };
    let silent = view
        .live_workers()
        .filter(|m| !polling.contains(&m.info.id) && def.target.matches(&m.info.id, &m.info.tags))
        .map(|m| m.info.id.clone())
        .collect();
    QueueReason::NoWorker {
        unmatched,
        live,
        silent,
        fix,
    }
}

/// What follows `shoal worker --join` for a new worker to be a member: the server's gossip
/// address, and the cluster, token and CA flags when they are not the defaults.
pub fn join_hint(
    gossip_addr: SocketAddr,
    cluster: &str,
    token_required: bool,
    tls: bool,
) -> String {
    let mut hint = gossip_addr.to_string();
    if cluster != crate::node::DEFAULT_CLUSTER {
        hint.push_str(" --cluster ");
        hint.push_str(cluster);
    }
    if token_required {
        hint.push_str(" --token \"$SHOAL_TOKEN\"");
    }
    if tls {
        hint.push_str(" --ca \"$SHOAL_CA\"");
    }
    hint
}

/// The command that starts a worker the job could use.
pub fn worker_command(join_hint: &str, tags: &[String]) -> String {
    let mut command = format!("shoal worker --join {join_hint}");
    for tag in tags {
        command.push_str(" --tag ");
        command.push_str(tag);
    }
    command
}

/// Names what matched nothing and how to fix it.
fn no_match_reason(def: &JobDefinition, candidates: &[Candidate], join_hint: &str) -> QueueReason {
    let live: Vec<String> = candidates.iter().map(|c| c.id().to_string()).collect();
    let target = &def.target;
    let fix = worker_command(join_hint, &target.tags);
    let reason = |unmatched, fix| QueueReason::NoWorker {
        unmatched,
        live: live.clone(),
        silent: Vec::new(),
        fix: Some(fix),
    };
    if live.is_empty() {
        return reason(Unmatched::EmptyCluster, fix);
    }
    if !target.workers.is_empty() && target.workers.iter().all(|w| !live.contains(w)) {
        let fix = format!("{fix} --id {}", target.workers[0]);
        return reason(
            Unmatched::DesignatedWorkers {
                workers: target.workers.clone(),
            },
            fix,
        );
    }
    let lacking: Vec<String> = target
        .tags
        .iter()
        .filter(|tag| !candidates.iter().any(|c| c.member.info.tags.contains(tag)))
        .cloned()
        .collect();
    let unmatched = match lacking.as_slice() {
        [tag] => Unmatched::Tag { tag: tag.clone() },
        [] => Unmatched::AllTags {
            tags: target.tags.clone(),
        },
        _ => Unmatched::Tags { tags: lacking },
    };
    reason(unmatched, fix)
}

/// Whether a member is a worker that the dispatcher should consider gone for good.
pub fn is_gone(view: &MembershipView, worker: &str) -> Option<&'static str> {
    match view.get(worker) {
        Some(member) if member.info.role == Role::Worker => match member.state {
            shoal_gossip::MemberState::Live => None,
            shoal_gossip::MemberState::Dead => Some("dead"),
            shoal_gossip::MemberState::Left => Some("left"),
        },
        _ => Some("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{HttpSpec, JobSpec, TargetSpec};
    use shoal_gossip::{MemberState, NodeInfo};

    fn member(id: &str, tags: &[&str], capacity: u32, state: MemberState) -> Member {
        Member {
            info: NodeInfo {
                id: id.into(),
                role: Role::Worker,
                api_addr: String::new(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                capacity,
                running: 0,
                version: "t".into(),
            },
            state,
            generation: 1,
            gossip_addr: "127.0.0.1:1".parse().unwrap(),
            last_seen_ms: 0,
            group: None,
        }
    }

    fn def(strategy: &str, tags: &[&str]) -> JobDefinition {
        JobSpec {
            name: "j".into(),
            on_demand: true,
            strategy: Some(strategy.into()),
            target: Some(TargetSpec {
                tags: tags.iter().map(|t| t.to_string()).collect(),
                workers: vec![],
            }),
            http: HttpSpec {
                url: "http://127.0.0.1/".into(),
                ..HttpSpec::default()
            },
            ..JobSpec::default()
        }
        .validate()
        .unwrap()
    }

    fn view(members: Vec<Member>) -> MembershipView {
        MembershipView { members }
    }

    const HINT: &str = "127.0.0.1:7946";

    fn all(view: &MembershipView) -> HashSet<String> {
        view.members.iter().map(|m| m.info.id.clone()).collect()
    }

    #[test]
    fn live_workers_that_do_not_poll_are_named() {
        let view = view(vec![member("intruder", &[], 4, MemberState::Live)]);
        let none = HashSet::new();
        let candidates = candidates(&view, &HashMap::new(), &HashMap::new(), &none);
        let job = def("least-loaded", &[]);
        let unplaced = choose(1, &job, &candidates, &mut HashMap::new(), HINT).unwrap_err();
        let noted = note_silent_workers(unplaced, &job, &view, &none);
        assert!(
            noted
                .to_string()
                .starts_with("live worker(s) intruder match but are not taking work"),
            "{noted:?}"
        );
    }

    #[test]
    fn a_missing_tag_names_the_tag_the_live_workers_and_the_command() {
        let view = view(vec![
            member("w1", &[], 4, MemberState::Live),
            member("w2", &["eu"], 4, MemberState::Live),
            member("w3", &["billing"], 4, MemberState::Dead),
        ]);
        let candidates = candidates(&view, &HashMap::new(), &HashMap::new(), &all(&view));
        let error = choose(
            1,
            &def("least-loaded", &["billing"]),
            &candidates,
            &mut HashMap::new(),
            HINT,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no live worker carries tag \"billing\" (2 live worker(s): w1,w2); start one with: \
             shoal worker --join 127.0.0.1:7946 --tag billing"
        );
        assert!(error.is_unplaceable());
    }

    #[test]
    fn an_empty_cluster_says_to_start_a_worker() {
        let view = view(vec![]);
        let error = choose(
            1,
            &def("least-loaded", &[]),
            &candidates(&view, &HashMap::new(), &HashMap::new(), &all(&view)),
            &mut HashMap::new(),
            HINT,
        )
        .unwrap_err();
        assert!(error.to_string().starts_with(
            "no live worker in the cluster; start one with: shoal worker --join 127.0.0.1:7946"
        ));
    }

    #[test]
    fn join_hint_names_a_non_default_cluster_the_token_and_the_ca() {
        let addr: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        assert_eq!(join_hint(addr, "shoal", false, false), "127.0.0.1:7946");
        assert_eq!(
            join_hint(addr, "prod", true, false),
            "127.0.0.1:7946 --cluster prod --token \"$SHOAL_TOKEN\""
        );
        assert_eq!(
            join_hint(addr, "shoal", true, true),
            "127.0.0.1:7946 --token \"$SHOAL_TOKEN\" --ca \"$SHOAL_CA\""
        );
    }

    #[test]
    fn a_prefetch_allowance_is_room_beyond_capacity_and_no_more() {
        let view = view(vec![member("a", &[], 2, MemberState::Live)]);
        let prefetch = HashMap::from([("a".to_string(), 2)]);
        let at = |n: u32| {
            let assigned = HashMap::from([("a".to_string(), n)]);
            candidates(&view, &assigned, &prefetch, &all(&view))[0].free()
        };
        assert_eq!((at(0), at(2), at(3), at(4), at(9)), (4, 2, 1, 0, 0));
        let assigned = HashMap::from([("a".to_string(), 4)]);
        let full = candidates(&view, &assigned, &prefetch, &all(&view));
        let error = choose(
            1,
            &def("least-loaded", &[]),
            &full,
            &mut HashMap::new(),
            HINT,
        );
        assert!(
            matches!(error, Err(QueueReason::AtCapacity { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn least_loaded_picks_the_lowest_ratio_and_respects_capacity() {
        let view = view(vec![
            member("a", &[], 2, MemberState::Live),
            member("b", &[], 10, MemberState::Live),
        ]);
        let assigned = HashMap::from([("a".to_string(), 1), ("b".to_string(), 3)]);
        let candidates = candidates(&view, &assigned, &HashMap::new(), &all(&view));
        let chosen = choose(
            1,
            &def("least-loaded", &[]),
            &candidates,
            &mut HashMap::new(),
            HINT,
        )
        .unwrap();
        assert_eq!(chosen.id(), "b");
        let full = HashMap::from([("a".to_string(), 2), ("b".to_string(), 10)]);
        let candidates = super::candidates(&view, &full, &HashMap::new(), &all(&view));
        let error = choose(
            1,
            &def("least-loaded", &[]),
            &candidates,
            &mut HashMap::new(),
            HINT,
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                QueueReason::AtCapacity { .. } | QueueReason::OwnerAtCapacity { .. }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn round_robin_rotates() {
        let view = view(vec![
            member("a", &[], 9, MemberState::Live),
            member("b", &[], 9, MemberState::Live),
        ]);
        let candidates = candidates(&view, &HashMap::new(), &HashMap::new(), &all(&view));
        let mut positions = HashMap::new();
        let picks: Vec<String> = (0..4)
            .map(|_| {
                choose(
                    7,
                    &def("round-robin", &[]),
                    &candidates,
                    &mut positions,
                    HINT,
                )
                .unwrap()
                .id()
                .to_string()
            })
            .collect();
        assert_eq!(picks, ["a", "b", "a", "b"]);
    }

    #[test]
    fn consistent_hash_sticks_to_one_worker_while_it_lives() {
        let members = vec![
            member("a", &[], 9, MemberState::Live),
            member("b", &[], 9, MemberState::Live),
            member("c", &[], 9, MemberState::Live),
        ];
        let full = view(members.clone());
        let candidates = candidates(&full, &HashMap::new(), &HashMap::new(), &all(&full));
        let owner = choose(
            42,
            &def("consistent-hash", &[]),
            &candidates,
            &mut HashMap::new(),
            HINT,
        )
        .unwrap()
        .id()
        .to_string();
        for _ in 0..5 {
            assert_eq!(
                choose(
                    42,
                    &def("consistent-hash", &[]),
                    &candidates,
                    &mut HashMap::new(),
                    HINT
                )
                .unwrap()
                .id(),
                owner
            );
        }
        let without_owner = view(members.into_iter().filter(|m| m.info.id != owner).collect());
        let rest = super::candidates(
            &without_owner,
            &HashMap::new(),
            &HashMap::new(),
            &all(&without_owner),
        );
        let next = choose(
            42,
            &def("consistent-hash", &[]),
            &rest,
            &mut HashMap::new(),
            HINT,
        )
        .unwrap()
        .id()
        .to_string();
        assert_ne!(next, owner);
    }

    #[test]
    fn gone_workers_are_dead_left_or_unknown() {
        let view = view(vec![
            member("live", &[], 1, MemberState::Live),
            member("dead", &[], 1, MemberState::Dead),
            member("left", &[], 1, MemberState::Left),
        ]);
        assert_eq!(is_gone(&view, "live"), None);
        assert_eq!(is_gone(&view, "dead"), Some("dead"));
        assert_eq!(is_gone(&view, "left"), Some("left"));
        assert_eq!(is_gone(&view, "ghost"), Some("unknown"));
    }
}
