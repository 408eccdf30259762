//! JSON bodies of HTTP API v1, shared by the server and the Rust client so both speak the same
//! contract. Requests reject unknown fields.
//!
//! The declarations are alike on purpose (the same derives, one struct per body): each body is
//! its own schema in the OpenAPI document, and a field added to one must not reach another.

use serde::{Deserialize, Serialize};

use crate::account::{AccountId, WritePolicy, ZoneSettings};
use crate::ids::{ChainId, Hash32, PublicKey, Signature, ZoneId};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    pub node_id: u64,
    /// `voter`, `learner` (storage node) or `gateway`.
    pub role: String,
    /// The current leader's node id, if one is known.
    pub leader: Option<u64>,
    pub term: u64,
    /// Index of the last Raft log entry applied to this node's state machine.
    pub last_applied: Option<u64>,
    /// Index of the last entry in this node's Raft log.
    pub last_log_index: Option<u64>,
    /// Last log index covered by this node's latest snapshot.
    pub snapshot: Option<u64>,
    /// Last log index removed from this node's log (covered by a snapshot).
    pub purged: Option<u64>,
    /// Chunks this node holds, all zones together.
    #[serde(default)]
    pub chunks_held: u64,
    /// Chunks with fewer reachable copies than the replication factor at this node's last
    /// repair pass, each counted by one holder only: the cluster's count is the sum over nodes.
    /// Chunks only in the wrong place (rebalancing) are not counted.
    #[serde(default)]
    pub under_replicated: u64,
    /// Held chunks some owner lacked at the last repair pass: the copies this node still owes,
    /// rebalancing included.
    #[serde(default)]
    pub repair_backlog: u64,
    /// Copies per second this node's last repair pass sent.
    #[serde(default)]
    pub repair_rate: f64,
    /// This node was removed from the cluster for good: it serves no client requests.
    #[serde(default)]
    pub removed: bool,
    /// The feature level this node's build supports (0: a build older than levels, which
    /// supports level 1; also a gateway).
    #[serde(default)]
    pub feature_level: u32,
    /// The cluster's version as this node has applied it: the feature level every member
    /// supports, which gates new commands (0 from a build older than levels).
    #[serde(default)]
    pub cluster_version: u32,
    /// The cluster's id (hex), once set (cluster version 2 and up): backups record it.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// The node's name (`--name`; empty if none).
    #[serde(default)]
    pub name: String,
    /// Whether node-to-node gRPC runs over mutual TLS (`--cluster-tls`).
    #[serde(default)]
    pub rpc_tls: bool,
    /// The build's version and git revision (empty from older builds).
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub revision: String,
}

/// `GET /v1/admin/zones/{zone}/chunks/{hash}/replicas`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Replicas {
    /// Nodes holding a copy (unreachable nodes are not counted).
    pub node_ids: Vec<u64>,
    /// Nodes that should hold it now: the top-ranked live storage members.
    pub owners: Vec<u64>,
}

/// `GET /v1/admin/cluster`: the Raft membership as the answering node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClusterMembers {
    /// The node that answered.
    pub node_id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    /// The leader's last log index, if this node is the leader (for lag).
    pub leader_last_log_index: Option<u64>,
    pub members: Vec<Member>,
    /// Nodes removed from the cluster for good: never added again, their ids never reused.
    #[serde(default)]
    pub removed: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Member {
    pub node_id: u64,
    /// `voter` or `learner` (a storage node).
    pub role: String,
    pub rpc_addr: String,
    pub http_addr: String,
    /// Highest log index known replicated to this member (only when the answering node leads).
    pub matched: Option<u64>,
    /// Being drained: its chunks are moving to other nodes before it is removed.
    #[serde(default)]
    pub draining: bool,
}

/// `GET /v1/admin/cluster/overview`: the members with each one's own health, as one node
/// gathers them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ClusterOverview {
    /// The node that answered (and asked the others).
    pub answered_by: u64,
    pub leader: Option<u64>,
    pub term: u64,
    /// The leader's last log index, if the answering node leads (for lag).
    pub leader_last_log_index: Option<u64>,
    pub members: Vec<MemberOverview>,
    /// Nodes removed from the cluster for good.
    #[serde(default)]
    pub removed: Vec<u64>,
}

