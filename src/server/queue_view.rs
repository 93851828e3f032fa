//! The queue counted as a whole (`GET /api/v1/queue`, the console's header and no-worker
//! banner): totals, counts by typed reason, the longest wait, the deepest jobs, and the work no
//! live worker can take, by job, with its newest reason and fix. One pass over the unfinished
//! instances, whoever holds them: the leading server's dispatcher counts its in-memory working
//! set (nothing read from the store); a server that does not lead — a follower of a group, or
//! one between terms — counts the store's unfinished instances, decoding each once. Either way
//! the cost follows the unfinished instances, never jobs × instances. Pure: no I/O here.

use std::collections::{BTreeMap, HashMap};

use crate::model::{Instance, InstanceState, JobId, UnixMs};
use crate::reason::QueueReason;
use crate::wire::admin::{
    JobQueue, OldestQueued, QueueSummary, ReasonCount, UnplaceableJob, UnplaceableSummary,
};

/// Most jobs a [`QueueSummary`] lists by queue depth.
pub const TOP_JOBS: usize = 20;
/// Most jobs a [`QueueSummary`] lists with work no worker can take (its totals count them all).
pub const TOP_UNPLACEABLE: usize = 50;
/// The reason kind of a queued instance no pass has looked at yet: the next one places it.
const READY: &str = "ready";
/// The reason kind of a queued instance whose time has not come (a fire created ahead).
const HELD: &str = "held";

/// Counts `instances` (unfinished ones, oldest first: a later instance's reason replaces an
/// earlier one's as its job's newest) at `now`.
pub fn summarize<'a>(
    instances: impl IntoIterator<Item = &'a Instance>,
    now: UnixMs,
) -> QueueSummary {
    let mut by_reason: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut jobs: HashMap<JobId, JobQueue> = HashMap::new();
    let mut stuck: HashMap<JobId, UnplaceableJob> = HashMap::new();
    let mut oldest: Option<OldestQueued> = None;
    let (mut queued, mut running) = (0u64, 0u64);
    // Oldest first: a later instance's reason replaces an earlier one's (the newest wins).
    for instance in instances {
        let job = jobs.entry(instance.job_id).or_insert_with(|| JobQueue {
            job_id: instance.job_id,
            job: instance.job_name.clone(),
            queued: 0,
            running: 0,
        });
        let InstanceState::Queued {
            reason,
            not_before_ms,
            since_ms,
        } = &instance.state
        else {
            if instance.state.worker().is_some() {
                running += 1;
                job.running += 1;
            }
            continue;
        };
        queued += 1;
        job.queued += 1;
        let kind = match reason {
            Some(reason) => reason.kind(),
            None if not_before_ms.is_some_and(|at| at > now) => HELD,
            None => READY,
        };
        *by_reason.entry(kind).or_default() += 1;
        if oldest.as_ref().is_none_or(|o| *since_ms < o.since_ms) {
            oldest = Some(OldestQueued {
                instance: instance.id,
                job_id: instance.job_id,
                job: instance.job_name.clone(),
                since_ms: *since_ms,
                waited_ms: u64::try_from(now - since_ms).unwrap_or(0),
            });
        }
        if let Some(reason) = reason.as_ref().filter(|r| r.is_unplaceable()) {
            let group = stuck
                .entry(instance.job_id)
                .or_insert_with(|| UnplaceableJob {
                    job_id: instance.job_id,
                    job: instance.job_name.clone(),
                    queued: 0,
                    why: String::new(),
                    fix: None,
                    reason: reason.clone(),
                });
            group.queued += 1;
            group.reason = reason.clone();
        }
    }
    let mut jobs: Vec<JobQueue> = jobs.into_values().filter(|j| j.queued > 0).collect();
    let queued_jobs = jobs.len() as u64;
    jobs.sort_unstable_by(|a, b| b.queued.cmp(&a.queued).then(a.job_id.cmp(&b.job_id)));
    jobs.truncate(TOP_JOBS);
    let mut groups: Vec<UnplaceableJob> = stuck.into_values().collect();
    let unplaceable = UnplaceableSummary {
        queued: groups.iter().map(|g| g.queued).sum(),
        jobs: groups.len() as u64,
        groups: Vec::new(),
    };
    groups.sort_unstable_by(|a, b| b.queued.cmp(&a.queued).then(a.job_id.cmp(&b.job_id)));
    groups.truncate(TOP_UNPLACEABLE);
    for group in &mut groups {
        group.why = group.reason.why();
        group.fix = group.reason.fix().map(str::to_string);
    }
    QueueSummary {
        at_ms: now,
        queued,
        running,
        queued_jobs,
        by_reason: [READY, HELD]
            .into_iter()
            .chain(QueueReason::KINDS)
            .map(|kind| ReasonCount {
                kind: kind.to_string(),
                queued: by_reason.get(kind).copied().unwrap_or(0),
            })
            .collect(),
        oldest,
        top_jobs: jobs,
        unplaceable: UnplaceableSummary {
            groups,
            ..unplaceable
        },
    }
}

/// Each of `jobs`' queued, and assigned or running, instances among `instances`.
pub fn job_counts<'a>(
    instances: impl IntoIterator<Item = &'a Instance>,
    jobs: &[JobId],
) -> Vec<(u32, u32)> {
    let mut counts: HashMap<JobId, (u32, u32)> = jobs.iter().map(|id| (*id, (0, 0))).collect();
    for instance in instances {
        if let Some((queued, running)) = counts.get_mut(&instance.job_id) {
            match &instance.state {
                InstanceState::Queued { .. } => *queued += 1,
                state if state.worker().is_some() => *running += 1,
                _ => {}
            }
        }
    }
    jobs.iter().map(|id| counts[id]).collect()
}
