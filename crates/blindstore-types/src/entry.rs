//! The chain entry wire format, version 1 (docs/entry-format.md). This is a contract with every
//! client: the browser SDK and any other writer build the same bytes, and
//! `docs/test-vectors/entry-v1.json` pins them down.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ids::{ChainId, Hash32, PublicKey, Signature, ZoneId};

const CHAIN_DOMAIN: &[u8] = b"blindstore/chain/v1\0";
const GENESIS_DOMAIN: &[u8] = b"blindstore/genesis/v1\0";
const ENTRY_DOMAIN: &[u8] = b"blindstore/entry/v1\0";

/// Why an entry or key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The bytes are not a valid Ed25519 public key, or are a weak (small-order) key that would
    /// let anyone forge signatures.
    #[error("not a valid Ed25519 public key")]
    BadPublicKey,
    /// The signature does not verify (strictly) under the chain's key.
    #[error("signature does not verify under the chain's public key")]
    BadSignature,
}

/// `chain_id = SHA-256("blindstore/chain/v1\0" || public_key)`.
pub fn chain_id(public_key: &PublicKey) -> ChainId {
    Hash32::digest(&[CHAIN_DOMAIN, &public_key.0].concat())
}

/// `genesis = SHA-256("blindstore/genesis/v1\0" || chain_id)`: the `prev` of entry 0 and the
/// head of an empty chain.
pub fn genesis(chain_id: &ChainId) -> Hash32 {
    Hash32::digest(&[GENESIS_DOMAIN, &chain_id.0].concat())
}

/// Checks that `public_key` can own a chain: a valid curve point that is not of small order.
pub fn check_public_key(public_key: &PublicKey) -> Result<VerifyingKey, EntryError> {
    let key = VerifyingKey::from_bytes(&public_key.0).map_err(|_| EntryError::BadPublicKey)?;
    if key.is_weak() {
        return Err(EntryError::BadPublicKey);
    }
    Ok(key)
}

/// Everything a writer signs for one entry, before the signature exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedEntry {
    pub zone: ZoneId,
    pub chain_id: ChainId,
    pub index: u64,
    pub prev: Hash32,
    pub payload_hash: Hash32,
    pub payload_len: u64,
    pub chunks: Vec<Hash32>,
}

impl UnsignedEntry {
    /// Describes appending `payload` at `index` after `prev`.
    pub fn new(
        zone: ZoneId,
        chain_id: ChainId,
        index: u64,
        prev: Hash32,
        payload: &[u8],
        chunks: Vec<Hash32>,
    ) -> Self {
        Self {
            zone,
            chain_id,
            index,
            prev,
            payload_hash: Hash32::digest(payload),
            payload_len: payload.len() as u64,
            chunks,
        }
    }

    /// The exact bytes that are signed (docs/entry-format.md, all integers big-endian).
    pub fn signing_message(&self) -> Vec<u8> {
        let zone = self.zone.as_str().as_bytes();
        let mut msg = Vec::with_capacity(
            ENTRY_DOMAIN.len() + 1 + zone.len() + 32 * 3 + 8 * 2 + 4 + 32 * self.chunks.len(),
        );
        msg.extend_from_slice(ENTRY_DOMAIN);
        // ZoneId::MAX_LEN is 63, so the length always fits in one byte.
        msg.push(u8::try_from(zone.len()).expect("zone ids are at most 63 bytes"));
        msg.extend_from_slice(zone);
        msg.extend_from_slice(&self.chain_id.0);
        msg.extend_from_slice(&self.index.to_be_bytes());
        msg.extend_from_slice(&self.prev.0);
        msg.extend_from_slice(&self.payload_hash.0);
        msg.extend_from_slice(&self.payload_len.to_be_bytes());
        let n =
            u32::try_from(self.chunks.len()).expect("chunk lists are capped far below u32::MAX");
        msg.extend_from_slice(&n.to_be_bytes());
        for chunk in &self.chunks {
            msg.extend_from_slice(&chunk.0);
        }
        msg
    }

    /// Signs with the chain's write key.
    pub fn sign(self, write_key: &SigningKey) -> SignedEntry {
        let signature = Signature(write_key.sign(&self.signing_message()).to_bytes());
        SignedEntry {
            unsigned: self,
            signature,
        }
    }

    /// Attaches a signature made elsewhere (e.g. by a browser); see [`SignedEntry::verify`].
    pub fn with_signature(self, signature: Signature) -> SignedEntry {
        SignedEntry {
            unsigned: self,
            signature,
        }
    }
}

