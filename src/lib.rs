//! Shoal: a distributed job scheduler. A server stores job schedules durably, fires them on time
//! and assigns HTTP tasks to live workers found by gossip; workers run them and report back.
//!
//! The folders are the processes (dependencies point down this list, never up):
//! - `cli` — the `shoal` command line: the front door to every process below.
//! - `local` — a whole cluster in one process (`shoal up`, `shoal demo`) and a test HTTP target.
//! - `server` — the server: API, service, engine, state machine, scheduler, dispatcher, store,
//!   retention.
//! - `worker` — the worker: long-polls for assignments, runs them, reports.
//! - `client` — the typed API client and the console's data source (`shoal tui`).
//!
//! And the small core they share:
//! - `wire` — what processes say to each other (worker protocol, admin API types).
//! - `spec` — the user-facing job format and its validation; `model` — the typed domain;
//!   `reason` — why a queued instance waits, typed; `schedule` — next-fire computation and the
//!   misfire policy (pure functions); `http_options` — a job's TLS, proxy and connect-timeout
//!   options and the HTTP client built from them.
//! - `alert` — alert channels, job alert policies and chains, and the pure rule that decides
//!   whether an instance's end alerts.
//! - `handshake` — the proofs by which a worker and a server know each other holds the token;
//!   `tls` — the API's TLS: the server's certificate, the clients' trust, the one builder of a
//!   client for a Shoal server, and the refusals when one side speaks HTTP and the other HTTPS.
//! - `node`, `net`, `shutdown`, `telemetry` — what every daemon needs.
//!
//! Membership lives in the `shoal-gossip` crate, the console's screens in `shoal-tui`.

pub mod alert;
pub mod cli;
pub mod client;
pub mod handshake;
pub mod http_options;
pub mod local;
pub mod model;
pub(crate) mod net;
pub mod node;
pub(crate) mod reason;
pub mod schedule;
pub mod server;
pub mod shutdown;
pub mod spec;
pub(crate) mod telemetry;
#[cfg(test)]
mod test_pki;
#[cfg(test)]
mod test_support;
pub mod tls;
pub(crate) mod wire;
pub mod worker;

/// This build's version, advertised in gossip and shown by the API.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
