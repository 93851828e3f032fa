//! Shoal's ops console.
//!
//! An operator opens it over SSH to see at a glance whether the cluster is
//! healthy, what is queued and why, and what failed — and to act on it. The
//! crate owns the state ([`App`]), the views ([`render`]), the key map and the
//! [`Action`]s; it reads [`Snapshot`]s from, and sends actions to, a
//! [`DataSource`] and knows nothing of storage, gossip or HTTP.
//!
//! [`run`] drives it on the real terminal; everything else is pure and is
//! tested against ratatui's `TestBackend`.

mod action;
mod app;
mod filter;
pub mod fixtures;
mod format;
mod keymap;
mod list;
mod snapshot;
mod source;
mod terminal;
mod theme;
mod views;

pub use action::Action;
pub use app::{App, Options, Outcome, View};
pub use snapshot::{
    AttemptRow, ChainLink, ChainOn, InstanceRow, InstanceStatus, JobLink, JobRow, MemberState,
    Snapshot, Stats, Unplaceable, UnplaceableTotals, WorkerRow,
};
pub use source::DataSource;
pub use terminal::{Input, drive, run};
pub use views::render;
