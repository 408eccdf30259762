//! The Raft log as an append-only, segmented, checksummed file (`raft-wal/`): one
//! `fdatasync` per write, where the LMDB log it replaces cost two (data, then meta page).
//!
//! - **Segments** `<seq:016x>.wal` hold a header, a `Checkpoint` record (the log's whole
//!   metadata and the index its first entry takes) and then records: entries, votes, the
//!   committed id, truncations, purges, the node id. Each record is framed with its length and
//!   a CRC-32C ([`format`]). A segment is closed when it passes `segment_bytes`; the next one
//!   is written aside, synced and renamed before anything goes into it.
//! - **Writes** are serialized (one writer), written at the tail with one `write` and made
//!   durable with one `fdatasync` before they return. A failed `fdatasync` is fatal: the log
//!   refuses every later write, because the kernel may have dropped the unsynced pages and
//!   only a restart, which rereads the disk, knows what is there.
//! - **Reads** use an in-memory index (entry index → segment, offset, length) and positional
//!   reads, so they never wait for a write's sync.
//! - **Recovery** ([`recovery`]) replays every segment, checking each record; a write cut by a
//!   crash at the tail of the last segment (the file ends inside a frame, unwritten zeros, or a
//!   checksum that fails over a zeroed sector) is cut off, never read as entries. Anything
//!   else that does not check out is [`StorageError::Damaged`]: the node refuses to start.
//! - **Purge** records the purge durably, then deletes the segments that hold only purged
//!   entries; a crash in between is finished at the next open.
//!
//! This module knows nothing of openraft: entries, votes and log ids are opaque bytes with
//! their indexes; `blindstore_raft::LogStore` adapts it.

mod format;
mod recovery;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub use format::WalMeta;
use format::{Checkpoint, Record};

use crate::StorageError;

/// Where the next segment starts: 64 MiB, like etcd's WAL segments.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// The Raft log. Cheap to clone; clones share the files.
#[derive(Clone)]
pub struct RaftWal {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    segment_bytes: u64,
    shared: RwLock<Shared>,
    writer: Mutex<Writer>,
}

/// What readers see.
struct Shared {
    meta: WalMeta,
    index: Index,
    /// Open segments by sequence number, with the index their first entry takes.
    segments: BTreeMap<u64, Segment>,
    /// A node id to write with the next record (see [`RaftWal::adopt_node_id`]).
    pending_node_id: Option<u64>,
    /// A committed id to write with the next record: it is a hint and is never synced alone.
    pending_committed: Option<Vec<u8>>,
}

#[derive(Clone)]
struct Segment {
    file: Arc<File>,
    next_index: u64,
}

/// The tail segment, owned by the one writer.
struct Writer {
    seq: u64,
    file: Arc<File>,
    len: u64,
    /// Set when a sync failed: no write is accepted after it.
    failed: Option<String>,
}

/// Entry index → where its payload is. Entries are contiguous from `first`.
#[derive(Default)]
struct Index {
    first: u64,
    locs: VecDeque<Loc>,
}

#[derive(Clone, Copy)]
struct Loc {
    seq: u64,
    offset: u64,
    len: u32,
}

impl Index {
    fn next(&self) -> u64 {
        self.first + self.locs.len() as u64
    }
}

