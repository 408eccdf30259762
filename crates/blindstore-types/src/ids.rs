//! Identifiers and fixed-size byte strings, with their text forms.
//!
//! Text forms are part of the API contract: hashes and chain ids are lowercase hex, keys and
//! signatures are base64url without padding. In binary (non human-readable) serde formats they
//! are raw bytes, which is what the storage layer writes to disk.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a piece of text is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A zone id must match `[a-z0-9][a-z0-9-]{0,62}`.
    #[error("zone id must match [a-z0-9][a-z0-9-]{{0,62}}")]
    BadZone,
    /// A hash or chain id must be exactly 64 lowercase hex characters.
    #[error("expected 64 lowercase hex characters")]
    BadHex,
    /// A key or signature must be base64url without padding, of the stated decoded length.
    #[error("expected base64url (no padding) of {0} bytes")]
    BadBase64(usize),
}

/// A zone: an isolated namespace, usually one per app.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ZoneId(String);

impl ZoneId {
    /// Longest allowed zone id, in bytes (it is written with a one-byte length prefix).
    pub const MAX_LEN: usize = 63;

    /// Checks `[a-z0-9][a-z0-9-]{0,62}`.
    pub fn new(s: &str) -> Result<Self, IdError> {
        let bytes = s.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if first_ok && rest_ok && bytes.len() <= Self::MAX_LEN {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::BadZone)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZoneId({})", self.0)
    }
}

impl FromStr for ZoneId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl Serialize for ZoneId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ZoneId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ZoneId::new(&s).map_err(D::Error::custom)
    }
}

/// A SHA-256 digest: chunk hashes, chain ids, entry hashes. Text form: lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

/// A chain id is the SHA-256 of the chain's public key (docs/entry-format.md).
pub type ChainId = Hash32;

impl Hash32 {
    /// SHA-256 of `bytes`.
    pub fn digest(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex characters (uppercase is rejected: one spelling per hash).
    pub fn from_hex(s: &str) -> Result<Self, IdError> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(IdError::BadHex);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| IdError::BadHex)?;
        Ok(Self(out))
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..12])
    }
}

impl FromStr for Hash32 {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::from_hex(s)
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Hash32::from_hex(&s).map_err(D::Error::custom)
        } else {
            Ok(Self(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// Fixed-size bytes whose text form is base64url without padding.
macro_rules! b64_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn to_b64(&self) -> String {
                URL_SAFE_NO_PAD.encode(self.0)
            }

            pub fn from_b64(s: &str) -> Result<Self, IdError> {
                let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| IdError::BadBase64($len))?;
                let arr: [u8; $len] = bytes.try_into().map_err(|_| IdError::BadBase64($len))?;
                Ok(Self(arr))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_b64())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_b64())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    Self::from_b64(&s).map_err(D::Error::custom)
                } else {
                    let bytes = d.deserialize_bytes(BytesVisitor)?;
                    let arr: [u8; $len] = bytes
                        .try_into()
                        .map_err(|_| D::Error::custom(IdError::BadBase64($len)))?;
                    Ok(Self(arr))
                }
            }
        }
    };
}

/// Accepts a byte string from a binary serde format.
struct BytesVisitor;

impl<'de> serde::de::Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

b64_bytes!(
    /// A raw 32-byte Ed25519 public key: the key a chain is created from.
    PublicKey,
    32
);
b64_bytes!(
    /// A 64-byte Ed25519 signature over an entry's signing message.
    Signature,
    64
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids() {
        let cases = [
            ("demo", true),
            ("a", true),
            ("0app-1", true),
            (&"a".repeat(63), true),
            (&"a".repeat(64), false),
            ("", false),
            ("-a", false),
            ("Demo", false),
            ("a_b", false),
            ("a.b", false),
            ("é", false),
        ];
        for (s, ok) in cases {
            assert_eq!(ZoneId::new(s).is_ok(), ok, "{s:?}");
        }
    }

    #[test]
    fn hash_hex_is_strict() {
        let h = Hash32::digest(b"x");
        assert_eq!(Hash32::from_hex(&h.to_hex()).unwrap(), h);
        assert!(Hash32::from_hex(&h.to_hex().to_uppercase()).is_err());
        assert!(Hash32::from_hex(&h.to_hex()[1..]).is_err());
        assert!(Hash32::from_hex(&format!("{}0", h.to_hex())).is_err());
    }

    #[test]
    fn b64_is_unpadded_urlsafe_and_sized() {
        let k = PublicKey([0xfb; 32]);
        let s = k.to_b64();
        assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
        assert_eq!(PublicKey::from_b64(&s).unwrap(), k);
        assert!(PublicKey::from_b64(&format!("{s}=")).is_err());
        assert!(PublicKey::from_b64("AAAA").is_err());
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"{s}\""));
    }
}
