//! The storage recovery loop: while the store is degraded (a full disk, an I/O error), it asks the
//! store to reopen its database, with backoff, and once writes succeed again it wakes the
//! scheduler and the dispatcher so that they resume at once. It never writes jobs or instances
//! and never logs per attempt: the store logs each change of state once.

use std::sync::Arc;
use std::time::Duration;

use crate::server::store::{Recovery, Store};
use crate::shutdown::Shutdown;

/// First pause between recovery attempts; doubled per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest pause between attempts: how long writes may stay refused after space is freed.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

pub async fn run(store: Arc<Store>, mut shutdown: Shutdown) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if store.degraded().is_none() {
            backoff = FIRST_BACKOFF;
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = store.degraded_bell().notified() => {}
            }
            continue;
        }
        let attempt = store.clone();
        let recovery = tokio::task::spawn_blocking(move || attempt.try_recover()).await;
        match recovery {
            Ok(Recovery::Recovered) => {
                // Fires and dispatches refused meanwhile are still due: go now, not at the next
                // tick.
                store.feed().scheduler_bell().notify_one();
                store.feed().dispatcher_bell().notify_one();
                continue;
            }
            Ok(Recovery::NotNeeded) => continue,
            Ok(Recovery::WaitingForSpace { free_bytes }) => {
                tracing::debug!(free_bytes, "storage: waiting for free space to reopen");
            }
            Ok(Recovery::Failed(error)) => {
                tracing::debug!(%error, "storage: reopen failed; retrying");
            }
            Ok(Recovery::RestartNeeded) => {
                // Usually moot: the failed apply has stopped the group's Raft node, and the
                // process exits for a restart.
                tracing::error!(
                    "storage: the store of a server in a group is not reopened in place (that \
                     would drop what the group counts applied); restart the server once the \
                     disk is fixed: it applies the group's log again from its last durable point"
                );
                shutdown.wait().await;
                return;
            }
            Err(error) => tracing::error!(%error, "storage recovery task panicked"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
