//! Chain routes: create, read the head, append signed entries, read entries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_cluster::{AppendInput, ReadEntries};
use blindstore_types::api::{
    AppendRequest, AppendResponse, Chain, CreateChainRequest, Entries, ErrorBody,
};
use blindstore_types::command::ChainHead;
use blindstore_types::entry::chain_id;
use serde::Deserialize;

use crate::entry_shapes::{parse_chain_path, EntriesForm};
use crate::rate::ClientIp;
use crate::{
    consistency, created_or_ok, parse_zone, ApiError, ApiJson, ApiPath, ApiQuery, AppState,
    ConsistencyParam, ConsistencyQuery,
};

/// Entries returned when the request gives no `limit`.
const DEFAULT_READ_LIMIT: usize = 100;

fn to_api(head: ChainHead) -> Chain {
    Chain {
        chain_id: chain_id(&head.public_key),
        public_key: head.public_key,
        length: head.length,
        head: head.head,
    }
}

/// Create a chain owned by an Ed25519 public key. The chain id is
/// `SHA-256("blindstore/chain/v1\0" || public_key)`.
#[utoipa::path(post, path = "/v1/zones/{zone}/chains", tag = "chains",
    params(("zone" = String, Path, description = "Zone id")),
    request_body = CreateChainRequest,
    responses(
        (status = 201, description = "Created", body = Chain),
        (status = 200, description = "Already existed", body = Chain),
        (status = 400, description = "`bad_request` or `bad_public_key`", body = ErrorBody),
        (status = 401, description = "`invalid_session`: the zone's writes need a session (`Authorization: Bearer <session token>`)", body = ErrorBody),
        (status = 403, description = "`quota_exceeded` (the zone's or the account's)", body = ErrorBody),
        (status = 404, description = "`unknown_zone`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
    ))]
pub(crate) async fn create_chain(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<CreateChainRequest>,
) -> Result<(StatusCode, Json<Chain>), ApiError> {
    let zone = parse_zone(&zone)?;
    let who = crate::accounts::optional_session(&state, &zone, &headers).await?;
    let (created, head) = state
        .node
        .chains()
        .create_chain(&zone, req.public_key, who.as_ref())
        .await?;
    let status = created_or_ok(created);
    Ok((status, Json(to_api(head))))
}

/// A chain's key, length and head.
#[utoipa::path(get, path = "/v1/zones/{zone}/chains/{chain_id}", tag = "chains",
    params(("zone" = String, Path, description = "Zone id"), ("chain_id" = String, Path, description = "Chain id, lowercase hex"), ConsistencyQuery),
    responses(
        (status = 200, description = "The chain", body = Chain),
        (status = 404, description = "`unknown_zone` or `unknown_chain`", body = ErrorBody),
    ))]
pub(crate) async fn get_chain(
    State(state): State<AppState>,
    ApiPath((zone, chain)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<Chain>, ApiError> {
    let (zone, chain) = parse_chain_path(&zone, &chain)?;
    let head = state
        .node
        .chains()
        .chain(&zone, &chain, consistency(q.consistency))
        .await?;
    Ok(Json(to_api(head)))
}

/// Append a signed entry (docs/entry-format.md). Succeeds only if `index` is the chain's length and
/// `prev` its head; otherwise 409 with the current `length` and `head`.
#[utoipa::path(post, path = "/v1/zones/{zone}/chains/{chain_id}/entries", tag = "chains",
    params(("zone" = String, Path, description = "Zone id"), ("chain_id" = String, Path, description = "Chain id, lowercase hex")),
    request_body = AppendRequest,
    responses(
        (status = 201, description = "Appended", body = AppendResponse),
        (status = 400, description = "`bad_request`, `bad_signature` or `missing_chunk`", body = ErrorBody),
        (status = 404, description = "`unknown_zone` or `unknown_chain`", body = ErrorBody),
        (status = 409, description = "`index_conflict`, with the chain's `length` and `head`", body = ErrorBody),
        (status = 413, description = "`payload_too_large` (payload above `max_entry_payload_bytes`, default 64 KiB)", body = ErrorBody),
        (status = 503, description = "`unavailable` (certainly not appended) or `outcome_unknown` (read to find out)", body = ErrorBody),
    ))]
