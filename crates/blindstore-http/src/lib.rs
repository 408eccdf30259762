//! HTTP API v1. The only crate that knows HTTP and JSON: it turns requests into [`Node`]
//! operations and [`NodeError`]s into responses (in `error.rs`, one place).
//!
//! Every route is registered through utoipa-axum, so the OpenAPI document served at
//! `/v1/openapi.json` is built from the same list as the router and cannot leave one out.
//!
//! Handlers in every module are alike on purpose: a route's OpenAPI description (its answers
//! and their codes), its extractors, one call on a domain of the `Node`, the answer. What they
//! share beyond that shape is in helpers (`parse_zone`, `created_or_ok`, `accounts::session`,
//! `accounts::limited_start`).

mod accounts;
mod admin;
mod chains;
mod chunks;
mod cors;
mod entry_shapes;
mod error;
mod extract;
mod live;
mod metrics;
mod passkeys;
mod proxy;
mod rate;
mod sites;

use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::{Json, Router};
use blindstore_cluster::{Consistency, Node};
use blindstore_types::api::{ErrorBody, Health};
use blindstore_types::ZoneId;
use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use live::LiveLimits;
pub use rate::AuthLimits;
pub use sites::LocalSite;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub node: Node,
    /// The admin bearer token.
    pub admin_token: Arc<str>,
    /// The build's git revision, for `/v1/health` (set by the binary; empty in tests).
    pub revision: Arc<str>,
    /// The node's name (`--name`), for `/v1/health`.
    pub name: Arc<str>,
    auth_limiter: Arc<rate::AuthLimiter>,
    live_limits: Arc<live::LiveLimits>,
    subscribers: Arc<live::Subscribers>,
    sites: Arc<sites::SiteCache>,
    local_site: Option<Arc<LocalSite>>,
    proxy_client: reqwest::Client,
    /// The chunks most asked of this node.
    requests: Arc<blindstore_web::requests::RequestCounts>,
}

impl AppState {
    pub fn new(node: Node, admin_token: &str, auth_limits: &AuthLimits) -> Self {
        Self {
            node,
            admin_token: admin_token.into(),
            revision: "".into(),
            name: "".into(),
            auth_limiter: Arc::new(rate::AuthLimiter::new(auth_limits)),
            live_limits: Arc::new(LiveLimits::default()),
            subscribers: Arc::default(),
            sites: Arc::default(),
            local_site: None,
            proxy_client: proxy::client(),
            requests: Arc::default(),
        }
    }

    /// Whether `peer` is a trusted proxy, whose `X-Forwarded-*` headers are believed.
    /// How many times live subscribers (event streams, long polls) were woken to look for new
    /// entries on this node: only appends to the chains they follow wake them.
    pub fn live_wakeups(&self) -> u64 {
        self.subscribers.wakeups()
    }

    fn trusts_forwarded_headers(&self, peer: std::net::IpAddr) -> bool {
        self.auth_limiter.trusted(&peer)
    }

    /// The same state serving `site` (a directory) at `/` for requests no route takes.
    pub fn with_local_site(mut self, site: LocalSite) -> Self {
        self.local_site = Some(Arc::new(site));
        self
    }

    /// The same state with other limits for live updates.
    pub fn with_live_limits(mut self, limits: LiveLimits) -> Self {
        self.live_limits = Arc::new(limits);
        self
    }
}

/// The complete router for `state`.
pub fn router(state: AppState) -> Router {
    blindstore_web::metrics::handle();
    let limits = state.node.limits().clone();
    // The JSON body limit follows from the entry limits: base64 payload plus hex chunk list,
    // with room for the other fields. Chunk uploads are raw bodies with their own limit.
    let json_limit = (limits.max_entry_payload_bytes as usize * 4 / 3)
        + limits.max_entry_chunks * 70
        + 64 * 1024;
    let json_limit = json_limit.max(limits.max_missing_query * 70 + 1024);
    let (client, _) = client_api().split_for_parts();
    let (service, _) = service_api().split_for_parts();
    // The 405 fallback is set before the CORS layer so that preflights (OPTIONS, which no
    // route has) reach the layer instead of the bare 405.
    client
        .merge(proxy::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors::layer(state.node.clone()))
        .merge(service.method_not_allowed_fallback(method_not_allowed))
        .merge(sites::site_routes())
        .merge(sites::console_routes())
        .fallback(sites::fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_if_removed,
        ))
        .layer(axum::middleware::from_fn(blindstore_web::metrics::track))
        .layer(DefaultBodyLimit::max(json_limit))
        .with_state(state)
}

