//! A bounded in-memory cache of chunks on every node, in front of its own store and of other
//! holders: a chunk read often is answered from memory, without a disk read, a hash check or a
//! peer hop, as shared bytes (no copy). Chunks never change, so an entry is never stale; the
//! cache holds only bytes that passed their hash check. Bounded by bytes (moka: a concurrent
//! cache weighted by size, evicting the least useful first).
//!
//! What leaves the cluster leaves the cache: a garbage-collection pass that deleted chunks
//! empties it (passes are minutes apart, and rarely delete), so a collected chunk is not served
//! from memory afterwards.

use std::sync::atomic::{AtomicU64, Ordering};

use blindstore_types::{Hash32, ZoneId};
use bytes::Bytes;

pub(crate) struct ChunkCache {
    cache: Option<moka::sync::Cache<(ZoneId, Hash32), Bytes>>,
    capacity: u64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What the cache holds and how it has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
    pub capacity: u64,
    pub chunks: u64,
}

impl ChunkCache {
    /// A cache of at most `capacity` bytes of chunks (0: none).
    pub(crate) fn new(capacity: u64) -> Self {
        let cache = (capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .weigher(|_key: &(ZoneId, Hash32), bytes: &Bytes| {
                    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
                })
                .build()
        });
        metrics::gauge!("blindstore_cache_capacity_bytes").set(capacity as f64);
        for result in ["hit", "miss"] {
            metrics::counter!("blindstore_cache_requests_total", "result" => result).increment(0);
        }
        Self {
            cache,
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The chunk, if cached; counted as a hit or a miss.
    pub(crate) fn get(&self, zone: &ZoneId, hash: &Hash32) -> Option<Bytes> {
        let cache = self.cache.as_ref()?;
        let found = cache.get(&(zone.clone(), *hash));
        let (counter, result) = match found {
            Some(_) => (&self.hits, "hit"),
            None => (&self.misses, "miss"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("blindstore_cache_requests_total", "result" => result).increment(1);
        found
    }

    /// Keeps a chunk whose hash the caller has checked.
    pub(crate) fn insert(&self, zone: &ZoneId, hash: &Hash32, bytes: Bytes) {
        if let Some(cache) = &self.cache {
            // Larger than the whole cache: it would only push everything else out.
            if bytes.len() as u64 <= self.capacity / 4 {
                cache.insert((zone.clone(), *hash), bytes);
            }
        }
    }

    /// Forgets everything (chunks were deleted from the store).
    pub(crate) fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let (bytes, chunks) = match &self.cache {
            Some(cache) => {
                cache.run_pending_tasks();
                (cache.weighted_size(), cache.entry_count())
            }
            None => (0, 0),
        };
        metrics::gauge!("blindstore_cache_bytes", "tier" => "memory").set(bytes as f64);
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes,
            capacity: self.capacity,
            chunks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_it_is_given_up_to_its_bytes_and_counts_hits_and_misses() {
        let cache = ChunkCache::new(64 * 1024);
        let zone = ZoneId::new("z").unwrap();
        let chunk = |i: u32| {
            let bytes = Bytes::from(vec![i as u8; 1024]);
            (Hash32::digest(&bytes), bytes)
        };
        let (hash, bytes) = chunk(1);
        assert_eq!(cache.get(&zone, &hash), None);
        cache.insert(&zone, &hash, bytes.clone());
        assert_eq!(cache.get(&zone, &hash), Some(bytes));
        for i in 2..200 {
            let (hash, bytes) = chunk(i);
            cache.insert(&zone, &hash, bytes);
        }
        let stats = cache.stats();
        assert!(stats.bytes <= 64 * 1024, "{stats:?}");
        assert_eq!((stats.hits, stats.misses), (1, 1));
        // Too large for it: not kept.
        let big = Bytes::from(vec![0; 32 * 1024]);
        cache.insert(&zone, &Hash32::digest(&big), big.clone());
        assert_eq!(cache.get(&zone, &Hash32::digest(&big)), None);
        cache.clear();
        assert_eq!(cache.stats().chunks, 0);
    }

    #[test]
    fn zero_bytes_is_no_cache() {
        let cache = ChunkCache::new(0);
        let zone = ZoneId::new("z").unwrap();
        let bytes = Bytes::from_static(b"x");
        cache.insert(&zone, &Hash32::digest(&bytes), bytes.clone());
        assert_eq!(cache.get(&zone, &Hash32::digest(&bytes)), None);
        assert_eq!(cache.stats().misses, 0);
    }
}
