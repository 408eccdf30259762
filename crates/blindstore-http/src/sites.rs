//! Static sites: the admin routes that publish a version and switch between versions, and
//! serving — a zone's current site under `/sites/{zone}/`, at `/` for the zone's host names,
//! and a local directory (`serve --site`) at `/` for everything else. Which file, and its
//! headers, is `blindstore_web::site`'s.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::header::{HOST, LOCATION};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use blindstore_types::api::{ErrorBody, SitePublished, SiteSwitch, SiteVersionInfo, SiteVersions};
use blindstore_types::site::{SiteBlob, SiteManifest};
use blindstore_types::{Hash32, ZoneId};
use blindstore_web::site::{answer, Encoding};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Admin;
use crate::{parse_zone, ApiError, ApiJson, ApiPath, AppState};

pub(crate) fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish, versions))
        .routes(routes!(switch))
}

/// The sites under `/sites/{zone}/` (files, not API: left out of the OpenAPI document).
pub(crate) fn site_routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/sites/{zone}", get(site_root))
        .route("/sites/{zone}/", get(site_file))
        .route("/sites/{zone}/{*path}", get(site_file))
}

/// The admin console (`/admin/`), except on a zone's site host name, where `/admin/…` is the
/// site's own: an operator's token never sits in the origin of an app's pages.
pub(crate) fn console_routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/admin",
            get(|State(state): State<AppState>, request: Request| console(state, request, None)),
        )
        .route(
            "/admin/",
            get(|State(state): State<AppState>, request: Request| {
                console(state, request, Some("index.html".into()))
            }),
        )
        .route(
            "/admin/{*file}",
            get(
                |State(state): State<AppState>,
                 axum::extract::Path(file): axum::extract::Path<String>,
                 request: Request| console(state, request, Some(file)),
            ),
        )
}

/// The console's `file` (`None`: the redirect to `/admin/`), or the site's page on a site host.
async fn console(state: AppState, request: Request, file: Option<String>) -> Response {
    if let Some(host) = request_host(&state, &request) {
        match state.node.zones().zone_for_host(&host) {
            Ok(Some(_)) => return fallback(State(state), request).await,
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    match file {
        None => blindstore_web::console::redirect().await,
        Some(name) => blindstore_web::console::file(&name).await,
    }
}

/// The host name a request was for (lowercase, without port): `X-Forwarded-Host` from a
/// trusted proxy (a gateway), else `Host`.
fn request_host(state: &AppState, request: &Request) -> Option<String> {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    request
        .headers()
        .get("x-forwarded-host")
        .filter(|_| peer.is_some_and(|ip| state.trusts_forwarded_headers(ip)))
        .or_else(|| request.headers().get(HOST))
        .and_then(|v| v.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, _)| name)
                .to_ascii_lowercase()
        })
}

/// A directory served at `/` (`blindstore serve --site DIR`), live: the folder is read again
/// at each request, so an edited, added or removed file shows on the next reload, with its
/// length and an ETag from its content. Hashes are kept per file while its length and
/// modification time stay the same. A file that changes while it is read is read again.
pub struct LocalSite {
    root: PathBuf,
    csp: Option<String>,
    spa: bool,
    hashes: Mutex<HashMap<PathBuf, KnownHash>>,
}

/// A file's length and SHA-256, valid while its stamp stays the same.
type KnownHash = (FileStamp, (u64, Hash32));

/// What tells a file's content changed without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

