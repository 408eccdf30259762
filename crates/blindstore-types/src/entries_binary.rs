//! Entries in a compact binary form: what `GET .../entries` (and its long poll) answers when
//! the client's `Accept` names [`CONTENT_TYPE`]. JSON stays the default; this form carries the
//! same fields without base64, hex or field names (a page of 20 entries of 1 KiB: 21 KiB in
//! place of 29 KiB), for the SDK and the Rust client. docs/entry-format.md, "Binary entries
//! answers", is the reference. Big-endian throughout:
//!
//! ```text
//! "BSE" u8 version (1)
//! u64 length || [32] head || u8 has_next || u64 next (0 when has_next is 0)
//! u32 count, then count entries:
//!   u64 index || [32] prev || [32] payload_hash || u32 payload_len || payload
//!   || u32 chunk_count || [32] × chunk_count || [64] signature || [32] entry_hash
//! ```

use crate::api::{Entries, Entry};
use crate::entry::EntryHeader;
use crate::ids::{Hash32, Signature};

/// The media type of the binary form.
pub const CONTENT_TYPE: &str = "application/vnd.blindstore.entries";
const MAGIC: &[u8; 3] = b"BSE";
const VERSION: u8 = 1;

/// Encodes a page: the chain's `length` and `head`, where to continue (`next`), and the
/// entries with their payloads.
pub fn encode(
    length: u64,
    head: &Hash32,
    next: Option<u64>,
    entries: &[(EntryHeader, Vec<u8>)],
) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(h, p)| 8 + 32 + 32 + 4 + p.len() + 4 + 32 * h.chunks.len() + 64 + 32)
        .sum();
    let mut out = Vec::with_capacity(4 + 8 + 32 + 9 + 4 + size);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&head.0);
    out.push(next.is_some() as u8);
    out.extend_from_slice(&next.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (h, payload) in entries {
        out.extend_from_slice(&h.index.to_be_bytes());
        out.extend_from_slice(&h.prev.0);
        out.extend_from_slice(&h.payload_hash.0);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(&(h.chunks.len() as u32).to_be_bytes());
        for chunk in &h.chunks {
            out.extend_from_slice(&chunk.0);
        }
        out.extend_from_slice(&h.signature.0);
        out.extend_from_slice(&h.entry_hash.0);
    }
    out
}

/// Why bytes are not a binary entries page.
#[derive(Debug, thiserror::Error)]
#[error("binary entries answer: {0}")]
pub struct DecodeError(String);

/// Decodes a page into the JSON answer's shape (payloads as base64url), so a client treats
/// both forms alike.
pub fn decode(bytes: &[u8]) -> Result<Entries, DecodeError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let mut r = Reader(bytes);
    if r.take(3)? != MAGIC {
        return Err(DecodeError("not a binary entries answer".into()));
    }
    let version = r.take(1)?[0];
    if version != VERSION {
        return Err(DecodeError(format!("unknown version {version}")));
    }
    let length = r.u64()?;
    let head = r.hash()?;
    let has_next = r.take(1)?[0];
    let next = r.u64()?;
    let count = r.u32()?;
    let mut entries = Vec::with_capacity(count.min(1000) as usize);
    for _ in 0..count {
        let index = r.u64()?;
        let prev = r.hash()?;
        let payload_hash = r.hash()?;
        let payload_len = r.u32()? as usize;
        let payload = URL_SAFE_NO_PAD.encode(r.take(payload_len)?);
        let chunk_count = r.u32()? as usize;
        let chunks = (0..chunk_count)
            .map(|_| r.hash())
            .collect::<Result<_, _>>()?;
        let signature = Signature(r.take(64)?.try_into().expect("64 bytes"));
        let entry_hash = r.hash()?;
        entries.push(Entry {
            index,
            prev,
            payload_hash,
            payload,
            chunks,
            signature,
            entry_hash,
        });
    }
    if !r.0.is_empty() {
        return Err(DecodeError(format!(
            "{} bytes after the last entry",
            r.0.len()
        )));
    }
    Ok(Entries {
        length,
        head,
        entries,
        next: (has_next != 0).then_some(next),
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("cut short".into()));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn hash(&mut self) -> Result<Hash32, DecodeError> {
        Ok(Hash32(self.take(32)?.try_into().expect("32 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_round_trips_and_damage_is_refused() {
        let header = |index: u64, chunks: usize| EntryHeader {
            index,
            prev: Hash32([index as u8; 32]),
            payload_hash: Hash32([7; 32]),
            payload_len: 3,
            chunks: (0..chunks).map(|c| Hash32([c as u8 + 1; 32])).collect(),
            signature: Signature([9; 64]),
            entry_hash: Hash32([index as u8 + 100; 32]),
        };
        for (next, entries) in [
            (None, vec![]),
            (Some(12), vec![(header(3, 0), b"abc".to_vec())]),
            (
                None,
                vec![(header(4, 2), vec![]), (header(5, 1), vec![0; 1000])],
            ),
        ] {
            let bytes = encode(9, &Hash32([1; 32]), next, &entries);
            let page = decode(&bytes).unwrap();
            assert_eq!(
                (page.length, page.head, page.next),
                (9, Hash32([1; 32]), next)
            );
            assert_eq!(page.entries.len(), entries.len());
            for (got, (h, payload)) in page.entries.iter().zip(&entries) {
                use base64::Engine;
                assert_eq!(got.index, h.index);
                assert_eq!(got.prev, h.prev);
                assert_eq!(got.chunks, h.chunks);
                assert_eq!(got.signature.0, h.signature.0);
                assert_eq!(got.entry_hash, h.entry_hash);
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&got.payload)
                    .unwrap();
                assert_eq!(&raw, payload);
            }
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer).is_err());
        }
    }
}
