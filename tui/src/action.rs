//! What the operator can ask the cluster to do.
//!
//! `Action` is the only thing that crosses from the console to the
//! [`DataSource`](crate::DataSource); UI-internal movement (selection, views,
//! overlays) never leaves the [`App`](crate::App).

use std::fmt;

/// A change to the cluster, sent through [`DataSource::perform`](crate::DataSource::perform)
/// after the operator confirmed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Enqueue an instance of the job now, outside its schedule.
    RunJob { job_id: u64, name: String },
    /// Pause (`paused: true`) or resume a job's schedule.
    SetPaused {
        job_id: u64,
        name: String,
        paused: bool,
    },
    /// Enqueue a finished instance again.
    RetryInstance { id: u64 },
    /// Stop a queued or running instance.
    CancelInstance { id: u64 },
}

impl Action {
    /// Whether the action changes cluster state. Read-only mode refuses
    /// exactly these; today that is every action, but the check lives here so
    /// a future read-only action (e.g. "fetch logs") needs no other change.
    pub fn is_destructive(&self) -> bool {
        match self {
            Action::RunJob { .. }
            | Action::SetPaused { .. }
            | Action::RetryInstance { .. }
            | Action::CancelInstance { .. } => true,
        }
    }

    /// The question the confirm dialog asks.
    pub fn prompt(&self) -> String {
        match self {
            Action::RunJob { job_id, name } => format!("Run job {name} (#{job_id}) now?"),
            Action::SetPaused {
                job_id,
                name,
                paused: true,
            } => format!("Pause job {name} (#{job_id})? Its schedule stops firing."),
            Action::SetPaused {
                job_id,
                name,
                paused: false,
            } => format!("Resume job {name} (#{job_id})?"),
            Action::RetryInstance { id } => format!("Retry instance {id}?"),
            Action::CancelInstance { id } => format!("Cancel instance {id}?"),
        }
    }
}

/// What the action does, for the status line: "run job nightly".
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::RunJob { name, .. } => write!(f, "run job {name}"),
            Action::SetPaused {
                name, paused: true, ..
            } => write!(f, "pause job {name}"),
            Action::SetPaused {
                name,
                paused: false,
                ..
            } => write!(f, "resume job {name}"),
            Action::RetryInstance { id } => write!(f, "retry instance {id}"),
            Action::CancelInstance { id } => write!(f, "cancel instance {id}"),
        }
    }
}
