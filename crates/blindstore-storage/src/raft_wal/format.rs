//! The on-disk format of the Raft log (docs/storage-format.md, "The Raft log"): segment
//! headers and CRC-framed records. Everything is big-endian.

use serde::{Deserialize, Serialize};

use crate::StorageError;

/// The first bytes of every segment file.
pub(super) const MAGIC: &[u8; 9] = b"BSRAFTWAL";
/// The segment format this build writes and reads.
pub(super) const FORMAT: u8 = 1;
/// `MAGIC || u8 FORMAT || u64 seq`.
pub(super) const HEADER_LEN: usize = MAGIC.len() + 1 + 8;
/// `u32 len || u32 crc32c`, then `len` bytes of `u8 kind || body`.
pub(super) const FRAME_HEADER: usize = 8;
/// The largest `len` a frame may have: a batch of entries is written as one frame per entry,
/// and a command is at most a few MiB, so anything larger is a garbage length.
pub(super) const MAX_FRAME: u32 = 64 << 20;
/// The unit a disk writes atomically (at least): a torn write leaves whole sectors of zeros.
pub(super) const SECTOR: u64 = 512;

/// The log's durable metadata: what a `Checkpoint` record holds in full and the other records
/// change one field at a time. Values other than indexes are opaque (the Raft adapter encodes
/// them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalMeta {
    /// The Raft node id this log was written under.
    pub node_id: Option<u64>,
    /// The last saved vote.
    pub vote: Option<Vec<u8>>,
    /// The last committed log id written (a replay hint; it may lag).
    pub committed: Option<Vec<u8>>,
    /// The last purged log id: its index and its encoding.
    pub last_purged: Option<(u64, Vec<u8>)>,
}

/// The first record of every segment: the log's metadata and the index the segment's first
/// entry takes, so a segment stands alone once those before it are deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    pub meta: WalMeta,
    pub next_index: u64,
}

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Record {
    Checkpoint(Checkpoint),
    Entry {
        index: u64,
        payload: Vec<u8>,
    },
    Vote(Vec<u8>),
    Committed(Vec<u8>),
    /// Entries at and after `from` are deleted.
    Truncate {
        from: u64,
    },
    /// Entries up to `upto` inclusive are deleted; `log_id` is the purged id's encoding.
    Purge {
        upto: u64,
        log_id: Vec<u8>,
    },
    NodeId(u64),
}

const CHECKPOINT: u8 = 1;
const ENTRY: u8 = 2;
const VOTE: u8 = 3;
const COMMITTED: u8 = 4;
const TRUNCATE: u8 = 5;
const PURGE: u8 = 6;
const NODE_ID: u8 = 7;

impl Record {
    /// Appends the framed record to `out`; returns the offset of an entry's payload in `out`.
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER]);
        let payload_at;
        match self {
            Record::Checkpoint(c) => {
                out.push(CHECKPOINT);
                payload_at = out.len();
                out.extend_from_slice(&blindstore_types::record::encode(c));
            }
            Record::Entry { index, payload } => {
                out.push(ENTRY);
                out.extend_from_slice(&index.to_be_bytes());
                payload_at = out.len();
                out.extend_from_slice(payload);
            }
            Record::Vote(v) => {
                out.push(VOTE);
                payload_at = out.len();
                out.extend_from_slice(v);
            }
            Record::Committed(c) => {
                out.push(COMMITTED);
                payload_at = out.len();
                out.extend_from_slice(c);
            }
            Record::Truncate { from } => {
                out.push(TRUNCATE);
                payload_at = out.len();
                out.extend_from_slice(&from.to_be_bytes());
            }
            Record::Purge { upto, log_id } => {
                out.push(PURGE);
                payload_at = out.len();
                out.extend_from_slice(&upto.to_be_bytes());
                out.extend_from_slice(log_id);
            }
            Record::NodeId(id) => {
                out.push(NODE_ID);
                payload_at = out.len();
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
        let len = (out.len() - start - FRAME_HEADER) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        let crc = frame_crc(len, &out[start + FRAME_HEADER..]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
        payload_at - start
    }

    /// Decodes `kind || body` (a frame whose CRC matched).
    pub(super) fn decode(bytes: &[u8]) -> Result<Record, StorageError> {
        let damaged = |what: &str| StorageError::Damaged(format!("Raft log record: {what}"));
        let (&kind, body) = bytes.split_first().ok_or_else(|| damaged("empty"))?;
        let u64_at = |b: &[u8]| -> Result<u64, StorageError> {
            b.get(..8)
                .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
                .ok_or_else(|| damaged("too short"))
        };
        Ok(match kind {
            CHECKPOINT => Record::Checkpoint(crate::decode("Raft log checkpoint", body)?),
            ENTRY => Record::Entry {
                index: u64_at(body)?,
                payload: body[8..].to_vec(),
            },
            VOTE => Record::Vote(body.to_vec()),
            COMMITTED => Record::Committed(body.to_vec()),
            TRUNCATE if body.len() == 8 => Record::Truncate {
                from: u64_at(body)?,
            },
            PURGE => Record::Purge {
                upto: u64_at(body)?,
                log_id: body[8..].to_vec(),
            },
            NODE_ID if body.len() == 8 => Record::NodeId(u64_at(body)?),
            other => return Err(damaged(&format!("unknown kind {other}"))),
        })
    }
}

/// The CRC of a frame: CRC-32C over `u32 len || kind || body`, so a damaged length is caught
/// as well as a damaged body.
pub(super) fn frame_crc(len: u32, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len.to_be_bytes()), body)
}

