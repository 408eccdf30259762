//! Durable storage: the Raft log in its own segmented file, and LMDB through heed for the rest.
//! Under a node's data dir:
//!
//! - `raft-wal/`: the Raft log, vote and committed index ([`RaftWal`], adapted to openraft by
//!   `blindstore_raft::LogStore`). Nodes of earlier builds kept it in LMDB under `raft-log/`;
//!   it is moved on first start.
//! - `state/`: the Raft state machine — zones, chains, entry headers, chunk references
//!   ([`StateMachineStore`]) — plus `snapshots/` beside it.
//! - `chunks/`: immutable content-addressed chunks ([`ChunkStore`]).
//!
//! Separate stores keep chunk uploads from queueing behind Raft log writes (LMDB has one
//! writer per environment). The Raft log and the chunk store sync every write before it
//! returns; the state machine's commits are synced in the background (`state_durability`). Every stored value starts
//! with a format version byte; see `docs/storage-format.md`.

mod accounts;
mod chain_watch;
mod chains;
mod chunk_store;
mod cluster_state;
pub mod negative_controls;
mod raft_wal;
mod sites;
mod state_durability;
pub mod state_machine;
mod store;
mod verified;
mod zones;

use std::path::Path;

use heed::{Env, EnvOpenOptions, WithoutTls};

pub use chain_watch::ChainChanges;
pub use chunk_store::{ChunkStore, ClientWrite, GcReport, OpenReport, ScrubStep, Usage};
pub use raft_wal::{RaftWal, WalMeta};
pub use state_durability::emulate_machine_crash;
pub use state_machine::{
    read_snapshot_file, read_snapshot_file_header, Marks, SnapshotContents, StateMachineStore,
};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// LMDB refused an operation (I/O error, corrupted page...).
    #[error("lmdb: {0}")]
    Lmdb(heed::Error),
    /// No room: the store's LMDB map is full, or the disk is (ENOSPC). Nothing was written by
    /// the failed operation; reads go on, and room made (data collected, a larger map, a
    /// bigger disk) lets writes go on.
    #[error("no room to store more: {0}")]
    Full(String),
    /// A zone quota would be exceeded; nothing was written.
    #[error("the zone's quota of {what} ({limit}) would be exceeded")]
    QuotaExceeded {
        what: blindstore_types::command::QuotaKind,
        limit: u64,
    },
    /// An account's quota would be exceeded; nothing was written.
    #[error("the account's quota of {what} ({limit}) would be exceeded")]
    AccountQuotaExceeded {
        what: blindstore_types::command::QuotaKind,
        limit: u64,
    },
    /// A stored record could not be decoded (damaged, or written by an incompatible build).
    /// Never treated as "absent".
    #[error("stored record: {0}")]
    Record(#[from] blindstore_types::record::RecordError),
    /// A file operation failed (snapshots).
    #[error("i/o: {0}")]
    Io(std::io::Error),
    /// A store's files are damaged beyond what LMDB can read (truncated, unreadable pages).
    #[error("damaged store: {0}")]
    Damaged(String),
    /// A snapshot file is malformed.
    #[error("bad snapshot: {0}")]
    BadSnapshot(String),
    /// A stored key does not have the layout this build writes.
    #[error("malformed stored key: {0}")]
    MalformedKey(String),
    /// Bytes offered for a chunk do not hash to the chunk's address.
    #[error("content hashes to {actual}, not {expected}")]
    HashMismatch {
        expected: blindstore_types::Hash32,
        actual: blindstore_types::Hash32,
    },
    /// A chunk read from disk no longer matches its hash. It is not served.
    #[error("stored chunk {hash} in zone {zone} is corrupt")]
    CorruptChunk {
        zone: blindstore_types::ZoneId,
        hash: blindstore_types::Hash32,
    },
    /// A blocking storage task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// ENOSPC: no space left on device.
const ENOSPC: i32 = 28;

impl From<heed::Error> for StorageError {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => {
                StorageError::Full("the LMDB map is full".into())
            }
            heed::Error::Io(io) => io.into(),
            other => StorageError::Lmdb(other),
        }
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(ENOSPC) {
            StorageError::Full(format!("the disk is full: {e}"))
        } else {
            StorageError::Io(e)
        }
    }
}

