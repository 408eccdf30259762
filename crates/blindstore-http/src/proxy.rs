//! The reverse proxy: a zone's routes to other services. `/v1/zones/{zone}/proxy/{name}/rest`
//! (and `/proxy/{name}/rest` on the zone's site host names) goes to the route's upstream URL
//! with `/rest` and the query appended. reqwest is the client: a connect deadline, the route's
//! total deadline, bounded bodies both ways, no redirects followed (they are passed back).
//!
//! Upstream content never runs as this origin: every proxied answer carries
//! `Content-Security-Policy: sandbox` (HTML from upstream gets an opaque origin: no access to
//! the app's storage, cookies or service workers) and `X-Content-Type-Options: nosniff`, and
//! the headers by which an answer acts on the whole origin — `Set-Cookie`, `Clear-Site-Data`,
//! `Service-Worker-Allowed`, `Refresh` — are dropped.
//!
//! Paths: a segment with `;` (a path parameter some servers read as `..;`), a backslash, or a
//! percent-escape of `.`, `/`, `\`, `;`, `%` or a control character is refused with 400 and
//! never reaches the upstream, so no decoding along the way can climb out of the route's base.
//!
//! Headers: hop-by-hop headers go neither way; the client's `Authorization` (its Blindstore
//! session) and `Cookie` never go to the upstream; `X-Forwarded-For`, `-Host` and `-Proto` are
//! set.
//! Failures are the API's JSON errors: 502 `bad_gateway` (unreachable, a broken answer, an
//! answer too large), 504 `gateway_timeout`, 413 for a request body too large.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use blindstore_types::account::ProxyRoute;
use blindstore_types::ZoneId;
use futures::StreamExt;

use crate::{ApiError, AppState};

/// Largest request body sent to an upstream.
pub const MAX_PROXY_REQUEST_BYTES: usize = 10 << 20;
/// Largest upstream answer relayed.
pub const MAX_PROXY_RESPONSE_BYTES: usize = 10 << 20;
/// How long connecting to an upstream may take.
pub const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The client that talks to upstreams.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(PROXY_CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("a plain HTTP client builds")
}

/// Headers that describe one connection, not the message: never relayed.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Headers of an upstream's answer that stay there: they would act on this origin as a
/// whole (its cookies, its stored data, its service workers, a navigation away).
fn kept_from_client(name: &HeaderName) -> bool {
    hop_by_hop(name)
        || matches!(
            name.as_str(),
            "set-cookie"
                | "set-cookie2"
                | "clear-site-data"
                | "service-worker-allowed"
                | "refresh"
                | "content-length"
        )
}

/// Headers of the client's request that stay here.
fn kept_from_upstream(name: &HeaderName) -> bool {
    hop_by_hop(name)
        || matches!(
            name.as_str(),
            "host" | "authorization" | "cookie" | "content-length" | "origin"
        )
        || name.as_str().starts_with("x-forwarded-")
}

/// `/v1/zones/{zone}/proxy/{name}[/{*rest}]`, any method (not in the OpenAPI document: what
/// it answers is the upstream's).
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::any;
    axum::Router::new()
        .route("/v1/zones/{zone}/proxy/{name}", any(handler))
        .route("/v1/zones/{zone}/proxy/{name}/{*rest}", any(handler))
}

/// The zone's reverse-proxy route `name`: the request (any method; documented here as GET)
/// goes to the route's upstream with `path` and the query appended, and its answer comes
/// back. `Authorization`, `Cookie` and `Set-Cookie` stay here; see docs/web.md.
#[utoipa::path(get, path = "/v1/zones/{zone}/proxy/{name}/{path}", tag = "proxy",
    params(("zone" = String, Path, description = "Zone id"),
        ("name" = String, Path, description = "The route's name"),
        ("path" = String, Path, description = "The rest of the path (may contain `/`)")),
    responses((status = 200, description = "The upstream's answer, whatever its status"),
        (status = 400, description = "A path with `.` or `..` segments", body = blindstore_types::api::ErrorBody),
        (status = 404, description = "`unknown_proxy`: the zone has no such route", body = blindstore_types::api::ErrorBody),
        (status = 413, description = "A request body over 10 MiB", body = blindstore_types::api::ErrorBody),
        (status = 502, description = "`bad_gateway`: the upstream is unreachable, broke off or answered over 10 MiB", body = blindstore_types::api::ErrorBody),
        (status = 504, description = "`gateway_timeout`", body = blindstore_types::api::ErrorBody)))]
