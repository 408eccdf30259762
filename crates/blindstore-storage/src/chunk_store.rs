//! Immutable, content-addressed chunks in LMDB (`chunks/`).
//!
//! The store checks the SHA-256 of every chunk it is given and of every chunk it reads back from
//! disk: a copy that no longer matches its address is reported as [`StorageError::CorruptChunk`]
//! and never returned. Each chunk has a small metadata row (when it was last stored or
//! referenced, and its length) that garbage collection and `HEAD` read without touching the
//! bytes.

use std::path::Path;
use std::sync::Arc;

use blindstore_types::{Hash32, ZoneId};
use heed::types::{Bytes, Str};
use heed::{Database, Env, WithoutTls};
use serde::{Deserialize, Serialize};

use crate::{blocking, commit, decode, open_env, zone_key, StorageError};
use blindstore_types::record::{encode, RecordError, RECORD_V1};

/// The chunk store. Cheap to clone.
#[derive(Clone)]
pub struct ChunkStore {
    inner: Arc<Inner>,
}

struct Inner {
    env: Env<WithoutTls>,
    /// `zone_key(zone, hash)` → `RECORD_V1 || bytes`.
    data: Database<Bytes, Bytes>,
    /// `zone_key(zone, hash)` → `ChunkMeta`.
    meta: Database<Bytes, Bytes>,
    /// zone id → `Usage`.
    usage: Database<Str, Bytes>,
    /// `zone_key(zone, hash)` → `account_key(zone, account)`: the account charged for a chunk
    /// (the first to upload it here, in a zone whose writes need accounts).
    owners: Database<Bytes, Bytes>,
    /// `account_key(zone, account)` → `Usage`: what this node holds for an account.
    account_usage: Database<Bytes, Bytes>,
    /// Chunk writes waiting for the next group commit.
    pending: std::sync::Mutex<Vec<PendingPut>>,
    /// Held by the put writing a group.
    committer: std::sync::Mutex<()>,
    /// Transactions chunk writes committed (several puts share one when they arrive together).
    put_commits: std::sync::atomic::AtomicU64,
}

/// What a client's write is held to: the zone's quotas and, in a zone whose writes need
/// accounts, the uploading account's.
#[derive(Debug, Clone)]
pub struct ClientWrite {
    pub zone_quota: blindstore_types::command::Quota,
    pub account: Option<(
        blindstore_types::account::AccountId,
        blindstore_types::account::AccountQuota,
    )>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ChunkMeta {
    /// Unix seconds when the chunk was stored, or last named by an append being validated.
    /// Garbage collection spares chunks younger than the staging TTL.
    touched_at: u64,
    len: u64,
}

/// Per-zone totals of what this store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub chunks: u64,
    pub bytes: u64,
}

/// What one garbage collection pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    pub scanned: u64,
    pub deleted: u64,
    pub bytes_freed: u64,
}

/// What [`ChunkStore::open_checked`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The store could not be read at all and was moved to this directory; the node starts
    /// with an empty store and replicas restore its chunks.
    pub quarantined: Option<std::path::PathBuf>,
}

/// What one [`ChunkStore::scrub_step`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubStep {
    /// Chunks whose bytes were read and hashed.
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Copies that failed their hash check and were deleted (replicas restore them).
    pub corrupt: Vec<(ZoneId, Hash32)>,
    /// Where the next step starts; `None` when the pass reached the end of the store.
    pub next: Option<(ZoneId, Hash32)>,
}

