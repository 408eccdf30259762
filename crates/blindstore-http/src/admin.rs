//! Admin routes, behind `Authorization: Bearer <admin token>`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use blindstore_cluster::{CredentialKind, ZoneInfo};
use blindstore_types::api::{
    CacheReport, ClusterMembers, ClusterOverview, ErrorBody, Health, InviteRequest, Invites,
    MemberOverview, MostRequested, NodeChange, RegistrationChange, Replicas, RotateCredential,
    RotateToken, RotatedCredential, RotatedToken, Zone, ZoneList, ZoneQuota, ZoneSettingsChange,
};
use blindstore_types::Hash32;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Admin;
use crate::{
    consistency, created_or_ok, parse_zone, ApiError, ApiJson, ApiPath, ApiQuery, AppState,
    ConsistencyQuery,
};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_zones))
        .routes(routes!(create_zone, get_zone, delete_zone))
        .routes(routes!(set_quota))
        .routes(routes!(set_settings))
        .routes(routes!(set_registration))
        .routes(routes!(create_invites))
        .routes(routes!(chunk_replicas))
        .routes(routes!(backup_state))
        .routes(routes!(cluster))
        .routes(routes!(cluster_overview))
        .routes(routes!(most_requested))
        .routes(routes!(cache))
        .routes(routes!(drain_node, undrain_node))
        .routes(routes!(remove_node))
        .routes(routes!(rotate_token))
        .routes(routes!(rotate_credential))
}

fn to_api(z: ZoneInfo) -> Zone {
    Zone {
        zone: z.zone,
        created_at_ms: z.created_at_ms,
        usage: z.usage,
        quota: quota_to_api(z.quota),
        settings: z.settings,
        registration: z.registration,
        accounts: z.accounts,
    }
}

fn quota_to_api(q: blindstore_types::command::Quota) -> ZoneQuota {
    ZoneQuota {
        max_chains: Some(q.max_chains),
        max_entries: Some(q.max_entries),
        max_chunk_bytes: Some(q.max_chunk_bytes),
        max_chunks: Some(q.max_chunks),
    }
}

/// Set a zone's quotas. Fields left out keep their current values. Chains and entries count
/// the whole zone; chunk bytes and chunks count what each node holds for the zone. Lowering a
/// quota below the usage refuses new data; nothing is deleted.
#[utoipa::path(put, path = "/v1/admin/zones/{zone}/quota", tag = "admin",
    params(("zone" = String, Path, description = "Zone id")),
    request_body = ZoneQuota,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The quotas now in force", body = ZoneQuota),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "`unknown_zone`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
    ))]
pub(crate) async fn set_quota(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiJson(change): ApiJson<ZoneQuota>,
) -> Result<Json<ZoneQuota>, ApiError> {
    let zone = parse_zone(&zone)?;
    state
        .node
        .zones()
        .zone(&zone, blindstore_cluster::Consistency::Linearizable)
        .await?;
    let quota = state.node.zones().set_quota(&zone, &change).await?;
    Ok(Json(quota_to_api(quota)))
}

/// Set a zone's settings: who may write (`open`, or `accounts`: creating chains and uploading
/// chunks need a session) and what each account may use. Fields left out keep their values.
#[utoipa::path(put, path = "/v1/admin/zones/{zone}/settings", tag = "admin",
    params(("zone" = String, Path, description = "Zone id")),
    request_body = ZoneSettingsChange,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The settings now in force", body = blindstore_types::account::ZoneSettings),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "`unknown_zone`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
    ))]
pub(crate) async fn set_settings(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiJson(change): ApiJson<ZoneSettingsChange>,
) -> Result<Json<blindstore_types::account::ZoneSettings>, ApiError> {
    let zone = parse_zone(&zone)?;
    Ok(Json(
        state.node.zones().set_zone_settings(&zone, &change).await?,
    ))
}

