//! How entries look in answers, and chain ids in paths: shared by the chain routes and the
//! live ones (long polls and event streams).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_cluster::EntriesPage;
use blindstore_types::api::{Entries, Entry};
use blindstore_types::entries_binary;
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

/// The form of an entries answer: JSON unless the client's `Accept` names the binary form
/// (`blindstore_types::entries_binary`). Live event streams are always JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntriesForm {
    Json,
    Binary,
}

impl EntriesForm {
    pub(crate) fn of(headers: &axum::http::HeaderMap) -> Self {
        let binary = headers
            .get_all(axum::http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                let media = item.split(';').next().unwrap_or_default().trim();
                media.eq_ignore_ascii_case(entries_binary::CONTENT_TYPE)
            });
        if binary {
            Self::Binary
        } else {
            Self::Json
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Binary => entries_binary::CONTENT_TYPE,
        }
    }

    pub(crate) fn body(self, page: EntriesPage) -> Vec<u8> {
        match self {
            Self::Json => serde_json::to_vec(&api_entries(page)).expect("entries serialise"),
            Self::Binary => entries_binary::encode(
                page.chain.length,
                &page.chain.head,
                page.next,
                &page.entries,
            ),
        }
    }

    /// The whole answer, with `Vary: Accept` (the same URL has two forms).
    pub(crate) fn response(self, page: EntriesPage) -> axum::response::Response {
        let mut response = axum::response::Response::new(self.body(page).into());
        self.set_headers(response.headers_mut());
        response
    }

    pub(crate) fn set_headers(self, headers: &mut axum::http::HeaderMap) {
        use axum::http::{header, HeaderValue};
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        headers.insert(header::VARY, HeaderValue::from_static("accept"));
    }
}
