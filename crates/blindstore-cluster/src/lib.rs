//! Raft wiring and the operations of a Blindstore node.
//!
//! [`Node`] is what the HTTP layer talks to: it validates requests, stores payloads as chunks,
//! proposes commands through openraft and reads the state machine, linearizably unless asked
//! otherwise. It knows nothing of HTTP; errors come out as [`NodeError`], which keeps "definitely
//! did not happen" apart from "outcome unknown". Chunk replication (placement, transfer,
//! repair, GC, scrubbing) is the `blindstore-replication` crate's [`Replicator`], which the
//! node owns and feeds its membership through `membership::MembershipView`.

mod accounts;
mod batcher;
mod chains;
mod chunks;
mod error;
mod forwarding;
mod joining;
mod membership;
mod node;
mod passkeys;
mod rounds;
mod rpc_server;
mod secret;
mod sites;
mod transport;
mod zones;

pub use accounts::{Authenticated, DeviceId};
pub use blindstore_replication::{RepairReport, Replicator, ScrubConfig, ScrubReport};
pub use chains::{entry_answer_bytes, AppendInput, EntriesPage, ReadEntries};
pub use error::NodeError;
pub use node::{AccountSettings, Consistency, Limits, Node, NodeConfig};
pub use secret::{
    RotatedToken, DEFAULT_ROTATION_GRACE, GATEWAY_TOKEN_FILE, JOIN_TOKEN_FILE, MAX_ROTATION_GRACE,
};
pub use sites::MAX_SITE_MANIFEST_BYTES;
pub use zones::ZoneInfo;

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