/// Set who may create accounts in a zone (`open`, `invite`, `closed`) and the caps on what its
/// accounts keep in the replicated state (accounts; envelope bytes of all accounts). Fields
/// left out keep their values. Lowering a cap below the usage refuses new accounts or
/// envelope bytes; nothing is deleted.
#[utoipa::path(put, path = "/v1/admin/zones/{zone}/registration", tag = "admin",
    params(("zone" = String, Path, description = "Zone id")),
    request_body = RegistrationChange,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The registration settings now in force", body = blindstore_types::account::RegistrationSettings),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "`unknown_zone`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
    ))]
pub(crate) async fn set_registration(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiJson(change): ApiJson<RegistrationChange>,
) -> Result<Json<blindstore_types::account::RegistrationSettings>, ApiError> {
    let zone = parse_zone(&zone)?;
    Ok(Json(
        state
            .node
            .accounts()
            .set_registration(&zone, &change)
            .await?,
    ))
}

/// Create one-time invite codes for a zone whose registration is `invite`: each creates one
/// account (`invite` in `register/finish`) until it expires. The codes are shown once.
#[utoipa::path(post, path = "/v1/admin/zones/{zone}/invites", tag = "admin",
    params(("zone" = String, Path, description = "Zone id")),
    request_body = InviteRequest,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The new codes", body = Invites),
        (status = 400, description = "`bad_request`: count 1 to 1000, ttl up to 365 days", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "`quota_exceeded`: the zone holds 100,000 unused codes", body = ErrorBody),
        (status = 404, description = "`unknown_zone`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
    ))]
pub(crate) async fn create_invites(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiJson(request): ApiJson<InviteRequest>,
) -> Result<(StatusCode, Json<Invites>), ApiError> {
    let zone = parse_zone(&zone)?;
    let ttl = std::time::Duration::from_secs(request.ttl_secs.unwrap_or(7 * 24 * 3600));
    let (codes, expires_at_ms) = state
        .node
        .accounts()
        .create_invites(&zone, request.count, ttl)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Invites {
            codes,
            expires_at_ms,
        }),
    ))
}

/// Create a zone (idempotent).
#[utoipa::path(put, path = "/v1/admin/zones/{zone}", tag = "admin",
    params(("zone" = String, Path, description = "Zone id, `[a-z0-9][a-z0-9-]{0,62}`")),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created", body = Zone),
        (status = 200, description = "Already existed", body = Zone),
        (status = 400, description = "Invalid zone id", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "No leader/quorum (`unavailable`) or outcome unknown (`outcome_unknown`)", body = ErrorBody),
    ))]
pub(crate) async fn create_zone(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
) -> Result<(StatusCode, Json<Zone>), ApiError> {
    let zone = parse_zone(&zone)?;
    let created = state.node.zones().create_zone(zone.clone()).await?;
    let info = state
        .node
        .zones()
        .zone(&zone, blindstore_cluster::Consistency::Stale)
        .await?;
    let status = created_or_ok(created);
    Ok((status, Json(to_api(info))))
}

/// Delete a zone and everything in it: chains and entries, accounts, sessions, envelopes,
/// passkeys, invites, site versions, quotas and settings. Its chunks are collected on every
/// node after the staging TTL. Needs cluster version 4.
#[utoipa::path(delete, path = "/v1/admin/zones/{zone}", tag = "admin",
    params(("zone" = String, Path, description = "Zone id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Deleted: what was removed", body = blindstore_types::command::ZoneRemoved),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such zone (`unknown_zone`)", body = ErrorBody),
        (status = 503, description = "No leader/quorum, a member on an older build, or outcome unknown", body = ErrorBody),
    ))]
pub(crate) async fn delete_zone(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
) -> Result<Json<blindstore_types::command::ZoneRemoved>, ApiError> {
    let zone = parse_zone(&zone)?;
    Ok(Json(state.node.zones().delete_zone(&zone).await?))
}

