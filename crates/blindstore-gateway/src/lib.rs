//! The gateway role: a node that keeps no Raft state and no durable chunks. It serves the whole
//! HTTP API by forwarding each request to a cluster member (the leader first, then the others
//! if one cannot be reached), and answers repeated chunk reads from its caches without asking
//! the members. Members are found through any member's rpc address with the join token, and
//! looked up again every few seconds.

mod cache;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, IF_NONE_MATCH, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use blindstore_types::api::{ErrorBody, ErrorCode, Health, Member};
use blindstore_types::command::AdminCredentials;
use blindstore_types::{Hash32, ZoneId};
use blindstore_web::admin::{admits, bearer, Access};
use blindstore_web::{etag_headers, if_none_match};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use cache::ChunkCache;

/// Largest chunk read back from a member (the largest chunk allowed, plus room).
const MAX_FORWARD_BYTES: usize = 65 << 20;
/// Request bodies up to this size are held in memory, so a request can be tried on another
/// member when the first cannot be reached; larger ones (chunk uploads) stream through to one
/// member, so the gateway never holds a large body.
const RETRYABLE_BODY_BYTES: usize = 1 << 20;
/// How often the member list is refreshed.
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How long what a member said about a zone's browser access (CORS, resource policy) is used
/// for chunks answered from the cache.
const WEB_POLICY_TTL: Duration = Duration::from_secs(10);
/// A forwarded request that takes longer than this is answered 503 (streams excepted).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);
/// A stream (live events, a long poll) whose member sends nothing for this long is cut.
const STREAM_IDLE: Duration = Duration::from_secs(60);
/// The headers of a chunk answer that depend on the zone's settings and the page's origin.
const WEB_POLICY_HEADERS: [&str; 5] = [
    "access-control-allow-origin",
    "access-control-expose-headers",
    "vary",
    "cross-origin-resource-policy",
    "content-security-policy",
];

/// What a gateway needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Rpc addresses of members to ask for the membership (at least one).
    pub seeds: Vec<String>,
    /// The cluster's gateway token (a join token works too, but gives more than a gateway
    /// needs).
    pub token: String,
    pub admin_token: String,
    /// The build's git revision (`/v1/health`).
    pub revision: String,
    /// The gateway's name (`--name`; `/v1/health`).
    pub name: String,
    pub cache_memory_bytes: u64,
    /// Optional disk cache: its directory and size.
    pub cache_disk: Option<(PathBuf, u64)>,
}

/// (zone, the page's `Origin`) → when learned, and the browser-access headers a member's chunk
/// answer carried.
type WebPolicies = HashMap<(ZoneId, Option<HeaderValue>), (Instant, HeaderMap)>;

/// A running gateway.
pub struct Gateway {
    config: GatewayConfig,
    members: RwLock<Vec<Member>>,
    leader: RwLock<Option<u64>>,
    /// The cluster's admin credentials, as members last said (once rotated they replace the
    /// gateway's own admin token).
    credentials: RwLock<Option<AdminCredentials>>,
    http: reqwest::Client,
    /// gRPC channels to the members (the gateway token; TLS when the cluster uses it).
    peers: blindstore_rpc::Peers,
    cache: ChunkCache,
    web_policy: std::sync::Mutex<WebPolicies>,
    /// Cancelled when the gateway stops: relayed streams end then.
    stopping: CancellationToken,
}

impl Gateway {
    /// Finds the cluster (failing if no seed answers) and sets up the caches.
    pub async fn start(config: GatewayConfig) -> Result<Arc<Self>, String> {
        let cache = ChunkCache::new(config.cache_memory_bytes, config.cache_disk.clone())
            .map_err(|e| format!("setting up the disk cache: {e}"))?;
        // Answers pass through as members give them: a redirect is the client's to follow.
        let http = reqwest::Client::builder()
            .read_timeout(STREAM_IDLE)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let peers = blindstore_rpc::peers_for_token(&config.token, &config.seeds)
            .await
            .map_err(|e| e.to_string())?;
        let gateway = Arc::new(Self {
            config,
            members: RwLock::new(Vec::new()),
            leader: RwLock::new(None),
            credentials: RwLock::new(None),
            http,
            peers,
            cache,
            web_policy: Default::default(),
            stopping: CancellationToken::new(),
        });
        gateway.refresh().await?;
        Ok(gateway)
    }

