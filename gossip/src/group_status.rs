//! What a server of a replicated group says of its place in the group: its role, the term it
//! knows, and how far it has applied the group's log. Published in gossip so that workers find
//! the leader and `members` shows every server's role and lag without asking each one.
//!
//! It is advisory: gossip is unauthenticated and late by a round or two, so nothing may trust it
//! for safety — a worker that follows it still checks the term of every assignment, and the group
//! itself decides who leads. This module knows nothing of what the group replicates.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A server's role in its group, as its consensus engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupRole {
    Leader,
    Follower,
    Candidate,
    /// Receives the log but does not vote (a server being added).
    Learner,
    /// Not (yet) part of a group: waiting for the expected servers, or removed.
    Forming,
}

impl GroupRole {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupRole::Leader => "leader",
            GroupRole::Follower => "follower",
            GroupRole::Candidate => "candidate",
            GroupRole::Learner => "learner",
            GroupRole::Forming => "forming",
        }
    }
}

impl fmt::Display for GroupRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "leader" => GroupRole::Leader,
            "follower" => GroupRole::Follower,
            "candidate" => GroupRole::Candidate,
            "learner" => GroupRole::Learner,
            "forming" => GroupRole::Forming,
            other => return Err(format!("unknown group role {other:?}")),
        })
    }
}

/// One server's published place in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub role: GroupRole,
    /// The highest term this server knows.
    pub term: u64,
    /// The index of the last log entry applied to its state (0 before any).
    pub applied: u64,
}

impl GroupStatus {
    /// The gossip value: `role/term/applied`.
    pub(crate) fn encode(&self) -> String {
        format!("{}/{}/{}", self.role, self.term, self.applied)
    }

    pub(crate) fn decode(value: &str) -> Option<GroupStatus> {
        let mut parts = value.split('/');
        let role = parts.next()?.parse().ok()?;
        let term = parts.next()?.parse().ok()?;
        let applied = parts.next()?.parse().ok()?;
        Some(GroupStatus {
            role,
            term,
            applied,
        })
    }

    /// The same role and term: a change of the applied index alone is progress, not a change of
    /// membership worth waking every watcher for.
    pub(crate) fn same_place(&self, other: &GroupStatus) -> bool {
        self.role == other.role && self.term == other.term
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_survives_its_gossip_encoding_and_garbage_is_ignored() {
        let status = GroupStatus {
            role: GroupRole::Leader,
            term: 7,
            applied: 12_345,
        };
        assert_eq!(GroupStatus::decode(&status.encode()), Some(status));
        assert_eq!(GroupStatus::decode("leader/7"), None);
        assert_eq!(GroupStatus::decode("boss/7/1"), None);
    }
}
