//! What a node advertises about itself, and its encoding as chitchat key-values.

use std::fmt;
use std::str::FromStr;

use chitchat::NodeState;
use serde::{Deserialize, Serialize};

/// A node is either the server (stores and schedules jobs) or a worker (runs tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Worker,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Server => "server",
            Role::Worker => "worker",
        })
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "server" => Ok(Role::Server),
            "worker" => Ok(Role::Worker),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// The part of a node's gossip state that Shoal defines. Kept small: it travels in every gossip
/// round, and chitchat fits all deltas of a round in one UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable across restarts (the generation, not the id, changes on restart).
    pub id: String,
    pub role: Role,
    /// Where other nodes reach this node's HTTP API (server) or RPC endpoint; may be empty for a
    /// worker that serves nothing. Opaque here: Shoal writes `HOST:PORT` or a URL
    /// (`https://HOST:PORT`) and reads it back itself.
    pub api_addr: String,
    pub tags: Vec<String>,
    /// How many tasks the node runs at once.
    pub capacity: u32,
    /// How many tasks it runs right now.
    pub running: u32,
    pub version: String,
}

pub(crate) mod keys {
    pub const ROLE: &str = "role";
    pub const API_ADDR: &str = "api";
    pub const TAGS: &str = "tags";
    pub const CAPACITY: &str = "capacity";
    pub const RUNNING: &str = "running";
    pub const VERSION: &str = "version";
    /// Set just before a graceful shutdown so that peers drop the node at once.
    pub const LEAVING: &str = "leaving";
    /// A server's place in its replicated group (`GroupStatus`), when it is in one.
    pub const GROUP: &str = "group";
}

impl NodeInfo {
    pub(crate) fn to_key_values(&self) -> Vec<(String, String)> {
        vec![
            (keys::ROLE.into(), self.role.to_string()),
            (keys::API_ADDR.into(), self.api_addr.clone()),
            // Tags are validated to contain no comma (see `validate_tag`).
            (keys::TAGS.into(), self.tags.join(",")),
            (keys::CAPACITY.into(), self.capacity.to_string()),
            (keys::RUNNING.into(), self.running.to_string()),
            (keys::VERSION.into(), self.version.clone()),
        ]
    }

    /// Reads a peer's advertised info. `None` when the node has not (yet) published a role: it
    /// is either still joining or not a Shoal node.
    pub(crate) fn from_node_state(id: &str, state: &NodeState) -> Option<NodeInfo> {
        let role = state.get(keys::ROLE)?.parse().ok()?;
        let number = |key| state.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(NodeInfo {
            id: id.to_string(),
            role,
            api_addr: state.get(keys::API_ADDR).unwrap_or_default().to_string(),
            tags: state
                .get(keys::TAGS)
                .unwrap_or_default()
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            capacity: number(keys::CAPACITY),
            running: number(keys::RUNNING),
            version: state.get(keys::VERSION).unwrap_or_default().to_string(),
        })
    }
}

/// A tag is a short label a job can target: letters, digits, `-`, `_`, `.`, `/`, `:`.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() || tag.len() > 64 {
        return Err(format!("tag {tag:?} must be 1–64 characters"));
    }
    if let Some(bad) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':')))
    {
        return Err(format!(
            "tag {tag:?} contains {bad:?}; use letters, digits and - _ . / :"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_reject_separators_and_spaces() {
        assert!(validate_tag("billing").is_ok());
        assert!(validate_tag("zone:eu-west/1").is_ok());
        assert!(validate_tag("a,b").unwrap_err().contains("','"));
        assert!(validate_tag("has space").is_err());
        assert!(validate_tag("").is_err());
    }
}
