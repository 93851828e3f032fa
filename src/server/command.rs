//! Commands: every change to jobs and instances, as a value. The API, the scheduler, the
//! dispatcher and retention *propose* commands to the engine; the state machine
//! (`machine::apply`) applies them. A command carries everything its change needs from outside —
//! the time, the worker the dispatcher chose, the ids it refers to — so that applying the same
//! commands in the same order to the same store gives the same store, on any server.
//!
//! Commands are encoded (for the replicated log and for recordings) as a version byte followed by
//! MessagePack with field names (`rmp-serde`). MessagePack because it is compact (binary numbers,
//! no quoting) yet self-describing, which the model's internally tagged enums (`Schedule`,
//! `TaskEvent`) need — postcard and bincode cannot decode those. Field names, because a field
//! added with a serde default then decodes from older entries unchanged; the version byte is for
//! the change that cannot be made that way.

use serde::{Deserialize, Serialize};

use crate::alert::{AlertId, ChannelDefinition, Delivery};
use crate::model::{InstanceId, JobDefinition, JobId, UnixMs};
use crate::reason::QueueReason;
use crate::wire::TaskEvent;

/// The encoding version written in front of every encoded command.
pub const COMMAND_VERSION: u8 = 1;

/// One change. Jobs are named by the key the user gave (an id or a name), resolved in the
/// state machine so that the lookup and the change are one atomic step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Store a new job; refused if the name is taken.
    CreateJob { def: JobDefinition, at: UnixMs },
    /// Replace a job's definition; its next fire is recomputed when its timing changed.
    UpdateJob {
        job: String,
        def: JobDefinition,
        at: UnixMs,
    },
    /// Delete a job; its unfinished instances are cancelled, its history kept.
    DeleteJob { job: String, at: UnixMs },
    /// Pause or resume a job.
    SetPaused {
        job: String,
        paused: bool,
        at: UnixMs,
    },
    /// Queue a manual run now (even when paused), within `max_concurrent`.
    RunNow { job: String, at: UnixMs },
    /// Create the job's scheduled fires of `[from, to)` (inside its window) as backfill instances,
    /// all or none; more than `schedule::MAX_BACKFILL` are refused.
    Backfill {
        job: String,
        from: UnixMs,
        to: UnixMs,
        at: UnixMs,
    },
    /// Run a failed or cancelled instance's job again as a new instance (a broadcast copy on
    /// its own worker).
    Retry { instance: InstanceId, at: UnixMs },
    /// Cancel an unfinished instance.
    Cancel { instance: InstanceId, at: UnixMs },
    /// Create the fires due by `now` plus the look-ahead, for at most `limit` jobs after `after`
    /// in the due index, and move each job's next fire on.
    Fire {
        now: UnixMs,
        after: Option<(UnixMs, JobId)>,
        limit: u32,
    },
    /// The dispatcher's decisions of one pass, each applied only if its instance is still as
    /// the step expects.
    Dispatch {
        at: UnixMs,
        steps: Vec<DispatchStep>,
    },
    /// A worker's report of started and finished attempts.
    Report {
        worker: String,
        at: UnixMs,
        events: Vec<TaskEvent>,
    },
    /// Retention: forget finished instances (an unfinished one is never forgotten).
    Forget { instances: Vec<(JobId, InstanceId)> },
    /// Retention: forget alerts sent or given up (a pending one is never forgotten). A command
    /// of its own rather than a field of `Forget`: a server that does not know it refuses to
    /// decode it instead of ignoring the field and keeping what the others forgot.
    ForgetAlerts { alerts: Vec<AlertId> },
    /// The wall clock stepped (or the server started): bring back every next fire that lies
    /// implausibly far ahead of `at` for its schedule (see `schedule::clock_corrected_fire`).
    Reschedule { at: UnixMs },
    /// Create or replace an alert channel.
    PutChannel { def: ChannelDefinition },
    /// Delete an alert channel; refused while a job's alerts name it.
    DeleteChannel { name: String },
    /// The delivery loop's result of one try at sending an alert.
    AlertDelivered {
        alert: AlertId,
        at: UnixMs,
        delivery: Delivery,
    },
}

/// One decision of the dispatcher about one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DispatchStep {
    /// Hand the queued instance to `worker` as attempt `attempt`, leased until `lease_until_ms`.
    Assign {
        instance: InstanceId,
        attempt: u32,
        worker: String,
        lease_until_ms: UnixMs,
    },
    /// `worker` lost attempt `attempt` (dead, left, or its lease lapsed): back to the queue.
    Requeue {
        instance: InstanceId,
        attempt: u32,
        worker: String,
        why: String,
    },
    /// Still queued: record why it cannot be placed now.
    Wait {
        instance: InstanceId,
        reason: QueueReason,
    },
    /// Waited past its job's dispatch timeout: fail it with why it could not be placed.
    Expire {
        instance: InstanceId,
        reason: QueueReason,
    },
    /// Its job was deleted: cancel it.
    Orphan { instance: InstanceId },
    /// A broadcast fire: one copy per worker, each pinned to its worker.
    FanOut {
        instance: InstanceId,
        workers: Vec<String>,
    },
}