/// The directory as one request sees it: the manifest and where each variant is on disk.
struct LocalSnapshot {
    manifest: SiteManifest,
    disk: HashMap<(String, EncodingKey), PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum EncodingKey {
    Identity,
    Gzip,
    Brotli,
}

impl From<Encoding> for EncodingKey {
    fn from(e: Encoding) -> Self {
        match e {
            Encoding::Identity => EncodingKey::Identity,
            Encoding::Gzip => EncodingKey::Gzip,
            Encoding::Brotli => EncodingKey::Brotli,
        }
    }
}

/// Why serving a local file did not answer.
enum LocalError {
    /// The file changed between the scan and the read: scan again.
    Changed,
    Api(ApiError),
}

/// How many times a request reads a file that keeps changing under it before it gives up.
const LOCAL_READ_ATTEMPTS: usize = 5;

impl LocalSite {
    /// Serves `root` with an optional CSP and SPA fallback; reads it once to refuse a
    /// directory that cannot be read (the count of files is for the start-up log).
    pub fn new(root: PathBuf, csp: Option<String>, spa: bool) -> std::io::Result<(Self, usize)> {
        let site = LocalSite {
            root,
            csp,
            spa,
            hashes: Mutex::new(HashMap::new()),
        };
        let files = site.snapshot()?.manifest.files.len();
        Ok((site, files))
    }

    /// Reads the directory: every file's path, type, length and hash.
    fn snapshot(&self) -> std::io::Result<LocalSnapshot> {
        let mut hashes = self.hashes.lock().expect("local site hashes");
        let mut seen = std::collections::HashSet::new();
        let files = blindstore_web::site::scan_dir_with(&self.root, &mut |path| {
            let meta = std::fs::metadata(path)?;
            let stamp = FileStamp {
                len: meta.len(),
                modified: meta.modified().ok(),
            };
            seen.insert(path.to_owned());
            if let Some((kept, hash)) = hashes.get(path) {
                if *kept == stamp {
                    return Ok(*hash);
                }
            }
            let hash = blindstore_web::site::hash_file(path)?;
            hashes.insert(path.to_owned(), (stamp, hash));
            Ok(hash)
        })?;
        hashes.retain(|path, _| seen.contains(path));
        drop(hashes);
        let manifest = blindstore_web::site::local_manifest(&files, self.csp.clone(), self.spa);
        let mut disk = HashMap::new();
        for f in files {
            if let Some((p, _, _)) = f.gzip {
                disk.insert((f.path.clone(), EncodingKey::Gzip), p);
            }
            if let Some((p, _, _)) = f.br {
                disk.insert((f.path.clone(), EncodingKey::Brotli), p);
            }
            disk.insert((f.path, EncodingKey::Identity), f.disk);
        }
        Ok(LocalSnapshot { manifest, disk })
    }

