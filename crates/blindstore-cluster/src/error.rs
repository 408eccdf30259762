use blindstore_raft::CoreError;
use blindstore_replication::ChunkError;
use blindstore_storage::StorageError;
use blindstore_types::command::{CommandResponse, Rejection};
use blindstore_types::Hash32;

/// Why a node operation did not succeed. The variants it shares with `CoreError` and
/// `ChunkError` (unavailable, outcome unknown, quota, storage...) are repeated here on purpose:
/// the HTTP layer matches one enum, and the `From` impls below map them one to one.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The zone does not exist.
    #[error("unknown zone")]
    UnknownZone,
    /// The chain does not exist in this zone.
    #[error("unknown chain")]
    UnknownChain,
    /// The chunk is not stored in this zone.
    #[error("unknown chunk")]
    UnknownChunk,
    /// The request is malformed or breaks a documented limit on counts.
    #[error("{0}")]
    BadRequest(String),
    /// The public key is not a valid, strong Ed25519 key.
    #[error("not a valid Ed25519 public key")]
    BadPublicKey,
    /// The entry's signature does not verify under the chain's key.
    #[error("signature does not verify under the chain's public key")]
    BadSignature,
    /// Uploaded bytes do not hash to the address they were sent to.
    #[error("content hashes to {actual}, not {expected}")]
    HashMismatch { expected: Hash32, actual: Hash32 },
    /// The entry references chunks the zone does not hold.
    #[error("referenced chunks are not stored: {}", list(.0))]
    MissingChunks(Vec<Hash32>),
    /// The entry's index/prev is not the chain's current length/head. Nothing was appended.
    #[error("index conflict: the chain has {length} entries")]
    IndexConflict { length: u64, head: Hash32 },
    /// A body or field is above its documented size limit.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: &'static str, limit: u64 },
    /// A quota of the zone would be exceeded. Nothing was changed.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// This node is below its free-space reserve and refuses new data. Nothing was changed.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// The operation certainly did not take effect: no leader, no quorum, shutting down.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Only the leader does this; the message names it. Nothing was changed.
    #[error("{0}")]
    NotLeader(String),
    /// The request needs a newer cluster version than the cluster runs: a member's build is
    /// older. Nothing was changed.
    #[error("this needs cluster version {needed} and the cluster runs version {current}: a member runs an older build; finish the rolling upgrade (`blindstore cluster status` shows each node's LEVEL); nothing was changed")]
    NeedsClusterVersion { needed: u32, current: u32 },
    /// A rotation (of the join token or the admin credentials) lost a race with another one.
    /// Nothing was changed.
    #[error("the {0} was rotated meanwhile by another request; nothing was changed (rotate again if a new one is still wanted)")]
    RotatedMeanwhile(&'static str),
    /// A login failed: wrong password, unknown account, or an expired or used login. One
    /// variant for all, so a client cannot tell which.
    #[error("login failed: wrong password or unknown account")]
    InvalidLogin,
    /// The bearer token is not a live session of this zone (missing, expired, revoked).
    #[error("missing, expired or revoked session (Authorization: Bearer <session token>)")]
    InvalidSession,
    /// A node removed from the cluster for good: this one (it serves no clients), or one that
    /// asked to be added again.
    #[error("node {0} was removed from the cluster for good; it is never added again (start a new node with a fresh data dir)")]
    Removed(u64),
    /// The zone's registration policy is `closed`.
    #[error("this zone does not take new accounts (its registration is closed)")]
    RegistrationClosed,
    /// The zone takes new accounts by invite only, and the code given is not a live one.
    #[error("this zone takes new accounts by invite only: the invite code is missing, unknown, used or expired")]
    InvalidInvite,
    /// The request cannot be undone and its session has no fresh proof (step-up).
    #[error("this cannot be undone: prove the password or a passkey again (a step-up, sent as Blindstore-Step-Up) within {minutes} minutes before it")]
    StepUpRequired { minutes: u64 },
    /// The account id is taken.
    #[error("an account with this id exists")]
    AccountExists,
    /// No such account (administrator calls only: logins never say this).
    #[error("unknown account")]
    UnknownAccount,
    /// No envelope of that name.
    #[error("unknown envelope")]
    UnknownEnvelope,
    /// The account has no passkey with that id.
    #[error("unknown passkey")]
    UnknownPasskey,
    /// The passkey is registered in the zone already.
    #[error("this passkey is registered already")]
    PasskeyExists,
    /// The zone has no passkey settings.
    #[error("passkeys are not set up for this zone (blindstore zone set ZONE --passkey-rp-id DOMAIN --passkey-origin ORIGIN)")]
    PasskeysOff,
    /// An envelope write expected another version. Nothing was changed.
    #[error("envelope conflict: the current version is {version}")]
    EnvelopeConflict { version: u64 },
    /// The operation was proposed but its fate is unknown (leader lost, node stopping). It may
    /// or may not have taken effect; the client must read to find out.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A stored chunk failed its hash check and no intact copy is reachable.
    #[error("stored chunk {0} is corrupt and no intact copy is reachable")]
    CorruptChunk(Hash32),
    /// The node's identity on disk is missing or contradicts itself (start-up only).
    #[error("node identity: {0}")]
    Identity(String),
    /// A broken internal invariant; logged, reported as a server error.
    #[error("internal: {0}")]
    Internal(String),
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(StorageError),
}

