//! Raft node ids and addresses: pure data, kept in the replicated membership. The openraft
//! type configuration that uses them lives in the storage crate.

use serde::{Deserialize, Serialize};

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
