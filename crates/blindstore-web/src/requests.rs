//! Which chunks are asked for most, on a node or a gateway: for the admin console and
//! `GET /v1/admin/chunks/most-requested`.
//!
//! Counting every chunk ever asked for would grow without bound, so at most [`KEYS`] are kept,
//! by the space-saving scheme: a chunk not kept takes the place of the least counted one and
//! starts from that one's count plus one. The most requested chunks are then kept for sure,
//! and a count is high by at most the smallest count kept (exact while fewer than [`KEYS`]
//! chunks were asked for).

use std::collections::HashMap;
use std::sync::Mutex;

use blindstore_types::api::RequestCount;
use blindstore_types::{Hash32, ZoneId};

/// Chunks whose counts are kept.
pub const KEYS: usize = 1024;
/// Length of the most-requested list.
pub const MOST_REQUESTED: usize = 20;

#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: Mutex<HashMap<(ZoneId, Hash32), u64>>,
}

impl RequestCounts {
    /// One more request for `hash` in `zone`.
    pub fn count(&self, zone: &ZoneId, hash: &Hash32) {
        let mut counts = self.counts.lock().expect("request counts lock");
        let key = (zone.clone(), *hash);
        if let Some(n) = counts.get_mut(&key) {
            *n += 1;
            return;
        }
        if counts.len() < KEYS {
            counts.insert(key, 1);
            return;
        }
        let least = counts
            .iter()
            .min_by_key(|(_, n)| **n)
            .map(|(k, n)| (k.clone(), *n));
        if let Some((least_key, least)) = least {
            counts.remove(&least_key);
            counts.insert(key, least + 1);
        }
    }

    /// The most requested chunks, most first (ties by hash).
    pub fn most_requested(&self) -> Vec<RequestCount> {
        let mut most: Vec<RequestCount> = self
            .counts
            .lock()
            .expect("request counts lock")
            .iter()
            .map(|((zone, hash), n)| RequestCount {
                zone: zone.clone(),
                hash: *hash,
                requests: *n,
            })
            .collect();
        most.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.hash.cmp(&b.hash)));
        most.truncate(MOST_REQUESTED);
        most
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> Hash32 {
        Hash32::digest(&i.to_le_bytes())
    }

    #[test]
    fn counts_are_exact_below_the_limit_and_the_most_requested_come_first() {
        let counts = RequestCounts::default();
        let zone = ZoneId::new("z").unwrap();
        for i in 0..30u64 {
            for _ in 0..=i {
                counts.count(&zone, &hash(i));
            }
        }
        let most = counts.most_requested();
        assert_eq!(most.len(), MOST_REQUESTED);
        assert_eq!(most[0].hash, hash(29));
        assert_eq!(most[0].requests, 30);
        assert_eq!(most[19].requests, 11);
    }

    #[test]
    fn a_hot_chunk_stays_counted_however_many_cold_ones_pass() {
        let counts = RequestCounts::default();
        let zone = ZoneId::new("z").unwrap();
        for round in 0..5 * KEYS as u64 {
            counts.count(&zone, &hash(u64::MAX));
            counts.count(&zone, &hash(round));
        }
        let most = counts.most_requested();
        assert_eq!(most[0].hash, hash(u64::MAX));
        assert_eq!(most[0].requests, 5 * KEYS as u64);
        assert_eq!(counts.counts.lock().unwrap().len(), KEYS);
    }
}
