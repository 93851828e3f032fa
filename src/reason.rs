//! Why a queued instance waits, as a typed value: what matched nothing, which workers are live,
//! and the command that fixes it. The dispatcher builds these, the store keeps them as they are,
//! and they become text only at the edges (the API's `reason` field, the CLI, logs) — the
//! console reads the fields, never the prose.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::human_ms;

/// Why an instance is (still, or again) in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum QueueReason {
    /// No live worker can take it: nothing changes until one joins (or starts polling).
    NoWorker {
        unmatched: Unmatched,
        /// The live, polling workers at the time.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        live: Vec<String>,
        /// Live workers that match but never polled the server (a wrong token, usually).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        silent: Vec<String>,
        /// The command that starts a worker that would take it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fix: Option<String>,
    },
    /// Matching workers exist but have no free slot: it runs when one frees.
    AtCapacity {
        workers: Vec<String>,
        /// The command that adds capacity.
        fix: String,
    },
    /// A consistent-hash job waits for its own worker, which is full.
    OwnerAtCapacity { worker: String },
    /// Its job already runs `max_concurrent` instances (a fire buffered by the job's overlap
    /// policy, or a backfill): it runs when one of them ends.
    JobAtConcurrency { running: u32, max: u32 },
    /// An attempt failed and a retry waits for its backoff.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        error: String,
        /// Which retry this will be, of how many.
        retry: u32,
        retries: u32,
        delay_ms: u64,
    },
    /// The worker holding it was lost; it waits for another.
    Requeued { worker: String, why: String },
    /// A reason stored as text by an older build (never parsed).
    Other { text: String },
}

/// What a queued instance's job asks for that no live worker offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "kebab-case")]
pub enum Unmatched {
    /// No worker at all is live.
    EmptyCluster,
    /// The job names workers by id and none of them is live.
    DesignatedWorkers { workers: Vec<String> },
    /// One tag no live worker carries.
    Tag { tag: String },
    /// Several tags, none carried by any live worker.
    Tags { tags: Vec<String> },
    /// Each tag is carried by someone, but no worker carries them all.
    AllTags { tags: Vec<String> },
    /// A broadcast copy's own worker is not live or not polling.
    PinnedWorker { worker: String },
}

impl QueueReason {
    /// Every [`QueueReason::kind`], for metrics that list each kind even when none waits.
    pub const KINDS: [&'static str; 7] = [
        "no-worker",
        "at-capacity",
        "owner-at-capacity",
        "job-at-concurrency",
        "retrying",
        "requeued",
        "other",
    ];

    /// The reason's kind, as it is tagged in JSON (`why.kind`): a bounded set, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            QueueReason::NoWorker { .. } => "no-worker",
            QueueReason::AtCapacity { .. } => "at-capacity",
            QueueReason::OwnerAtCapacity { .. } => "owner-at-capacity",
            QueueReason::JobAtConcurrency { .. } => "job-at-concurrency",
            QueueReason::Retrying { .. } => "retrying",
            QueueReason::Requeued { .. } => "requeued",
            QueueReason::Other { .. } => "other",
        }
    }

    /// Whether no live worker can take the instance at all (as opposed to workers being busy, a
    /// retry waiting, or a broadcast copy waiting for its own worker): the console's banner.
    pub fn is_unplaceable(&self) -> bool {
        matches!(self, QueueReason::NoWorker { unmatched, .. }
            if !matches!(unmatched, Unmatched::PinnedWorker { .. }))
    }

    /// The command that would let the instance run, if there is one.
    pub fn fix(&self) -> Option<&str> {
        match self {
            QueueReason::NoWorker { fix, .. } => fix.as_deref(),
            QueueReason::AtCapacity { fix, .. } => Some(fix),
            _ => None,
        }
    }

    /// The reason without its fix command (the console shows the two apart).
    pub fn why(&self) -> String {
        match self {
            QueueReason::NoWorker {
                unmatched,
                live,
                silent,
                ..
            } => {
                let what = unmatched_text(unmatched, live);
                if silent.is_empty() {
                    what
                } else {
                    format!(
                        "live worker(s) {} match but are not taking work: they have not polled the \
                         server (wrong --token, a TLS mismatch such as --ca against a plain-HTTP \
                         server, or the server's API is unreachable from them; see their logs). \
                         {what}",
                        silent.join(",")
                    )
                }
            }
            QueueReason::AtCapacity { workers, .. } => format!(
                "all {} matching worker(s) are at capacity ({}); it runs when one frees a slot",
                workers.len(),
                workers.join(",")
            ),
            QueueReason::OwnerAtCapacity { worker } => format!(
                "consistent-hash keeps this job on worker {worker}, which is at capacity; it runs \
                 when that worker frees a slot"
            ),
            QueueReason::JobAtConcurrency { running, max } => format!(
                "its job already runs {running} instance(s), its max_concurrent of {max}; it runs \
                 when one ends"
            ),
            QueueReason::Retrying {
                attempt,
                error,
                retry,
                retries,
                delay_ms,
            } => format!(
                "attempt {attempt} failed: {error}; retry {retry} of {retries} in {}",
                human_ms(*delay_ms)
            ),
            QueueReason::Requeued { worker, why } => {
                format!("worker {worker} lost ({why}); re-queued")
            }
            QueueReason::Other { text } => text.clone(),
        }
    }
}