impl RaftWal {
    /// Opens the log in `dir`, creating an empty one if there is none, and recovers it: a torn
    /// tail is cut, the tail is synced, wholly purged segments are deleted.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, SEGMENT_BYTES)
    }

    /// [`open`](Self::open) with another segment size (tests use small ones).
    pub fn open_with(dir: &Path, segment_bytes: u64) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)?;
        let recovered = recovery::recover(dir)?;
        let inner = Inner {
            dir: dir.to_owned(),
            segment_bytes,
            shared: RwLock::new(Shared {
                meta: recovered.meta,
                index: recovered.index,
                segments: recovered.segments,
                pending_node_id: None,
                pending_committed: None,
            }),
            writer: Mutex::new(recovered.writer),
        };
        let wal = Self {
            inner: Arc::new(inner),
        };
        wal.inner.delete_purged_segments()?;
        Ok(wal)
    }

    /// Writes a new log in `dir` (which must not exist) holding `meta` and `entries` (indexes
    /// contiguous from `next_index`), durably: it is built aside and renamed. For moving a log
    /// from another store.
    pub fn create(
        dir: &Path,
        meta: WalMeta,
        next_index: u64,
        entries: impl IntoIterator<Item = Result<(u64, Vec<u8>), StorageError>>,
    ) -> Result<(), StorageError> {
        let tmp = dir.with_extension("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let file = recovery::new_segment(&tmp, 0, &Checkpoint { meta, next_index })?;
        let mut len = file.metadata()?.len();
        let mut buf = Vec::new();
        for (expected, entry) in (next_index..).zip(entries) {
            let (index, payload) = entry?;
            if index != expected {
                return Err(StorageError::Damaged(format!(
                    "moving the Raft log: entry {index} where {expected} was expected"
                )));
            }
            Record::Entry { index, payload }.encode_into(&mut buf);
            if buf.len() >= 1 << 20 {
                file.write_all_at(&buf, len)?;
                len += buf.len() as u64;
                buf.clear();
            }
        }
        file.write_all_at(&buf, len)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir)?;
        sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
        Ok(())
    }

    /// The log's metadata, with a committed id not written yet in place of the written one.
    pub fn meta(&self) -> WalMeta {
        let shared = self.inner.shared.read().expect("never poisoned");
        let mut meta = shared.meta.clone();
        if let Some(c) = &shared.pending_committed {
            meta.committed = Some(c.clone());
        }
        meta
    }

    /// True if nothing was ever written: no vote, no entry, no purge.
    pub fn is_pristine(&self) -> bool {
        let shared = self.inner.shared.read().expect("never poisoned");
        shared.meta.vote.is_none()
            && shared.meta.last_purged.is_none()
            && shared.index.locs.is_empty()
    }

    /// The index of the first entry held and the index after the last one.
    pub fn bounds(&self) -> (u64, u64) {
        let shared = self.inner.shared.read().expect("never poisoned");
        (shared.index.first, shared.index.next())
    }

    /// The payloads of the entries held in `start..end`, in order (indexes outside what is
    /// held are left out).
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        let wanted: Vec<(Arc<File>, Loc)> = {
            let shared = self.inner.shared.read().expect("never poisoned");
            let start = start.max(shared.index.first);
            let end = end.min(shared.index.next());
            (start..end)
                .map(|i| {
                    let loc = shared.index.locs[(i - shared.index.first) as usize];
                    let file = shared.segments[&loc.seq].file.clone();
                    (file, loc)
                })
                .collect()
        };
        wanted
            .into_iter()
            .map(|(file, loc)| {
                let mut payload = vec![0; loc.len as usize];
                file.read_exact_at(&mut payload, loc.offset)?;
                Ok(payload)
            })
            .collect()
    }

    /// Makes `id` this log's node id: refused if another is stored; written at once on a log
    /// that has state without one, else with the first vote or entry, so Raft state never
    /// exists without the id it was written under.
    pub fn adopt_node_id(&self, id: u64) -> Result<(), StorageError> {
        let pristine = self.is_pristine();
        {
            let mut shared = self.inner.shared.write().expect("never poisoned");
            match shared.meta.node_id {
                Some(stored) if stored != id => {
                    return Err(StorageError::Damaged(format!(
                        "this Raft state belongs to node {stored}, not {id}"
                    )))
                }
                Some(_) => return Ok(()),
                None => shared.pending_node_id = Some(id),
            }
        }
        if !pristine {
            self.inner.write(Vec::new())?;
        }
        Ok(())
    }

    /// Keeps `committed` to be written with the next record; never synced on its own.
    pub fn set_committed(&self, committed: Vec<u8>) {
        self.inner
            .shared
            .write()
            .expect("never poisoned")
            .pending_committed = Some(committed);
    }

    /// Appends entries (indexes contiguous from the index after the last one); durable when
    /// this returns.
    pub fn append(&self, entries: Vec<(u64, Vec<u8>)>) -> Result<(), StorageError> {
        let records = entries
            .into_iter()
            .map(|(index, payload)| Record::Entry { index, payload })
            .collect();
        self.inner.write(records)
    }

    /// Saves the vote; durable when this returns, and so is everything written before it.
    pub fn save_vote(&self, vote: Vec<u8>) -> Result<(), StorageError> {
        self.inner.write(vec![Record::Vote(vote)])
    }

    /// Deletes the entries at and after `from`.
    pub fn truncate(&self, from: u64) -> Result<(), StorageError> {
        self.inner.write(vec![Record::Truncate { from }])
    }

    /// Deletes the entries up to `upto` inclusive (all of them, and sets where the next one
    /// goes, if `upto` is past the last) and records `log_id` as the last purged id.
    pub fn purge(&self, upto: u64, log_id: Vec<u8>) -> Result<(), StorageError> {
        self.inner.write(vec![Record::Purge { upto, log_id }])?;
        self.inner.delete_purged_segments()
    }

    /// The segment files, oldest first (for tests and reports).
    pub fn segment_files(&self) -> Vec<PathBuf> {
        let shared = self.inner.shared.read().expect("never poisoned");
        shared
            .segments
            .keys()
            .map(|&seq| segment_path(&self.inner.dir, seq))
            .collect()
    }
}