pub(crate) async fn append(
    State(state): State<AppState>,
    ApiPath((zone, chain)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<AppendRequest>,
) -> Result<(StatusCode, Json<AppendResponse>), ApiError> {
    let (zone, chain) = parse_chain_path(&zone, &chain)?;
    let limit = state.node.limits().max_entry_payload_bytes;
    if req.payload.len() as u64 > limit.div_ceil(3) * 4 {
        return Err(ApiError::TooLarge(format!(
            "entry payloads are limited to {limit} bytes"
        )));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(&req.payload)
        .map_err(|_| ApiError::BadRequest("payload is not base64url without padding".into()))?;
    let input = AppendInput {
        index: req.index,
        prev: req.prev,
        payload,
        chunks: req.chunks,
        signature: req.signature,
    };
    let (index, entry_hash, length) = state.node.chains().append(&zone, &chain, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(AppendResponse {
            index,
            entry_hash,
            length,
        }),
    ))
}

/// `?from=N&limit=K`, or `?last=K`, plus `consistency`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EntriesQuery {
    /// First index to return (default 0). Not with `last`.
    from: Option<u64>,
    /// How many entries from `from` (default 100, capped at 1000).
    limit: Option<usize>,
    /// Return the last K entries instead (capped at 1000).
    last: Option<usize>,
    /// `linearizable` (default) or `stale`.
    consistency: Option<ConsistencyParam>,
    /// Long poll (with `from`): when entry `from` does not exist yet, wait up to this many
    /// seconds (`30` or `30s`; at most 30) for it, then answer what there is (possibly no
    /// entries).
    wait: Option<String>,
}

/// Read entries with their payloads. At most 1000 entries and about 8 MiB of payload per
/// answer; `next` is set when more entries follow the returned ones. JSON, or the compact
/// binary form (docs/entry-format.md) when `Accept` names `application/vnd.blindstore.entries`.
#[utoipa::path(get, path = "/v1/zones/{zone}/chains/{chain_id}/entries", tag = "chains",
    params(("zone" = String, Path, description = "Zone id"), ("chain_id" = String, Path, description = "Chain id, lowercase hex"), EntriesQuery),
    responses(
        (status = 200, description = "Entries in index order", body = Entries),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 404, description = "`unknown_zone` or `unknown_chain`", body = ErrorBody),
    ))]
pub(crate) async fn read_entries(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath((zone, chain)): ApiPath<(String, String)>,
    headers: axum::http::HeaderMap,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Response, ApiError> {
    let (zone, chain) = parse_chain_path(&zone, &chain)?;
    let form = EntriesForm::of(&headers);
    let which = match (q.from, q.limit, q.last) {
        (None, None, Some(last)) if last > 0 => ReadEntries::Last(last),
        (_, _, Some(0)) => return Err(ApiError::BadRequest("last must be at least 1".into())),
        (_, _, Some(_)) => {
            return Err(ApiError::BadRequest(
                "last cannot be combined with from or limit".into(),
            ))
        }
        (_, Some(0), None) => return Err(ApiError::BadRequest("limit must be at least 1".into())),
        (from, limit, None) => ReadEntries::From {
            from: from.unwrap_or(0),
            limit: limit.unwrap_or(DEFAULT_READ_LIMIT),
        },
    };
    if let Some(wait) = &q.wait {
        let ReadEntries::From { from, limit } = which else {
            return Err(ApiError::BadRequest("wait goes with from, not last".into()));
        };
        let wait = crate::live::parse_wait(wait)?;
        return crate::live::long_poll(&state, ip, zone, chain, (from, limit), wait, form).await;
    }
    let page = state
        .node
        .chains()
        .entries(&zone, &chain, which, consistency(q.consistency))
        .await?;
    Ok(form.response(page))
}
