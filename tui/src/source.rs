//! The console's only window on the cluster.

use crate::action::Action;
use crate::snapshot::Snapshot;

/// Where snapshots come from and where actions go. The binary implements it
/// over its HTTP client; tests and the benchmark implement it in memory. The
/// console knows nothing else about storage, gossip or HTTP.
pub trait DataSource {
    /// Fetch a fresh snapshot. `Err(message)` means the server is unreachable
    /// or refused; the App keeps showing the last data with a clear
    /// "server unreachable — retrying" state.
    fn refresh(&mut self) -> Result<Snapshot, String>;

    /// Carry out an action. `Ok(message)` / `Err(server's error text)`, both
    /// shown in the status line.
    fn perform(&mut self, action: &Action) -> Result<String, String>;

    /// Read-only mode refused `action`, which the operator asked for. The
    /// console already says so on screen; a source may also record who asked.
    fn refused(&mut self, _action: &Action) {}
}
