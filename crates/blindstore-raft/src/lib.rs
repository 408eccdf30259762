//! Blindstore's Raft core: the one crate that knows openraft. It holds the Raft log
//! ([`LogStore`], `raft-log/`) and the state machine engine ([`StateMachine`]), which applies
//! log entries and moves snapshots over the replicated state of `blindstore-storage` without
//! knowing its rooms.

mod log_store;
mod state_machine;

pub use log_store::LogStore;
pub use state_machine::StateMachine;

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
