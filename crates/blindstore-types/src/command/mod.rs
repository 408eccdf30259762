//! The commands the Raft state machine applies and what applying them answers.
//!
//! Application is deterministic: a command carries everything it needs (timestamps included,
//! chosen by the proposer), so every replica reaches the same state from the same log.
//!
//! The variants are alike on purpose: the enum is the log's wire format (postcard numbers the
//! variants in order), so each keeps its place and its fields, and new ones go last.

use serde::{Deserialize, Serialize};

use crate::account::{AccountId, Acting, EnvelopeWrite, ZoneSettings, ZoneSettingsV1};
use crate::entry::EntryHeader;

pub mod accounts;
use crate::ids::{ChainId, Hash32, PublicKey, ZoneId};
pub use accounts::AccountCommand;

/// A state change, proposed through Raft. The accounts room's commands are single-field
/// variants wrapping their structs in [`accounts`] (the same encoding as struct variants); the
/// state machine's dispatch lists every variant, so the compiler checks each has a room.
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
    /// Set a zone's quotas. (New variants go last: the encoding numbers variants.)
    SetQuota { zone: ZoneId, quota: Quota },
    /// [`accounts::SetZoneAuth`]
    SetZoneAuth(accounts::SetZoneAuth),
    /// [`accounts::CreateAccount`]
    CreateAccount(accounts::CreateAccount),
    /// [`accounts::CreateSession`]
    CreateSession(accounts::CreateSession),
    /// [`accounts::RevokeSessions`]
    RevokeSessions(accounts::RevokeSessions),
    /// [`accounts::PutEnvelope`]
    PutEnvelope(accounts::PutEnvelope),
    /// [`accounts::ChangePassword`]
    ChangePassword(accounts::ChangePassword),
    /// [`accounts::DeleteAccount`]
    DeleteAccount(accounts::DeleteAccount),
    /// Set a zone's settings as they were before passkeys: only read from logs written by
    /// older builds (applied as the settings with passkeys off), never proposed.
    SetZoneSettingsV1 {
        zone: ZoneId,
        settings: ZoneSettingsV1,
    },
    /// Create a chain for an account, in a zone whose writes need accounts: held to the
    /// account's chain quota and its session (checked again here); answered like
    /// `CreateChain`.
    CreateAccountChain {
        zone: ZoneId,
        public_key: PublicKey,
        account: AccountId,
        acting: Acting,
    },
    /// [`accounts::AddPasskey`]
    AddPasskey(accounts::AddPasskey),
    /// [`accounts::RemovePasskey`]
    RemovePasskey(accounts::RemovePasskey),
    /// [`accounts::CreatePasskeySession`]
    CreatePasskeySession(accounts::CreatePasskeySession),
    /// [`accounts::DeleteEnvelope`]
    DeleteEnvelope(accounts::DeleteEnvelope),
    /// Set a zone's settings (write policy, account quotas, passkeys).
    SetZoneSettings {
        zone: ZoneId,
        settings: ZoneSettings,
    },
    /// Publish a site version (the node checked that every chunk is stored) and make it the
    /// zone's current one; its chunks become referenced, so never collected.
    PublishSite {
        zone: ZoneId,
        manifest: crate::site::SiteManifest,
        created_at_ms: u64,
    },
    /// Make an existing site version the current one (rollback, or forward again).
    SetSiteVersion { zone: ZoneId, version: u64 },
    /// Like `Append`, with the payload itself: small payloads travel in the Raft entry and
    /// are kept with the entry by every voter (no chunk is stored). Applied only if the
    /// payload hashes to `header.payload_hash`.
    AppendWithPayload {
        zone: ZoneId,
        chain_id: ChainId,
        header: EntryHeader,
        payload: Vec<u8>,
    },
    /// Several commands in one log entry, applied in order, each with its own response (a
    /// rejected one changes nothing and does not stop the others): how the leader commits
    /// many concurrent writes with one log write. Batches do not nest.
    Batch(Vec<Command>),
    /// [`accounts::ChangeCredentials`]
    ChangeCredentials(accounts::ChangeCredentials),
    /// [`accounts::RegisterAccount`]
    RegisterAccount(accounts::RegisterAccount),
    /// [`accounts::SetRegistration`]
    SetRegistration(accounts::SetRegistration),
    /// [`accounts::RedeemTicket`]
    RedeemTicket(accounts::RedeemTicket),
    /// Remember that node `node` was removed from the cluster, for good: it is never added
    /// again (its id is never reused), members refuse its Raft messages, and it refuses
    /// clients once it learns this. Proposed before the membership change that removes it.
    MarkRemoved { node: u64 },
    /// [`accounts::CreateInvites`]
    CreateInvites(accounts::CreateInvites),
    /// Replace the join token's secret (`blindstore cluster rotate-token`). `previous` is the
    /// secret the proposer had: rejected if the cluster's is another (a rotation raced this
    /// one). Members keep sending the previous secret for `grace_ms` after `at_ms` and accept
    /// it for twice that, so every member switches without a call refused; then it is dead.
    RotateJoinSecret {
        secret: String,
        previous: String,
        at_ms: u64,
        grace_ms: u64,
    },
    /// Move the cluster's version (the feature level every member runs) up to `level`:
    /// proposed by the leader only once every member said its build supports that level
    /// (the `Version` call). Never lowers it. Needs no level itself: it is what moves it.
    SetClusterVersion { level: u32 },
    /// Name the cluster (backups record it, to refuse mixing two clusters' backups): proposed
    /// by the leader once the cluster's version allows it; the first id applied stays.
    SetClusterId { id: [u8; 16] },
    /// Set the cluster's admin and metrics credentials (`blindstore cluster admin-token
    /// rotate`): from then on every node accepts these and no node its own `--admin-token`.
    /// `previous` is the admin credential the proposer saw: rejected if the cluster's is
    /// another (a rotation raced this one).
    SetAdminCredentials {
        credentials: AdminCredentials,
        previous: Option<Hash32>,
    },
    /// Delete a zone and everything in it: chains and entries, chunk references (its chunks
    /// become garbage on every node), accounts, sessions, envelopes, passkeys, invites, site
    /// versions, quotas and settings. Rejected (`UnknownZone`) if there is no such zone.
    DeleteZone { zone: ZoneId },
}