/// An entry with its signature; not yet known to be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEntry {
    pub unsigned: UnsignedEntry,
    pub signature: Signature,
}

impl SignedEntry {
    /// Strict Ed25519 verification under `public_key` (rejects non-canonical signatures and
    /// small-order keys), then the entry's header with its hash.
    pub fn verify(&self, public_key: &PublicKey) -> Result<EntryHeader, EntryError> {
        let key = check_public_key(public_key)?;
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        let msg = self.unsigned.signing_message();
        key.verify_strict(&msg, &signature)
            .map_err(|_| EntryError::BadSignature)?;
        Ok(self.header_with_message(&msg))
    }

    /// The header, without checking the signature (for writers that just signed it).
    pub fn header(&self) -> EntryHeader {
        self.header_with_message(&self.unsigned.signing_message())
    }

    fn header_with_message(&self, msg: &[u8]) -> EntryHeader {
        let u = &self.unsigned;
        EntryHeader {
            index: u.index,
            prev: u.prev,
            payload_hash: u.payload_hash,
            payload_len: u.payload_len,
            chunks: u.chunks.clone(),
            signature: self.signature,
            entry_hash: entry_hash(msg, &self.signature),
        }
    }
}

impl EntryHeader {
    /// Checks a stored or proposed header on its own: the signature verifies strictly under
    /// `public_key` for this zone and chain, and `entry_hash` is the hash it implies. What the
    /// state machine checks before applying an append, whoever proposed it.
    pub fn verify(
        &self,
        zone: &ZoneId,
        chain_id: &ChainId,
        public_key: &PublicKey,
    ) -> Result<(), EntryError> {
        let signed = SignedEntry {
            unsigned: UnsignedEntry {
                zone: zone.clone(),
                chain_id: *chain_id,
                index: self.index,
                prev: self.prev,
                payload_hash: self.payload_hash,
                payload_len: self.payload_len,
                chunks: self.chunks.clone(),
            },
            signature: self.signature,
        };
        if signed.verify(public_key)? != *self {
            return Err(EntryError::BadSignature);
        }
        Ok(())
    }
}

/// `entry_hash = SHA-256(msg || signature)`.
pub fn entry_hash(msg: &[u8], signature: &Signature) -> Hash32 {
    Hash32::digest(&[msg, &signature.0].concat())
}

/// What the Raft state keeps of an entry: everything but the payload bytes, which live in the
/// chunk store under `payload_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryHeader {
    pub index: u64,
    pub prev: Hash32,
    pub payload_hash: Hash32,
    pub payload_len: u64,
    pub chunks: Vec<Hash32>,
    pub signature: Signature,
    pub entry_hash: Hash32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn draft(sk: &SigningKey, index: u64, prev: Hash32) -> UnsignedEntry {
        let pk = PublicKey(sk.verifying_key().to_bytes());
        UnsignedEntry::new(
            ZoneId::new("demo").unwrap(),
            chain_id(&pk),
            index,
            prev,
            b"payload",
            vec![],
        )
    }

    #[test]
    fn signed_entry_verifies_under_its_key_only() {
        let sk = key(1);
        let pk = PublicKey(sk.verifying_key().to_bytes());
        let signed = draft(&sk, 0, genesis(&chain_id(&pk))).sign(&sk);
        let header = signed.verify(&pk).expect("own key verifies");
        assert_eq!(header, signed.header());

        let other = PublicKey(key(2).verifying_key().to_bytes());
        assert_eq!(signed.verify(&other), Err(EntryError::BadSignature));
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let sk = key(3);
        let pk = PublicKey(sk.verifying_key().to_bytes());
        let signed = draft(&sk, 4, Hash32([9; 32])).sign(&sk);
        let mutations: Vec<fn(&mut UnsignedEntry)> = vec![
            |u| u.index += 1,
            |u| u.prev.0[0] ^= 1,
            |u| u.payload_hash.0[31] ^= 1,
            |u| u.payload_len += 1,
            |u| u.chunks.push(Hash32([1; 32])),
            |u| u.zone = ZoneId::new("other").unwrap(),
            |u| u.chain_id.0[5] ^= 1,
        ];
        for mutate in mutations {
            let mut bad = signed.clone();
            mutate(&mut bad.unsigned);
            assert_eq!(bad.verify(&pk), Err(EntryError::BadSignature));
        }
    }

    #[test]
    fn small_order_keys_are_refused() {
        // The identity point encodes as 1 followed by zeros: a valid point of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            check_public_key(&PublicKey(identity)),
            Err(EntryError::BadPublicKey)
        );
    }
}
