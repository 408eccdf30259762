//! Blindstore's Raft core: the one crate that knows openraft. It holds the Raft log
//! ([`LogStore`], `raft-log/`), the state machine engine ([`StateMachine`]), which applies
//! log entries and moves snapshots over the replicated state of `blindstore-storage` without
//! knowing its rooms, the transport and node-to-node server, joining and the membership.
//!
//! It offers the node above it ([`Core`]) three things: propose a command (batched, within the
//! write deadline, with outcomes that keep "certainly not done" apart from "unknown"), read
//! state at a [`Consistency`] (read index, on a follower from the leader), and follow applied
//! changes (`Core::changes`, and the storage crate's chain watchers).

mod batcher;
mod core;
mod error;
mod forwarding;
mod identity;
mod joining;
mod legacy_log;
mod log_store;
mod membership;
mod restore;
mod rounds;
mod rpc_server;
mod secret;
mod start;
mod state_machine;
mod transport;
mod versions;

pub use crate::core::{Consistency, Core, HeldChunks};
pub use batcher::MAX_COMMAND_BYTES;
pub use error::CoreError;
pub use log_store::LogStore;
pub use restore::{restore_state, Restored, RESTORED_NODE_ID};
pub use rpc_server::{MembersOnly, RpcRouter};
pub use secret::{
    RotatedToken, DEFAULT_ROTATION_GRACE, GATEWAY_TOKEN_FILE, JOIN_TOKEN_FILE, MAX_ROTATION_GRACE,
};
pub use start::{CoreConfig, RpcServices};
pub use state_machine::{ExportedState, StateMachine};
pub use transport::vote_request_record;

openraft::declare_raft_types!(
    /// Blindstore's Raft types: commands in, command responses out, snapshots as files.
    pub TypeConfig:
        D = blindstore_types::command::Command,
        R = blindstore_types::command::CommandResponse,
        NodeId = blindstore_types::raft::NodeId,
        Node = blindstore_types::raft::NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

/// How long a follower waits for the leader's read index, and for a member's answer.
pub(crate) const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
