//! The domains of a Blindstore node — zones, chains, chunks, accounts (with passkeys) and
//! sites — on top of the Raft core (`blindstore-raft`).
//!
//! [`Node`] is what the HTTP layer talks to: it validates requests, stores payloads as chunks,
//! proposes commands through the core and reads the state machine, linearizably unless asked
//! otherwise. It knows nothing of HTTP; errors come out as [`NodeError`], which keeps "definitely
//! did not happen" apart from "outcome unknown". Chunk replication (placement, transfer,
//! repair, GC, scrubbing) is the `blindstore-replication` crate's [`Replicator`], which the
//! node owns and feeds its membership through `membership::MembershipView`.

/// A proposal's answer taken apart: the value for the answer `$pattern`, the refusal a
/// `Rejected` answer stands for (`error::rejection`), and an internal error for an answer of
/// another kind (which only a bug in the state machine could give).
macro_rules! answer {
    ($response:expr, $pattern:pat => $value:expr) => {
        match $response {
            $pattern => Ok($value),
            blindstore_types::command::CommandResponse::Rejected(r) => {
                Err(crate::error::rejection(r))
            }
            other => Err(crate::error::unexpected(other)),
        }
    };
}

/// Declares a domain's facade: the node, borrowed, reached as `node.<accessor>()` (Garage's
/// helpers, `garage.key_helper()`), so each domain's operations are found under its name.
macro_rules! facade {
    ($(#[$doc:meta])* $name:ident, $accessor:ident) => {
        $(#[$doc])*
        pub struct $name<'a>(&'a crate::Node);

        impl crate::Node {
            $(#[$doc])*
            pub fn $accessor(&self) -> $name<'_> {
                $name(self)
            }
        }

        /// A facade is its node, borrowed: the node's core, state and helpers are at hand.
        impl std::ops::Deref for $name<'_> {
            type Target = crate::Node;

            fn deref(&self) -> &crate::Node {
                self.0
            }
        }
    };
}

mod accounts;
mod chains;
mod chunks;
mod credentials;
mod error;
mod node;
mod passkeys;
mod sites;
mod zones;

pub use accounts::{Accounts, Authenticated, DeviceId};
pub use blindstore_raft::{restore_state, Consistency, Restored};
pub use blindstore_raft::{
    RotatedToken, DEFAULT_ROTATION_GRACE, GATEWAY_TOKEN_FILE, JOIN_TOKEN_FILE, MAX_ROTATION_GRACE,
};
pub use blindstore_replication::{RepairReport, Replicator, ScrubConfig, ScrubReport};
pub use chains::{entry_answer_bytes, AppendInput, Chains, EntriesPage, ReadEntries};
pub use chunks::Chunks;
pub use credentials::{CredentialKind, Credentials, Rotated};
pub use error::NodeError;
pub use node::{AccountSettings, Limits, Node, NodeConfig};
pub use sites::{Sites, MAX_SITE_MANIFEST_BYTES};
pub use zones::{ZoneInfo, Zones};

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
