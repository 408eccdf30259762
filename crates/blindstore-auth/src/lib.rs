//! Account cryptography shared by the server and the Rust client.
//!
//! - [`Suite`]: OPAQUE (RFC 9807) with OPRF Ristretto255, key exchange TripleDH over
//!   Ristretto255 with SHA-512 and Argon2id key stretching — the suite of
//!   `@serenity-kit/opaque` 1.1, so browsers using that library and Rust clients using
//!   [`client`] register and log in against the same server. Messages travel as base64url
//!   without padding, as that library sends them.
//! - [`server`]: the server's steps. The server never runs the key stretching, never sees the
//!   password or the export key.
//! - [`client`]: the client's steps, with exactly the library's default stretching
//!   ([`key_stretching`]).
//! - [`ticket`]: the login state sealed (XChaCha20-Poly1305 under the zone's ticket key) so any
//!   node can finish a login another node started.
//! - [`passkey`]: WebAuthn registration and login (`webauthn-rs`), state sealed in tickets too.
//! - [`new_session_token`]: random 256-bit bearer tokens, stored only as their SHA-256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_types::account::ZoneAuth;
use blindstore_types::Hash32;
use opaque_ke::argon2::{Algorithm, Argon2, Params, Version};
use opaque_ke::{CipherSuite, Ristretto255, TripleDh};
use rand::rngs::OsRng;
use rand::RngCore;

pub mod client;
pub mod passkey;
pub mod server;
pub mod ticket;

/// The OPAQUE cipher suite, wire-compatible with `@serenity-kit/opaque` 1.1 (non-P-256 build).
pub struct Suite;

impl CipherSuite for Suite {
    type OprfCs = Ristretto255;
    type KeyExchange = TripleDh<Ristretto255, sha2::Sha512>;
    type Ksf = Argon2<'static>;
}

/// The key stretching `@serenity-kit/opaque` uses by default ("memory-constrained"):
/// Argon2id v1.3, 64 MiB, 3 passes, 4 lanes (opaque-ke supplies a zero 16-byte salt and a
/// 64-byte output). Client and registration must agree on it, or logins fail.
pub fn key_stretching() -> Argon2<'static> {
    let params = Params::new(65_536, 3, 4, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Why an account message was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A message is not base64url, or not a valid OPAQUE message.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The login failed: wrong password, unknown account, or a tampered message. Deliberately
    /// says nothing more.
    #[error("login failed")]
    LoginFailed,
    /// A login ticket is not one this zone sealed, or has expired.
    #[error("invalid or expired login ticket")]
    BadTicket,
    /// The zone's passkey settings do not make a valid relying party.
    #[error("passkeys are not set up for this zone")]
    NotConfigured,
    /// The browser's new credential did not verify (wrong origin, challenge or relying party,
    /// no user verification, an unsupported algorithm).
    #[error("the passkey registration did not verify")]
    PasskeyRefused,
}

/// Fresh account secrets for a zone: an OPAQUE server setup and a ticket key.
pub fn new_zone_auth() -> ZoneAuth {
    let setup = opaque_ke::ServerSetup::<Suite>::new(&mut OsRng);
    let mut ticket_key = [0u8; 32];
    OsRng.fill_bytes(&mut ticket_key);
    ZoneAuth {
        opaque_setup: setup.serialize().to_vec(),
        ticket_key,
    }
}

/// A new session's bearer token (base64url of 32 random bytes) and the hash stored for it.
pub fn new_session_token() -> (String, Hash32) {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    (URL_SAFE_NO_PAD.encode(raw), Hash32::digest(&raw))
}

/// A one-time invite code: 128 random bits, base64url (the state keeps the SHA-256 of this
/// text).
pub fn new_invite_code() -> String {
    let mut raw = [0u8; blindstore_types::account::INVITE_CODE_BYTES];
    OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The stored hash of a bearer token, or `None` if it is not shaped like one.
pub fn session_token_hash(token: &str) -> Option<Hash32> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    (raw.len() == 32).then(|| Hash32::digest(&raw))
}

/// The hex id a session is listed under: the first 16 bytes of its token hash (enough to name
/// it, useless to use it).
pub fn session_id(token_hash: &Hash32) -> String {
    token_hash.to_hex()[..32].to_string()
}

fn b64(what: &'static str, text: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| AuthError::Malformed(what))
}

fn to_b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Argon2id answer computed independently (hash-wasm) for the same parameters: the
    /// stretching must match the browser library's bit for bit.
    #[test]
    fn key_stretching_matches_the_browser_library() {
        let password: Vec<u8> = (0u8..64).collect();
        let mut out = [0u8; 64];
        key_stretching()
            .hash_password_into(&password, &[0u8; 16], &mut out)
            .unwrap();
        assert_eq!(
            hex::encode(out),
            "763c05e205e6d06f9d49921578c5fc314590d8016bd8ccc98049f3da265fad5d\
             4a27e85aaac6ac1de7cf2aeda7b8c767de0ff4e5db3ff8421d9bb3e8effb279b"
        );
    }

    #[test]
    fn session_tokens_hash_and_reject_garbage() {
        let (token, hash) = new_session_token();
        assert_eq!(token.len(), 43);
        assert_eq!(session_token_hash(&token), Some(hash));
        assert_eq!(session_token_hash("not a token"), None);
        assert_eq!(session_token_hash(&to_b64(&[1; 31])), None);
        assert_eq!(session_id(&hash).len(), 32);
    }
}