/// What deleting a zone removed from the replicated state (also the answer of
/// `DELETE /v1/admin/zones/{zone}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneRemoved {
    pub chains: u64,
    pub entries: u64,
    /// References to chunks: the chunks themselves are collected on every node after the
    /// staging TTL, as unreferenced chunks are.
    pub chunk_refs: u64,
    pub accounts: u64,
    pub sessions: u64,
    pub envelopes: u64,
    pub passkeys: u64,
    pub invites: u64,
    pub site_versions: u64,
}

/// The cluster's admin credentials, as SHA-256 hashes of the tokens (256-bit random values, so
/// a fast hash is enough: nothing to guess).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminCredentials {
    /// Every admin call, on every node and gateway.
    pub admin: Hash32,
    /// Reading metrics only (`GET /v1/metrics`), for scrapers; none until one is made.
    pub metrics: Option<Hash32>,
    /// The proposer's clock at the last rotation.
    pub rotated_at_ms: u64,
}

/// The feature level this build supports: what it can decode and apply, in the log and in
/// snapshots. A cluster uses a command or table of level N only once its version (the
/// lowest level of its members, kept in the replicated state) is N or more, so a rolling
/// upgrade runs old and new builds side by side until the last node is replaced.
///
/// Levels: 1, every build before levels (none advertises one); 2, the cluster's version and
/// id (`SetClusterVersion`, `SetClusterId`); 3, the cluster's admin credentials
/// (`SetAdminCredentials`); 4, zone deletion (`DeleteZone`).
pub const FEATURE_LEVEL: u32 = 4;

/// The level of a build that does not advertise one (older than levels).
pub const FIRST_FEATURE_LEVEL: u32 = 1;

impl Command {
    /// The cluster version this command needs: applied only once the cluster's version is at
    /// least this, else rejected (`Rejection::NeedsClusterVersion`), so no member meets a
    /// command its build cannot decode. A batch needs the most any command in it needs.
    pub fn required_level(&self) -> u32 {
        match self {
            Command::Batch(commands) => commands
                .iter()
                .map(Command::required_level)
                .max()
                .unwrap_or(FIRST_FEATURE_LEVEL),
            // Proposed only when every member supports it (see the variant).
            Command::SetClusterVersion { .. } => FIRST_FEATURE_LEVEL,
            Command::SetClusterId { .. } => 2,
            Command::SetAdminCredentials { .. } => 3,
            Command::DeleteZone { .. } => 4,
            _ => FIRST_FEATURE_LEVEL,
        }
    }
}

/// The cluster's join secret as the last rotation left it (none before the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinSecret {
    pub current: String,
    pub previous: String,
    /// The rotation's time (the proposer's clock) and grace, as in `RotateJoinSecret`.
    pub rotated_at_ms: u64,
    pub grace_ms: u64,
}

/// A new OPAQUE record, with the envelope written in the same step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPassword {
    pub registration: Vec<u8>,
    pub envelope: Option<EnvelopeWrite>,
}