/// Sizes of the LMDB memory maps. They are upper bounds on each store's size (the files grow
/// as needed); LMDB refuses writes beyond them with `MDB_MAP_FULL`.
#[derive(Debug, Clone, Copy)]
pub struct MapSizes {
    pub raft_log: usize,
    pub state: usize,
    pub chunks: usize,
}

impl Default for MapSizes {
    fn default() -> Self {
        const GIB: usize = 1 << 30;
        Self {
            raft_log: 16 * GIB,
            state: 16 * GIB,
            chunks: 256 * GIB,
        }
    }
}

/// Concurrent read transactions per environment.
const MAX_READERS: u32 = 1024;

/// Commits `wtxn` (LMDB writes it to disk and syncs before returning), recording how long that
/// took in `blindstore_storage_commit_seconds{store}`.
pub fn commit(wtxn: heed::RwTxn, store: &'static str) -> Result<(), StorageError> {
    let started = std::time::Instant::now();
    wtxn.commit()?;
    metrics::histogram!("blindstore_storage_commit_seconds", "store" => store)
        .record(started.elapsed().as_secs_f64());
    Ok(())
}

/// How an environment's commits reach the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// A commit returns once its data and its meta page are synced (LMDB's default): it
    /// survives a machine crash.
    Full,
    /// A commit returns without syncing; the owner syncs (`Env::force_sync`) when it needs
    /// to. A process crash loses nothing; a machine crash can lose commits and tear the file.
    /// Only for the state machine, which the Raft log replays and which is rebuilt after a
    /// machine crash (see `state_durability`).
    Deferred,
}

/// Opens (creating if needed) an LMDB environment in `dir`.
pub fn open_env(
    dir: &Path,
    map_size: usize,
    max_dbs: u32,
    sync: Sync,
) -> Result<Env<WithoutTls>, StorageError> {
    std::fs::create_dir_all(dir)?;
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    if sync == Sync::Deferred {
        // SAFETY: heed calls NO_SYNC unsafe because a machine crash may lose commits or tear
        // the file; `Sync::Deferred` is only used for the state machine, whose store is not
        // trusted after a machine crash (it is rebuilt from its snapshot and the Raft log,
        // see `state_durability`) and which serves nothing until it has caught up.
        #[allow(unsafe_code)]
        unsafe {
            options.flags(heed::EnvFlags::NO_SYNC);
        }
    }
    // Reads run on tokio's blocking pool (up to 512 threads), each holding one read
    // transaction: LMDB's default of 126 reader slots would be the limit under load.
    options
        .map_size(map_size)
        .max_dbs(max_dbs)
        .max_readers(MAX_READERS);
    // SAFETY: heed requires that an environment is opened at most once per process and that
    // its files are not modified by other means while open. Each store opens its own
    // directory exactly once, from `Node` start-up, and nothing else touches those files.
    #[allow(unsafe_code)]
    let env = unsafe { options.open(dir)? };
    Ok(env)
}

/// Writes `dir/name` so that it holds either its old contents or all of `contents`, durably:
/// a temporary file, fsync, rename over the name, fsync of the directory.
pub fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Runs blocking LMDB or file work off the async runtime.
pub async fn blocking<T, F>(f: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
}

/// `u8(len(zone)) || zone || hash`: the key of a per-zone object (a chain, a chunk, a
/// reference). The length prefix keeps one zone's keys from being a prefix of another's.
fn zone_key(zone: &blindstore_types::ZoneId, hash: &blindstore_types::Hash32) -> Vec<u8> {
    let zone = zone.as_str().as_bytes();
    let mut key = Vec::with_capacity(1 + zone.len() + 32 + 8);
    key.push(zone.len() as u8);
    key.extend_from_slice(zone);
    key.extend_from_slice(&hash.0);
    key
}

/// Decodes a stored record, as a storage error.
pub fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    Ok(blindstore_types::record::decode(what, bytes)?)
}