impl ChunkStore {
    /// Opens the chunk store in `dir` after checking that LMDB can read it: a store LMDB
    /// cannot open, or whose data file is shorter than LMDB's own record of it (truncated), is
    /// moved aside to `<dir>.damaged-<unix seconds>` and replaced by an empty one, and the
    /// cluster's repairer copies its chunks back from their replicas. Chunk bytes are not read
    /// here (start-up time does not grow with the store): damaged copies are found by reads,
    /// which never serve them, and by the background scrubber ([`ChunkStore::scrub_step`]).
    pub fn open_checked(dir: &Path, map_size: usize) -> Result<(Self, OpenReport), StorageError> {
        match Self::open_readable(dir, map_size) {
            Ok(store) => Ok((store, OpenReport::default())),
            Err(damage) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let mut aside = dir.as_os_str().to_owned();
                aside.push(format!(".damaged-{now}"));
                let aside = std::path::PathBuf::from(aside);
                tracing::error!(
                    dir = %dir.display(),
                    moved_to = %aside.display(),
                    error = %damage,
                    "the chunk store is damaged; moving it aside and starting empty (replicas restore its chunks)"
                );
                std::fs::rename(dir, &aside)?;
                let store = Self::open(dir, map_size)?;
                Ok((
                    store,
                    OpenReport {
                        quarantined: Some(aside),
                    },
                ))
            }
        }
    }

    fn open_readable(dir: &Path, map_size: usize) -> Result<Self, StorageError> {
        let file_len = match std::fs::metadata(dir.join("data.mdb")) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let env = open_env(dir, map_size, 8, crate::Sync::Full)?;
        if let Some(file_len) = file_len {
            // Reading a page past the end of a truncated file would fault the process: check
            // the length LMDB expects before any page is read.
            let info = env.info();
            let expected = (info.last_page_number as u64 + 1) * u64::from(env.stat().page_size);
            if file_len < expected {
                env.prepare_for_closing().wait();
                return Err(StorageError::Damaged(format!(
                    "data.mdb is {file_len} bytes, LMDB expects at least {expected}"
                )));
            }
        }
        let store = match Self::from_env(env.clone()) {
            Ok(store) => store,
            Err(e) => {
                env.prepare_for_closing().wait();
                return Err(e);
            }
        };
        // Walk every key and metadata row once (not the chunk bytes): a store whose B-tree
        // LMDB cannot walk is damaged.
        if let Err(e) = store.walk_metadata() {
            drop(store);
            env.prepare_for_closing().wait();
            return Err(e);
        }
        Ok(store)
    }

    fn walk_metadata(&self) -> Result<(), StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        for item in self.inner.meta.iter(&rtxn)? {
            let (key, meta) = item?;
            split_zone_key(key)?;
            decode::<ChunkMeta>("chunk meta", meta)?;
        }
        Ok(())
    }

    /// Hashes up to `max_chunks` stored chunks (or about `max_bytes` of them) after `after`,
    /// in key order, and deletes the copies that fail — re-checked inside the deleting
    /// transaction, so a copy rewritten meanwhile survives. Runs on the blocking pool.
    pub async fn scrub_step(
        &self,
        after: Option<(ZoneId, Hash32)>,
        max_chunks: usize,
        max_bytes: u64,
    ) -> Result<ScrubStep, StorageError> {
        let this = self.clone();
        blocking(move || this.scrub_step_blocking(after, max_chunks, max_bytes)).await
    }

    fn scrub_step_blocking(
        &self,
        after: Option<(ZoneId, Hash32)>,
        max_chunks: usize,
        max_bytes: u64,
    ) -> Result<ScrubStep, StorageError> {
        let inner = &self.inner;
        let mut step = ScrubStep::default();
        let mut corrupt_keys = Vec::new();
        {
            let rtxn = inner.env.read_txn()?;
            let start = after.as_ref().map(|(z, h)| zone_key(z, h));
            let bounds = match &start {
                Some(k) => (
                    std::ops::Bound::Excluded(k.as_slice()),
                    std::ops::Bound::Unbounded,
                ),
                None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            };
            let mut last = None;
            for item in inner.data.range(&rtxn, &bounds)? {
                if step.checked as usize >= max_chunks || step.bytes >= max_bytes {
                    step.next = last.clone();
                    break;
                }
                let (key, value) = item?;
                let address = split_zone_key(key)?;
                step.checked += 1;
                step.bytes += value.len() as u64;
                if !chunk_bytes(value).is_ok_and(|bytes| Hash32::digest(bytes) == address.1) {
                    corrupt_keys.push(key.to_vec());
                }
                last = Some(address);
            }
        }
        if corrupt_keys.is_empty() {
            return Ok(step);
        }
        let mut wtxn = inner.env.write_txn()?;
        for key in &corrupt_keys {
            let (zone, hash) = split_zone_key(key)?;
            let still_corrupt = inner.data.get(&wtxn, key)?.is_some_and(|value| {
                !chunk_bytes(value).is_ok_and(|bytes| Hash32::digest(bytes) == hash)
            });
            if !still_corrupt {
                continue;
            }
            tracing::error!(zone = %zone, hash = %hash, "stored chunk fails its hash check; deleting this copy");
            match inner.meta.get(&wtxn, key)? {
                Some(meta) => {
                    let meta: ChunkMeta = decode("chunk meta", meta)?;
                    delete_chunk(inner, &mut wtxn, &zone, key, &meta)?;
                }
                None => {
                    inner.data.delete(&mut wtxn, key)?;
                }
            }
            step.corrupt.push((zone, hash));
        }
        commit(wtxn, "chunks")?;
        Ok(step)
    }

    /// Closes the store so that its directory can be opened again in this process (tests).
    /// Other clones must have been dropped.
    pub fn close(self) {
        if let Ok(inner) = Arc::try_unwrap(self.inner) {
            inner.env.prepare_for_closing().wait();
        }
    }

    /// Opens or creates the chunk store in `dir`, without checking what it holds.
    pub fn open(dir: &Path, map_size: usize) -> Result<Self, StorageError> {
        Self::from_env(open_env(dir, map_size, 8, crate::Sync::Full)?)
    }

    fn from_env(env: Env<WithoutTls>) -> Result<Self, StorageError> {
        let mut wtxn = env.write_txn()?;
        let data = env.create_database(&mut wtxn, Some("data"))?;
        let meta = env.create_database(&mut wtxn, Some("meta"))?;
        let usage = env.create_database(&mut wtxn, Some("usage"))?;
        let owners = env.create_database(&mut wtxn, Some("owners"))?;
        let account_usage = env.create_database(&mut wtxn, Some("account_usage"))?;
        commit(wtxn, "chunks")?;
        Ok(Self {
            inner: Arc::new(Inner {
                env,
                data,
                meta,
                usage,
                owners,
                account_usage,
                pending: Default::default(),
                committer: Default::default(),
                put_commits: Default::default(),
            }),
        })
    }

    /// Stores `bytes` as chunk `hash` of `zone`, durably (fsynced) before returning. Returns
    /// `true` if it was new, `false` if the zone already held it (its staging clock restarts).
    /// Refuses bytes that do not hash to `hash`, changing nothing.
    pub async fn put(
        &self,
        zone: &ZoneId,
        hash: Hash32,
        bytes: Vec<u8>,
        now_secs: u64,
    ) -> Result<bool, StorageError> {
        self.put_within(zone, hash, bytes, now_secs, None).await
    }

    /// Like [`ChunkStore::put`], refusing with [`StorageError::QuotaExceeded`] (and writing
    /// nothing) a new chunk that would take the zone's holdings here past its quota, or the
    /// account's past the account's quota (a new chunk is then charged to the account). The
    /// checks and the write are one transaction.
    pub async fn put_within(
        &self,
        zone: &ZoneId,
        hash: Hash32,
        bytes: Vec<u8>,
        now_secs: u64,
        client: Option<ClientWrite>,
    ) -> Result<bool, StorageError> {
        let inner = self.inner.clone();
        let zone = zone.clone();
        blocking(move || {
            let actual = Hash32::digest(&bytes);
            if actual != hash {
                return Err(StorageError::HashMismatch {
                    expected: hash,
                    actual,
                });
            }
            let (done, result) = std::sync::mpsc::sync_channel(1);
            inner
                .pending
                .lock()
                .expect("pending puts")
                .push(PendingPut {
                    zone,
                    hash,
                    bytes,
                    now_secs,
                    client,
                    done,
                });
            // Group commit: whoever holds the committer's lock writes every put queued so far
            // in one transaction (one fsync), and answers each. A put taken by an earlier
            // committer has its answer by the time that one lets go of the lock.
            let _committer = inner.committer.lock().expect("committer");
            if let Ok(answer) = result.try_recv() {
                return answer;
            }
            let batch = std::mem::take(&mut *inner.pending.lock().expect("pending puts"));
            write_puts(&inner, batch);
            result
                .recv()
                .map_err(|_| StorageError::Task("a queued chunk write was not answered".into()))?
        })
        .await
    }

    /// The chunk's bytes, verified against its hash; `None` if this store does not hold it.
    /// The read and the hashing run on the blocking pool, off the async executor.
    pub async fn get(&self, zone: &ZoneId, hash: &Hash32) -> Result<Option<Vec<u8>>, StorageError> {
        let this = self.clone();
        let (zone, hash) = (zone.clone(), *hash);
        blocking(move || this.get_blocking(&zone, &hash)).await
    }

    fn get_blocking(&self, zone: &ZoneId, hash: &Hash32) -> Result<Option<Vec<u8>>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let Some(value) = self.inner.data.get(&rtxn, &zone_key(zone, hash))? else {
            return Ok(None);
        };
        let bytes = chunk_bytes(value)?;
        if Hash32::digest(bytes) != *hash {
            tracing::error!(zone = %zone, hash = %hash, "stored chunk fails its hash check; not serving it");
            return Err(StorageError::CorruptChunk {
                zone: zone.clone(),
                hash: *hash,
            });
        }
        Ok(Some(bytes.to_vec()))
    }

    /// When the chunk was last stored or named by an append (unix seconds), if held.
    pub fn touched_at(&self, zone: &ZoneId, hash: &Hash32) -> Result<Option<u64>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .meta
            .get(&rtxn, &zone_key(zone, hash))?
            .map(|b| decode::<ChunkMeta>("chunk meta", b).map(|m| m.touched_at))
            .transpose()
    }

    /// The chunk's length if this store holds it (no hash check: the bytes are not read).
    pub fn len(&self, zone: &ZoneId, hash: &Hash32) -> Result<Option<u64>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .meta
            .get(&rtxn, &zone_key(zone, hash))?
            .map(|b| decode::<ChunkMeta>("chunk meta", b).map(|m| m.len))
            .transpose()
    }

    /// The hashes among `hashes` this store does not hold, in the given order.
    pub fn missing(&self, zone: &ZoneId, hashes: &[Hash32]) -> Result<Vec<Hash32>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let mut out = Vec::new();
        for hash in hashes {
            if self.inner.meta.get(&rtxn, &zone_key(zone, hash))?.is_none() {
                out.push(*hash);
            }
        }
        Ok(out)
    }

    /// Restarts the staging clock of the chunks among `hashes` that are held, and returns those
    /// that are not. An append calls this on the chunks it is about to reference so garbage
    /// collection cannot remove them between the check and the commit.
    pub async fn touch(
        &self,
        zone: &ZoneId,
        hashes: Vec<Hash32>,
        now_secs: u64,
    ) -> Result<Vec<Hash32>, StorageError> {
        let inner = self.inner.clone();
        let zone = zone.clone();
        blocking(move || {
            let mut wtxn = inner.env.write_txn()?;
            let mut missing = Vec::new();
            for hash in hashes {
                let key = zone_key(&zone, &hash);
                let meta = inner
                    .meta
                    .get(&wtxn, &key)?
                    .map(|b| decode::<ChunkMeta>("chunk meta", b))
                    .transpose()?;
                match meta {
                    Some(mut meta) => {
                        meta.touched_at = meta.touched_at.max(now_secs);
                        inner.meta.put(&mut wtxn, &key, &encode(&meta))?;
                    }
                    None => missing.push(hash),
                }
            }
            commit(wtxn, "chunks")?;
            Ok(missing)
        })
        .await
    }

    /// Up to `limit` chunk addresses held, in key order, starting after `after`.
    pub fn list(
        &self,
        after: Option<&(ZoneId, Hash32)>,
        limit: usize,
    ) -> Result<Vec<(ZoneId, Hash32)>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let start = after.map(|(z, h)| zone_key(z, h));
        let bounds = match &start {
            Some(k) => (
                std::ops::Bound::Excluded(k.as_slice()),
                std::ops::Bound::Unbounded,
            ),
            None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
        };
        let mut out = Vec::new();
        for item in self.inner.meta.range(&rtxn, &bounds)? {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item?;
            out.push(split_zone_key(key)?);
        }
        Ok(out)
    }

    /// Deletes this store's copy of a chunk (other nodes hold it). Returns whether it was held.
    pub async fn remove(&self, zone: &ZoneId, hash: &Hash32) -> Result<bool, StorageError> {
        let inner = self.inner.clone();
        let (zone, hash) = (zone.clone(), *hash);
        blocking(move || {
            let key = zone_key(&zone, &hash);
            let mut wtxn = inner.env.write_txn()?;
            let Some(bytes) = inner.meta.get(&wtxn, &key)? else {
                return Ok(false);
            };
            let meta: ChunkMeta = decode("chunk meta", bytes)?;
            delete_chunk(&inner, &mut wtxn, &zone, &key, &meta)?;
            commit(wtxn, "chunks")?;
            Ok(true)
        })
        .await
    }

    /// What this store holds in all zones together.
    pub fn total_usage(&self) -> Result<Usage, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let mut total = Usage::default();
        for item in self.inner.usage.iter(&rtxn)? {
            let (_, bytes) = item?;
            let usage: Usage = decode("usage", bytes)?;
            total.chunks += usage.chunks;
            total.bytes += usage.bytes;
        }
        Ok(total)
    }

    /// What this node holds for an account of `zone` (chunks charged to it).
    pub fn account_usage(
        &self,
        zone: &ZoneId,
        account: &blindstore_types::account::AccountId,
    ) -> Result<Usage, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        read_account_usage(
            &self.inner,
            &rtxn,
            &crate::accounts::account_key(zone, account),
        )
    }

    /// What this store holds for `zone`.
    /// Transactions chunk writes have committed since the store was opened: fewer than the
    /// writes when concurrent ones shared a group commit.
    pub fn put_commits(&self) -> u64 {
        self.inner
            .put_commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn usage(&self, zone: &ZoneId) -> Result<Usage, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let usage = self.inner.usage.get(&rtxn, zone.as_str())?;
        usage
            .map(|b| decode("usage", b))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Deletes chunks not touched since `cutoff_secs` for which `is_referenced` says no. The
    /// age and `is_referenced` are checked again inside the deleting transaction, so a chunk
    /// touched or referenced meanwhile survives. At most `max_deletes` chunks go per call.
    pub async fn collect_garbage<F>(
        &self,
        cutoff_secs: u64,
        max_deletes: usize,
        is_referenced: F,
    ) -> Result<GcReport, StorageError>
    where
        F: Fn(&ZoneId, &Hash32) -> Result<bool, StorageError> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let mut report = GcReport::default();
            let mut candidates = Vec::new();
            {
                let rtxn = inner.env.read_txn()?;
                for item in inner.meta.iter(&rtxn)? {
                    let (key, bytes) = item?;
                    report.scanned += 1;
                    let meta: ChunkMeta = decode("chunk meta", bytes)?;
                    if meta.touched_at < cutoff_secs {
                        let (zone, hash) = split_zone_key(key)?;
                        if !is_referenced(&zone, &hash)? {
                            candidates.push((zone, hash));
                            if candidates.len() >= max_deletes {
                                break;
                            }
                        }
                    }
                }
            }
            if candidates.is_empty() {
                return Ok(report);
            }
            let mut wtxn = inner.env.write_txn()?;
            for (zone, hash) in candidates {
                let key = zone_key(&zone, &hash);
                let Some(bytes) = inner.meta.get(&wtxn, &key)? else {
                    continue;
                };
                let meta: ChunkMeta = decode("chunk meta", bytes)?;
                // Touched, or referenced, since the scan: it stays.
                if meta.touched_at >= cutoff_secs || is_referenced(&zone, &hash)? {
                    continue;
                }
                delete_chunk(&inner, &mut wtxn, &zone, &key, &meta)?;
                report.deleted += 1;
                report.bytes_freed += meta.len;
            }
            commit(wtxn, "chunks")?;
            Ok(report)
        })
        .await
    }
}

