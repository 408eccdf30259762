//! Accounts as the replicated state keeps them: identifiers, the zone's account secrets, the
//! OPAQUE registration record, sessions (by the SHA-256 of their bearer token) and envelopes.
//! No password, export key or session token ever appears here.

use serde::{Deserialize, Serialize};

use crate::ids::Hash32;

/// Longest account identifier, bytes.
pub const MAX_ACCOUNT_ID_BYTES: usize = 256;
/// Longest envelope name, bytes.
pub const MAX_ENVELOPE_NAME_BYTES: usize = 64;
/// Largest envelope, bytes.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Envelopes one account may hold: one per passkey it may have (`MAX_PASSKEYS_PER_ACCOUNT`),
/// the vault and the password's key, and two to spare.
pub const MAX_ENVELOPES_PER_ACCOUNT: usize = 20;
/// Live sessions one account may hold; a new login beyond it ends the oldest.
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 64;
/// Longest session or passkey label, bytes.
pub const MAX_SESSION_LABEL_BYTES: usize = 128;
/// Passkeys one account may hold.
pub const MAX_PASSKEYS_PER_ACCOUNT: usize = 16;
/// Longest passkey credential id, bytes (WebAuthn allows up to 1023).
pub const MAX_PASSKEY_ID_BYTES: usize = 1023;

/// An account's identifier, chosen by the client (the SDK sends a hash of the username, so the
/// server need not see it in clear): 1 to 256 bytes of printable text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn new(id: impl Into<String>) -> Result<Self, String> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_ACCOUNT_ID_BYTES {
            return Err(format!(
                "an account id is 1 to {MAX_ACCOUNT_ID_BYTES} bytes, not {}",
                id.len()
            ));
        }
        if id.chars().any(char::is_control) {
            return Err("an account id has no control characters".into());
        }
        Ok(AccountId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        AccountId::new(s)
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> String {
        id.0
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an envelope name: 1 to 64 bytes of `[a-z0-9._-]`.
pub fn check_envelope_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ENVELOPE_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "an envelope name is 1 to {MAX_ENVELOPE_NAME_BYTES} characters of a-z, 0-9, '.', '_', '-'"
        ))
    }
}

/// A zone's account secrets, created with the zone and held only in the replicated state
/// (and so in every voter's data dir, log and snapshots). Never logged: `Debug` hides them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneAuth {
    /// The serialized OPAQUE `ServerSetup` (OPRF seed, server key pair, dummy key).
    pub opaque_setup: Vec<u8>,
    /// Key that seals the login tickets any node can open (XChaCha20-Poly1305).
    pub ticket_key: [u8; 32],
}

impl std::fmt::Debug for ZoneAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZoneAuth { .. }")
    }
}

/// Who may write to a zone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WritePolicy {
    /// Anyone may create chains and upload chunks (appends always need the chain's key).
    #[default]
    Open,
    /// Creating chains and uploading chunks need a session of an account of the zone, and
    /// count against that account's quotas.
    Accounts,
}

/// Who may create accounts in a zone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    /// Anyone (within the rate limits and the zone's account cap).
    #[default]
    Open,
    /// Only with a one-time invite code an administrator created.
    Invite,
    /// Nobody; existing accounts keep working.
    Closed,
}

/// A zone's registration policy and the caps on what its accounts keep in the replicated state
/// (every voter holds it all): accounts, and envelope bytes of all accounts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistrationSettings {
    pub policy: RegistrationPolicy,
    pub max_accounts: u64,
    pub max_envelope_bytes: u64,
}

impl Default for RegistrationSettings {
    /// Documented in docs/accounts.md: with them a zone's accounts take at most a few GiB of
    /// the state store (100,000 accounts with their sessions, and 1 GiB of envelopes), far
    /// from its guard.
    fn default() -> Self {
        Self {
            policy: RegistrationPolicy::Open,
            max_accounts: 100_000,
            max_envelope_bytes: 1 << 30,
        }
    }
}

/// What a zone's accounts keep in the replicated state, counted where commands are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountUsage {
    pub accounts: u64,
    pub envelope_bytes: u64,
}

/// The bytes of an invite code (shown once; the state keeps its SHA-256).
pub const INVITE_CODE_BYTES: usize = 16;
/// Invite codes one request may create at most.
pub const MAX_INVITES_PER_REQUEST: u64 = 1_000;
/// Unused invite codes a zone may hold at most.
pub const MAX_INVITES_PER_ZONE: u64 = 100_000;