impl Inner {
    /// Writes `records` (with a pending node id and committed id first) at the tail and syncs.
    fn write(&self, mut records: Vec<Record>) -> Result<(), StorageError> {
        let mut writer = self.writer.lock().expect("never poisoned");
        if let Some(why) = &writer.failed {
            return Err(StorageError::Io(std::io::Error::other(format!(
                "the Raft log stopped taking writes after a failed sync: {why}"
            ))));
        }
        if writer.len >= self.segment_bytes {
            self.rotate(&mut writer)?;
        }
        let (node_id, committed) = {
            let shared = self.shared.read().expect("never poisoned");
            check(&shared, &records)?;
            (shared.pending_node_id, shared.pending_committed.clone())
        };
        let mut head = Vec::new();
        if let Some(id) = node_id {
            head.push(Record::NodeId(id));
        }
        if let Some(c) = committed.clone() {
            head.push(Record::Committed(c));
        }
        head.append(&mut records);
        let records = head;

        let mut buf = Vec::new();
        let mut placed = Vec::with_capacity(records.len());
        for record in &records {
            let at = buf.len();
            let payload_at = record.encode_into(&mut buf);
            placed.push((
                writer.len + (at + payload_at) as u64,
                buf.len() - at - payload_at,
            ));
        }
        if let Err(e) = writer.file.write_all_at(&buf, writer.len) {
            // Nothing is acknowledged; take back what may have been written and go on, unless
            // even that fails.
            if let Err(cut) = writer.file.set_len(writer.len) {
                writer.failed = Some(format!("{e}; cutting it back: {cut}"));
            }
            return Err(e.into());
        }

        {
            let mut guard = self.shared.write().expect("never poisoned");
            let shared = &mut *guard;
            for (record, (offset, len)) in records.into_iter().zip(placed) {
                let loc = Loc {
                    seq: writer.seq,
                    offset,
                    len: len as u32,
                };
                // The records were checked against the state before: live writes follow the
                // same rules as replay, and openraft keeps them.
                apply(&mut shared.meta, &mut shared.index, record, loc)?;
            }
            if node_id.is_some() {
                shared.pending_node_id = None;
            }
            if committed.is_some() && shared.pending_committed == committed {
                shared.pending_committed = None;
            }
        }
        writer.len += buf.len() as u64;

        let started = std::time::Instant::now();
        if let Err(e) = writer.file.sync_data() {
            writer.failed = Some(e.to_string());
            tracing::error!(error = %e, "syncing the Raft log failed; it takes no more writes");
            return Err(e.into());
        }
        metrics::histogram!("blindstore_storage_commit_seconds", "store" => "raft_log")
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Closes the tail segment and starts the next one with a checkpoint.
    fn rotate(&self, writer: &mut Writer) -> Result<(), StorageError> {
        writer.file.sync_data()?;
        let (meta, next_index) = {
            let shared = self.shared.read().expect("never poisoned");
            (shared.meta.clone(), shared.index.next())
        };
        let seq = writer.seq + 1;
        let file = Arc::new(recovery::new_segment(
            &self.dir,
            seq,
            &Checkpoint { meta, next_index },
        )?);
        writer.len = file.metadata()?.len();
        writer.seq = seq;
        writer.file = file.clone();
        self.shared
            .write()
            .expect("never poisoned")
            .segments
            .insert(seq, Segment { file, next_index });
        Ok(())
    }

    /// Deletes the segments, other than the tail, whose entries are all purged.
    fn delete_purged_segments(&self) -> Result<(), StorageError> {
        let doomed: Vec<u64> = {
            let shared = self.shared.read().expect("never poisoned");
            let Some((purged, _)) = shared.meta.last_purged else {
                return Ok(());
            };
            let seqs: Vec<(u64, u64)> = shared
                .segments
                .iter()
                .map(|(&seq, s)| (seq, s.next_index))
                .collect();
            seqs.windows(2)
                .take_while(|pair| pair[1].1 <= purged + 1)
                .map(|pair| pair[0].0)
                .collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        for seq in &doomed {
            std::fs::remove_file(segment_path(&self.dir, *seq))?;
            self.shared
                .write()
                .expect("never poisoned")
                .segments
                .remove(seq);
        }
        sync_dir(&self.dir)?;
        Ok(())
    }
}

/// Refuses records that [`apply`] would refuse, before they are written: nothing on disk may
/// break the rules replay checks.
fn check(shared: &Shared, records: &[Record]) -> Result<(), StorageError> {
    let mut first = shared.index.first;
    let mut next = shared.index.next();
    let mut purged = shared.meta.last_purged.as_ref().map(|(i, _)| *i);
    for record in records {
        match record {
            Record::Entry { index, .. } if next == first => (first, next) = (*index, *index + 1),
            Record::Entry { index, .. } if *index >= first && *index < next => next = *index + 1,
            Record::Entry { index, .. } if *index != next => {
                return Err(StorageError::Damaged(format!(
                    "Raft log: appending entry {index} where {next} is next"
                )))
            }
            Record::Entry { .. } => next += 1,
            Record::Truncate { from } if *from <= first => (first, next) = (*from, *from),
            Record::Truncate { from } => next = next.min(*from),
            Record::Purge { upto, .. } if purged.is_some_and(|p| *upto < p) => {
                return Err(StorageError::Damaged(format!(
                    "Raft log: purging up to {upto} after up to {}",
                    purged.unwrap_or_default()
                )))
            }
            Record::Purge { upto, .. } => {
                purged = Some(*upto);
                if upto + 1 >= next {
                    (first, next) = (upto + 1, upto + 1);
                } else {
                    first = first.max(upto + 1);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Applies one record to the metadata and index: the one set of rules for live writes and for
/// replay at open. `loc` is where an entry's payload is.
fn apply(
    meta: &mut WalMeta,
    index: &mut Index,
    record: Record,
    loc: Loc,
) -> Result<(), StorageError> {
    let damaged = |what: String| Err(StorageError::Damaged(format!("Raft log: {what}")));
    match record {
        Record::Checkpoint(_) => return damaged("a checkpoint inside a segment".into()),
        Record::Entry { index: i, .. } => {
            if index.locs.is_empty() {
                // An empty log takes its next entry at any index (openraft appends at the
                // index after a snapshot it installed; its storage suite anywhere).
                index.first = i;
            }
            if i >= index.first && i < index.next() {
                // Written over: the entries from there on are replaced.
                index.locs.truncate((i - index.first) as usize);
            }
            if i != index.next() {
                return damaged(format!("entry {i} where {} was expected", index.next()));
            }
            index.locs.push_back(loc);
        }
        Record::Vote(v) => meta.vote = Some(v),
        Record::Committed(c) => meta.committed = Some(c),
        Record::Truncate { from } => {
            if from <= index.first {
                index.locs.clear();
                index.first = from;
            } else if from < index.next() {
                index.locs.truncate((from - index.first) as usize);
            }
        }
        Record::Purge { upto, log_id } => {
            if let Some((before, _)) = &meta.last_purged {
                if upto < *before {
                    return damaged(format!("a purge up to {upto} after one up to {before}"));
                }
            }
            if upto + 1 >= index.next() {
                index.locs.clear();
                index.first = upto + 1;
            } else {
                while index.first <= upto {
                    index.locs.pop_front();
                    index.first += 1;
                }
            }
            meta.last_purged = Some((upto, log_id));
        }
        Record::NodeId(id) => match meta.node_id {
            Some(stored) if stored != id => {
                return damaged(format!("node id {id} after node id {stored}"))
            }
            _ => meta.node_id = Some(id),
        },
    }
    Ok(())
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
