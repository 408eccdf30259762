//! How entries look in answers, and chain ids in paths: shared by the chain routes and the
//! live ones (long polls and event streams).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_cluster::EntriesPage;
use blindstore_types::api::{Entries, Entry};
use blindstore_types::entry::EntryHeader;
use blindstore_types::{ChainId, ZoneId};

use crate::{parse_zone, ApiError};

pub(crate) fn parse_chain_path(zone: &str, chain: &str) -> Result<(ZoneId, ChainId), ApiError> {
    let zone = parse_zone(zone)?;
    let chain = ChainId::from_hex(chain).map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid chain id {chain:?}: expected 64 lowercase hex characters"
        ))
    })?;
    Ok((zone, chain))
}

/// An entry as the API shows it.
pub(crate) fn api_entry(h: EntryHeader, payload: Vec<u8>) -> Entry {
    Entry {
        index: h.index,
        prev: h.prev,
        payload_hash: h.payload_hash,
        payload: URL_SAFE_NO_PAD.encode(payload),
        chunks: h.chunks,
        signature: h.signature,
        entry_hash: h.entry_hash,
    }
}

/// A page of entries as the API shows it.
pub(crate) fn api_entries(page: EntriesPage) -> Entries {
    Entries {
        length: page.chain.length,
        head: page.chain.head,
        entries: page
            .entries
            .into_iter()
            .map(|(h, payload)| api_entry(h, payload))
            .collect(),
        next: page.next,
    }
}