/// List zones with their usage.
#[utoipa::path(get, path = "/v1/admin/zones", tag = "admin",
    params(ConsistencyQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "All zones", body = ZoneList),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn list_zones(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ZoneList>, ApiError> {
    let zones = state.node.zones().list(consistency(q.consistency)).await?;
    Ok(Json(ZoneList {
        zones: zones.into_iter().map(to_api).collect(),
    }))
}

/// One zone with its usage: chains, entries, and the chunks and bytes this node holds for it.
#[utoipa::path(get, path = "/v1/admin/zones/{zone}", tag = "admin",
    params(("zone" = String, Path, description = "Zone id"), ConsistencyQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The zone", body = Zone),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "`unknown_zone`", body = ErrorBody),
    ))]
pub(crate) async fn get_zone(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<Zone>, ApiError> {
    let zone = parse_zone(&zone)?;
    Ok(Json(to_api(
        state
            .node
            .zones()
            .zone(&zone, consistency(q.consistency))
            .await?,
    )))
}

/// The replicated state for a backup: every zone, chain, entry header, inline payload, chunk
/// reference, account, session and site at one Raft index, after a linearizable read barrier
/// (so every write acknowledged before the request is in it), in the snapshot format
/// (docs/storage-format.md). `blindstore backup` reads it, then copies the chunks it
/// references.
#[utoipa::path(get, path = "/v1/admin/backup/state", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The state; `Blindstore-Backup-Index` and `Blindstore-Backup-Term` name the log entry it was applied up to", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "`unavailable`: no quorum confirmed the read", body = ErrorBody),
    ))]
pub(crate) async fn backup_state(
    _: Admin,
    State(state): State<AppState>,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    let (path, exported) = state.node.export_state().await?;
    let opened = tokio::fs::File::open(&path).await;
    // The open file keeps its bytes; the name goes at once, so nothing is left behind.
    let _ = tokio::fs::remove_file(&path).await;
    let file = opened.map_err(|e| {
        ApiError::Node(blindstore_cluster::NodeError::Internal(format!(
            "reading the exported state: {e}"
        )))
    })?;
    let len = file
        .metadata()
        .await
        .map_err(|e| {
            ApiError::Node(blindstore_cluster::NodeError::Internal(format!(
                "reading the exported state: {e}"
            )))
        })?
        .len();
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    axum::response::Response::builder()
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, len)
        .header("blindstore-backup-index", exported.index)
        .header("blindstore-backup-term", exported.term)
        .body(body)
        .map_err(|e| ApiError::Node(blindstore_cluster::NodeError::Internal(e.to_string())))
}

/// The node ids holding a copy of a chunk.
#[utoipa::path(get, path = "/v1/admin/zones/{zone}/chunks/{hash}/replicas", tag = "admin",
    params(("zone" = String, Path, description = "Zone id"), ("hash" = String, Path, description = "SHA-256, lowercase hex")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Holders of the chunk (asked live; unreachable nodes are left out)", body = Replicas),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "`unknown_zone`", body = ErrorBody),
    ))]
pub(crate) async fn chunk_replicas(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((zone, hash)): ApiPath<(String, String)>,
) -> Result<Json<Replicas>, ApiError> {
    let zone = parse_zone(&zone)?;
    let hash = Hash32::from_hex(&hash)
        .map_err(|_| ApiError::BadRequest(format!("invalid chunk hash {hash:?}")))?;
    state
        .node
        .zones()
        .zone(&zone, blindstore_cluster::Consistency::Stale)
        .await?;
    let node_ids = state
        .node
        .chunks()
        .replicator()
        .replicas(&zone, &hash)
        .await
        .map_err(blindstore_cluster::NodeError::from)?;
    let owners = state.node.chunks().replicator().owners(&zone, &hash);
    Ok(Json(Replicas { node_ids, owners }))
}

/// The cluster's members as this node sees them: ids, roles, addresses, the leader.
#[utoipa::path(get, path = "/v1/admin/cluster", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Members", body = ClusterMembers),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn cluster(_: Admin, State(state): State<AppState>) -> Json<ClusterMembers> {
    Json(state.node.members())
}