    /// Answers a request from the directory as it is now.
    async fn serve(
        self: Arc<Self>,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        for _ in 0..LOCAL_READ_ATTEMPTS {
            let site = self.clone();
            let snapshot = tokio::task::spawn_blocking(move || site.snapshot())
                .await
                .map_err(|e| unavailable(format!("reading the site directory: {e}")))?
                .map_err(|e| {
                    unavailable(format!(
                        "reading the site directory {}: {e}",
                        self.root.display()
                    ))
                })?;
            let result = answer(
                &snapshot.manifest,
                path,
                method,
                headers,
                |path, encoding, blob: &SiteBlob| {
                    let file = snapshot
                        .disk
                        .get(&(path.to_owned(), encoding.into()))
                        .cloned();
                    let expected = (blob.len, blob.sha256);
                    async move {
                        let file = file.ok_or(LocalError::Api(ApiError::NotFound))?;
                        let bytes = tokio::fs::read(&file).await.map_err(|e| match e.kind() {
                            std::io::ErrorKind::NotFound => LocalError::Changed,
                            _ => LocalError::Api(unavailable(format!(
                                "reading {}: {e}",
                                file.display()
                            ))),
                        })?;
                        let read = (bytes.len() as u64, Hash32::digest(&bytes));
                        if read != expected {
                            return Err(LocalError::Changed);
                        }
                        Ok(bytes)
                    }
                },
            )
            .await;
            match result {
                Ok(response) => return Ok(response),
                Err(LocalError::Api(e)) => return Err(e),
                Err(LocalError::Changed) => continue,
            }
        }
        Err(unavailable(format!(
            "{path} kept changing while it was read; try again"
        )))
    }
}

fn unavailable(message: String) -> ApiError {
    ApiError::Node(blindstore_cluster::NodeError::Unavailable(message))
}

/// Current site manifests by zone, with their version: decoded once per version.
#[derive(Default)]
pub(crate) struct SiteCache {
    manifests: Mutex<HashMap<ZoneId, (u64, Arc<SiteManifest>)>>,
}

impl SiteCache {
    fn manifest(
        &self,
        state: &AppState,
        zone: &ZoneId,
    ) -> Result<Option<Arc<SiteManifest>>, ApiError> {
        let Some(version) = state.node.sites().current_site_version(zone)? else {
            return Ok(None);
        };
        if let Some((v, m)) = self.manifests.lock().expect("site cache").get(zone) {
            if *v == version {
                return Ok(Some(m.clone()));
            }
        }
        let Some((version, manifest)) = state.node.sites().current_site(zone)? else {
            return Ok(None);
        };
        self.manifests
            .lock()
            .expect("site cache")
            .insert(zone.clone(), (version, manifest.clone()));
        Ok(Some(manifest))
    }
}

/// Publishes a site version: every chunk of every file must be stored (400 `missing_chunk`
/// otherwise, and nothing changes); the version becomes current at once.
#[utoipa::path(post, path = "/v1/admin/zones/{zone}/site", tag = "sites",
    security(("admin_token" = [])),
    request_body = blindstore_types::site::SiteManifest,
    responses((status = 201, body = SitePublished),
        (status = 400, description = "`bad_request`, or `missing_chunk` with the missing hashes", body = ErrorBody),
        (status = 413, description = "A manifest over 4 MiB encoded", body = ErrorBody)))]
async fn publish(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiJson(manifest): ApiJson<SiteManifest>,
) -> Result<(StatusCode, Json<SitePublished>), ApiError> {
    let zone = parse_zone(&zone)?;
    let version = state.node.sites().publish_site(&zone, manifest).await?;
    Ok((StatusCode::CREATED, Json(SitePublished { version })))
}

/// The zone's site versions, oldest first, and which is current.
#[utoipa::path(get, path = "/v1/admin/zones/{zone}/site", tag = "sites",
    security(("admin_token" = [])),
    responses((status = 200, body = SiteVersions)))]
async fn versions(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
) -> Result<Json<SiteVersions>, ApiError> {
    let zone = parse_zone(&zone)?;
    let (versions, current) = state.node.sites().site_versions(&zone).await?;
    let versions = versions
        .into_iter()
        .map(|(version, record)| SiteVersionInfo {
            version,
            created_at_ms: record.created_at_ms,
            files: record.manifest.files.len() as u64,
            bytes: record.manifest.files.values().map(|f| f.blob.len).sum(),
            current: Some(version) == current,
        })
        .collect();
    Ok(Json(SiteVersions { current, versions }))
}

/// Makes a site version current (a rollback, or forward again): one atomic switch.
#[utoipa::path(put, path = "/v1/admin/zones/{zone}/site/current", tag = "sites",
    security(("admin_token" = [])),
    request_body = SiteSwitch,
    responses((status = 200, body = SiteSwitch),
        (status = 400, description = "No such version", body = ErrorBody)))]
async fn switch(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiJson(body): ApiJson<SiteSwitch>,
) -> Result<Json<SiteSwitch>, ApiError> {
    let zone = parse_zone(&zone)?;
    state
        .node
        .sites()
        .set_site_version(&zone, body.version)
        .await?;
    Ok(Json(body))
}

