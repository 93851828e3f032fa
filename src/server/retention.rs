//! The retention sweeper: every `interval`, deletes finished instance history and settled alerts
//! that the policy no longer keeps (see [`crate::server::store::Retention`]), a bounded batch per
//! command so that the scheduler and dispatcher never wait long for the write lock.

use std::sync::Arc;
use std::time::Duration;

use crate::model::{UnixMs, now_ms};
use crate::server::command::Command;
use crate::server::engine::Engine;
use crate::server::machine::{ApplyError, Response};
use crate::server::store::{Retention, Swept};
use crate::shutdown::Shutdown;

/// Finished instances deleted per write transaction.
pub const SWEEP_BATCH: usize = 1_000;

/// How often the sweeper looks, unless `--retain-sweep-every` says otherwise.
pub const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Sweeps until shutdown. The first sweep runs right away (history may have piled up while the
/// server was down).
pub async fn run(
    engine: Arc<dyn Engine>,
    policy: Retention,
    interval: Duration,
    mut shutdown: Shutdown,
) {
    if policy.max_age_ms.is_none() && policy.per_job.is_none() {
        return;
    }
    loop {
        let batch_engine = engine.clone();
        let swept = tokio::task::spawn_blocking(move || {
            sweep_batch(batch_engine.as_ref(), &policy, now_ms(), SWEEP_BATCH)
        })
        .await;
        let more = match swept {
            Ok(Ok(swept)) => {
                if swept.total() > 0 {
                    tracing::debug!(
                        by_age = swept.by_age,
                        by_count = swept.by_count,
                        alerts = swept.alerts,
                        "retention deleted finished instances and settled alerts"
                    );
                }
                swept.full(SWEEP_BATCH)
            }
            Ok(Err(error)) if error.is_storage_fault() => {
                tracing::debug!(%error, "retention: storage refuses writes");
                false
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "retention sweep failed");
                false
            }
            Err(error) => {
                tracing::error!(%error, "retention sweep panicked");
                false
            }
        };
        // A full batch means more is due: go on after a breath, else wait for the next round.
        let pause = if more {
            Duration::from_millis(10)
        } else {
            interval
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Forgets at most `batch` finished instances and at most `batch` settled alerts that `policy`
/// no longer keeps: found in a read snapshot, forgotten by a `Forget` and a `ForgetAlerts`
/// command. Call again while it returns a full batch ([`Swept::full`]).
pub fn sweep_batch(
    engine: &dyn Engine,
    policy: &Retention,
    now: UnixMs,
    batch: usize,
) -> Result<Swept, ApplyError> {
    let (doomed, mut swept) = engine.store().expired(policy, now, batch)?;
    if !doomed.is_empty() {
        let forgotten = engine.propose(Command::Forget { instances: doomed })?;
        debug_assert!(matches!(forgotten, Response::Forgot(_)));
    }
    let alerts = engine.store().expired_alerts(policy, now, batch)?;
    swept.alerts = alerts.len() as u64;
    if !alerts.is_empty() {
        let forgotten = engine.propose(Command::ForgetAlerts { alerts })?;
        debug_assert!(matches!(forgotten, Response::ForgotAlerts(_)));
    }
    Ok(swept)
}

/// Sweeps until nothing more is due, `batch` instances per command.
#[cfg(test)]
pub fn sweep(
    engine: &dyn Engine,
    policy: &Retention,
    now: UnixMs,
    batch: usize,
) -> Result<Swept, ApplyError> {
    let mut total = Swept::default();
    loop {
        let swept = sweep_batch(engine, policy, now, batch)?;
        total.by_age += swept.by_age;
        total.by_count += swept.by_count;
        total.alerts += swept.alerts;
        if !swept.full(batch) {
            return Ok(total);
        }
    }
}