impl From<StorageError> for NodeError {
    /// A storage error means the same for a node as for chunk replication.
    fn from(e: StorageError) -> Self {
        ChunkError::from(e).into()
    }
}

impl From<ChunkError> for NodeError {
    fn from(e: ChunkError) -> Self {
        match e {
            ChunkError::HashMismatch { expected, actual } => {
                NodeError::HashMismatch { expected, actual }
            }
            ChunkError::UnknownChunk => NodeError::UnknownChunk,
            ChunkError::QuotaExceeded(m) => NodeError::QuotaExceeded(m),
            ChunkError::InsufficientStorage(m) => NodeError::InsufficientStorage(m),
            ChunkError::Unavailable(m) => NodeError::Unavailable(m),
            ChunkError::CorruptChunk(hash) => NodeError::CorruptChunk(hash),
            ChunkError::Internal(m) => NodeError::Internal(m),
            ChunkError::Storage(e) => NodeError::Storage(e),
        }
    }
}

fn list(hashes: &[Hash32]) -> String {
    hashes
        .iter()
        .map(Hash32::to_hex)
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<CoreError> for NodeError {
    /// The core's errors mean the same here; a storage error is taken as chunk replication
    /// takes it.
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::BadRequest(m) | CoreError::TooOld(m) => NodeError::BadRequest(m),
            CoreError::TooLarge { what, limit } => NodeError::TooLarge { what, limit },
            CoreError::Unavailable(m) => NodeError::Unavailable(m),
            CoreError::NotLeader(m) => NodeError::NotLeader(m),
            CoreError::Removed(id) => NodeError::Removed(id),
            CoreError::OutcomeUnknown(m) => NodeError::OutcomeUnknown(m),
            CoreError::Identity(m) => NodeError::Identity(m),
            CoreError::Internal(m) => NodeError::Internal(m),
            CoreError::Storage(e) => e.into(),
        }
    }
}

pub(crate) fn rejection(r: Rejection) -> NodeError {
    match r {
        Rejection::UnknownZone => NodeError::UnknownZone,
        Rejection::UnknownChain => NodeError::UnknownChain,
        Rejection::IndexConflict { length, head } => NodeError::IndexConflict { length, head },
        Rejection::BadPublicKey => NodeError::BadPublicKey,
        Rejection::BadSignature => NodeError::BadSignature,
        Rejection::QuotaExceeded { what, limit } => {
            NodeError::QuotaExceeded(format!("the zone's quota of {what} ({limit}) is reached"))
        }
        Rejection::AccountExists => NodeError::AccountExists,
        Rejection::UnknownAccount => NodeError::UnknownAccount,
        // A login that cannot be redeemed fails like any other.
        Rejection::TicketUsed => NodeError::InvalidLogin,
        Rejection::InvalidSession => NodeError::InvalidSession,
        Rejection::EnvelopeConflict { version } => NodeError::EnvelopeConflict { version },
        Rejection::TooManyEnvelopes => NodeError::QuotaExceeded(format!(
            "an account holds at most {} envelopes",
            blindstore_types::account::MAX_ENVELOPES_PER_ACCOUNT
        )),
        Rejection::NoZoneAuth => NodeError::Internal("the zone has no account secrets".into()),
        Rejection::AccountQuotaExceeded { what, limit } => NodeError::QuotaExceeded(format!(
            "the account's quota of {what} ({limit}) is reached"
        )),
        Rejection::PasskeyExists => NodeError::PasskeyExists,
        Rejection::RegistrationClosed => NodeError::RegistrationClosed,
        Rejection::InvalidInvite => NodeError::InvalidInvite,
        Rejection::UnknownPasskey => NodeError::UnknownPasskey,
        Rejection::UnknownSiteVersion => NodeError::BadRequest("no such site version".into()),
        Rejection::TooManyPasskeys => NodeError::QuotaExceeded(format!(
            "an account holds at most {} passkeys",
            blindstore_types::account::MAX_PASSKEYS_PER_ACCOUNT
        )),
        Rejection::NestedBatch => NodeError::Internal("a batch inside a batch".into()),
        Rejection::SiteHostTaken { host, zone } => {
            NodeError::BadRequest(format!("site host {host} belongs to zone {zone}"))
        }
        Rejection::JoinSecretChanged => NodeError::RotatedMeanwhile("join token"),
        Rejection::AdminCredentialsChanged => NodeError::RotatedMeanwhile("admin credential"),
        Rejection::NeedsClusterVersion { needed, current } => {
            NodeError::NeedsClusterVersion { needed, current }
        }
    }
}

pub(crate) fn unexpected(response: CommandResponse) -> NodeError {
    NodeError::Internal(format!(
        "state machine answered {response:?} to a command of another kind"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_the_caller_must_act_on_say_why() {
        let lost = rejection(Rejection::AdminCredentialsChanged).to_string();
        assert!(
            lost.contains("admin credential was rotated meanwhile"),
            "{lost}"
        );
        let lost = rejection(Rejection::JoinSecretChanged).to_string();
        assert!(lost.contains("join token was rotated meanwhile"), "{lost}");
        let old = rejection(Rejection::NeedsClusterVersion {
            needed: 4,
            current: 3,
        })
        .to_string();
        assert!(
            old.contains("needs cluster version 4") && old.contains("runs version 3"),
            "{old}"
        );
    }
}