/// Deletes a chunk's bytes and metadata and takes it off its zone's usage.
/// The chunk bytes of a stored value (after its version byte).
fn chunk_bytes(value: &[u8]) -> Result<&[u8], RecordError> {
    match value.split_first() {
        Some((&RECORD_V1, bytes)) => Ok(bytes),
        other => Err(RecordError::UnknownVersion {
            what: "chunk",
            version: other.map_or(0, |(v, _)| *v),
        }),
    }
}

fn delete_chunk(
    inner: &Inner,
    wtxn: &mut heed::RwTxn,
    zone: &ZoneId,
    key: &[u8],
    meta: &ChunkMeta,
) -> Result<(), StorageError> {
    inner.meta.delete(wtxn, key)?;
    inner.data.delete(wtxn, key)?;
    let mut usage = read_usage(inner, wtxn, zone)?;
    usage.chunks = usage.chunks.saturating_sub(1);
    usage.bytes = usage.bytes.saturating_sub(meta.len);
    inner.usage.put(wtxn, zone.as_str(), &encode(&usage))?;
    if let Some(owner) = inner.owners.get(wtxn, key)?.map(<[u8]>::to_vec) {
        let mut usage = read_account_usage(inner, wtxn, &owner)?;
        usage.chunks = usage.chunks.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(meta.len);
        inner.account_usage.put(wtxn, &owner, &encode(&usage))?;
        inner.owners.delete(wtxn, key)?;
    }
    Ok(())
}

