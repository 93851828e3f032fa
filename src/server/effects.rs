//! What applying commands changed, and the feed that tells the scheduler and the dispatcher.
//!
//! The state machine (`machine::apply`) records into each command's [`Effects`] what moved: the
//! instances it wrote (as written), and whether work was queued, a worker slot freed, an instance
//! ended, or a job's timing changed. The engine publishes a command's effects to the [`Feed`]
//! only once the command is durable, in the order commands were applied, so a subscriber never
//! hears of a change it could not read back, and never hears of two changes out of order.
//!
//! This module owns no state of the store and decides nothing: it carries facts from `apply` to
//! the loops that act on them, replacing wake-ups wired by hand between components.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::model::Instance;

/// What one or more applied commands changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    /// Instances as written, in the order they were written (an instance may appear more than
    /// once; the last is current).
    pub written: Vec<Instance>,
    /// Work became dispatchable or will be (instances queued, created ahead, re-queued).
    pub queued: bool,
    /// A worker slot was freed (an attempt ended, was requeued or cancelled).
    pub freed: bool,
    /// An instance reached a terminal state (a fixed-delay job may be due again, a job under its
    /// `max_concurrent` may fire).
    pub ended: bool,
    /// A job's definition or next fire changed by an operator (created, updated, paused,
    /// resumed, deleted): the scheduler must look at the due index again.
    pub timing_changed: bool,
    /// An alert was raised or is to be tried again: the delivery loop has work.
    pub alerts: bool,
}

impl Effects {
    /// Appends `later`, which happened after `self`.
    pub fn merge(&mut self, later: Effects) {
        if self.written.is_empty() {
            self.written = later.written;
        } else {
            self.written.extend(later.written);
        }
        self.queued |= later.queued;
        self.freed |= later.freed;
        self.ended |= later.ended;
        self.timing_changed |= later.timing_changed;
        self.alerts |= later.alerts;
    }

    fn wakes_dispatcher(&self) -> bool {
        self.queued || self.freed
    }

    fn wakes_scheduler(&self) -> bool {
        self.timing_changed || self.ended
    }
}

/// Where durable effects are published, in apply order. One per server.
#[derive(Default)]
pub struct Feed {
    /// Instances written since the dispatcher last took them; `None` until it follows them.
    written: Mutex<Option<Vec<Instance>>>,
    /// Rung when work was queued or a slot freed (the dispatch loop waits on it).
    dispatcher: Notify,
    /// Rung when timings changed or an instance ended (the scheduler loop waits on it).
    scheduler: Notify,
    /// Rung when alerts were raised or rescheduled (the alert delivery loop waits on it).
    alerts: Notify,
    /// Where applied commands are appended, when recording (see `engine::LocalEngine`).
    recording: Mutex<Option<std::io::BufWriter<std::fs::File>>>,
    is_recording: std::sync::atomic::AtomicBool,
    /// Who is told of every commit and its effects (the server's metrics), if anyone.
    observer: std::sync::OnceLock<std::sync::Arc<dyn Observer>>,
    /// How many published commits changed a job's definition (see [`Feed::definitions_changed`]).
    definitions: std::sync::atomic::AtomicU64,
}

/// Watches commits from outside the state machine (metrics): told of each durable commit and of
/// the effects it published, in commit order, on the committing thread — so it must be quick and
/// must never write to the store.
pub trait Observer: Send + Sync {
    /// A batch of `changes` (group commit members) became durable; the commit took `took`.
    fn committed(&self, changes: usize, took: std::time::Duration);
    /// The effects of a durable commit, just before they are published.
    fn published(&self, effects: &Effects);
}

impl Feed {
    /// Called by the engine once the commands that caused `effects` are durable, in the order
    /// they were applied.
    pub fn publish(&self, effects: Effects) {
        if let Some(observer) = self.observer.get() {
            observer.published(&effects);
        }
        if effects.timing_changed {
            self.definitions
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        let (dispatcher, scheduler) = (effects.wakes_dispatcher(), effects.wakes_scheduler());
        if let Some(feed) = lock(&self.written).as_mut() {
            feed.extend(effects.written);
        }
        if dispatcher {
            self.dispatcher.notify_one();
        }
        if scheduler {
            self.scheduler.notify_one();
        }
        if effects.alerts {
            self.alerts.notify_one();
        }
    }

    /// How many published commits changed a job's definition (created, updated, paused,
    /// resumed, deleted, rescheduled): what is derived from every job's definition (the chains'
    /// upstream) is read again only when this moved. It moves after the commit is durable, so
    /// a read begun after taking it sees every change it counts.
    pub fn definitions_changed(&self) -> u64 {
        self.definitions.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Appends encoded commands, in apply order, to the recording, if one is open. A failed
    /// write stops the recording (it is a diagnostic, never a reason to refuse a command).
    pub fn journal(&self, commands: Vec<Vec<u8>>) {
        if commands.is_empty() {
            return;
        }
        let mut recording = lock(&self.recording);
        let Some(file) = recording.as_mut() else {
            return;
        };
        let written = commands.iter().try_for_each(|command| {
            use std::io::Write;
            let len = u32::try_from(command.len()).unwrap_or(u32::MAX);
            file.write_all(&len.to_le_bytes())?;
            file.write_all(command)
        });
        if let Err(error) = written.and_then(|()| std::io::Write::flush(file)) {
            tracing::error!(%error, "stopped recording commands");
            *recording = None;
            self.is_recording
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Starts appending every applied command to `path` (created if missing; a restarted
    /// server goes on where the last one stopped).
    pub fn record_commands(&self, path: &std::path::Path) -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        *lock(&self.recording) = Some(std::io::BufWriter::new(file));
        self.is_recording
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Tells `observer` of every later commit. The first observer stays; later calls are ignored.
    pub fn observe(&self, observer: std::sync::Arc<dyn Observer>) {
        let _ = self.observer.set(observer);
    }

    /// Called by the store after each durable commit.
    pub fn committed(&self, changes: usize, took: std::time::Duration) {
        if let Some(observer) = self.observer.get() {
            observer.committed(changes, took);
        }
    }

    pub fn is_recording(&self) -> bool {
        self.is_recording.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// From now on, keep the written instances for [`Feed::take_written`]. The dispatcher calls
    /// this before its first full read of the store, so that it misses no later change.
    pub fn follow_written(&self) {
        lock(&self.written).get_or_insert_with(Vec::new);
    }

    /// Stops keeping written instances (a server that stopped leading has no dispatcher to take
    /// them, and they would pile up).
    pub fn unfollow_written(&self) {
        *lock(&self.written) = None;
    }

    /// Instances written since the last call, in apply order (repeats possible); empty unless
    /// [`Feed::follow_written`] was called.
    pub fn take_written(&self) -> Vec<Instance> {
        lock(&self.written)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The dispatch loop's bell: rung by published effects, and by anything else that gives the
    /// dispatcher new room (a worker's poll).
    pub fn dispatcher_bell(&self) -> &Notify {
        &self.dispatcher
    }

    /// The alert delivery loop's bell.
    pub fn alerts_bell(&self) -> &Notify {
        &self.alerts
    }

    /// The scheduler loop's bell.
    pub fn scheduler_bell(&self) -> &Notify {
        &self.scheduler
    }
}

/// Each critical section here is a single push or take, so a poisoned lock still guards
/// consistent data and is simply taken over.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
