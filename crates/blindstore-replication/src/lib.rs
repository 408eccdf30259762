//! Chunk replication: where chunks live and how their copies are kept.
//!
//! A [`Replicator`] owns this node's chunk store and does everything that concerns copies of
//! chunks across the cluster:
//! - placement (`placement.rs`): rendezvous ranking of the storage members per chunk;
//! - transfer (`transfer.rs`): writing a chunk to its owners, reading it from any holder,
//!   asking every member which chunks it lacks;
//! - repair (`repair.rs`): restoring and rebalancing copies, and the liveness it needs;
//! - garbage collection (`gc.rs`) of staged chunks no entry references;
//! - scrubbing (`scrub.rs`): re-hashing every held copy at a bounded rate;
//! - the `blindstore.v1.Chunks` gRPC service peers call (`rpc.rs`).
//!
//! It knows nothing of Raft. What it needs from the node comes through [`ClusterView`]: the
//! current storage members and a linearizable read barrier. The applied state (which chunks
//! entries reference, which members are draining, the zones' quotas) it reads from the state
//! machine store directly.

mod cache;
mod gc;
mod placement;
mod repair;
mod rpc;
mod scrub;
mod transfer;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blindstore_rpc::Peers;
use blindstore_storage::{ChunkStore, StateMachineStore, StorageError};
use blindstore_types::raft::{NodeId, NodeInfo};
use blindstore_types::Hash32;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use cache::CacheStats;
pub use repair::RepairReport;
pub use rpc::ChunksRpc;
pub use scrub::{ScrubConfig, ScrubReport};

/// What the replicator needs from the node it runs in.
pub trait ClusterView: Send + Sync + 'static {
    /// Every member of the current membership that holds chunks (has an rpc address), and
    /// always this node.
    fn storage_members(&self) -> Vec<(NodeId, NodeInfo)>;

    /// Returns once this node has applied every entry committed before the call, or fails
    /// (no leader, partitioned). Garbage collection runs only after one.
    fn read_barrier(&self) -> Pin<Box<dyn Future<Output = Result<(), ChunkError>> + Send + '_>>;
}

/// Why a chunk operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Uploaded bytes do not hash to the address they were sent to.
    #[error("content hashes to {actual}, not {expected}")]
    HashMismatch { expected: Hash32, actual: Hash32 },
    /// No reachable holder has the chunk.
    #[error("unknown chunk")]
    UnknownChunk,
    /// A quota of the zone would be exceeded. Nothing was changed.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// A holder is below its free-space reserve. Nothing was changed.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// Not enough holders could be reached; the operation did not take effect.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A stored chunk failed its hash check and no intact copy is reachable.
    #[error("stored chunk {0} is corrupt and no intact copy is reachable")]
    CorruptChunk(Hash32),
    /// A broken invariant (a peer answered nonsense).
    #[error("internal: {0}")]
    Internal(String),
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(StorageError),
}

impl From<StorageError> for ChunkError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::HashMismatch { expected, actual } => {
                ChunkError::HashMismatch { expected, actual }
            }
            StorageError::CorruptChunk { hash, .. } => ChunkError::CorruptChunk(hash),
            e
            @ (StorageError::QuotaExceeded { .. } | StorageError::AccountQuotaExceeded { .. }) => {
                ChunkError::QuotaExceeded(e.to_string())
            }
            StorageError::Full(why) => ChunkError::InsufficientStorage(why),
            other => ChunkError::Storage(other),
        }
    }
}

/// Who is writing a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// Repair or a corrupt copy's replacement: no quotas, no reserve.
    Repair,
    /// A client's upload or an append's payload: held to the zone's quotas and each holder's
    /// free-space reserve, and, with an account (a zone whose writes need accounts), charged
    /// to it and held to its quota.
    Client(Option<blindstore_types::account::AccountId>),
}

/// How a replicator behaves.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// This node's id.
    pub id: NodeId,
    /// Copies of each chunk (at most the number of storage members).
    pub replication: usize,
    /// A peer unreachable for longer than this stops owning chunks (its share moves on).
    pub down_after: Duration,
    /// The client's write deadline: a peer slower than a quarter of it is passed over.
    pub write_timeout: Duration,
    /// Unreferenced chunks untouched for this long are garbage.
    pub staging_ttl: Duration,
    /// The data directory, whose free space is checked against `min_free_bytes`.
    pub data_dir: PathBuf,
    /// Client writes are refused when the data directory's disk has less free space.
    pub min_free_bytes: u64,
    /// Bytes of chunks kept in memory for reads (0: no cache).
    pub cache_bytes: u64,
}

