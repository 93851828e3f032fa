//! The scheduler loop: sleeps until the earliest fire comes within [`LOOKAHEAD_MS`] (or until
//! jobs change), then proposes `Fire` commands, a batch of jobs each, with which the state machine
//! creates the instances of the fires due by then and moves each job's next fire on. A fire whose time has not come yet is created as
//! queued with `not_before_ms` = its fire time; the dispatcher holds it until then. A crash
//! before the commit loses nothing (the fire is still due); after it, nothing is doubled (the next
//! fire has moved).

use std::sync::Arc;
use std::time::Duration;

use crate::model::{UnixMs, now_ms};
use crate::schedule::LOOKAHEAD_MS;
use crate::server::command::Command;
use crate::server::engine::Engine;
use crate::server::machine::{ApplyError, Fired, Response};
use crate::shutdown::Shutdown;

/// Jobs handled per transaction: large enough to amortize the commit, small enough to keep the
/// write lock short.
const BATCH: usize = 512;
/// Even with nothing due, look again this often: missed wake-ups, and a wall-clock step is
/// noticed within this (see `clock`).
const MAX_SLEEP: Duration = Duration::from_secs(5);

/// Proposes `Fire` commands; the state machine creates the instances. Woken by the feed when
/// a job's timing changed or an instance ended.
pub struct Scheduler {
    engine: Arc<dyn Engine>,
}

impl Scheduler {
    pub fn new(engine: Arc<dyn Engine>) -> Scheduler {
        Scheduler { engine }
    }

    pub async fn run(self, mut shutdown: Shutdown) {
        let feed = self.engine.store().feed().clone();
        // The clock may have stepped while the server was down: check every stored next fire.
        self.reschedule(now_ms()).await;
        let mut clock = clock::ClockWatch::new();
        loop {
            let engine = self.engine.clone();
            let now = now_ms();
            if let Some(step) = clock.step(now) {
                tracing::warn!(
                    step_ms = step,
                    "wall clock stepped {} by {}; next fires implausibly far ahead are recomputed",
                    if step < 0 { "backwards" } else { "forwards" },
                    crate::model::human_ms(step.unsigned_abs())
                );
                self.reschedule(now).await;
            }
            // The dispatcher hears of each committed batch at once (through the feed), not after
            // the last one: with thousands of jobs due together, the first are dispatched while
            // the rest are written.
            let fired = tokio::task::spawn_blocking(move || fire_round(engine.as_ref(), now)).await;
            let held_until = match fired {
                Ok(Ok(round)) => {
                    if round.created > 0 {
                        tracing::debug!(created = round.created, "instances fired");
                    }
                    round.held_until
                }
                // Fires may be left due: look again in a second, not only at the next horizon.
                // The store logs a storage fault once, and wakes this loop when it recovers.
                Ok(Err(error)) if error.is_storage_fault() => {
                    tracing::debug!(%error, "scheduler: storage refuses writes");
                    Some(now + 1_000)
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "scheduler could not fire due jobs");
                    Some(now + 1_000)
                }
                Err(error) => {
                    tracing::error!(%error, "scheduler task failed");
                    Some(now + 1_000)
                }
            };
            let sleep = self.time_until_next_round(now + LOOKAHEAD_MS, held_until);
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = feed.scheduler_bell().notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Proposes `Reschedule` as of `now` and logs the jobs it moved. A failure is logged; the
    /// next step (or restart) tries again.
    async fn reschedule(&self, now: UnixMs) {
        let engine = self.engine.clone();
        let done =
            tokio::task::spawn_blocking(move || engine.propose(Command::Reschedule { at: now }))
                .await;
        match done {
            Ok(Ok(Response::Rescheduled(moved))) => {
                for (job, stored, next) in &moved {
                    tracing::info!(%job, stored_next_fire = %crate::model::rfc3339(*stored),
                        next_fire = %next.map(crate::model::rfc3339).unwrap_or_default(),
                        "next fire was far ahead of the clock (it stepped back): brought back");
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not recompute next fires"),
            Err(error) => tracing::error!(%error, "reschedule task failed"),
        }
    }

    /// Until the first fire after this round's horizon comes within the look-ahead, or until the
    /// earliest held fire is due (whichever is first). Held jobs stay in the due index before the
    /// horizon; the next round looks at them again, and so does any round woken by an instance
    /// ending, which may have made room for them.
    fn time_until_next_round(&self, horizon: UnixMs, held_until: Option<UnixMs>) -> Duration {
        let earliest = self
            .engine
            .store()
            .read()
            .and_then(|r| r.earliest_due_after(horizon));
        let next = match earliest {
            Ok(next) => next.map(|at| at - LOOKAHEAD_MS),
            Err(error) => {
                tracing::error!(%error, "scheduler cannot read the due index");
                Some(now_ms() + 1_000)
            }
        };
        match next.into_iter().chain(held_until).min() {
            Some(at) => {
                Duration::from_millis((at - now_ms()).clamp(0, MAX_SLEEP.as_millis() as i64) as u64)
            }
            None => MAX_SLEEP,
        }
    }
}

/// What one round of the scheduler did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Instances created.
    pub created: usize,
    /// The earliest fire left for later because its job had no room for it yet (see
    /// `fire_batch`).
    pub held_until: Option<UnixMs>,
}

/// Fires every job due by `now` + [`LOOKAHEAD_MS`]; returns how many instances were created.
pub fn fire_everything_due(engine: &dyn Engine, now: UnixMs) -> Result<usize, ApplyError> {
    Ok(fire_round(engine, now)?.created)
}

/// Proposes `Fire` commands of [`BATCH`] jobs each until every job due by `now` plus the
/// look-ahead has been looked at.
pub fn fire_round(engine: &dyn Engine, now: UnixMs) -> Result<Round, ApplyError> {
    let mut round = Round::default();
    let mut after = None;
    loop {
        let command = Command::Fire {
            now,
            after,
            limit: BATCH as u32,
        };
        let Response::Fired(Fired {
            jobs,
            created,
            last,
            held_until,
        }) = engine.propose(command)?
        else {
            return Ok(round);
        };
        round.created += created;
        round.held_until = round.held_until.into_iter().chain(held_until).min();
        if jobs < BATCH {
            return Ok(round);
        }
        after = last;
    }
}

mod clock;
#[cfg(test)]
mod lookahead_tests;
