//! Bounded caches of immutable chunks: a byte-bounded LRU in memory and, optionally, a
//! byte-bounded directory on disk (oldest first out). Chunks never change, so a cached chunk is
//! never stale; the gateway checks each chunk's hash before caching it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use blindstore_types::api::CacheReport;
use blindstore_types::{Hash32, ZoneId};
use blindstore_web::requests::RequestCounts;
use bytes::Bytes;
use lru::LruCache;

pub(crate) struct ChunkCache {
    memory: Mutex<MemoryCache>,
    disk: Option<DiskCache>,
    hits: AtomicU64,
    misses: AtomicU64,
    requests: RequestCounts,
}

struct MemoryCache {
    lru: LruCache<ChunkKey, Bytes>,
    bytes: u64,
    capacity: u64,
}

struct DiskCache {
    dir: PathBuf,
    capacity: u64,
    files: Mutex<DiskFiles>,
}

/// A chunk's address in the caches.
type ChunkKey = (ZoneId, Hash32);

/// The disk cache's files in insertion order, with their sizes, and their total.
#[derive(Default)]
struct DiskFiles {
    order: VecDeque<(ChunkKey, u64)>,
    bytes: u64,
}

impl ChunkCache {
    /// A cache holding at most `memory_bytes` in memory and `disk_bytes` under `disk_dir`
    /// (which is emptied: what a previous run left there is not trusted to be complete).
    pub(crate) fn new(memory_bytes: u64, disk: Option<(PathBuf, u64)>) -> std::io::Result<Self> {
        let disk = match disk {
            Some((dir, capacity)) if capacity > 0 => {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                std::fs::create_dir_all(&dir)?;
                Some(DiskCache {
                    dir,
                    capacity,
                    files: Mutex::new(DiskFiles::default()),
                })
            }
            _ => None,
        };
        Ok(Self {
            memory: Mutex::new(MemoryCache {
                lru: LruCache::unbounded(),
                bytes: 0,
                capacity: memory_bytes,
            }),
            disk,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            requests: RequestCounts::default(),
        })
    }

    /// The chunk from memory or disk, counting the request as a hit or a miss.
    pub(crate) async fn get(&self, zone: &ZoneId, hash: &Hash32) -> Option<Bytes> {
        let key = (zone.clone(), *hash);
        let from_memory = self
            .memory
            .lock()
            .expect("cache lock")
            .lru
            .get(&key)
            .cloned();
        let found = match from_memory {
            Some(bytes) => Some(bytes),
            None => self.read_disk(&key).await,
        };
        match &found {
            Some(bytes) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("blindstore_cache_requests_total", "result" => "hit")
                    .increment(1);
                self.put_memory(key, bytes.clone());
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("blindstore_cache_requests_total", "result" => "miss")
                    .increment(1);
            }
        }
        found
    }

    /// Counts a request that a member must answer whatever the cache holds, as a miss.
    pub(crate) fn count_miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("blindstore_cache_requests_total", "result" => "miss").increment(1);
    }

    /// Counts a chunk answered (from the cache or a member) for the most-requested list: only
    /// chunks that exist, so made-up hashes cannot crowd it.
    pub(crate) fn answered(&self, zone: &ZoneId, hash: &Hash32) {
        self.requests.count(zone, hash);
    }

    /// Caches a chunk whose hash the caller has checked.
    pub(crate) async fn insert(&self, zone: &ZoneId, hash: &Hash32, bytes: Bytes) {
        let key = (zone.clone(), *hash);
        self.put_memory(key.clone(), bytes.clone());
        if let Some(disk) = &self.disk {
            if let Err(e) = disk.put(&key, &bytes).await {
                tracing::warn!(error = %e, "disk cache write failed");
            }
        }
    }

    pub(crate) fn stats(&self) -> CacheReport {
        let (memory_bytes, memory_capacity, memory_chunks) = {
            let m = self.memory.lock().expect("cache lock");
            (m.bytes, m.capacity, m.lru.len() as u64)
        };
        let (disk_bytes, disk_capacity, disk_chunks) = match &self.disk {
            Some(d) => {
                let files = d.files.lock().expect("cache lock");
                (files.bytes, d.capacity, files.order.len() as u64)
            }
            None => (0, 0, 0),
        };
        CacheReport {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            memory_bytes,
            memory_capacity,
            memory_chunks,
            disk_bytes,
            disk_capacity,
            disk_chunks,
            most_requested: self.requests.most_requested(),
        }
    }

    fn put_memory(&self, key: ChunkKey, bytes: Bytes) {
        let mut m = self.memory.lock().expect("cache lock");
        let len = bytes.len() as u64;
        if len > m.capacity {
            return;
        }
        if let Some(old) = m.lru.put(key, bytes) {
            m.bytes -= old.len() as u64;
        }
        m.bytes += len;
        while m.bytes > m.capacity {
            match m.lru.pop_lru() {
                Some((_, evicted)) => m.bytes -= evicted.len() as u64,
                None => break,
            }
        }
    }

    async fn read_disk(&self, key: &ChunkKey) -> Option<Bytes> {
        let disk = self.disk.as_ref()?;
        let bytes = tokio::fs::read(disk.path(key)).await.ok()?;
        // The disk is not trusted blindly: a damaged file is a miss.
        (Hash32::digest(&bytes) == key.1).then(|| Bytes::from(bytes))
    }
}

impl DiskCache {
    fn path(&self, (zone, hash): &ChunkKey) -> PathBuf {
        self.dir.join(format!("{zone}-{hash}"))
    }

    async fn put(&self, key: &ChunkKey, bytes: &Bytes) -> std::io::Result<()> {
        let len = bytes.len() as u64;
        if len > self.capacity {
            return Ok(());
        }
        let evict = {
            let mut files = self.files.lock().expect("cache lock");
            if files.order.iter().any(|(k, _)| k == key) {
                return Ok(());
            }
            files.order.push_back((key.clone(), len));
            files.bytes += len;
            let mut evict = Vec::new();
            while files.bytes > self.capacity {
                match files.order.pop_front() {
                    Some((k, n)) => {
                        files.bytes -= n;
                        evict.push(k);
                    }
                    None => break,
                }
            }
            evict
        };
        for k in evict {
            let _ = tokio::fs::remove_file(self.path(&k)).await;
        }
        let tmp = self.dir.join(format!(".{}-{}.tmp", key.0, key.1));
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, self.path(key)).await
    }
}
