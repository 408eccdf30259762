//! The openraft type configuration shared by storage, cluster wiring and the node.

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResponse};

/// Raft node ids.
pub type NodeId = u64;

/// How to reach a Raft member. Kept in the replicated membership so every node can address
/// every other one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node-to-node (gRPC) address; empty for a node that has never had one (single node).
    pub rpc_addr: String,
    /// HTTP API address, used to point clients at the leader.
    pub http_addr: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rpc={} http={}", self.rpc_addr, self.http_addr)
    }
}

openraft::declare_raft_types!(
    /// Blindstore's Raft types: commands in, command responses out, snapshots as files.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);