/// One member in [`ClusterOverview`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MemberOverview {
    #[serde(flatten)]
    pub member: Member,
    /// The member's `/v1/health`, asked with a 2 s deadline; absent when it did not answer.
    pub health: Option<Health>,
    /// Why `health` is absent (unreachable, timed out, an error status).
    pub error: Option<String>,
}

/// A chunk and how often it was asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RequestCount {
    pub zone: ZoneId,
    pub hash: Hash32,
    pub requests: u64,
}

/// `GET /v1/admin/cache`: the chunk cache of a node or gateway, and its most requested chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CacheReport {
    /// Reads the cache answered since start.
    pub hits: u64,
    /// Reads it did not (a node's store, another holder or a member answered).
    pub misses: u64,
    pub memory_bytes: u64,
    pub memory_capacity: u64,
    pub memory_chunks: u64,
    /// A gateway's disk tier (`--cache-disk-bytes`); 0 on nodes.
    pub disk_bytes: u64,
    pub disk_capacity: u64,
    pub disk_chunks: u64,
    pub most_requested: Vec<RequestCount>,
}

/// `GET /v1/admin/chunks/most-requested`: this node's (or gateway's) most requested chunks
/// since it started, most first. Counts are exact while fewer than 1024 chunks were asked for;
/// past that, a count may be high by at most the smallest one kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MostRequested {
    pub most_requested: Vec<RequestCount>,
}

/// Answer to draining or removing a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NodeChange {
    pub node_id: u64,
    /// What was done: `draining`, `undrained` or `removed`.
    pub action: String,
}

/// Asking for a new join token (`POST /v1/admin/cluster/rotate-token`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateToken {
    /// How long members keep using the old token after the rotation (default 60, at most
    /// 3600); it is refused from twice that on. A member down longer than the grace needs the
    /// new token given by hand on a plain cluster (see docs/operations.md).
    #[serde(default)]
    pub grace_seconds: Option<u64>,
}

/// Asking for a new cluster admin or metrics credential
/// (`POST /v1/admin/cluster/credentials/rotate`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateCredential {
    /// `admin` (every admin call) or `metrics` (reading `/v1/metrics` only).
    pub credential: String,
}

/// The tokens a credential rotation made, each shown this once (only hashes are kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RotatedCredential {
    /// The cluster's new admin token: every node and gateway accepts it, and no longer the
    /// previous one nor any node's own `--admin-token`. Absent when only the metrics token
    /// was replaced.
    pub admin_token: Option<String>,
    /// The new metrics token, when it was the one rotated.
    pub metrics_token: Option<String>,
}

/// The cluster's new tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RotatedToken {
    /// For joining nodes (every member rewrites its `join-token` file).
    pub join_token: String,
    /// For gateways (every member rewrites its `gateway-token` file); restart gateways with it.
    pub gateway_token: String,
    pub grace_seconds: u64,
}

/// A zone with its usage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Zone {
    pub zone: ZoneId,
    pub created_at_ms: u64,
    pub usage: ZoneUsage,
    /// The zone's quotas (defaults unless set).
    #[serde(default)]
    pub quota: ZoneQuota,
    /// Who may write, and what each account may use (defaults unless set).
    #[serde(default)]
    pub settings: ZoneSettings,
    /// Who may create accounts, and the caps on what accounts keep (defaults unless set).
    #[serde(default)]
    pub registration: crate::account::RegistrationSettings,
    /// What the zone's accounts keep now.
    #[serde(default)]
    pub accounts: crate::account::AccountUsage,
}

/// `PUT /v1/admin/zones/{zone}/registration`: fields left out keep their values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegistrationChange {
    /// `open`, `invite` (a one-time code from `POST .../invites` is needed) or `closed`.
    #[serde(default)]
    pub policy: Option<crate::account::RegistrationPolicy>,
    /// Accounts in the zone at most.
    #[serde(default)]
    pub max_accounts: Option<u64>,
    /// Envelope bytes of all the zone's accounts together at most.
    #[serde(default)]
    pub max_envelope_bytes: Option<u64>,
}