/// How long the overview waits for a member's health.
const OVERVIEW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// The members as this node sees them, each with its own `/v1/health` (asked over HTTP, all at
/// once, 2 s at most): what `blindstore cluster status` and the admin console show.
#[utoipa::path(get, path = "/v1/admin/cluster/overview", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Members with their health", body = ClusterOverview),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn cluster_overview(
    _: Admin,
    State(state): State<AppState>,
) -> Json<ClusterOverview> {
    let view = state.node.members();
    let asked = view.members.into_iter().map(|member| {
        let state = state.clone();
        async move {
            let (health, error) = if member.node_id == view.node_id {
                (Some(crate::own_health(&state)), None)
            } else {
                match member_health(&state.proxy_client, &member.http_addr).await {
                    Ok(health) => (Some(health), None),
                    Err(why) => (None, Some(why)),
                }
            };
            MemberOverview {
                member,
                health,
                error,
            }
        }
    });
    Json(ClusterOverview {
        answered_by: view.node_id,
        leader: view.leader,
        term: view.term,
        leader_last_log_index: view.leader_last_log_index,
        members: futures::future::join_all(asked).await,
        removed: view.removed,
    })
}

/// A member's `/v1/health`, or why it could not be had.
async fn member_health(client: &reqwest::Client, http_addr: &str) -> Result<Health, String> {
    let asked = client
        .get(format!("http://{http_addr}/v1/health"))
        .timeout(OVERVIEW_DEADLINE)
        .send()
        .await;
    let response = match asked {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Err(format!("no answer within {}s", OVERVIEW_DEADLINE.as_secs()))
        }
        Err(e) if e.is_connect() => return Err(format!("unreachable at {http_addr}")),
        Err(e) => return Err(format!("asking {http_addr}: {e}")),
    };
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    // A health answer is a few hundred bytes: a member is not let fill this node's memory.
    const MOST: usize = 64 * 1024;
    let mut response = response;
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(part)) if body.len() + part.len() <= MOST => body.extend_from_slice(&part),
            Ok(Some(_)) => return Err(format!("health from {http_addr} above {MOST} bytes")),
            Ok(None) => break,
            Err(e) => return Err(format!("reading health from {http_addr}: {e}")),
        }
    }
    serde_json::from_slice::<Health>(&body)
        .map_err(|e| format!("unreadable health from {http_addr}: {e}"))
}

/// The chunks most asked of this node since it started, most first.
#[utoipa::path(get, path = "/v1/admin/chunks/most-requested", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The most requested chunks", body = MostRequested),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn most_requested(_: Admin, State(state): State<AppState>) -> Json<MostRequested> {
    Json(MostRequested {
        most_requested: state.requests.most_requested(),
    })
}

/// This node's chunk cache: hits, misses, its size, and the most requested chunks.
#[utoipa::path(get, path = "/v1/admin/cache", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The cache", body = CacheReport),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn cache(_: Admin, State(state): State<AppState>) -> Json<CacheReport> {
    let stats = state.node.chunks().replicator().cache_stats();
    Json(CacheReport {
        hits: stats.hits,
        misses: stats.misses,
        memory_bytes: stats.bytes,
        memory_capacity: stats.capacity,
        memory_chunks: stats.chunks,
        disk_bytes: 0,
        disk_capacity: 0,
        disk_chunks: 0,
        most_requested: state.requests.most_requested(),
    })
}

