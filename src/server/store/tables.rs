//! Table definitions. Keys are typed; records are JSON (self-describing, so fields can be added
//! without a migration).

use redb::TableDefinition;

use crate::alert::AlertId;
use crate::model::{InstanceId, JobId};

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const SCHEMA_KEY: &str = "schema_version";
pub const NEXT_JOB_KEY: &str = "next_job_id";
pub const NEXT_INSTANCE_KEY: &str = "next_instance_id";

pub const JOBS: TableDefinition<JobId, &[u8]> = TableDefinition::new("jobs");
/// Unique job names.
pub const JOB_NAMES: TableDefinition<&str, JobId> = TableDefinition::new("job_names");
/// `(next fire ms, job id)` for every job with a next fire: the scheduler reads its head.
pub const DUE: TableDefinition<(u64, JobId), ()> = TableDefinition::new("due");
pub const INSTANCES: TableDefinition<InstanceId, &[u8]> = TableDefinition::new("instances");
/// Every instance of a job, for per-job listing.
pub const JOB_INSTANCES: TableDefinition<(JobId, InstanceId), ()> =
    TableDefinition::new("job_instances");
/// Non-terminal instances by job: the dispatcher's working set and the concurrency count.
pub const ACTIVE: TableDefinition<(JobId, InstanceId), ()> = TableDefinition::new("active");
/// How many `ACTIVE` entries each job has (jobs with none are absent), so that checking a job's
/// `max_concurrent` is one lookup rather than a scan of its queue. Derived from `ACTIVE`: rebuilt
/// on every open, so a file written by a build that did not keep it is still right.
pub const ACTIVE_COUNTS: TableDefinition<JobId, u64> = TableDefinition::new("active_counts");
/// The replicated engine's record of what the store has applied (the last applied log id and the
/// group's membership), by name, encoded by the engine. Written in the same transaction as the
/// commands it covers, so the store and this record never disagree after a crash.
pub const RAFT_APPLIED: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_applied");

pub const NEXT_ALERT_KEY: &str = "next_alert_id";
/// Alert channels by name (JSON `ChannelDefinition`, secrets included: the server sends with them).
pub const CHANNELS: TableDefinition<&str, &[u8]> = TableDefinition::new("channels");
/// What the alert rule remembers per job (JSON `JobHealth`); absent: nothing yet.
pub const JOB_HEALTH: TableDefinition<JobId, &[u8]> = TableDefinition::new("job_health");
/// The alert outbox: every alert raised, with its delivery status (JSON `Alert`).
pub const ALERTS: TableDefinition<AlertId, &[u8]> = TableDefinition::new("alerts");
/// `(next try ms, alert id)` of every pending alert: the delivery loop reads its head.
pub const ALERTS_DUE: TableDefinition<(u64, AlertId), ()> = TableDefinition::new("alerts_due");