/// `POST /v1/admin/zones/{zone}/invites`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// How many codes (1 to 1000).
    pub count: u64,
    /// How long they stay valid, seconds (default 7 days, at most 365 days).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// New one-time invite codes: each creates one account, until `expires_at_ms`. Shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Invites {
    pub codes: Vec<String>,
    pub expires_at_ms: u64,
}

/// `PUT /v1/admin/zones/{zone}/settings`: fields left out keep their current values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ZoneSettingsChange {
    /// `open` (anyone may create chains and upload chunks) or `accounts` (a session is
    /// needed, and usage counts against the account's quotas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<WritePolicy>,
    /// Chains one account may create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_max_chains: Option<u64>,
    /// Chunks charged to one account, per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_max_chunks: Option<u64>,
    /// Chunk bytes charged to one account, per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_max_chunk_bytes: Option<u64>,
    /// Passkeys: the relying party id (a domain such as `app.example.com` or `localhost`);
    /// an empty string turns passkeys off. Setting it needs `passkey_origins` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey_rp_id: Option<String>,
    /// Passkeys: the web origins allowed to use them (`https://app.example.com`, or
    /// `http://localhost:8080`), replacing the current list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey_origins: Option<Vec<String>>,
    /// CORS: the web origins whose pages may call the zone's client API (exact origins, or
    /// `*`), replacing the current list; an empty list allows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_origins: Option<Vec<String>>,
    /// Host names whose requests get the zone's site at `/`, replacing the current list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_hosts: Option<Vec<String>>,
    /// Reverse-proxy routes, replacing the current list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxies: Option<Vec<crate::account::ProxyRoute>>,
}

/// `GET`/`PUT /v1/admin/zones/{zone}/quota`: a zone's quotas. In a `PUT`, fields left out keep
/// their current values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ZoneQuota {
    /// Chains in the zone at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chains: Option<u64>,
    /// Entries in all the zone's chains together at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
    /// Bytes of chunks (entry payloads included) each node holds for the zone at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chunk_bytes: Option<u64>,
    /// Chunks (entry payloads included) each node holds for the zone at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chunks: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ZoneUsage {
    pub chains: u64,
    pub entries: u64,
    /// Chunks stored for the zone on the answering node (entry payloads included).
    pub chunks: u64,
    /// Bytes of those chunks.
    pub bytes: u64,
}

/// `GET /v1/admin/zones`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ZoneList {
    pub zones: Vec<Zone>,
}

/// `POST /v1/zones/{zone}/chunks/missing`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MissingChunksRequest {
    pub hashes: Vec<Hash32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MissingChunksResponse {
    /// The asked-for hashes this zone does not hold, in request order.
    pub missing: Vec<Hash32>,
}

/// `POST /v1/zones/{zone}/chains`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateChainRequest {
    /// Raw 32-byte Ed25519 public key, base64url without padding.
    pub public_key: PublicKey,
}

/// A chain's identity and tip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Chain {
    pub chain_id: ChainId,
    pub public_key: PublicKey,
    pub length: u64,
    /// Hash of the last entry; the genesis hash while the chain is empty.
    pub head: Hash32,
}

/// `POST /v1/zones/{zone}/chains/{chain_id}/entries`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AppendRequest {
    pub index: u64,
    pub prev: Hash32,
    /// The payload bytes (client ciphertext), base64url without padding.
    pub payload: String,
    /// Extra chunks this entry references; each must already be stored in the zone.
    #[serde(default)]
    pub chunks: Vec<Hash32>,
    pub signature: Signature,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AppendResponse {
    pub index: u64,
    pub entry_hash: Hash32,
    /// Chain length after this append.
    pub length: u64,
}

/// One entry as read back: its header and its payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Entry {
    pub index: u64,
    pub prev: Hash32,
    pub payload_hash: Hash32,
    /// base64url without padding.
    pub payload: String,
    pub chunks: Vec<Hash32>,
    pub signature: Signature,
    pub entry_hash: Hash32,
}

/// `GET /v1/zones/{zone}/chains/{chain_id}/entries`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Entries {
    pub length: u64,
    pub head: Hash32,
    pub entries: Vec<Entry>,
    /// Present when the answer was cut short by the count or byte cap: the index to ask for
    /// next (`from=next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// Every error response: `{"error":{"code","message"}}`. A 409 `index_conflict` also carries
