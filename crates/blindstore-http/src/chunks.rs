//! Chunk routes: immutable, content-addressed blobs.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use blindstore_types::api::{ErrorBody, MissingChunksRequest, MissingChunksResponse};
use blindstore_types::{Hash32, ZoneId};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use blindstore_web::{etag_headers, if_none_match};

use crate::accounts::optional_session;
use crate::{created_or_ok, parse_zone, ApiError, ApiJson, ApiPath, AppState};

fn parse_chunk_path(zone: &str, hash: &str) -> Result<(ZoneId, Hash32), ApiError> {
    let zone = parse_zone(zone)?;
    let hash = Hash32::from_hex(hash).map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid chunk hash {hash:?}: expected 64 lowercase hex characters"
        ))
    })?;
    Ok((zone, hash))
}

/// Store a chunk. The body is the raw bytes; its SHA-256 must equal `{hash}`.
#[utoipa::path(put, path = "/v1/zones/{zone}/chunks/{hash}", tag = "chunks",
    params(("zone" = String, Path, description = "Zone id"), ("hash" = String, Path, description = "SHA-256 of the body, lowercase hex")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The chunk's bytes, at most `max_chunk_bytes` (default 4 MiB)"),
    responses(
        (status = 201, description = "Stored"),
        (status = 200, description = "Already stored"),
        (status = 400, description = "`hash_mismatch` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`invalid_session`: the zone's writes need a session (`Authorization: Bearer <session token>`)", body = ErrorBody),
        (status = 403, description = "`quota_exceeded` (the zone's or the account's)", body = ErrorBody),
        (status = 404, description = "`unknown_zone`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
    ))]
pub(crate) async fn put_chunk(
    State(state): State<AppState>,
    ApiPath((zone, hash)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (zone, hash) = parse_chunk_path(&zone, &hash)?;
    let who = optional_session(&state, &zone, &headers).await?;
    state
        .node
        .chunks()
        .authorize_write(&zone, who.as_ref())
        .await?;
    let limit = state.node.limits().max_chunk_bytes;
    let too_large = || ApiError::TooLarge(format!("chunks are limited to {limit} bytes"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    // The limit is enforced while the body streams in, whatever Content-Length claimed.
    let bytes = match Limited::new(body, limit as usize).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) if e.is::<LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::BadRequest(format!(
                "reading the body failed: {e}"
            )))
        }
    };
    let created = state
        .node
        .chunks()
        .put_chunk(&zone, hash, bytes, who.as_ref())
        .await?;
    let status = created_or_ok(created);
    Ok((status, etag_headers(&hash)).into_response())
}

/// Fetch a chunk's bytes. Supports `If-None-Match` (304).
#[utoipa::path(get, path = "/v1/zones/{zone}/chunks/{hash}", tag = "chunks",
    params(("zone" = String, Path, description = "Zone id"), ("hash" = String, Path, description = "SHA-256, lowercase hex")),
    responses(
        (status = 200, description = "The bytes, with `ETag` and immutable `Cache-Control`", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "`If-None-Match` matched"),
        (status = 404, description = "`unknown_zone` or `unknown_chunk`", body = ErrorBody),
    ))]
pub(crate) async fn get_chunk(
    State(state): State<AppState>,
    ApiPath((zone, hash)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (zone, hash) = parse_chunk_path(&zone, &hash)?;
    let security = security_headers(&state, &zone);
    if if_none_match(&headers, &hash) {
        // Existence still matters: a 304 for a chunk that is not stored would be a lie.
        state.node.chunks().chunk_len(&zone, &hash).await?;
        state.requests.count(&zone, &hash);
        return Ok((StatusCode::NOT_MODIFIED, etag_headers(&hash), security).into_response());
    }
    let bytes = state.node.chunks().get_chunk(&zone, &hash).await?;
    state.requests.count(&zone, &hash);
    let mut response = (etag_headers(&hash), security, bytes).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// Whether a chunk is stored, with its length, without the bytes.
#[utoipa::path(head, path = "/v1/zones/{zone}/chunks/{hash}", tag = "chunks",
    params(("zone" = String, Path, description = "Zone id"), ("hash" = String, Path, description = "SHA-256, lowercase hex")),
    responses(
        (status = 200, description = "Stored; `Content-Length` is its size"),
        (status = 304, description = "`If-None-Match` matched"),
        (status = 404, description = "Not stored"),
    ))]
pub(crate) async fn head_chunk(
    State(state): State<AppState>,
    ApiPath((zone, hash)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (zone, hash) = parse_chunk_path(&zone, &hash)?;
    let len = state.node.chunks().chunk_len(&zone, &hash).await?;
    let status = if if_none_match(&headers, &hash) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let security = security_headers(&state, &zone);
    let mut response = (status, etag_headers(&hash), security).into_response();
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    Ok(response)
}

/// A chunk answer's security headers: cross-origin embedding only when the zone allows
/// pages of other origins.
fn security_headers(state: &AppState, zone: &ZoneId) -> [(axum::http::HeaderName, HeaderValue); 2] {
    let cross_origin = state
        .node
        .zones()
        .zone_settings(zone)
        .is_ok_and(|s| !s.cors_origins.is_empty());
    blindstore_web::chunk_security_headers(cross_origin)
}

/// Which of these chunks the zone does not hold: how a client resumes an interrupted upload.
#[utoipa::path(post, path = "/v1/zones/{zone}/chunks/missing", tag = "chunks",
    params(("zone" = String, Path, description = "Zone id")),
    request_body = MissingChunksRequest,
    responses(
        (status = 200, description = "The hashes not stored, in request order", body = MissingChunksResponse),
        (status = 400, description = "`bad_request` (malformed hash, more than 10,000 hashes)", body = ErrorBody),
        (status = 404, description = "`unknown_zone`", body = ErrorBody),
    ))]
pub(crate) async fn missing_chunks(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiJson(req): ApiJson<MissingChunksRequest>,
) -> Result<Json<MissingChunksResponse>, ApiError> {
    let zone = parse_zone(&zone)?;
    let missing = state
        .node
        .chunks()
        .missing_chunks(&zone, &req.hashes)
        .await?;
    Ok(Json(MissingChunksResponse { missing }))
}