/// A login ticket being redeemed: its id and when it stops being valid (until then its id is
/// remembered, so it cannot be redeemed twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketUse {
    pub id: [u8; 16],
    pub expires_at_ms: u64,
    /// The redeeming command's clock, for forgetting expired ticket ids.
    pub now_ms: u64,
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
    /// A zone's quotas were set.
    QuotaSet,
    ZoneAuthSet {
        created: bool,
    },
    AccountCreated,
    SessionCreated,
    SessionsRevoked {
        count: u64,
    },
    EnvelopePut {
        version: u64,
    },
    PasswordChanged,
    AccountDeleted,
    ZoneSettingsSet,
    PasskeyAdded,
    PasskeyRemoved,
    EnvelopeDeleted,
    SitePublished {
        version: u64,
    },
    SiteVersionSet,
    /// The responses of a `Batch`, in its order.
    Batch(Vec<CommandResponse>),
    CredentialsChanged {
        /// Sessions ended.
        revoked: u64,
    },
    RegistrationSet,
    InvitesCreated,
    RemovedMarked,
    TicketRedeemed,
    JoinSecretRotated,
    /// The cluster's version after the command (never lower than before).
    ClusterVersionSet {
        level: u32,
    },
    /// The cluster's id after the command (the first one set stays).
    ClusterIdSet {
        id: [u8; 16],
    },
    AdminCredentialsSet,
    ZoneDeleted(ZoneRemoved),
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
    /// The zone is at its quota of chains or entries.
    QuotaExceeded {
        what: QuotaKind,
        limit: u64,
    },
    /// The account id is taken.
    AccountExists,
    /// No such account (or it was deleted), or its password changed during the login.
    UnknownAccount,
    /// The login ticket was redeemed already or has expired.
    TicketUsed,
    /// The acting session is unknown, expired, revoked or of another account.
    InvalidSession,
    /// The envelope's version is not the one the write expected.
    EnvelopeConflict {
        /// The current version (0: no such envelope).
        version: u64,
    },
    /// The account holds the most envelopes it may.
    TooManyEnvelopes,
    /// The zone has no account secrets yet.
    NoZoneAuth,
    /// The account is at its quota of chains.
    AccountQuotaExceeded {
        what: QuotaKind,
        limit: u64,
    },
    /// The passkey's credential id is registered in the zone already.
    PasskeyExists,
    /// The account has no passkey with this credential id.
    UnknownPasskey,
    /// The account holds the most passkeys it may.
    TooManyPasskeys,
    /// No site version with that number.
    UnknownSiteVersion,
    /// A `Batch` inside a `Batch` (never proposed).
    NestedBatch,
    /// The zone's registration policy is `closed`.
    RegistrationClosed,
    /// The zone's policy is `invite` and the code given is missing, unknown, used or expired.
    InvalidInvite,
    /// A join-token rotation whose `previous` is not the cluster's secret.
    JoinSecretChanged,
    /// A site host name in the settings belongs to another zone.
    SiteHostTaken {
        host: String,
        zone: ZoneId,
    },
    /// The command needs a higher cluster version than the cluster runs: some member's build
    /// is older (finish the rolling upgrade first).
    NeedsClusterVersion {
        needed: u32,
        current: u32,
    },
    /// An admin credential rotation whose `previous` is not the cluster's credential.
    AdminCredentialsChanged,
}

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuotaKind {
    Chains,
    Entries,
    ChunkBytes,
    Chunks,
    Accounts,
    EnvelopeBytes,
    Invites,
}

impl std::fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuotaKind::Chains => "chains",
            QuotaKind::Entries => "entries",
            QuotaKind::ChunkBytes => "chunk bytes held per node",
            QuotaKind::Chunks => "chunks held per node",
            QuotaKind::Accounts => "accounts",
            QuotaKind::EnvelopeBytes => "envelope bytes of all accounts",
            QuotaKind::Invites => "unused invite codes",
        })
    }
}

/// A zone's quotas. Chains and entries count the whole zone (checked where commands are
/// applied, so every replica agrees); chunk bytes and chunks count what each node holds for
/// the zone (checked when a client's chunk or payload is stored: the disk being protected is
/// each node's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub max_chains: u64,
    pub max_entries: u64,
    pub max_chunk_bytes: u64,
    pub max_chunks: u64,
}

impl Default for Quota {
    /// Generous defaults (documented in docs/operations.md): the free-space reserve protects
    /// a node's disk; quotas keep one zone from taking all of it.
    fn default() -> Self {
        Self {
            max_chains: 1_000_000,
            max_entries: 100_000_000,
            max_chunk_bytes: 1 << 40,
            max_chunks: 100_000_000,
        }
    }
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
