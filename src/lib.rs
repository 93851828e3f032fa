//! Shoal: a distributed job scheduler. A server stores job schedules durably, fires them on time
//! and assigns HTTP tasks to live workers found by gossip; workers run them and report back.
//!
//! Module map (dependencies point down this list, never up):
//! - `cli` — the `shoal` command line: parses flags, calls the daemons or the API client.
//! - `demo`, `local` — a whole cluster in one process (`shoal demo`, `shoal up`).
//! - `server`, `worker` — the two daemons, wiring the pieces below together.
//! - `console` — `shoal tui`: feeds the `shoal-tui` ops console from the API client.
//! - `api` — the HTTP API (admin REST + worker RPC); `client` — its typed client.
//! - `service` — operations on jobs and instances, one store transaction each.
//! - `schedule` — next-fire computation, misfire policy, and the scheduler loop.
//! - `spec` — the user-facing job format and its validation; `model` — the typed domain;
//!   `http_options` — a job's TLS, proxy and connect-timeout options and the client built from them.
//! - `store` — redb; the only module that touches it. `retention` — the history sweeper.
//! - `node`, `net`, `shutdown`, `telemetry` — what both daemons share.
//!
//! Membership lives in the `shoal-gossip` crate, the console in `shoal-tui`.

pub mod api;
pub mod cli;
pub mod client;
pub mod console;
pub mod demo;
pub mod dispatch;
pub mod http_options;
pub mod local;
pub mod model;
pub mod net;
pub mod node;
pub mod retention;
pub mod schedule;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod spec;
pub mod store;
pub mod target;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod worker;

/// This build's version, advertised in gossip and shown by the API.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