    /// Keeps the member list fresh until `shutdown`.
    pub async fn refresh_until(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "could not refresh the member list");
            }
        }
    }

    /// Asks the known members (then the seeds) for the membership; the first answer wins.
    async fn refresh(&self) -> Result<(), String> {
        let known: Vec<String> = self.members().iter().map(|m| m.rpc_addr.clone()).collect();
        let mut last_error = String::from("no seed given");
        for addr in known.iter().chain(&self.config.seeds) {
            match blindstore_rpc::discover(addr, &self.peers).await {
                Ok(found) if !found.members.members.is_empty() => {
                    *self.leader.write().expect("lock") = found.members.leader;
                    *self.members.write().expect("lock") = found.members.members;
                    // Never back to none: a member of an older build says nothing of them.
                    if let Some(credentials) = found.credentials {
                        *self.credentials.write().expect("lock") = Some(credentials);
                    }
                    return Ok(());
                }
                Ok(_) => last_error = format!("{addr} knows no members"),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(last_error)
    }

    fn members(&self) -> Vec<Member> {
        self.members.read().expect("lock").clone()
    }

    pub fn cache_stats(&self) -> blindstore_types::api::CacheReport {
        self.cache.stats()
    }

    /// Ends the relayed streams (live events, long polls): call when the gateway stops, so
    /// that its HTTP server can drain.
    pub fn stop_streams(&self) {
        self.stopping.cancel();
    }

    /// What members last said about browser access to `zone`'s chunks from `origin`, if
    /// recent.
    fn web_policy(&self, zone: &ZoneId, origin: Option<&HeaderValue>) -> Option<HeaderMap> {
        let seen = self.web_policy.lock().expect("lock");
        seen.get(&(zone.clone(), origin.cloned()))
            .filter(|(at, _)| at.elapsed() < WEB_POLICY_TTL)
            .map(|(_, headers)| headers.clone())
    }

    fn learn_web_policy(&self, zone: &ZoneId, origin: Option<&HeaderValue>, answer: &HeaderMap) {
        let mut policy = HeaderMap::new();
        for name in WEB_POLICY_HEADERS {
            for value in answer.get_all(name) {
                policy.append(axum::http::HeaderName::from_static(name), value.clone());
            }
        }
        let mut seen = self.web_policy.lock().expect("lock");
        if seen.len() >= 10_000 {
            seen.retain(|_, (at, _)| at.elapsed() < WEB_POLICY_TTL);
            if seen.len() >= 10_000 {
                seen.clear();
            }
        }
        seen.insert((zone.clone(), origin.cloned()), (Instant::now(), policy));
    }

    /// Sends a request to the members in order (leader first) until one answers. A streamed
    /// body goes to the first member only: it cannot be sent twice.
    async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: ForwardBody,
    ) -> Response {
        let (held, mut streamed) = match body {
            ForwardBody::Held(bytes) => (Some(bytes), None),
            ForwardBody::Streamed(body) => (None, Some(body)),
        };
        for member in self.members() {
            let body = match (&held, streamed.take()) {
                (Some(bytes), _) => reqwest::Body::from(bytes.clone()),
                (None, Some(stream)) => reqwest::Body::wrap_stream(stream.into_data_stream()),
                (None, None) => break,
            };
            let url = format!("http://{}{}", member.http_addr, path_and_query);
            let mut request = self.http.request(method.clone(), &url).body(body);
            if !is_stream(path_and_query) {
                request = request.timeout(FORWARD_TIMEOUT);
            }
            for (name, value) in headers {
                // reqwest sets the length (or chunked encoding) of the body it sends.
                if name != HOST && name != CONTENT_LENGTH && !is_hop_by_hop(name.as_str()) {
                    request = request.header(name, value);
                }
            }
            match request.send().await {
                Ok(response) => return relay(response, &self.stopping),
                // Never reached the member: safe to try another.
                Err(e) if e.is_connect() => {
                    tracing::debug!(member = member.node_id, error = %e, "member unreachable; trying the next")
                }
                Err(e) => {
                    tracing::warn!(member = member.node_id, error = %e, "forwarded request failed");
                    return error(
                        ErrorCode::OutcomeUnknown,
                        "the member handling this request failed; read to find out",
                    );
                }
            }
        }
        error(ErrorCode::Unavailable, "no cluster member could be reached")
    }
}