/// the chain's current `length` and `head`, both inside `error` and at the top level.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Hash32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `index_conflict`, `bad_signature`, `unknown_zone`.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Hash32>,
    /// With `envelope_conflict`: the envelope's current version (0: it does not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `POST /v1/zones/{zone}/auth/register/start`: an OPAQUE registration request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterStart {
    /// The account id the client chose (1 to 256 bytes; e.g. a hash of the username).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub account: AccountId,
    /// OPAQUE `RegistrationRequest`, base64url without padding.
    pub registration_request: String,
    /// The device token a login on this client got for this account, if any: the request is
    /// then held to this device's own limit instead of the one strangers share (a password
    /// change runs `register/start` for an existing account).
    #[serde(default)]
    pub device_token: Option<String>,
}

/// The answer to [`RegisterStart`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RegisterStarted {
    /// OPAQUE `RegistrationResponse`, base64url without padding.
    pub registration_response: String,
}

/// `POST /v1/zones/{zone}/auth/register/finish`: the client's OPAQUE record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterFinish {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub account: AccountId,
    /// OPAQUE `RegistrationUpload`, base64url without padding.
    pub registration_record: String,
    /// A one-time invite code, for a zone whose registration is `invite` (ignored otherwise).
    #[serde(default)]
    pub invite: Option<String>,
}

/// `POST /v1/zones/{zone}/auth/login/start`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginStart {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub account: AccountId,
    /// OPAQUE `CredentialRequest` (KE1), base64url without padding.
    pub start_login_request: String,
    /// The device token an earlier login on this client got for this account, if any: the
    /// login is then held to this device's own limit, so strangers' attempts cannot lock it out.
    #[serde(default)]
    pub device_token: Option<String>,
}

/// The answer to [`LoginStart`]; an unknown account gets one of the same shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginStarted {
    /// OPAQUE `CredentialResponse` (KE2), base64url without padding.
    pub login_response: String,
    /// The sealed login state: send it back with `login/finish`, to any node, within the
    /// login time limit. Opaque to the client.
    pub login_ticket: String,
}

/// `POST /v1/zones/{zone}/auth/login/finish`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginFinish {
    pub login_ticket: String,
    /// OPAQUE `CredentialFinalization` (KE3), base64url without padding.
    pub finish_login_request: String,
    /// A label for the session (e.g. the device), up to 128 bytes.
    #[serde(default)]
    pub label: String,
    /// The device token this client holds for the account, if any: the new one keeps its
    /// device id (and so its rate limit).
    #[serde(default)]
    pub device_token: Option<String>,
}

/// A new session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NewSession {
    /// The bearer token: `Authorization: Bearer <token>`. Shown once; the server keeps only
    /// its SHA-256.
    pub token: String,
    /// The session's id in `GET .../auth/sessions`.
    pub session_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub account: AccountId,
    pub expires_at_ms: u64,
    /// A step-up for this session: the proof of a login completed just now, which what cannot
    /// be undone requires (`Blindstore-Step-Up: <step_up>`) until `step_up_expires_at_ms`. Keep
    /// it in memory only.
    #[serde(default)]
    pub step_up: String,
    #[serde(default)]
    pub step_up_expires_at_ms: u64,
    /// The device token: send it with later logins to this account from this client
    /// (`device_token` in `login/start`, `register/start`, `passkeys/login/start` and
    /// `login/finish`), so they are held to this device's own rate limit. Keep it across
    /// logouts.
    #[serde(default)]
    pub device_token: String,
}

/// `POST /v1/zones/{zone}/auth/step-up`: a password login (started with `login/start`)
/// finished to prove the password again for the request's session, instead of opening a
/// new session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepUpFinish {
    pub login_ticket: String,
    /// OPAQUE `CredentialFinalization` (KE3), base64url without padding.
    pub finish_login_request: String,
}

/// `POST /v1/zones/{zone}/auth/passkeys/step-up`: a passkey login (started with
/// `passkeys/login/start`) finished to prove the passkey again for the request's session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeyStepUpFinish {
    pub ticket: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
}

/// A step-up: send it as `Blindstore-Step-Up: <step_up>` with the session's requests that
/// cannot be undone, until `expires_at_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StepUp {
    pub step_up: String,
    pub expires_at_ms: u64,
}