#[allow(dead_code)]
pub(crate) fn proxy_doc() {}

async fn handler(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_owned();
    let rest = path.strip_prefix("/v1/zones/").unwrap_or_default();
    let (zone, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let zone = crate::parse_zone(zone)?;
    let rest = rest.strip_prefix("proxy/").unwrap_or_default();
    forward(&state, &zone, rest, request).await
}

/// Forwards `request` to `zone`'s route: `path` is `{name}[/rest]` (percent-encoded as
/// received).
pub(crate) async fn forward(
    state: &AppState,
    zone: &ZoneId,
    path: &str,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (name, rest) = match path.find('/') {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    };
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
            c.0.ip().to_canonical()
        });
    let secure = request
        .extensions()
        .get::<blindstore_web::Secure>()
        .is_some_and(|s| s.0);
    let (parts, body) = request.into_parts();
    let call = Call {
        name,
        rest,
        query: parts.uri.query(),
        method: parts.method.clone(),
        headers: &parts.headers,
        client_ip: peer,
        secure,
    };
    exchange(state, zone, call, body).await
}

/// A request on its way to an upstream.
struct Call<'a> {
    name: &'a str,
    rest: &'a str,
    query: Option<&'a str>,
    method: Method,
    headers: &'a HeaderMap,
    client_ip: IpAddr,
    /// Whether the client used TLS (`X-Forwarded-Proto`).
    secure: bool,
}

async fn exchange(
    state: &AppState,
    zone: &ZoneId,
    call: Call<'_>,
    body: Body,
) -> Result<Response, ApiError> {
    let Call {
        name,
        rest,
        query,
        method,
        headers,
        client_ip,
        secure,
    } = call;
    let settings = state.node.zones().zone_settings(zone)?;
    let Some(route) = settings.proxies.iter().find(|r| r.name == name) else {
        return Err(ApiError::UnknownProxy(name.to_owned()));
    };
    let url = upstream_url(route, rest, query)?;
    let body = axum::body::to_bytes(body, MAX_PROXY_REQUEST_BYTES)
        .await
        .map_err(|_| {
            ApiError::TooLarge(format!(
                "a proxied request body is at most {MAX_PROXY_REQUEST_BYTES} bytes"
            ))
        })?;
    let mut request = state
        .proxy_client
        .request(method, &url)
        .timeout(Duration::from_millis(route.timeout_ms))
        .body(body);
    for (name, value) in headers {
        if !kept_from_upstream(name) {
            request = request.header(name, value);
        }
    }
    let forwarded_for = match headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .filter(|_| state.trusts_forwarded_headers(client_ip))
    {
        Some(earlier) => format!("{earlier}, {client_ip}"),
        None => client_ip.to_string(),
    };
    request = request.header("x-forwarded-for", forwarded_for);
    if let Some(host) = headers.get("host") {
        request = request.header("x-forwarded-host", host);
    }
    request = request.header("x-forwarded-proto", if secure { "https" } else { "http" });

    let response = request
        .send()
        .await
        .map_err(|e| upstream_error(route, &e))?;
    let status = response.status();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_PROXY_RESPONSE_BYTES as u64)
    {
        return Err(too_large_answer(route));
    }
    let mut out_headers = HeaderMap::new();
    for (name, value) in response.headers() {
        if !kept_from_client(name) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    // Ours, besides any the upstream sent (a browser enforces every policy it is given).
    out_headers.append(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static("sandbox"),
    );
    out_headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    let mut stream = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| upstream_error(route, &e))?;
        if bytes.len() + piece.len() > MAX_PROXY_RESPONSE_BYTES {
            return Err(too_large_answer(route));
        }
        bytes.extend_from_slice(&piece);
    }
    let mut out = (
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
        bytes,
    )
        .into_response();
    out.headers_mut().extend(out_headers);
    Ok(out)
}