fn unmatched_text(unmatched: &Unmatched, live: &[String]) -> String {
    let live_list = if live.is_empty() {
        "no live workers".to_string()
    } else {
        format!("{} live worker(s): {}", live.len(), live.join(","))
    };
    match unmatched {
        Unmatched::EmptyCluster => "no live worker in the cluster".to_string(),
        Unmatched::DesignatedWorkers { workers } => format!(
            "none of the designated workers ({}) is live ({live_list})",
            workers.join(",")
        ),
        Unmatched::Tag { tag } => format!("no live worker carries tag {tag:?} ({live_list})"),
        Unmatched::Tags { tags } => format!("no live worker carries tags {tags:?} ({live_list})"),
        Unmatched::AllTags { tags } => {
            format!("no live worker carries all of the tags {tags:?} ({live_list})")
        }
        Unmatched::PinnedWorker { worker } => format!(
            "broadcast copy for worker {worker}, which is not live or not polling; it runs when \
             {worker} is back, or fails after the job's dispatch timeout"
        ),
    }
}

impl fmt::Display for QueueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = self.why();
        match self {
            QueueReason::NoWorker { fix: Some(fix), .. } => {
                write!(f, "{why}; start one with: {fix}")
            }
            QueueReason::AtCapacity { fix, .. } => write!(f, "{why} — or add capacity: {fix}"),
            _ => f.write_str(&why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_worker(unmatched: Unmatched, silent: &[&str]) -> QueueReason {
        QueueReason::NoWorker {
            unmatched,
            live: vec!["w1".into(), "w2".into()],
            silent: silent.iter().map(|s| s.to_string()).collect(),
            fix: Some("shoal worker --join 127.0.0.1:7946 --tag gpu".into()),
        }
    }

    #[test]
    fn renders_the_reason_and_the_fix_and_keeps_them_apart() {
        let reason = no_worker(Unmatched::Tag { tag: "gpu".into() }, &[]);
        assert_eq!(
            reason.to_string(),
            "no live worker carries tag \"gpu\" (2 live worker(s): w1,w2); start one with: shoal \
             worker --join 127.0.0.1:7946 --tag gpu"
        );
        assert_eq!(
            reason.why(),
            "no live worker carries tag \"gpu\" (2 live worker(s): w1,w2)"
        );
        assert_eq!(
            reason.fix(),
            Some("shoal worker --join 127.0.0.1:7946 --tag gpu")
        );
        assert!(reason.is_unplaceable());
    }

    #[test]
    fn silent_workers_are_named_before_what_matched_nothing() {
        let reason = no_worker(Unmatched::EmptyCluster, &["intruder"]);
        assert!(
            reason
                .to_string()
                .starts_with("live worker(s) intruder match but are not taking work"),
            "{reason}"
        );
        assert!(reason.is_unplaceable());
    }

    #[test]
    fn waiting_for_capacity_a_retry_or_a_pinned_worker_is_not_unplaceable() {
        let pinned = QueueReason::NoWorker {
            unmatched: Unmatched::PinnedWorker {
                worker: "w1".into(),
            },
            live: vec![],
            silent: vec![],
            fix: None,
        };
        let retry = QueueReason::Retrying {
            attempt: 1,
            error: "expected status 200, got 500".into(),
            retry: 1,
            retries: 2,
            delay_ms: 1000,
        };
        assert_eq!(
            retry.to_string(),
            "attempt 1 failed: expected status 200, got 500; retry 1 of 2 in 1s"
        );
        for reason in [
            pinned,
            retry,
            QueueReason::OwnerAtCapacity { worker: "w".into() },
        ] {
            assert!(!reason.is_unplaceable(), "{reason}");
        }
    }

    #[test]
    fn a_reason_round_trips_through_json_with_its_kind() {
        let reason = no_worker(
            Unmatched::Tags {
                tags: vec!["a".into(), "b".into()],
            },
            &[],
        );
        let json = serde_json::to_value(&reason).unwrap();
        assert_eq!(json["kind"], "no-worker");
        assert_eq!(json["unmatched"]["what"], "tags");
        assert_eq!(serde_json::from_value::<QueueReason>(json).unwrap(), reason);
    }
}
