//! The commands the Raft state machine applies and what applying them answers.
//!
//! Application is deterministic: a command carries everything it needs (timestamps included,
//! chosen by the proposer), so every replica reaches the same state from the same log.

use serde::{Deserialize, Serialize};

use crate::entry::EntryHeader;
use crate::ids::{ChainId, Hash32, PublicKey, ZoneId};

/// A state change, proposed through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create a zone; a no-op if it exists.
    CreateZone { zone: ZoneId, created_at_ms: u64 },
    /// Create a chain owned by `public_key` (already checked to be a valid, strong key); a
    /// no-op if it exists.
    CreateChain { zone: ZoneId, public_key: PublicKey },
    /// Append a verified entry. Applied only if `header.index` equals the chain's length and
    /// `header.prev` its head: the compare-and-set that keeps chains from forking.
    Append {
        zone: ZoneId,
        chain_id: ChainId,
        header: EntryHeader,
    },
    /// Mark a node as draining (or no longer): it stops owning chunks, so the repairers move
    /// its chunks to their other owners before it is removed.
    SetDraining { node: u64, draining: bool },
}

/// The result of applying one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Blank and membership entries answer nothing.
    None,
    ZoneCreated {
        created: bool,
    },
    ChainCreated {
        created: bool,
        chain: ChainHead,
    },
    Appended {
        index: u64,
        entry_hash: Hash32,
        length: u64,
    },
    /// The command was applied as a no-op because its precondition did not hold.
    Rejected(Rejection),
    /// The draining set was updated. (New variants go last: the encoding numbers variants.)
    DrainingSet,
}

/// Why a command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    UnknownZone,
    UnknownChain,
    /// The entry's index or prev does not match the chain's current length and head.
    IndexConflict {
        length: u64,
        head: Hash32,
    },
    /// The chain's key is not a valid, strong Ed25519 key (checked again on apply, whoever
    /// proposed the command). New variants go last: the encoding numbers variants.
    BadPublicKey,
    /// The entry's signature or hash does not verify under the chain's key (checked again on
    /// apply).
    BadSignature,
}

/// A chain's owner key and current tip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub public_key: PublicKey,
    /// Number of entries; the next append's index.
    pub length: u64,
    /// Hash of the last entry, or the genesis hash of an empty chain.
    pub head: Hash32,
}

/// A zone as the state machine keeps it, with usage counters maintained on apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneRecord {
    pub created_at_ms: u64,
    pub chains: u64,
    pub entries: u64,
    /// Sum of payload lengths of all entries.
    pub payload_bytes: u64,
}