/// The upstream URL: the route's base, the rest of the path (which must stay below it) and
/// the query.
fn upstream_url(route: &ProxyRoute, rest: &str, query: Option<&str>) -> Result<String, ApiError> {
    if let Some(why) = unsafe_path(rest) {
        return Err(ApiError::BadRequest(format!(
            "a proxied path may not contain {why}"
        )));
    }
    let mut url = route.upstream.trim_end_matches('/').to_owned();
    url.push_str(rest);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

/// Why a proxied path (as received, percent-encoded) could climb out of the route's base on
/// some server along the way, if it could.
fn unsafe_path(raw: &str) -> Option<&'static str> {
    if raw.contains(';') {
        return Some("`;` (path parameters)");
    }
    if raw.contains('\\') {
        return Some("a backslash");
    }
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
            return Some("a `%` that is not a percent-escape");
        };
        if matches!(byte, b'.' | b'/' | b'\\' | b';' | b'%') || byte.is_ascii_control() {
            return Some("an encoded `.`, `/`, `\\`, `;`, `%` or control character");
        }
    }
    if raw
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Some("`.` or `..` segments");
    }
    None
}

fn upstream_error(route: &ProxyRoute, e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::Upstream {
            timeout: true,
            message: format!(
                "proxy {}: the upstream did not answer within {} ms",
                route.name, route.timeout_ms
            ),
        }
    } else {
        tracing::info!(route = %route.name, error = %e, "proxied request failed");
        let what = if e.is_connect() {
            "could not be reached"
        } else {
            "failed while answering"
        };
        ApiError::Upstream {
            timeout: false,
            message: format!("proxy {}: the upstream {what}", route.name),
        }
    }
}

fn too_large_answer(route: &ProxyRoute) -> ApiError {
    ApiError::Upstream {
        timeout: false,
        message: format!(
            "proxy {}: the upstream's answer is over {MAX_PROXY_RESPONSE_BYTES} bytes",
            route.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_stay_below_the_route() {
        let route = ProxyRoute {
            name: "weather".into(),
            upstream: "https://api.example.com/v2/".into(),
            timeout_ms: 1000,
        };
        assert_eq!(
            upstream_url(&route, "/today", Some("city=Oslo")).unwrap(),
            "https://api.example.com/v2/today?city=Oslo"
        );
        assert_eq!(
            upstream_url(&route, "", None).unwrap(),
            "https://api.example.com/v2"
        );
        for bad in [
            "/../admin",
            "/./admin",
            "/a/%2e%2e/b",
            "/a/%2E%2E/b",
            "/a/.%2e/b",
            "/a\\b",
            "/a%5cb",
            "/a%5Cb",
            "/a%2fb",
            "/a%2F..",
            "/rates/..;/..;/admin",
            "/a;x=1",
            "/a%3bb",
            "/a%252e%252e/b",
            "/a%00b",
            "/a%",
            "/a%zz",
        ] {
            assert!(upstream_url(&route, bad, None).is_err(), "{bad}");
        }
        for good in ["/a%20b", "/caf%C3%A9", "/a.b/c..d", "/v1/x-y_z~"] {
            assert!(upstream_url(&route, good, None).is_ok(), "{good}");
        }
    }

    #[test]
    fn credentials_and_connection_headers_stay_here() {
        for name in [
            "authorization",
            "cookie",
            "connection",
            "host",
            "x-forwarded-for",
            "te",
        ] {
            assert!(kept_from_upstream(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["accept", "content-type", "if-none-match", "user-agent"] {
            assert!(
                !kept_from_upstream(&HeaderName::from_static(name)),
                "{name}"
            );
        }
    }
}