/// The first step of a passkey ceremony: the options to hand to the browser's
/// `navigator.credentials.create` / `.get` (`PublicKeyCredential.parseCreationOptionsFromJSON`
/// / `parseRequestOptionsFromJSON` read `options.publicKey`), and a sealed ticket to send back
/// with the second step, to any node, within five minutes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PasskeyOptions {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub options: serde_json::Value,
    pub ticket: String,
}

/// `POST /v1/zones/{zone}/auth/passkeys/register/finish`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegisterFinish {
    pub ticket: String,
    /// The new credential as the browser's `PublicKeyCredential.toJSON()` gives it. The
    /// client removes `clientExtensionResults.prf` (its secret) first; the server drops it
    /// anyway.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
    /// A label for the passkey (e.g. the device), up to 128 bytes.
    #[serde(default)]
    pub label: String,
}

/// `POST /v1/zones/{zone}/auth/passkeys/login/start`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginStart {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub account: AccountId,
    /// As in `login/start`.
    #[serde(default)]
    pub device_token: Option<String>,
}

/// `POST /v1/zones/{zone}/auth/passkeys/login/finish`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginFinish {
    pub ticket: String,
    /// The assertion as `PublicKeyCredential.toJSON()` gives it (without
    /// `clientExtensionResults.prf`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
    /// A label for the session, up to 128 bytes.
    #[serde(default)]
    pub label: String,
    /// As in `login/finish`.
    #[serde(default)]
    pub device_token: Option<String>,
}

/// `POST /v1/admin/zones/{zone}/site`: the published version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SitePublished {
    pub version: u64,
}

/// One site version of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SiteVersionInfo {
    pub version: u64,
    pub created_at_ms: u64,
    pub files: u64,
    /// The files' bytes (without precompressed variants).
    pub bytes: u64,
    pub current: bool,
}

/// `GET /v1/admin/zones/{zone}/site`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SiteVersions {
    pub current: Option<u64>,
    pub versions: Vec<SiteVersionInfo>,
}

/// `PUT /v1/admin/zones/{zone}/site/current`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SiteSwitch {
    pub version: u64,
}

/// One passkey of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PasskeyInfo {
    /// The credential id, base64url without padding (the browser's `credential.id`).
    pub passkey_id: String,
    pub label: String,
    pub created_at_ms: u64,
    /// 0 until first used to log in.
    pub last_used_ms: u64,
}

/// `GET /v1/zones/{zone}/auth/passkeys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PasskeyList {
    pub passkeys: Vec<PasskeyInfo>,
}

/// One session of an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionInfo {
    pub session_id: String,
    pub label: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// Whether this is the session the request came with.
    pub current: bool,
}

/// `GET /v1/zones/{zone}/auth/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionList {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub account: AccountId,
    pub sessions: Vec<SessionInfo>,
}

/// How many sessions a logout ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Revoked {
    pub revoked: u64,
}

/// `GET /v1/zones/{zone}/auth/envelopes/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Envelope {
    pub name: String,
    pub version: u64,
    /// The client-encrypted bytes, base64url without padding.
    pub data: String,
    pub updated_at_ms: u64,
}

/// `PUT /v1/zones/{zone}/auth/envelopes/{name}`, with `If-Match: "<version>"` to replace
/// that version, or without it to create the envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnvelopePut {
    /// At most 64 KiB, base64url without padding.
    pub data: String,
}

/// An envelope's name and version after a write, or in a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnvelopeInfo {
    pub name: String,
    pub version: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub updated_at_ms: u64,
}

/// `GET /v1/zones/{zone}/auth/envelopes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnvelopeList {
    pub envelopes: Vec<EnvelopeInfo>,
}

/// An envelope written together with a password change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnvelopeChange {
    pub name: String,
    /// base64url without padding, at most 64 KiB.
    pub data: String,
    /// The version being replaced (0: the envelope must not exist yet).
    pub if_version: u64,
}

/// `POST /v1/zones/{zone}/auth/password`: a new OPAQUE record (after `register/start` with
/// the same account id), in one step with an envelope and, optionally, the end of every other
/// session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub registration_record: String,
    #[serde(default)]
    pub envelope: Option<EnvelopeChange>,
    #[serde(default)]
    pub revoke_other_sessions: bool,
    /// Passkeys to remove in the same step (their `passkey_id`s); an unknown one refuses the
    /// whole change with 404 `unknown_passkey`.
    #[serde(default)]
    pub remove_passkeys: Vec<String>,
}

