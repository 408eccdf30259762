//! Tickets: the server's state between the two steps of a ceremony (an OPAQUE login, a passkey
//! registration or login), sealed with XChaCha20-Poly1305 under the zone's ticket key
//! (replicated state), so the node that finishes a ceremony need not be the one that started
//! it. The zone and the ceremony are bound as associated data (a ticket of one kind never opens
//! as another); a ticket carries its own expiry and a random id that the state machine
//! remembers once redeemed, so it works once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_types::account::AccountId;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::AuthError;

const NONCE_BYTES: usize = 24;

/// The ceremony a ticket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    PasswordLogin,
    PasskeyRegistration,
    PasskeyLogin,
    /// A step-up: a fresh proof (a password or passkey login completed moments ago) bound to
    /// one session, which what cannot be undone requires besides the session.
    StepUp,
    /// A device token: a client that logged in to the account before, which gets a login
    /// rate limit of its own instead of the one strangers share.
    Device,
}

impl Ceremony {
    fn aad(self, zone: &str) -> Vec<u8> {
        let prefix: &[u8] = match self {
            Ceremony::PasswordLogin => b"blindstore/login-ticket/v1\0",
            Ceremony::PasskeyRegistration => b"blindstore/passkey-registration-ticket/v1\0",
            Ceremony::PasskeyLogin => b"blindstore/passkey-login-ticket/v1\0",
            Ceremony::StepUp => b"blindstore/step-up-ticket/v1\0",
            Ceremony::Device => b"blindstore/device-token/v1\0",
        };
        [prefix, zone.as_bytes()].concat()
    }
}

/// What a login ticket carries.
#[derive(Serialize, Deserialize)]
pub struct LoginTicket {
    pub account: AccountId,
    /// The ceremony's server state: the serialized OPAQUE `ServerLogin` (secret), or the
    /// webauthn-rs registration or authentication state.
    pub state: Vec<u8>,
    /// What the ceremony must still match when it finishes. A password login: the SHA-256 of
    /// the account's registration record at login start (zeros for an unknown account), so a
    /// login cannot finish into an account re-registered or given a new password meanwhile
    /// (fixed width, so a ticket's length does not tell whether the account exists). A passkey
    /// registration and a step-up: the hash of the session it belongs to. A passkey login and a
    /// device token: zeros.
    pub binding: [u8; 32],
    pub id: [u8; 16],
    #[serde(with = "postcard::fixint::le")]
    pub expires_at_ms: u64,
}

impl LoginTicket {
    pub fn new(account: AccountId, state: Vec<u8>, binding: [u8; 32], expires_at_ms: u64) -> Self {
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        LoginTicket {
            account,
            state,
            binding,
            id,
            expires_at_ms,
        }
    }

    /// Seals the ticket of `ceremony` for `zone` under `key`.
    pub fn seal(&self, key: &[u8; 32], zone: &str, ceremony: Ceremony) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let plain = postcard::to_allocvec(self).expect("encoding into a Vec cannot fail");
        let aad = ceremony.aad(zone);
        let sealed = XChaCha20Poly1305::new(key.into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail on a small message");
        URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat())
    }

    /// Opens a ticket of `ceremony` sealed for `zone` under `key` that has not expired at
    /// `now_ms`.
    pub fn open(
        key: &[u8; 32],
        zone: &str,
        ceremony: Ceremony,
        ticket: &str,
        now_ms: u64,
    ) -> Result<Self, AuthError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(ticket)
            .map_err(|_| AuthError::BadTicket)?;
        if bytes.len() < NONCE_BYTES {
            return Err(AuthError::BadTicket);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let aad = ceremony.aad(zone);
        let plain = XChaCha20Poly1305::new(key.into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| AuthError::BadTicket)?;
        let ticket: LoginTicket = postcard::from_bytes(&plain).map_err(|_| AuthError::BadTicket)?;
        if ticket.expires_at_ms <= now_ms {
            return Err(AuthError::BadTicket);
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> LoginTicket {
        LoginTicket::new(
            AccountId::new("alice").unwrap(),
            vec![5; 128],
            [7; 32],
            10_000,
        )
    }

    #[test]
    fn a_ticket_opens_only_in_its_zone_and_ceremony_with_its_key_before_expiry() {
        use Ceremony::*;
        let key = [1u8; 32];
        let sealed = ticket().seal(&key, "budget", PasswordLogin);
        let open = |key: &[u8; 32], zone: &str, ticket: &str, now: u64| {
            LoginTicket::open(key, zone, PasswordLogin, ticket, now)
        };
        let opened = open(&key, "budget", &sealed, 9_999).unwrap();
        assert_eq!(opened.state, vec![5; 128]);
        assert_eq!(opened.binding, [7; 32]);
        for other in [PasskeyRegistration, PasskeyLogin, StepUp, Device] {
            assert!(
                LoginTicket::open(&key, "budget", other, &sealed, 0).is_err(),
                "another ceremony"
            );
        }
        assert!(open(&key, "budget", &sealed, 10_000).is_err(), "expired");
        assert!(open(&key, "other", &sealed, 0).is_err(), "another zone");
        assert!(
            open(&[2u8; 32], "budget", &sealed, 0).is_err(),
            "another key"
        );
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(tampered);
        assert!(open(&key, "budget", &tampered, 0).is_err(), "tampered");
        assert!(open(&key, "budget", "short", 0).is_err());
    }
}