/// What one account may use in a zone with [`WritePolicy::Accounts`]. Chains count the whole
/// zone; chunks and chunk bytes count what each node holds for the account (the first
/// account to upload a chunk is charged for it), like the zone's chunk quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountQuota {
    pub max_chains: u64,
    pub max_chunks: u64,
    pub max_chunk_bytes: u64,
}

impl Default for AccountQuota {
    /// Documented in docs/accounts.md.
    fn default() -> Self {
        Self {
            max_chains: 1_000,
            max_chunks: 100_000,
            max_chunk_bytes: 1 << 30,
        }
    }
}

/// A zone's passkey (WebAuthn) relying party: the domain passkeys are bound to and the web
/// origins allowed to use them (`https://`, or `http://` on `localhost`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeySettings {
    /// e.g. `app.example.com`, or `localhost`; never an IP address.
    pub rp_id: String,
    /// e.g. `https://app.example.com`; each host is `rp_id` or a subdomain of it.
    pub origins: Vec<String>,
}

/// A zone's settings (defaults unless set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneSettings {
    pub writes: WritePolicy,
    pub account_quota: AccountQuota,
    /// Passkeys are off unless set.
    pub passkeys: Option<PasskeySettings>,
    /// Web origins whose pages may call the zone's client API (CORS): exact origins such as
    /// `https://app.example.com`, or `*` for any. Empty: none but the API's own.
    pub cors_origins: Vec<String>,
    /// Host names whose requests get the zone's site at `/` (e.g. `budget.example.com`).
    pub site_hosts: Vec<String>,
    /// Other services reached through the zone: `/v1/zones/{zone}/proxy/{name}/...` (and
    /// `/proxy/{name}/...` on the zone's site hosts) go to the route's upstream.
    pub proxies: Vec<ProxyRoute>,
}

/// A reverse-proxy route of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProxyRoute {
    /// `[a-z0-9-]{1,63}`.
    pub name: String,
    /// `http://` or `https://` URL the rest of the path is appended to, e.g.
    /// `https://api.example.com/v2`.
    pub upstream: String,
    /// The whole exchange with the upstream must finish within this many milliseconds.
    pub timeout_ms: u64,
}

/// Default [`ProxyRoute::timeout_ms`].
pub const DEFAULT_PROXY_TIMEOUT_MS: u64 = 30_000;

impl ProxyRoute {
    /// Checks the name, the upstream URL (http or https, a host, no query, fragment or
    /// credentials) and the timeout (1 ms to 5 minutes).
    pub fn check(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(format!(
                "proxy name {:?} must be [a-z0-9-]{{1,63}}",
                self.name
            ));
        }
        let rest = self
            .upstream
            .strip_prefix("https://")
            .or_else(|| self.upstream.strip_prefix("http://"));
        let upstream_ok = rest.is_some_and(|rest| {
            let host = rest.split('/').next().unwrap_or_default();
            !host.is_empty()
                && !rest.contains(['?', '#', '@', ' '])
                && !rest.chars().any(char::is_control)
        });
        if !upstream_ok {
            return Err(format!(
                "proxy upstream {:?} must be an http:// or https:// URL with a host and no query, fragment or credentials",
                self.upstream
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 300_000 {
            return Err("a proxy timeout is 1 ms to 5 minutes".into());
        }
        Ok(())
    }
}

impl ZoneSettings {
    /// Whether a page from `origin` may call the zone's client API.
    pub fn cors_allows(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// Checks a host name: a lowercase DNS name (letters, digits, `-`, `.`), no port. Used for
/// site host names and passkey relying party ids.
pub fn check_site_host(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "site host {host:?} must be a lowercase host name such as budget.example.com (no port)"
        ))
    }
}

/// Checks a CORS origin: `*`, or `scheme://host[:port]` with scheme `http` or `https` and
/// nothing after the host and port, in lowercase as browsers send it.
pub fn check_cors_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let bad = || {
        format!(
            "CORS origin {origin:?} must be `*` or SCHEME://HOST[:PORT] (http or https, lowercase, no path), as browsers send it"
        )
    };
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(bad)?;
    // HOST is a name or an IPv4 address, or an IPv6 address in brackets; `:PORT` may follow.
    let (host, port) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty()
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase() || b == b':')
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// [`ZoneSettings`] as stored and logged before passkeys existed: read, never written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneSettingsV1 {
    pub writes: WritePolicy,
    pub account_quota: AccountQuota,
}