/// A request body on its way to a member.
enum ForwardBody {
    /// Small (or none): held, so it can go to another member if the first is unreachable.
    Held(Bytes),
    /// Large: streamed through to one member.
    Streamed(Body),
}

/// The gateway's HTTP API: everything is forwarded, chunk reads go through the caches, and
/// `/v1/health`, `/v1/metrics`, `/v1/admin/cache` and `/v1/admin/chunks/most-requested` are
/// the gateway's own. The admin console's page (`/admin/`) comes from a member, which serves a
/// zone's site there instead on the site's host name; its calls then reach the gateway's own
/// routes or are forwarded.
pub fn router(gateway: Arc<Gateway>) -> Router {
    blindstore_web::metrics::handle();
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/admin/cache", get(cache_stats))
        .route("/v1/admin/chunks/most-requested", get(most_requested))
        .route("/v1/metrics", get(metrics))
        .route(
            "/v1/zones/{zone}/chunks/{hash}",
            get(get_chunk).head(head_chunk).fallback(forward),
        )
        .fallback(forward)
        .layer(axum::middleware::from_fn(blindstore_web::metrics::track))
        .with_state(gateway)
}

async fn health(State(gw): State<Arc<Gateway>>) -> Json<Health> {
    Json(Health {
        node_id: 0,
        role: "gateway".into(),
        leader: *gw.leader.read().expect("lock"),
        term: 0,
        last_applied: None,
        last_log_index: None,
        snapshot: None,
        purged: None,
        chunks_held: 0,
        under_replicated: 0,
        repair_backlog: 0,
        repair_rate: 0.0,
        removed: false,
        feature_level: 0,
        cluster_version: 0,
        cluster_id: None,
        name: gw.config.name.clone(),
        rpc_tls: false,
        version: env!("CARGO_PKG_VERSION").into(),
        revision: gw.config.revision.clone(),
    })
}

/// Whether `headers` carry a credential for `access`: the cluster's once rotated, else the
/// gateway's own admin token.
fn admitted(gw: &Gateway, headers: &HeaderMap, access: Access) -> bool {
    let credentials = gw.credentials.read().expect("lock").clone();
    let presented = bearer(headers).unwrap_or_default();
    admits(
        credentials.as_ref(),
        &gw.config.admin_token,
        presented,
        access,
    )
}

async fn cache_stats(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if !admitted(&gw, &headers, Access::Admin) {
        return error(ErrorCode::Unauthorized, "missing or invalid admin token");
    }
    Json(gw.cache_stats()).into_response()
}

/// The chunks most asked of this gateway (whether its cache or a member answered).
async fn most_requested(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if !admitted(&gw, &headers, Access::Admin) {
        return error(ErrorCode::Unauthorized, "missing or invalid admin token");
    }
    Json(blindstore_types::api::MostRequested {
        most_requested: gw.cache_stats().most_requested,
    })
    .into_response()
}

