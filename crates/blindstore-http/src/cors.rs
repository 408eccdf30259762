//! CORS for the client API (`/v1/zones/{zone}/...`), per zone: a page from an origin the
//! zone lists (or any, with `*`) may call it; preflights are answered. Admin routes, health
//! and the OpenAPI document never carry CORS headers. Built on tower-http's `CorsLayer`, with
//! the origin decided per request from the zone's settings as this node has applied them.

use std::time::Duration;

use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION,
    RETRY_AFTER,
};
use axum::http::{HeaderName, Method};
use blindstore_cluster::Node;
use blindstore_types::ZoneId;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The methods the client API uses.
pub(crate) const METHODS: [Method; 5] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
];

/// How long a browser may cache a preflight's answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// The zone a client-API path names.
fn zone_of(path: &str) -> Option<ZoneId> {
    let rest = path.strip_prefix("/v1/zones/")?;
    ZoneId::new(rest.split('/').next()?).ok()
}

/// The CORS layer for the client API routes.
pub(crate) fn layer(node: Node) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            let (Some(zone), Ok(origin)) = (zone_of(parts.uri.path()), origin.to_str()) else {
                return false;
            };
            node.zones()
                .zone_settings(&zone)
                .is_ok_and(|settings| settings.cors_allows(origin))
        }))
        .allow_methods(METHODS)
        .allow_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            IF_MATCH,
            IF_NONE_MATCH,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(crate::accounts::STEP_UP),
        ])
        .expose_headers([ETAG, RETRY_AFTER, LOCATION, CONTENT_LENGTH])
        .max_age(MAX_AGE)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_zone_comes_from_client_api_paths_only() {
        assert_eq!(
            super::zone_of("/v1/zones/budget/chains").map(|z| z.as_str().to_owned()),
            Some("budget".to_owned())
        );
        assert!(super::zone_of("/v1/admin/zones/budget").is_none());
        assert!(super::zone_of("/v1/zones/Not_A_Zone/x").is_none());
    }
}