impl From<ZoneSettingsV1> for ZoneSettings {
    fn from(old: ZoneSettingsV1) -> Self {
        ZoneSettings {
            writes: old.writes,
            account_quota: old.account_quota,
            passkeys: None,
            cors_origins: Vec::new(),
            site_hosts: Vec::new(),
            proxies: Vec::new(),
        }
    }
}

/// A passkey of an account: the credential as `webauthn-rs` stores it (JSON: the public key,
/// signature counter, backup state — nothing secret), under its credential id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyRecord {
    pub credential: Vec<u8>,
    pub label: String,
    pub created_at_ms: u64,
    pub last_used_ms: u64,
}

/// An account: its OPAQUE registration record (what the server needs to run a login, useless
/// for guessing the password without an online login per guess).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub registration: Vec<u8>,
    pub created_at_ms: u64,
    /// Changed at every password change.
    pub password_changed_at_ms: u64,
    /// Chains created by the account (in a zone whose writes need accounts).
    pub chains: u64,
}

/// A session, stored under the SHA-256 of its bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub account: AccountId,
    pub created_at_ms: u64,
    /// Fixed at creation: sessions do not slide.
    pub expires_at_ms: u64,
    pub label: String,
}

/// A named envelope: opaque client-encrypted bytes with a version for compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeRecord {
    /// 1 for the first write, +1 for each replacement.
    pub version: u64,
    pub data: Vec<u8>,
    pub updated_at_ms: u64,
}

/// An envelope write with compare-and-set: `if_version` 0 means "must not exist yet".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeWrite {
    pub name: String,
    pub data: Vec<u8>,
    pub if_version: u64,
}

/// The session a command acts for: checked again where the command is applied, so a
/// revocation that commits first always wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acting {
    pub session: Hash32,
    pub now_ms: u64,
}

/// Which sessions to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revoke {
    /// The one session with this token hash.
    One(Hash32),
    /// Every session of the account, but `except` if given.
    All { except: Option<Hash32> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_bounded_and_printable() {
        assert!(AccountId::new("alice").is_ok());
        assert!(AccountId::new("a".repeat(256)).is_ok());
        assert!(AccountId::new("a".repeat(257)).is_err());
        assert!(AccountId::new("").is_err());
        assert!(AccountId::new("a\nb").is_err());
    }

    #[test]
    fn envelope_names() {
        assert!(check_envelope_name("password").is_ok());
        assert!(check_envelope_name("passkey-1.v2_x").is_ok());
        assert!(check_envelope_name("Password").is_err());
        assert!(check_envelope_name("").is_err());
        assert!(check_envelope_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn cors_origins_are_exact_origins_or_any() {
        for good in [
            "*",
            "https://app.example.com",
            "http://localhost:8080",
            "http://[::1]:3000",
        ] {
            assert!(check_cors_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "app.example.com",
            "https://app.example.com/",
            "https://App.example.com",
            "ftp://example.com",
            "https://example.com:99999",
            "https://*.example.com",
        ] {
            assert!(check_cors_origin(bad).is_err(), "{bad}");
        }
        let settings = ZoneSettings {
            cors_origins: vec!["https://a.example".into()],
            ..ZoneSettings::default()
        };
        assert!(settings.cors_allows("https://a.example"));
        assert!(!settings.cors_allows("https://b.example"));
        assert!(!ZoneSettings::default().cors_allows("https://a.example"));
    }

    #[test]
    fn settings_stored_before_passkeys_still_read() {
        use crate::record::{decode, encode};
        let old = encode(&(WritePolicy::Accounts, AccountQuota::default()));
        assert!(decode::<ZoneSettings>("zone settings", &old).is_err());
        let read: ZoneSettings = decode::<ZoneSettingsV1>("zone settings", &old)
            .unwrap()
            .into();
        assert_eq!(read.writes, WritePolicy::Accounts);
        assert_eq!(read.passkeys, None);
        // The old settings command keeps its place in the log encoding (variant 12).
        let logged = crate::command::Command::SetZoneSettingsV1 {
            zone: crate::ZoneId::new("demo").unwrap(),
            settings: ZoneSettingsV1 {
                writes: WritePolicy::Open,
                account_quota: AccountQuota::default(),
            },
        };
        assert_eq!(postcard::to_allocvec(&logged).unwrap()[0], 12);
    }

    #[test]
    fn zone_auth_debug_hides_the_secrets() {
        let auth = ZoneAuth {
            opaque_setup: vec![7; 128],
            ticket_key: [9; 32],
        };
        assert_eq!(format!("{auth:?}"), "ZoneAuth { .. }");
    }
}
