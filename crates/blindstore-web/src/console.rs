//! The admin console: a static page of the node's own, served at `/admin/` by every node (and
//! through every gateway, which forwards it). Its sources are TypeScript in `console/`; their build (`console/dist/`, committed)
//! is embedded in release builds. Debug builds read `console/dist/` from disk on each request
//! (rust-embed's behaviour), so a rebuilt page shows on reload while it is worked on.
//!
//! The page talks only to the origin that served it, with the credential the operator types
//! in (kept in `sessionStorage`), so its policy is strict: nothing inline, nothing from
//! elsewhere, never framed.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "console/dist/"]
struct Files;

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// `/admin` → `/admin/`.
pub async fn redirect() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(LOCATION, HeaderValue::from_static("/admin/"))],
    )
        .into_response()
}

/// The console's file `name` (`index.html` for `/admin/`), or 404.
pub async fn file(name: &str) -> Response {
    let headers = |content_type: HeaderValue| -> [(HeaderName, HeaderValue); 5] {
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            // The page changes with the build: always asked again (it is small).
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ]
    };
    match Files::get(name) {
        Some(embedded) => {
            let mime = embedded.metadata.mimetype();
            let mime = if mime.starts_with("text/") || mime.ends_with("javascript") {
                format!("{mime}; charset=utf-8")
            } else {
                mime.to_owned()
            };
            let content_type = HeaderValue::from_str(&mime)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            (headers(content_type), embedded.data.into_owned()).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            headers(HeaderValue::from_static("text/plain; charset=utf-8")),
            "not a file of the admin console\n",
        )
            .into_response(),
    }
}
