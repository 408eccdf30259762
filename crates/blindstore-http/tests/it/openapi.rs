//! The OpenAPI document must describe every route the router serves.

use axum::http::{Method, StatusCode};
use blindstore_cluster::Limits;

use crate::support::start;

/// Every route of API v1. Adding a route means adding it here; the test then fails until the
/// route is both served and documented.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/metrics"),
    ("get", "/v1/admin/cluster/overview"),
    ("get", "/v1/admin/chunks/most-requested"),
    ("get", "/v1/admin/cache"),
    ("put", "/v1/admin/zones/{zone}"),
    ("get", "/v1/admin/zones"),
    ("get", "/v1/admin/zones/{zone}"),
    ("put", "/v1/admin/zones/{zone}/quota"),
    ("put", "/v1/admin/zones/{zone}/settings"),
    ("get", "/v1/admin/zones/{zone}/chunks/{hash}/replicas"),
    ("get", "/v1/admin/backup/state"),
    ("get", "/v1/admin/cluster"),
    ("post", "/v1/admin/cluster/nodes/{node_id}/drain"),
    ("delete", "/v1/admin/cluster/nodes/{node_id}/drain"),
    ("delete", "/v1/admin/cluster/nodes/{node_id}"),
    ("post", "/v1/admin/cluster/rotate-token"),
    ("post", "/v1/admin/cluster/credentials/rotate"),
    ("delete", "/v1/admin/zones/{zone}"),
    ("put", "/v1/zones/{zone}/chunks/{hash}"),
    ("get", "/v1/zones/{zone}/chunks/{hash}"),
    ("head", "/v1/zones/{zone}/chunks/{hash}"),
    ("post", "/v1/zones/{zone}/chunks/missing"),
    ("post", "/v1/zones/{zone}/chains"),
    ("get", "/v1/zones/{zone}/chains/{chain_id}"),
    ("post", "/v1/zones/{zone}/chains/{chain_id}/entries"),
    ("get", "/v1/zones/{zone}/chains/{chain_id}/entries"),
    ("post", "/v1/zones/{zone}/auth/register/start"),
    ("post", "/v1/zones/{zone}/auth/register/finish"),
    ("post", "/v1/zones/{zone}/auth/login/start"),
    ("post", "/v1/zones/{zone}/auth/login/finish"),
    ("post", "/v1/zones/{zone}/auth/logout"),
    ("post", "/v1/zones/{zone}/auth/logout-all"),
    ("get", "/v1/zones/{zone}/auth/sessions"),
    ("delete", "/v1/zones/{zone}/auth/sessions/{id}"),
    ("get", "/v1/zones/{zone}/auth/envelopes"),
    ("get", "/v1/zones/{zone}/auth/envelopes/{name}"),
    ("put", "/v1/zones/{zone}/auth/envelopes/{name}"),
    ("delete", "/v1/zones/{zone}/auth/envelopes/{name}"),
    ("get", "/v1/zones/{zone}/chains/{chain_id}/events"),
    ("get", "/v1/zones/{zone}/events"),
    ("post", "/v1/admin/zones/{zone}/site"),
    ("get", "/v1/admin/zones/{zone}/site"),
    ("put", "/v1/admin/zones/{zone}/site/current"),
    ("get", "/sites/{zone}/{path}"),
    ("get", "/v1/zones/{zone}/proxy/{name}/{path}"),
    ("post", "/v1/zones/{zone}/auth/passkeys/register/start"),
    ("post", "/v1/zones/{zone}/auth/passkeys/register/finish"),
    ("post", "/v1/zones/{zone}/auth/passkeys/login/start"),
    ("post", "/v1/zones/{zone}/auth/passkeys/login/finish"),
    ("get", "/v1/zones/{zone}/auth/passkeys"),
    ("delete", "/v1/zones/{zone}/auth/passkeys/{id}"),
    ("post", "/v1/zones/{zone}/auth/password"),
    ("post", "/v1/zones/{zone}/auth/step-up"),
    ("put", "/v1/admin/zones/{zone}/registration"),
    ("post", "/v1/admin/zones/{zone}/invites"),
    ("post", "/v1/zones/{zone}/auth/passkeys/step-up"),
    ("delete", "/v1/zones/{zone}/auth/account"),
    ("delete", "/v1/admin/zones/{zone}/accounts/{account}"),
];

#[tokio::test]
async fn every_route_is_served_and_documented() {
    let t = start(Limits::default()).await;
    let doc = t.call(Method::GET, "/v1/openapi.json", None).await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete", "head", "patch"] {
            if item.get(method).is_some() {
                documented += 1;
                assert!(
                    ROUTES.contains(&(method, path.as_str())),
                    "documented but not listed: {method} {path}"
                );
            }
        }
    }
    assert_eq!(documented, ROUTES.len(), "documented operations");

    let hash = "0".repeat(64);
    for (method, path) in ROUTES {
        assert!(
            paths[*path].get(*method).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
        let uri = path
            .replace("{zone}", "demo")
            .replace("{hash}", &hash)
            .replace("{chain_id}", &hash)
            .replace("{node_id}", "99")
            .replace("{id}", "0")
            .replace("{name}", "password")
            .replace("{account}", "nobody")
            .replace("{path}", "a/b.txt");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = t.call(method.clone(), &uri, None).await;
        // An unrouted request gets `not_found` (404) or `method_not_allowed` (405); every real
        // route answers something else.
        assert_ne!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri} is not served"
        );
        // A site's missing file is a website's plain-text 404, not the API's JSON one.
        let site_file = path.starts_with("/sites/");
        if site_file {
            assert!(
                r.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain"),
                "{method} {uri} is not served"
            );
        } else if r.status == StatusCode::NOT_FOUND && method != Method::HEAD {
            let code = r.code();
            assert!(
                !code.is_empty() && code != "not_found",
                "{method} {uri} is not served"
            );
        }
    }
}
