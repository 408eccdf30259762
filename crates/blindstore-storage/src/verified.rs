//! The entries this node verified when their appends arrived, so applying them here does not
//! verify their signatures again.

use std::sync::Mutex;

use blindstore_types::entry::EntryHeader;
use blindstore_types::record::encode;
use blindstore_types::{ChainId, Hash32, ZoneId};

use crate::zone_key;

/// Entries whose signatures this node verified when the append arrived, so applying the entry
/// here does not verify it again. Bounded: an entry that fell out is verified again.
pub(crate) struct Verified(Mutex<lru::LruCache<Hash32, ()>>);

impl Verified {
    const CAPACITY: usize = 1 << 16;

    pub(crate) fn new() -> Self {
        Self(Mutex::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(Self::CAPACITY).expect("not zero"),
        )))
    }

    /// What identifies a verified entry: the zone, the chain and every field of the header,
    /// so a command that only claims a verified entry hash is verified again.
    fn key(zone: &ZoneId, chain_id: &ChainId, header: &EntryHeader) -> Hash32 {
        let mut bytes = zone_key(zone, chain_id);
        bytes.extend_from_slice(&encode(header));
        Hash32::digest(&bytes)
    }

    pub(crate) fn insert(&self, zone: &ZoneId, chain_id: &ChainId, header: &EntryHeader) {
        let key = Self::key(zone, chain_id, header);
        self.0.lock().expect("never poisoned").put(key, ());
    }

    /// Whether this exact entry was verified here, forgetting it.
    pub(crate) fn take(&self, zone: &ZoneId, chain_id: &ChainId, header: &EntryHeader) -> bool {
        let key = Self::key(zone, chain_id, header);
        self.0.lock().expect("never poisoned").pop(&key).is_some()
    }
}