/// Which limit one more chunk of `len` bytes would break, if any.
fn over_quota(
    usage: &Usage,
    len: u64,
    max_chunks: u64,
    max_bytes: u64,
) -> Option<(blindstore_types::command::QuotaKind, u64)> {
    use blindstore_types::command::QuotaKind;
    if usage.chunks + 1 > max_chunks {
        Some((QuotaKind::Chunks, max_chunks))
    } else if usage.bytes + len > max_bytes {
        Some((QuotaKind::ChunkBytes, max_bytes))
    } else {
        None
    }
}

fn read_account_usage(
    inner: &Inner,
    txn: &heed::RoTxn<WithoutTls>,
    owner: &[u8],
) -> Result<Usage, StorageError> {
    inner
        .account_usage
        .get(txn, owner)?
        .map(|b| decode("account usage", b))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn read_usage(
    inner: &Inner,
    txn: &heed::RoTxn<WithoutTls>,
    zone: &ZoneId,
) -> Result<Usage, StorageError> {
    let usage = inner.usage.get(txn, zone.as_str())?;
    usage
        .map(|b| decode("usage", b))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Inverse of `zone_key`.
fn split_zone_key(key: &[u8]) -> Result<(ZoneId, Hash32), StorageError> {
    let bad = || StorageError::MalformedKey(format!("chunk key of {} bytes", key.len()));
    let (&len, rest) = key.split_first().ok_or_else(bad)?;
    let len = len as usize;
    if rest.len() != len + 32 {
        return Err(bad());
    }
    let zone = std::str::from_utf8(&rest[..len]).map_err(|_| bad())?;
    let zone = ZoneId::new(zone).map_err(|_| bad())?;
    let hash: [u8; 32] = rest[len..].try_into().map_err(|_| bad())?;
    Ok((zone, Hash32(hash)))
}
/// A chunk write waiting for the next group commit, with where its answer goes.
struct PendingPut {
    zone: ZoneId,
    hash: Hash32,
    bytes: Vec<u8>,
    now_secs: u64,
    client: Option<ClientWrite>,
    done: std::sync::mpsc::SyncSender<Result<bool, StorageError>>,
}

/// Puts at most this many bytes in one group commit; the rest wait for the next.
const GROUP_BYTES: usize = 16 << 20;

/// Writes `batch` in as few transactions as it can: all together, each one's refusal (a quota)
/// leaving the others alone; if anything else fails (a full map, the commit itself), nothing
/// of that transaction stays and each put is written on its own, so each gets its own answer.
fn write_puts(inner: &Inner, mut batch: Vec<PendingPut>) {
    while !batch.is_empty() {
        let mut size = 0;
        let take = batch
            .iter()
            .position(|p| {
                size += p.bytes.len();
                size > GROUP_BYTES
            })
            .unwrap_or(batch.len())
            .max(1);
        let rest = batch.split_off(take);
        write_group(inner, batch);
        batch = rest;
    }
}

fn write_group(inner: &Inner, group: Vec<PendingPut>) {
    let together = (|| {
        let mut wtxn = inner.env.write_txn()?;
        let mut answers = Vec::with_capacity(group.len());
        for p in &group {
            match put_in(inner, &mut wtxn, p) {
                Ok(new) => answers.push(Ok(new)),
                Err(
                    e @ (StorageError::QuotaExceeded { .. }
                    | StorageError::AccountQuotaExceeded { .. }),
                ) => answers.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
        commit(wtxn, "chunks")?;
        inner
            .put_commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(answers)
    })();
    match together {
        Ok(answers) => {
            for (p, answer) in group.iter().zip(answers) {
                let _ = p.done.send(answer);
            }
        }
        Err(_) if group.len() > 1 => {
            for p in group {
                write_group(inner, vec![p]);
            }
        }
        Err(e) => {
            let _ = group[0].done.send(Err(e));
        }
    }
}

/// One put inside `wtxn`: its quota checks and its writes. A refusal writes nothing.
fn put_in(inner: &Inner, wtxn: &mut heed::RwTxn, p: &PendingPut) -> Result<bool, StorageError> {
    let (zone, hash, len) = (&p.zone, p.hash, p.bytes.len() as u64);
    let key = zone_key(zone, &hash);
    let held = inner.meta.get(wtxn, &key)?.is_some();
    // A held copy that fails its hash is rewritten with the intact bytes offered now, so a
    // corrupt copy never counts as one of the chunk's replicas.
    let intact = held
        && inner.data.get(wtxn, &key)?.is_some_and(|value| {
            chunk_bytes(value).is_ok_and(|stored| Hash32::digest(stored) == hash)
        });
    let mut charge = None;
    if let (Some(client), false) = (&p.client, intact) {
        let quota = client.zone_quota;
        let usage = read_usage(inner, wtxn, zone)?;
        if let Some((what, limit)) =
            over_quota(&usage, len, quota.max_chunks, quota.max_chunk_bytes)
        {
            return Err(StorageError::QuotaExceeded { what, limit });
        }
        if let Some((account, quota)) = &client.account {
            let owner = crate::accounts::account_key(zone, account);
            let usage = read_account_usage(inner, wtxn, &owner)?;
            if let Some((what, limit)) =
                over_quota(&usage, len, quota.max_chunks, quota.max_chunk_bytes)
            {
                return Err(StorageError::AccountQuotaExceeded { what, limit });
            }
            charge = Some((owner, usage));
        }
    }
    if held && !intact {
        tracing::warn!(zone = %zone, hash = %hash, "rewriting a stored chunk copy that fails its hash");
        let old: ChunkMeta = decode(
            "chunk meta",
            inner.meta.get(wtxn, &key)?.expect("held, checked above"),
        )?;
        delete_chunk(inner, wtxn, zone, &key, &old)?;
    }
    inner.meta.put(
        wtxn,
        &key,
        &encode(&ChunkMeta {
            touched_at: p.now_secs,
            len,
        }),
    )?;
    if !intact {
        let mut value = Vec::with_capacity(p.bytes.len() + 1);
        value.push(RECORD_V1);
        value.extend_from_slice(&p.bytes);
        inner.data.put(wtxn, &key, &value)?;
        let mut usage = read_usage(inner, wtxn, zone)?;
        usage.chunks += 1;
        usage.bytes += len;
        inner.usage.put(wtxn, zone.as_str(), &encode(&usage))?;
        if let Some((owner, mut usage)) = charge {
            usage.chunks += 1;
            usage.bytes += len;
            inner.account_usage.put(wtxn, &owner, &encode(&usage))?;
            inner.owners.put(wtxn, &key, &owner)?;
        }
    }
    Ok(!intact)
}