/// The gateway's Prometheus metrics (docs/operations.md), for the admin token.
async fn metrics(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if !admitted(&gw, &headers, Access::Metrics) {
        return error(ErrorCode::Unauthorized, "missing or invalid admin token");
    }
    let stats = gw.cache_stats();
    metrics::gauge!("blindstore_cache_bytes", "tier" => "memory").set(stats.memory_bytes as f64);
    metrics::gauge!("blindstore_cache_bytes", "tier" => "disk").set(stats.disk_bytes as f64);
    blindstore_web::metrics::record_process();
    blindstore_web::metrics::exposition()
}

async fn forward(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = match declared {
        Some(len) if len <= RETRYABLE_BODY_BYTES => {
            match axum::body::to_bytes(body, RETRYABLE_BODY_BYTES).await {
                Ok(bytes) => ForwardBody::Held(bytes),
                Err(_) => {
                    return error(
                        ErrorCode::BadRequest,
                        "the request body does not match its Content-Length or was not received in time",
                    )
                }
            }
        }
        _ if parts.method == Method::GET || parts.method == Method::HEAD => {
            ForwardBody::Held(Bytes::new())
        }
        _ => ForwardBody::Streamed(body),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let headers = with_forwarded_for(&parts);
    gw.forward(parts.method, path, &headers, body).await
}

/// The request's headers with the client's address appended to `X-Forwarded-For`, so members
/// that trust this gateway (`trusted_proxies`) rate-limit the client, not the gateway; and the
/// host the client asked for as `X-Forwarded-Host` (sites served by host name).
fn with_forwarded_for(parts: &axum::http::request::Parts) -> HeaderMap {
    let mut headers = parts.headers.clone();
    if let Some(host) = parts.headers.get(HOST) {
        if !headers.contains_key("x-forwarded-host") {
            headers.insert("x-forwarded-host", host.clone());
        }
    }
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
    if let Some(axum::extract::ConnectInfo(peer)) = peer {
        let name = axum::http::HeaderName::from_static("x-forwarded-for");
        let chain = match headers.get(&name).and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(value) = axum::http::HeaderValue::from_str(&chain) {
            headers.insert(name, value);
        }
    }
    headers
}

async fn get_chunk(
    State(gw): State<Arc<Gateway>>,
    Path((zone, hash)): Path<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let (Ok(zone), Ok(hash)) = (ZoneId::new(&zone), Hash32::from_hex(&hash)) else {
        // Malformed: let a member give the documented error.
        return forward(State(gw), request).await;
    };
    // The zone's browser-access headers for this origin are needed for an answer from the
    // cache; when no member told them lately, a member answers (and tells them).
    let origin = headers.get(ORIGIN);
    match gw.web_policy(&zone, origin) {
        Some(policy) => {
            if let Some(bytes) = gw.cache.get(&zone, &hash).await {
                gw.cache.answered(&zone, &hash);
                return with_policy(chunk_response(&hash, &headers, bytes, false), policy);
            }
        }
        None => gw.cache.count_miss(),
    }
    let path = request.uri().path().to_owned();
    let mut upstream_headers = headers.clone();
    upstream_headers.remove(IF_NONE_MATCH);
    let response = gw
        .forward(
            Method::GET,
            &path,
            &upstream_headers,
            ForwardBody::Held(Bytes::new()),
        )
        .await;
    if response.status() != StatusCode::OK {
        return response;
    }
    gw.learn_web_policy(&zone, origin, response.headers());
    let policy = gw.web_policy(&zone, origin).unwrap_or_default();
    let bytes = match axum::body::to_bytes(response.into_body(), MAX_FORWARD_BYTES).await {
        Ok(b) => b,
        Err(e) => return error(ErrorCode::Unavailable, &format!("reading the chunk: {e}")),
    };
    if Hash32::digest(&bytes) != hash {
        return error(
            ErrorCode::Unavailable,
            "a member sent a chunk that fails its hash",
        );
    }
    gw.cache.insert(&zone, &hash, bytes.clone()).await;
    gw.cache.answered(&zone, &hash);
    with_policy(chunk_response(&hash, &headers, bytes, false), policy)
}

async fn head_chunk(
    State(gw): State<Arc<Gateway>>,
    Path((zone, hash)): Path<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    if let (Ok(zone), Ok(hash)) = (ZoneId::new(&zone), Hash32::from_hex(&hash)) {
        if let Some(policy) = gw.web_policy(&zone, headers.get(ORIGIN)) {
            if let Some(bytes) = gw.cache.get(&zone, &hash).await {
                return with_policy(chunk_response(&hash, &headers, bytes, true), policy);
            }
        }
    }
    forward(State(gw), request).await
}

fn chunk_response(
    hash: &Hash32,
    request_headers: &HeaderMap,
    bytes: Bytes,
    head: bool,
) -> Response {
    let mut response = if if_none_match(request_headers, hash) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if head {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        r
    } else {
        (StatusCode::OK, bytes).into_response()
    };
    let h = response.headers_mut();
    for (name, value) in etag_headers(hash) {
        h.insert(name, value);
    }
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// A chunk answer with the zone's browser-access headers, as a member gave them.
fn with_policy(mut response: Response, policy: HeaderMap) -> Response {
    for (name, value) in &policy {
        response.headers_mut().append(name, value.clone());
    }
    response
}

/// Whether a request is a stream that may stay open indefinitely (live events, long polls).
fn is_stream(path_and_query: &str) -> bool {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    path.ends_with("/events") || query.split('&').any(|p| p.starts_with("wait="))
}

/// The member's answer, its body streamed through (a chunk is never held whole here); the
/// body ends when the gateway stops.
fn relay(response: reqwest::Response, stopping: &CancellationToken) -> Response {
    let status = response.status();
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers() {
        if !is_hop_by_hop(name.as_str()) && name != CONTENT_LENGTH {
            headers.append(name.clone(), value.clone());
        }
    }
    let body =
        futures::StreamExt::take_until(response.bytes_stream(), stopping.clone().cancelled_owned());
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn error(code: ErrorCode, message: &str) -> Response {
    let status = StatusCode::from_u16(code.status()).expect("every error code has a valid status");
    (status, Json(ErrorBody::new(code, message))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(forwarded: Option<&str>, peer: Option<&str>) -> axum::http::request::Parts {
        let mut builder = axum::http::Request::builder().uri("/v1/zones/demo/auth/login/start");
        if let Some(f) = forwarded {
            builder = builder.header("x-forwarded-for", f);
        }
        let (mut parts, _) = builder.body(()).unwrap().into_parts();
        if let Some(peer) = peer {
            let peer: std::net::SocketAddr = peer.parse().unwrap();
            parts.extensions.insert(axum::extract::ConnectInfo(peer));
        }
        parts
    }

    #[test]
    fn streams_are_told_apart_by_path_and_wait() {
        assert!(is_stream("/v1/zones/demo/chains/ab/events"));
        assert!(is_stream("/v1/zones/demo/events?chains=ab"));
        assert!(is_stream("/v1/zones/demo/chains/ab/entries?from=3&wait=30"));
        assert!(!is_stream("/v1/zones/demo/chains/ab/entries?from=3"));
        assert!(!is_stream("/v1/zones/demo/chunks/events-are-not-here"));
    }

    #[test]
    fn the_client_address_is_appended_to_x_forwarded_for() {
        let h = with_forwarded_for(&parts(None, Some("198.51.100.7:5000")));
        assert_eq!(h["x-forwarded-for"], "198.51.100.7");
        let h = with_forwarded_for(&parts(Some("203.0.113.1"), Some("198.51.100.7:5000")));
        assert_eq!(h["x-forwarded-for"], "203.0.113.1, 198.51.100.7");
        let h = with_forwarded_for(&parts(Some("203.0.113.1"), None));
        assert_eq!(h["x-forwarded-for"], "203.0.113.1");
    }
}