/// `POST /v1/zones/{zone}/auth/logout-all` (the body is optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogoutEverywhere {
    /// Passkeys to remove in the same step, as in [`ChangePassword`].
    #[serde(default)]
    pub remove_passkeys: Vec<String>,
}

/// The answer to a password change or "log out everywhere": how many sessions ended, and
/// the passkeys the account still has (a password change does not end them: remove the ones
/// you do not know in the same step, or now).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CredentialsChanged {
    pub revoked: u64,
    pub passkeys: Vec<PasskeyInfo>,
}

/// The stable error codes of HTTP API v1, in one place for the server, the gateway and the
/// client. Each has one HTTP status (see [`ErrorCode::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: malformed input (path, query, JSON, a broken limit on counts).
    BadRequest,
    /// 400: not a valid, strong Ed25519 public key.
    BadPublicKey,
    /// 400: the entry's signature does not verify under the chain's key.
    BadSignature,
    /// 400: uploaded bytes do not hash to their address.
    HashMismatch,
    /// 400: the entry references chunks that are not stored (fully replicated).
    MissingChunk,
    /// 401: missing or wrong credentials.
    Unauthorized,
    /// 401: a login failed (wrong password and unknown account alike).
    InvalidLogin,
    /// 401: the session token is missing, expired or revoked.
    InvalidSession,
    /// 403: the zone's registration is closed.
    RegistrationClosed,
    /// 403: the zone takes new accounts by invite only and the code is not a live one.
    InvalidInvite,
    /// 403: the request cannot be undone and needs a fresh proof for its session (a
    /// step-up: `Blindstore-Step-Up`, from a password or passkey login minutes ago).
    StepUpRequired,
    /// 403: a quota of the zone would be exceeded.
    QuotaExceeded,
    /// 404: no such route.
    NotFound,
    /// 404: the zone does not exist.
    UnknownZone,
    /// 404: the chain does not exist.
    UnknownChain,
    /// 404: the chunk is not stored.
    UnknownChunk,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: the entry's index/prev is not the chain's length/head.
    IndexConflict,
    /// 409: the account id is taken.
    AccountExists,
    /// 409: the envelope's version is not the expected one (`version` holds the current).
    EnvelopeConflict,
    /// 404: no such account.
    UnknownAccount,
    /// 404: no such envelope.
    UnknownEnvelope,
    /// 404: the account has no such passkey.
    UnknownPasskey,
    /// 404: the zone has no reverse-proxy route of that name.
    UnknownProxy,
    /// 409: the passkey is registered in the zone already.
    PasskeyExists,
    /// 403: passkeys are not set up for the zone (`blindstore zone set --passkey-rp-id`).
    PasskeysOff,
    /// 413: a body or field above its size limit.
    PayloadTooLarge,
    /// 502: a proxied upstream could not be reached or answered badly.
    BadGateway,
    /// 504: a proxied upstream did not answer in time.
    GatewayTimeout,
    /// 429: too many requests of this kind; `Retry-After` says when to try again.
    RateLimited,
    /// 500: a broken invariant; details are in the server log.
    Internal,
    /// 503: certainly not done (no leader, no quorum, too busy, shutting down).
    Unavailable,
    /// 503: proposed, fate unknown; read to find out.
    OutcomeUnknown,
    /// 503: this node was removed from the cluster for good; use another member.
    NodeRemoved,
    /// 507: the node is below its free-space reserve.
    InsufficientStorage,
    /// A code this build does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BadRequest | BadPublicKey | BadSignature | HashMismatch | MissingChunk => 400,
            Unauthorized | InvalidLogin | InvalidSession => 401,
            QuotaExceeded | PasskeysOff | StepUpRequired | RegistrationClosed | InvalidInvite => {
                403
            }
            NotFound | UnknownZone | UnknownChain | UnknownChunk | UnknownAccount
            | UnknownEnvelope | UnknownPasskey | UnknownProxy => 404,
            MethodNotAllowed => 405,
            IndexConflict | AccountExists | EnvelopeConflict | PasskeyExists => 409,
            PayloadTooLarge => 413,
            BadGateway => 502,
            GatewayTimeout => 504,
            RateLimited => 429,
            Internal | Unknown => 500,
            Unavailable | OutcomeUnknown | NodeRemoved => 503,
            InsufficientStorage => 507,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad_request",
            BadPublicKey => "bad_public_key",
            BadSignature => "bad_signature",
            HashMismatch => "hash_mismatch",
            MissingChunk => "missing_chunk",
            Unauthorized => "unauthorized",
            InvalidLogin => "invalid_login",
            InvalidSession => "invalid_session",
            StepUpRequired => "step_up_required",
            RegistrationClosed => "registration_closed",
            InvalidInvite => "invalid_invite",
            AccountExists => "account_exists",
            EnvelopeConflict => "envelope_conflict",
            UnknownAccount => "unknown_account",
            UnknownEnvelope => "unknown_envelope",
            UnknownPasskey => "unknown_passkey",
            UnknownProxy => "unknown_proxy",
            PasskeyExists => "passkey_exists",
            PasskeysOff => "passkeys_off",
            QuotaExceeded => "quota_exceeded",
            NotFound => "not_found",
            UnknownZone => "unknown_zone",
            UnknownChain => "unknown_chain",
            UnknownChunk => "unknown_chunk",
            MethodNotAllowed => "method_not_allowed",
            IndexConflict => "index_conflict",
            PayloadTooLarge => "payload_too_large",
            BadGateway => "bad_gateway",
            GatewayTimeout => "gateway_timeout",
            RateLimited => "rate_limited",
            Internal => "internal",
            Unavailable => "unavailable",
            OutcomeUnknown => "outcome_unknown",
            NodeRemoved => "node_removed",
            InsufficientStorage => "insufficient_storage",
            Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorBody {
    /// A plain error body (no conflict fields).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                length: None,
                head: None,
                version: None,
            },
            length: None,
            head: None,
        }
    }
}