/// When the background passes run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub gc_interval: Duration,
    pub repair_interval: Duration,
    pub scrub: ScrubConfig,
}

/// This node's part in chunk replication. Cheap to clone.
#[derive(Clone)]
pub struct Replicator {
    inner: Arc<Inner>,
}

struct Inner {
    config: ReplicationConfig,
    chunks: ChunkStore,
    state: StateMachineStore,
    peers: Peers,
    view: Box<dyn ClusterView>,
    liveness: repair::Liveness,
    /// Held chunks that some owner lacked at the last repair pass.
    under_replicated: AtomicU64,
    /// Copies this node owed at its last repair pass (`RepairReport::backlog`).
    backlog: AtomicU64,
    /// Copies per second its last repair pass sent (an `f64`'s bits).
    copy_rate: AtomicU64,
    /// Chunks read lately, in memory.
    cache: cache::ChunkCache,
}

impl Replicator {
    pub fn new(
        config: ReplicationConfig,
        chunks: ChunkStore,
        state: StateMachineStore,
        peers: Peers,
        view: Box<dyn ClusterView>,
    ) -> Self {
        Replicator {
            inner: Arc::new(Inner {
                cache: cache::ChunkCache::new(config.cache_bytes),
                config,
                chunks,
                state,
                peers,
                view,
                liveness: Default::default(),
                under_replicated: AtomicU64::new(0),
                backlog: AtomicU64::new(0),
                copy_rate: AtomicU64::new(0),
            }),
        }
    }

    /// Starts garbage collection, scrubbing and repair; each stops when `shutdown` is
    /// cancelled.
    pub fn spawn_background(
        &self,
        schedule: Schedule,
        shutdown: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(gc::run(
                self.clone(),
                schedule.gc_interval,
                shutdown.clone(),
            )),
            tokio::spawn(scrub::run(self.clone(), schedule.scrub, shutdown.clone())),
            tokio::spawn(repair::run(
                self.clone(),
                schedule.repair_interval,
                shutdown.clone(),
            )),
        ]
    }

    /// This node's own chunk store.
    pub fn local(&self) -> &ChunkStore {
        &self.inner.chunks
    }

    /// The read cache's counts and size.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Chunks with fewer reachable copies than the replication factor at the last repair pass,
    /// counted by their first holder only (`RepairReport::under_replicated`).
    pub fn under_replicated(&self) -> u64 {
        self.inner.under_replicated.load(Ordering::Relaxed)
    }

    /// Copies this node owed its chunks' owners at its last repair pass, and the copies per
    /// second that pass sent.
    pub fn repair_backlog(&self) -> (u64, f64) {
        (
            self.inner.backlog.load(Ordering::Relaxed),
            f64::from_bits(self.inner.copy_rate.load(Ordering::Relaxed)),
        )
    }

    /// Free bytes on the data dir's file system, and the reserve below which new data is
    /// refused (507).
    pub fn disk_space(&self) -> Result<(u64, u64), ChunkError> {
        let free = fs4::available_space(&self.inner.config.data_dir)
            .map_err(|e| ChunkError::Storage(e.into()))?;
        Ok((free, self.inner.config.min_free_bytes))
    }

    /// Free disk space at or above the reserve.
    pub fn disk_room(&self) -> Result<(), ChunkError> {
        let (free, _) = self.disk_space()?;
        if free < self.inner.config.min_free_bytes {
            return Err(ChunkError::InsufficientStorage(format!(
                "{free} bytes free, below the reserve of {}",
                self.inner.config.min_free_bytes
            )));
        }
        Ok(())
    }

    fn me(&self) -> NodeId {
        self.inner.config.id
    }
}

/// Wall-clock seconds: the staging clock of chunks.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hash_from_bytes(bytes: &[u8]) -> Option<Hash32> {
    Some(Hash32(bytes.try_into().ok()?))
}