/// Start draining a node: it stops owning chunks, and its chunks move to their other owners.
/// Progress: the node's `chunks_held` in `/v1/health` falls to 0.
#[utoipa::path(post, path = "/v1/admin/cluster/nodes/{node_id}/drain", tag = "admin",
    params(("node_id" = u64, Path, description = "Node id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Draining", body = NodeChange),
        (status = 400, description = "Not a member", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn drain_node(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(node_id): ApiPath<u64>,
) -> Result<Json<NodeChange>, ApiError> {
    state.node.set_draining(node_id, true).await?;
    Ok(Json(NodeChange {
        node_id,
        action: "draining".into(),
    }))
}

/// Stop draining a node: it owns chunks again.
#[utoipa::path(delete, path = "/v1/admin/cluster/nodes/{node_id}/drain", tag = "admin",
    params(("node_id" = u64, Path, description = "Node id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "No longer draining", body = NodeChange),
        (status = 400, description = "Not a member", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn undrain_node(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(node_id): ApiPath<u64>,
) -> Result<Json<NodeChange>, ApiError> {
    state.node.set_draining(node_id, false).await?;
    Ok(Json(NodeChange {
        node_id,
        action: "undrained".into(),
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RemoveQuery {
    /// Remove at once, without waiting for a drain (for a dead node); repair restores copies.
    #[serde(default)]
    force: bool,
    /// Remove even though fewer than 3 members able to vote would be left (a cluster of 2
    /// voters stops committing when either fails).
    #[serde(default)]
    below_three_voters: bool,
}

/// Remove a node from the cluster. Without `force` it must have been drained (it holds no
/// chunks). Must be sent to the leader.
#[utoipa::path(delete, path = "/v1/admin/cluster/nodes/{node_id}", tag = "admin",
    params(("node_id" = u64, Path, description = "Node id"), RemoveQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Removed", body = NodeChange),
        (status = 400, description = "Not a member, not drained, the last node, or fewer than 3 voters would be left without `below_three_voters`", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "Not the leader (the message names it), or no quorum", body = ErrorBody),
    ))]
pub(crate) async fn remove_node(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(node_id): ApiPath<u64>,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> Result<Json<NodeChange>, ApiError> {
    state
        .node
        .remove_member(node_id, q.force, q.below_three_voters)
        .await?;
    Ok(Json(NodeChange {
        node_id,
        action: "removed".into(),
    }))
}

/// Replace the cluster's admin or metrics credential with a new random token, shown once. The
/// first rotation makes the cluster's admin credential: from then on every node and gateway
/// accepts it, and no node its own `--admin-token`. Needs cluster version 3 (every member on a
/// build that has cluster credentials).
#[utoipa::path(post, path = "/v1/admin/cluster/credentials/rotate", tag = "admin",
    request_body = RotateCredential,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The new token(s)", body = RotatedCredential),
        (status = 400, description = "An unknown credential name", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "No quorum, a member on an older build, or another rotation won the race", body = ErrorBody),
    ))]
pub(crate) async fn rotate_credential(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RotateCredential>,
) -> Result<Json<RotatedCredential>, ApiError> {
    let kind = match request.credential.as_str() {
        "admin" => CredentialKind::Admin,
        "metrics" => CredentialKind::Metrics,
        other => {
            return Err(ApiError::BadRequest(format!(
                "credential must be `admin` or `metrics`, not {other:?}"
            )))
        }
    };
    let rotated = state.node.credentials().rotate(kind).await?;
    Ok(Json(RotatedCredential {
        admin_token: rotated.admin,
        metrics_token: rotated.metrics,
    }))
}

/// Replace the join token (and with it the gateway token) with a new random one. Members switch
/// within the grace; from twice the grace on the old tokens are refused, so a removed node or a
/// leaked token can no longer join or call. On a TLS cluster members authenticate each other by
/// their certificates, so a member that was down through the rotation comes back by itself.
#[utoipa::path(post, path = "/v1/admin/cluster/rotate-token", tag = "admin",
    request_body = RotateToken,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The new tokens", body = RotatedToken),
        (status = 400, description = "A grace above the limit", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "No quorum, or another rotation won the race", body = ErrorBody),
    ))]
pub(crate) async fn rotate_token(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RotateToken>,
) -> Result<Json<RotatedToken>, ApiError> {
    let grace = request.grace_seconds.map_or(
        blindstore_cluster::DEFAULT_ROTATION_GRACE,
        std::time::Duration::from_secs,
    );
    let rotated = state.node.rotate_join_token(grace).await?;
    Ok(Json(RotatedToken {
        join_token: rotated.join_token,
        gateway_token: rotated.gateway_token,
        grace_seconds: rotated.grace.as_secs(),
    }))
}
