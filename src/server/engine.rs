//! The engine seam: how a proposed [`Command`] becomes durable and applied. The API, the
//! scheduler, the dispatcher and retention propose commands here and read through the store;
//! only the engine decides where commands go before they are applied — straight into the local
//! store ([`LocalEngine`], today's single server), or through a replicated log to every server of
//! a group (the next engine). Either way the state machine is the same `machine::apply`, and a
//! command's effects reach the [`Feed`](crate::server::effects::Feed) only once it is durable.
//!
//! An engine must never apply a command whose outcome it cannot make durable, nor answer a
//! proposer before the command is durable.

use std::path::Path;
use std::sync::Arc;

use crate::server::command::Command;
use crate::server::machine::{self, ApplyError, Response};
use crate::server::store::Store;

pub trait Engine: Send + Sync {
    /// Applies `command` durably and returns the state machine's answer, once it is durable.
    /// Blocking: call it from a blocking thread.
    fn propose(&self, command: Command) -> Result<Response, ApplyError>;

    /// The store to read from (reads never go through the engine).
    fn store(&self) -> &Arc<Store>;
}

/// Why a replicated engine could not commit a command. Typed, so the API answers each with its
/// own code and the CLI and console can say what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum GroupUnavailable {
    /// No server leads right now: nothing was written.
    #[error(
        "no leader: {reachable} of {members} servers reachable, {quorum} needed for a quorum; nothing was written. An election may be under way (try again in a moment); if servers are down, bring them back. Reads still work"
    )]
    NoLeader {
        reachable: usize,
        members: usize,
        quorum: usize,
    },
    /// The leader could not reach a quorum. `outcome_unknown`: the command entered the leader's
    /// log before the quorum was lost, and will take effect if the group commits it later.
    #[error(
        "no quorum: {reachable} of {members} servers reachable, {quorum} needed; {}. Bring servers back up; reads still work",
        if *outcome_unknown {
            "the change was not confirmed and may still take effect once a quorum is back: check before retrying"
        } else {
            "nothing was written"
        }
    )]
    NoQuorum {
        reachable: usize,
        members: usize,
        quorum: usize,
        outcome_unknown: bool,
    },
    /// This server is a follower and could not hand the command to the leader.
    #[error(
        "the leader ({leader}) could not be reached from this server: {cause}; the change may or may not have been made: check before retrying, or send it to the leader directly"
    )]
    LeaderUnreachable { leader: String, cause: String },
}

/// The single-server engine: commands are applied in the proposer's thread, in a write
/// transaction shared with concurrent proposers (group commit), and answered once that commit is
/// durable.
pub struct LocalEngine {
    store: Arc<Store>,
}

impl LocalEngine {
    pub fn new(store: Arc<Store>) -> LocalEngine {
        LocalEngine { store }
    }

    /// Also append every applied command, in apply order, to `path` (length-prefixed encoded
    /// commands). For replaying a real run in tests and for diagnosing one; it costs a write per
    /// commit, so it is off unless asked for.
    pub fn record_commands(&self, path: &Path) -> std::io::Result<()> {
        self.store.feed().record_commands(path)
    }
}

impl Engine for LocalEngine {
    fn propose(&self, command: Command) -> Result<Response, ApplyError> {
        let recording = self.store.feed().is_recording();
        let result = self.store.write(|tx| {
            let applied = machine::apply(tx, &command)?;
            tx.announce(applied.effects);
            if recording {
                tx.journal(command.encode());
            }
            Ok(applied.response)
        });
        // An I/O error inside the change (not at its commit) abandoned the batch: nothing of it
        // was written. The store turns it into a storage fault the caller can act on.
        result.map_err(|error| match error {
            ApplyError::Store(error) => ApplyError::Store(
                self.store
                    .classify_write_error(error, crate::server::store::WriteOutcome::NotWritten),
            ),
            refusal => refusal,
        })
    }

    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// Applies `commands` in order to `store`, many to a transaction — the outcome does not depend
/// on how commands are grouped into commits, so a long recording replays at the store's pace, not
/// one durable commit per command. Returns each command's answer (a refusal as its message).
/// What it applies is published to the store's feed like any commit.
pub fn replay(
    store: &Store,
    commands: &[Command],
) -> Result<Vec<Result<Response, String>>, crate::server::store::StoreError> {
    let mut answers = Vec::with_capacity(commands.len());
    for batch in commands.chunks(1_000) {
        let batch_answers = store.write(|tx| {
            let mut out = Vec::with_capacity(batch.len());
            for command in batch {
                match machine::apply(tx, command) {
                    Ok(applied) => {
                        tx.announce(applied.effects);
                        out.push(Ok(applied.response));
                    }
                    Err(ApplyError::Store(error)) => return Err(error),
                    // A refusal writes nothing: the batch goes on.
                    Err(refusal) => out.push(Err(refusal.to_string())),
                }
            }
            Ok(out)
        })?;
        answers.extend(batch_answers);
    }
    Ok(answers)
}

/// Reads a recording made by [`LocalEngine::record_commands`]: the commands in apply order.
pub fn read_recording(path: &Path) -> anyhow::Result<Vec<Command>> {
    use anyhow::Context;
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the command recording {}", path.display()))?;
    let mut commands = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let (len, body) = rest
            .split_at_checked(4)
            .context("a truncated length prefix")?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (entry, after) = body.split_at_checked(len).context("a truncated command")?;
        commands.push(Command::decode(entry)?);
        rest = after;
    }
    Ok(commands)
}