/// A file of the zone's current site; `path` may hold `/` (and may be empty:
/// `index.html`). `Content-Type` from the extension, `ETag` (SHA-256 of the bytes sent),
/// `If-None-Match` → 304, `immutable` caching for content-hashed names only, precompressed
/// variants by `Accept-Encoding`, the site's CSP, and (for single-page apps) `index.html` for
/// HTML navigations only. Also `HEAD`. See docs/web.md.
#[utoipa::path(get, path = "/sites/{zone}/{path}", tag = "sites",
    params(("zone" = String, Path, description = "Zone id"),
        ("path" = String, Path, description = "The file's path in the site (may contain `/`)")),
    responses((status = 200, description = "The file"),
        (status = 301, description = "A directory without its trailing slash"),
        (status = 304, description = "`If-None-Match` matched"),
        (status = 404, description = "No such file, or the zone has no site (the site's `404.html` if it has one)")))]
#[allow(dead_code)]
pub(crate) fn site_file_doc() {}

/// `/sites/{zone}` without the slash: redirect, so the site's relative links work.
async fn site_root(ApiPath(zone): ApiPath<String>) -> Result<Response, ApiError> {
    let zone = parse_zone(&zone)?;
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    let location =
        HeaderValue::from_str(&format!("/sites/{zone}/")).expect("a zone id is a valid path");
    r.headers_mut().insert(LOCATION, location);
    Ok(r)
}

/// A file of the zone's current site (the path may be empty: `index.html`). Correct
/// `Content-Type`, `ETag`, conditional GET, precompressed variants, caching; see docs/web.md.
async fn site_file(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let path = parts.uri.path();
    let rest = path.strip_prefix("/sites/").unwrap_or_default();
    let (zone, file) = rest.split_once('/').unwrap_or((rest, ""));
    let zone = parse_zone(zone)?;
    serve_zone_site(
        &state,
        &zone,
        &format!("/{file}"),
        &parts.method,
        &parts.headers,
    )
    .await
}

async fn serve_zone_site(
    state: &AppState,
    zone: &ZoneId,
    path: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let Some(manifest) = state.sites.manifest(state, zone)? else {
        return Ok(plain_not_found());
    };
    let node = &state.node;
    answer(&manifest, path, method, headers, |_, _, blob: &SiteBlob| {
        let blob = blob.clone();
        async move {
            node.sites()
                .site_blob(zone, &blob)
                .await
                .map_err(ApiError::Node)
        }
    })
    .await
}

fn plain_not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Requests no route took: the site of the zone the host name belongs to, else the local
/// site, else the JSON 404 of the API.
pub(crate) async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    // `X-Forwarded-Host` is believed only from a trusted proxy (a gateway): anyone else could
    // pick which zone's site and proxy routes answer.
    let host = request_host(&state, &request);
    let (request, body) = request.into_parts();
    let path = request.uri.path().to_owned();
    let api = path.starts_with("/v1/") || path == "/v1";
    // `/proxy/{name}/...` on a zone's host name: its reverse proxy.
    if let (false, Some(host), Some(route)) = (api, &host, path.strip_prefix("/proxy/")) {
        match state.node.zones().zone_for_host(host) {
            Ok(Some(zone)) => {
                let request = Request::from_parts(request, body);
                return crate::proxy::forward(&state, &zone, route, request)
                    .await
                    .unwrap_or_else(IntoResponse::into_response);
            }
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let result = async {
        if !api {
            if let Some(host) = host {
                if let Some(zone) = state.node.zones().zone_for_host(&host)? {
                    return serve_zone_site(
                        &state,
                        &zone,
                        &path,
                        &request.method,
                        &request.headers,
                    )
                    .await
                    .map(Some);
                }
            }
            if let Some(local) = &state.local_site {
                let response = local
                    .clone()
                    .serve(&path, &request.method, &request.headers)
                    .await?;
                return Ok(Some(response));
            }
        }
        Ok::<_, ApiError>(None)
    }
    .await;
    match result {
        Ok(Some(response)) => response,
        Ok(None) => ApiError::NotFound.into_response(),
        Err(e) => e.into_response(),
    }
}
