//! Raft wiring and the operations of a Blindstore node.
//!
//! [`Node`] is what the HTTP layer talks to: it validates requests, stores payloads as chunks,
//! proposes commands through openraft and reads the state machine, linearizably unless asked
//! otherwise. It knows nothing of HTTP; errors come out as [`NodeError`], which keeps "definitely
//! did not happen" apart from "outcome unknown".

mod chunks;
mod error;
mod forwarding;
mod gc;
mod joining;
mod membership;
mod node;
mod placement;
mod repair;
mod rpc_server;
mod scrub;
mod transport;

pub use error::NodeError;
pub use node::{
    entry_answer_bytes, AppendInput, Consistency, EntriesPage, Limits, Node, NodeConfig,
    ReadEntries, ZoneInfo,
};
pub use repair::RepairReport;
pub use scrub::{ScrubConfig, ScrubReport};
