//! Shoal's cluster membership, built on chitchat (scuttlebutt gossip over UDP with a phi-accrual
//! failure detector).
//!
//! This crate owns one question: *who is in the cluster, and are they live?* Each node publishes a
//! small [`NodeInfo`] (role, id, the address to reach it, tags, capacity, running count, version);
//! [`Membership`] turns chitchat's raw state into a list of [`Member`]s with a typed
//! [`MemberState`] and hands out a watch channel that changes whenever that list does.
//!
//! It must never know about jobs, instances or storage: everything here is about nodes.

mod config;
mod group_status;
mod membership;
mod node_info;

pub use chitchat::transport::{ChannelTransport, Transport, UdpTransport};
pub use config::{
    DEFAULT_DEAD_NODE_GRACE_PERIOD, DEFAULT_GOSSIP_INTERVAL, DEFAULT_PHI_THRESHOLD, GossipConfig,
    GossipError,
};
pub use group_status::{GroupRole, GroupStatus};
pub use membership::{Member, MemberState, Membership, MembershipView};
pub use node_info::{NodeInfo, Role, validate_tag};