pub(super) fn header(seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The segment number a header names, or why it is not a header of this format.
pub(super) fn parse_header(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a Raft log segment".into());
    }
    if bytes[MAGIC.len()] != FORMAT {
        return Err(format!(
            "Raft log segment format {} (this build reads {FORMAT})",
            bytes[MAGIC.len()]
        ));
    }
    Ok(u64::from_be_bytes(
        bytes[MAGIC.len() + 1..HEADER_LEN]
            .try_into()
            .expect("8 bytes"),
    ))
}

/// What is at `pos` in a segment's bytes.
pub(super) enum Frame<'a> {
    /// A whole record with a matching CRC: `kind || body`, and the offset after it.
    Record { bytes: &'a [u8], end: usize },
    /// Nothing more: the end of the file.
    End,
    /// The bytes there are not a whole valid record in a way a write cut short by a crash
    /// leaves: the file ends inside the frame, its length is zero (unwritten space), or its
    /// CRC fails and part of it is a zeroed sector.
    Torn(String),
    /// The bytes there are a complete frame that is wrong: damage, not a torn write.
    Damaged(String),
}

pub(super) fn frame_at(bytes: &[u8], pos: usize) -> Frame<'_> {
    let rest = &bytes[pos..];
    if rest.is_empty() {
        return Frame::End;
    }
    if rest.len() < FRAME_HEADER {
        return Frame::Torn(format!("a frame header cut at {} bytes", rest.len()));
    }
    let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
    let crc = u32::from_be_bytes(rest[4..8].try_into().expect("4 bytes"));
    if len == 0 {
        return Frame::Torn("a zero length (unwritten space)".into());
    }
    if len > MAX_FRAME {
        return Frame::Torn(format!("a length of {len} bytes"));
    }
    let end = FRAME_HEADER + len as usize;
    if rest.len() < end {
        return Frame::Torn(format!(
            "a frame of {end} bytes cut at {} bytes",
            rest.len()
        ));
    }
    let body = &rest[FRAME_HEADER..end];
    if frame_crc(len, body) == crc {
        return Frame::Record {
            bytes: body,
            end: pos + end,
        };
    }
    if has_zeroed_sector(bytes, pos, pos + end) {
        Frame::Torn("a checksum mismatch over a zeroed sector".into())
    } else {
        Frame::Damaged(format!("a checksum mismatch in the record at byte {pos}"))
    }
}

/// Whether any sector-aligned piece of `bytes[start..end]` is all zeros: what a write the
/// disk did not finish leaves (etcd's torn-entry rule).
fn has_zeroed_sector(bytes: &[u8], start: usize, end: usize) -> bool {
    let mut at = start;
    while at < end {
        let sector_end = ((at as u64 / SECTOR + 1) * SECTOR) as usize;
        let piece_end = sector_end.min(end);
        if bytes[at..piece_end].iter().all(|&b| b == 0) {
            return true;
        }
        at = piece_end;
    }
    false
}