/// A node removed from the cluster for good answers nothing but its health (which says so):
/// 503 `node_removed`, so clients go to another member and nothing is stored here. A node
/// catching up after a restart (its state may have rolled back one batch in a power loss)
/// answers 503 `unavailable` until it is current: no stale read, no check on old local state
/// (write policy, CORS, site hosts).
async fn refuse_if_removed(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Health, and the console's static files (whose calls then get the refusal and show it).
    let path = request.uri().path();
    if path == "/v1/health" || path == "/admin" || path.starts_with("/admin/") {
        return next.run(request).await;
    }
    if state.node.is_removed() {
        let id = state.node.health().node_id;
        return ApiError::Node(blindstore_cluster::NodeError::Removed(id)).into_response();
    }
    if !state.node.is_caught_up() {
        return ApiError::Node(blindstore_cluster::NodeError::Unavailable(
            "this node is catching up with the cluster after a restart; retry, or use another member".into(),
        ))
        .into_response();
    }
    next.run(request).await
}

/// The OpenAPI 3.1 document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(service_api())
        .merge(client_api())
}

/// Health, the OpenAPI document and the admin routes: never CORS.
fn service_api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(openapi_json))
        .routes(routes!(metrics::metrics))
        .merge(admin::routes())
        .merge(accounts::admin_routes())
        .merge(sites::admin_routes())
}

/// The client API under `/v1/zones/{zone}`: CORS per zone.
fn client_api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(accounts::routes())
        .merge(passkeys::routes())
        .routes(routes!(
            chunks::put_chunk,
            chunks::get_chunk,
            chunks::head_chunk
        ))
        .routes(routes!(chunks::missing_chunks))
        .routes(routes!(chains::create_chain))
        .routes(routes!(chains::get_chain))
        .routes(routes!(chains::append, chains::read_entries))
        .routes(routes!(live::chain_events))
        .routes(routes!(live::zone_events))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Blindstore API",
        version = "1",
        description = "Zero-knowledge storage for web apps: zones, immutable content-addressed chunks, and signed hash-linked chains. Errors are `{\"error\":{\"code\",\"message\"}}`."
    ),
    components(schemas(ErrorBody)),
    paths(sites::site_file_doc, proxy::proxy_doc),
    modifiers(&AdminAuth)
)]
struct ApiDoc;

struct AdminAuth;

impl utoipa::Modify for AdminAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// JSON body extractor whose rejections are API errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub T);

/// Path extractor whose rejections are API errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct ApiPath<T>(pub T);

/// Unknown routes answer the JSON error body like everything else.
async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Query extractor whose rejections are API errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

/// `?consistency=linearizable|stale` (default linearizable).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// `linearizable` (default) or `stale` (served from this node's state; may lag).
    consistency: Option<ConsistencyParam>,
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConsistencyParam {
    Linearizable,
    Stale,
}

pub(crate) fn consistency(p: Option<ConsistencyParam>) -> Consistency {
    match p {
        Some(ConsistencyParam::Stale) => Consistency::Stale,
        Some(ConsistencyParam::Linearizable) | None => Consistency::Linearizable,
    }
}

/// 201 for what a request created, 200 for what it found there already (creating a zone,
/// a chain or a chunk again is not an error).
pub(crate) fn created_or_ok(created: bool) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

pub(crate) fn parse_zone(zone: &str) -> Result<ZoneId, ApiError> {
    ZoneId::new(zone).map_err(|e| ApiError::BadRequest(format!("invalid zone id {zone:?}: {e}")))
}

/// Node id, role, leader, term and last applied index.
#[utoipa::path(get, path = "/v1/health", tag = "node",
    responses((status = 200, description = "This node's view of the cluster", body = Health)))]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(own_health(&state))
}

/// This node's health as `/v1/health` answers it.
pub(crate) fn own_health(state: &AppState) -> Health {
    Health {
        version: env!("CARGO_PKG_VERSION").into(),
        revision: state.revision.to_string(),
        name: state.name.to_string(),
        ..state.node.health()
    }
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "node",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> impl IntoResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    });
    ([(CONTENT_TYPE, "application/json")], doc.as_str())
}