#[cfg(feature = "openapi")]
mod schemas {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;
    use utoipa::{PartialSchema, ToSchema};

    fn string(description: &str, pattern: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .pattern(Some(pattern))
            .into()
    }

    macro_rules! string_schema {
        ($ty:ty, $desc:expr, $pattern:expr) => {
            impl PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    string($desc, $pattern)
                }
            }
            impl ToSchema for $ty {}
        };
    }

    string_schema!(crate::ZoneId, "zone id", "^[a-z0-9][a-z0-9-]{0,62}$");
    string_schema!(crate::Hash32, "SHA-256, lowercase hex", "^[0-9a-f]{64}$");
    string_schema!(
        crate::PublicKey,
        "Ed25519 public key (32 bytes), base64url without padding",
        "^[A-Za-z0-9_-]{43}$"
    );
    string_schema!(
        crate::Signature,
        "Ed25519 signature (64 bytes), base64url without padding",
        "^[A-Za-z0-9_-]{86}$"
    );
}

#[cfg(test)]
mod tests {
    use super::ErrorCode::{self, *};

    const ALL: [ErrorCode; 36] = [
        NodeRemoved,
        StepUpRequired,
        RegistrationClosed,
        InvalidInvite,
        UnknownProxy,
        BadGateway,
        GatewayTimeout,
        UnknownPasskey,
        PasskeyExists,
        PasskeysOff,
        RateLimited,
        InvalidLogin,
        InvalidSession,
        AccountExists,
        EnvelopeConflict,
        UnknownAccount,
        UnknownEnvelope,
        BadRequest,
        BadPublicKey,
        BadSignature,
        HashMismatch,
        MissingChunk,
        Unauthorized,
        QuotaExceeded,
        NotFound,
        UnknownZone,
        UnknownChain,
        UnknownChunk,
        MethodNotAllowed,
        IndexConflict,
        PayloadTooLarge,
        Internal,
        Unavailable,
        OutcomeUnknown,
        InsufficientStorage,
        Unknown,
    ];

    #[test]
    fn wire_names_are_the_serde_names_and_round_trip() {
        for code in ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        let newer: ErrorCode = serde_json::from_str("\"from_the_future\"").unwrap();
        assert_eq!(newer, Unknown);
    }
}
