//! The HTTP serving plumbing shared by the node's API and the gateway: the hardened hyper
//! server (timeouts, connection and request caps, load shedding), error bodies, and the
//! `ETag` helpers of immutable chunks. It knows neither Raft nor LMDB, so the gateway can use
//! it without linking either.

pub mod admin;
pub mod console;
pub mod metrics;
pub mod requests;
mod server;
pub mod site;
mod tls;

use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use blindstore_types::api::{ErrorBody, ErrorCode};
use blindstore_types::Hash32;

pub use server::{client_key, limited, serve, Secure, ServerLimits};
pub use tls::Tls;

/// What a 503 `unavailable` says: the detail (addresses, library errors) goes to the log only.
pub const UNAVAILABLE: &str =
    "the cluster cannot take this request now (no leader, no quorum or a peer unreachable); nothing was changed; retry later";
/// What a 503 `outcome_unknown` says.
pub const OUTCOME_UNKNOWN: &str =
    "the write was proposed but its outcome is unknown (leader lost or deadline passed); read to find out before retrying";

/// `Cache-Control` of content-addressed responses: chunks never change, so any cache may keep
/// them for ever.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// An error response: the code's status and the JSON error body.
pub fn error_response(code: ErrorCode, message: impl Into<String>) -> Response {
    error_response_with(ErrorBody::new(code, message.into()))
}

/// An error response with a body already built (e.g. with a conflict's length and head).
pub fn error_response_with(body: ErrorBody) -> Response {
    let status = StatusCode::from_u16(body.error.code.status())
        .expect("every error code has a valid status");
    (status, Json(body)).into_response()
}

/// `ETag` and immutable `Cache-Control` for a chunk (also used by the gateway).
pub fn etag_headers(hash: &Hash32) -> [(axum::http::HeaderName, HeaderValue); 2] {
    let etag = HeaderValue::from_str(&format!("\"{hash}\"")).expect("hex is a valid header value");
    [
        (ETAG, etag),
        (CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
    ]
}

/// What a chunk answer carries besides its ETag: no browser may run or render it as a page
/// (`Content-Security-Policy: sandbox`, and `nosniff` on every answer), and it may be
/// embedded by other origins only when its zone allows pages of other origins
/// (`Cross-Origin-Resource-Policy`).
pub fn chunk_security_headers(cross_origin: bool) -> [(axum::http::HeaderName, HeaderValue); 2] {
    [
        (
            axum::http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        ),
        (
            axum::http::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static(if cross_origin {
                "cross-origin"
            } else {
                "same-origin"
            }),
        ),
    ]
}

/// `If-None-Match: "<hash>"`, a list containing it (weak or strong), or `*`.
pub fn if_none_match(headers: &HeaderMap, hash: &Hash32) -> bool {
    let hex = hash.to_hex();
    headers.get_all(IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == hex)
        })
    })
}