impl DispatchStep {
    pub fn instance(&self) -> InstanceId {
        match self {
            DispatchStep::Assign { instance, .. }
            | DispatchStep::Requeue { instance, .. }
            | DispatchStep::Wait { instance, .. }
            | DispatchStep::Expire { instance, .. }
            | DispatchStep::Orphan { instance }
            | DispatchStep::FanOut { instance, .. } => *instance,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty command")]
    Empty,
    #[error(
        "command encoding version {0} is newer than this build understands ({COMMAND_VERSION}); \
         run a newer shoal"
    )]
    NewerVersion(u8),
    #[error("undecodable command: {0}")]
    Body(#[from] rmp_serde::decode::Error),
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![COMMAND_VERSION];
        // Commands hold only plain data (no maps with non-string keys, no custom serializers
        // that fail), so encoding cannot fail; an empty body would be refused on decode.
        if let Err(error) = rmp_serde::encode::write_named(&mut out, self) {
            tracing::error!(%error, "cannot encode a command");
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        match bytes.split_first() {
            None => Err(DecodeError::Empty),
            Some((&COMMAND_VERSION, body)) => Ok(rmp_serde::from_slice(body)?),
            Some((&version, _)) => Err(DecodeError::NewerVersion(version)),
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateJob { .. } => "create-job",
            Command::UpdateJob { .. } => "update-job",
            Command::DeleteJob { .. } => "delete-job",
            Command::SetPaused { .. } => "set-paused",
            Command::RunNow { .. } => "run-now",
            Command::Backfill { .. } => "backfill",
            Command::Retry { .. } => "retry",
            Command::Cancel { .. } => "cancel",
            Command::Fire { .. } => "fire",
            Command::Dispatch { .. } => "dispatch",
            Command::Report { .. } => "report",
            Command::Forget { .. } => "forget",
            Command::ForgetAlerts { .. } => "forget-alerts",
            Command::Reschedule { .. } => "reschedule",
            Command::PutChannel { .. } => "put-channel",
            Command::DeleteChannel { .. } => "delete-channel",
            Command::AlertDelivered { .. } => "alert-delivered",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;
    use crate::wire::TaskResult;

    #[test]
    fn every_kind_of_command_survives_encoding() {
        let commands = vec![
            Command::CreateJob {
                def: test_support::on_demand("a"),
                at: 5,
            },
            Command::UpdateJob {
                job: "a".into(),
                def: test_support::on_demand("b"),
                at: 6,
            },
            Command::Fire {
                now: 7,
                after: Some((7, 1)),
                limit: 512,
            },
            Command::Dispatch {
                at: 8,
                steps: vec![
                    DispatchStep::Assign {
                        instance: 1,
                        attempt: 1,
                        worker: "w".into(),
                        lease_until_ms: 9,
                    },
                    DispatchStep::Wait {
                        instance: 2,
                        reason: QueueReason::Other { text: "why".into() },
                    },
                ],
            },
            Command::Report {
                worker: "w".into(),
                at: 10,
                events: vec![
                    TaskEvent::Started {
                        instance: 1,
                        attempt: 1,
                        at_ms: 9,
                    },
                    TaskEvent::Finished(TaskResult {
                        instance: 1,
                        attempt: 1,
                        started_ms: 9,
                        ended_ms: 10,
                        succeeded: true,
                        http_status: Some(200),
                        error: None,
                        excerpt: Some("ok".into()),
                    }),
                ],
            },
            Command::Forget {
                instances: vec![(1, 2)],
            },
            Command::ForgetAlerts { alerts: vec![3, 4] },
            Command::Reschedule { at: 7 },
            Command::PutChannel {
                def: crate::alert::spec::ChannelSpec {
                    name: "ops".into(),
                    kind: "webhook".into(),
                    url: Some("http://127.0.0.1:1/hook".into()),
                    hmac_key: Some("0123456789abcdef".into()),
                    ..Default::default()
                }
                .validate()
                .unwrap(),
            },
            Command::DeleteChannel { name: "ops".into() },
            Command::AlertDelivered {
                alert: 3,
                at: 11,
                delivery: Delivery::Refused {
                    answer: "HTTP 503".into(),
                },
            },
        ];
        for command in commands {
            let bytes = command.encode();
            assert_eq!(bytes[0], COMMAND_VERSION);
            assert_eq!(Command::decode(&bytes).unwrap(), command);
        }
    }

    #[test]
    fn a_newer_or_empty_encoding_is_refused() {
        let mut bytes = Command::Forget { instances: vec![] }.encode();
        bytes[0] = COMMAND_VERSION + 1;
        assert!(matches!(
            Command::decode(&bytes),
            Err(DecodeError::NewerVersion(_))
        ));
        assert!(matches!(Command::decode(&[]), Err(DecodeError::Empty)));
    }
}
