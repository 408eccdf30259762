//! Static sites through the router: publishing needs every chunk (a cut-off deploy changes
//! nothing), files are served with their types, ETags, caching and conditional GET, versions
//! switch atomically, and host names select a zone's site.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use blindstore_types::site::{SiteBlob, SiteFile, SiteManifest};
use blindstore_types::Hash32;
use serde_json::json;

use crate::support::{start, Reply, TestNode};
use blindstore_cluster::Limits;

/// Stores `bytes` as one chunk (unless `store` is false); the file that names it.
async fn file(t: &TestNode, content_type: &str, bytes: &[u8], store: bool) -> SiteFile {
    let hash = Hash32::digest(bytes);
    if store {
        let r = t
            .put_raw(&format!("/v1/zones/demo/chunks/{hash}"), bytes.to_vec())
            .await;
        assert!(r.status.is_success());
    }
    SiteFile {
        content_type: content_type.into(),
        blob: SiteBlob {
            chunks: vec![hash],
            len: bytes.len() as u64,
            sha256: hash,
        },
        gzip: None,
        br: None,
    }
}

async fn site(t: &TestNode, version: &str, store_all: bool) -> SiteManifest {
    let mut m = SiteManifest {
        csp: Some("default-src 'self'".into()),
        ..SiteManifest::default()
    };
    let html = format!("<!doctype html><h1>{version}</h1>");
    m.files.insert(
        "index.html".into(),
        file(t, "text/html; charset=utf-8", html.as_bytes(), true).await,
    );
    m.files.insert(
        "assets/app.3f2a9c1b.js".into(),
        file(
            t,
            "text/javascript; charset=utf-8",
            format!("console.log('{version}')").as_bytes(),
            store_all,
        )
        .await,
    );
    m
}

async fn get(t: &TestNode, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = Request::builder().uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    t.send(builder.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn a_site_is_published_only_whole_and_served_with_the_right_headers() {
    let t = start(Limits::default()).await;
    let publish = "/v1/admin/zones/demo/site";

    // One chunk missing: refused, and there is no site.
    let partial = site(&t, "v1", false).await;
    let r = t
        .admin_json(
            Method::POST,
            publish,
            serde_json::to_value(&partial).unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "missing_chunk");
    assert_eq!(
        get(&t, "/sites/demo/", &[]).await.status,
        StatusCode::NOT_FOUND
    );

    let v1 = site(&t, "v1", true).await;
    let r = t
        .admin_json(Method::POST, publish, serde_json::to_value(&v1).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    assert_eq!(r.json()["version"], 1);

    let page = get(&t, "/sites/demo/", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body, b"<!doctype html><h1>v1</h1>");
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers["cache-control"], "no-cache");
    assert_eq!(
        page.headers["content-security-policy"],
        "default-src 'self'"
    );
    let etag = page.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", Hash32::digest(&page.body)));
    let again = get(&t, "/sites/demo/index.html", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    let script = get(&t, "/sites/demo/assets/app.3f2a9c1b.js", &[]).await;
    assert_eq!(
        script.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(script.body, b"console.log('v1')");
    let missing = get(
        &t,
        "/sites/demo/assets/other.js",
        &[("sec-fetch-dest", "script")],
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let head = t
        .send(
            Request::builder()
                .method(Method::HEAD)
                .uri("/sites/demo/")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(head.headers["content-length"], page.body.len().to_string());
    assert!(head.body.is_empty());
    let redirect = get(&t, "/sites/demo", &[]).await;
    assert_eq!(redirect.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(redirect.headers["location"], "/sites/demo/");

    // A second version, then back: each switch is one step.
    let v2 = site(&t, "v2", true).await;
    let r = t
        .admin_json(Method::POST, publish, serde_json::to_value(&v2).unwrap())
        .await;
    assert_eq!(r.json()["version"], 2);
    assert_eq!(
        get(&t, "/sites/demo/", &[]).await.body,
        b"<!doctype html><h1>v2</h1>"
    );
    let r = t
        .admin_json(
            Method::PUT,
            "/v1/admin/zones/demo/site/current",
            json!({"version": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        get(&t, "/sites/demo/", &[]).await.body,
        b"<!doctype html><h1>v1</h1>"
    );
    let r = t
        .admin_json(
            Method::PUT,
            "/v1/admin/zones/demo/site/current",
            json!({"version": 9}),
        )
        .await;
    assert_eq!(r.code(), "bad_request");
    let list = t.admin(Method::GET, publish).await.json();
    assert_eq!(list["current"], 1);
    assert_eq!(list["versions"].as_array().unwrap().len(), 2);

    // A site path that leaves the site is refused.
    let mut bad = v1.clone();
    let index = bad.files["index.html"].clone();
    bad.files.insert("../escape.html".into(), index);
    let r = t
        .admin_json(Method::POST, publish, serde_json::to_value(&bad).unwrap())
        .await;
    assert_eq!(r.code(), "bad_request");
    // Admin routes need the token.
    let r = t
        .call(
            Method::POST,
            publish,
            Some(serde_json::to_value(&v1).unwrap()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_zone_site_answers_its_host_names_at_the_root() {
    let limits = blindstore_http::AuthLimits {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let t = crate::support::start_full(Limits::default(), |_| {}, &limits).await;
    let v1 = site(&t, "v1", true).await;
    let r = t
        .admin_json(
            Method::POST,
            "/v1/admin/zones/demo/site",
            serde_json::to_value(&v1).unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t
        .admin_json(
            Method::PUT,
            "/v1/admin/zones/demo/settings",
            json!({"site_hosts": ["budget.example.com"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let r = t
        .admin_json(
            Method::PUT,
            "/v1/admin/zones/demo/settings",
            json!({"site_hosts": ["Budget.example.com:80"]}),
        )
        .await;
    assert_eq!(r.code(), "bad_request");

    let page = get(&t, "/", &[("host", "budget.example.com:8080")]).await;
    assert_eq!(page.body, b"<!doctype html><h1>v1</h1>");
    // Behind a gateway or proxy (a trusted peer), the host the client asked for; anyone else
    // cannot pick the zone with `X-Forwarded-Host`.
    let forwarded = |peer: &str| {
        let mut request = Request::builder()
            .uri("/")
            .header("host", "10.0.0.1")
            .header("x-forwarded-host", "budget.example.com")
            .body(Body::empty())
            .unwrap();
        let peer: std::net::SocketAddr = format!("{peer}:4000").parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        t.send(request)
    };
    assert_eq!(forwarded("10.0.0.2").await.status, StatusCode::OK);
    assert_eq!(forwarded("192.0.2.7").await.status, StatusCode::NOT_FOUND);
    // Other hosts get the API's 404; the API itself is unaffected.
    let other = get(&t, "/", &[("host", "other.example.com")]).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.code(), "not_found");
    let health = get(&t, "/v1/health", &[("host", "budget.example.com")]).await;
    assert_eq!(health.status, StatusCode::OK);
}

/// Two admin calls at once that give one site host to two zones: one wins, the other is 400
/// `bad_request` naming the zone that has it. (On one node the calls rarely overlap; the race
/// through two nodes is `blindstore_cluster`'s
/// `two_zones_cannot_both_claim_a_site_host_through_two_nodes`.)
#[tokio::test]
async fn two_zones_cannot_both_claim_a_site_host_at_once() {
    let t = start(Limits::default()).await;
    for zone in ["a", "b"] {
        let r = t
            .admin(Method::PUT, &format!("/v1/admin/zones/{zone}"))
            .await;
        assert!(r.status.is_success(), "{:?}", r.json());
    }
    let claim = |zone: &'static str, hosts: serde_json::Value| {
        let t = &t;
        async move {
            t.admin_json(
                Method::PUT,
                &format!("/v1/admin/zones/{zone}/settings"),
                json!({ "site_hosts": hosts }),
            )
            .await
        }
    };
    for round in 0..10 {
        let host = format!("race{round}.example.com");
        let (a, b) = tokio::join!(claim("a", json!([host])), claim("b", json!([host])));
        let won: Vec<&Reply> = [&a, &b]
            .into_iter()
            .filter(|r| r.status == StatusCode::OK)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {:?} {:?}", a.json(), b.json());
        let (winner, loser) = if a.status == StatusCode::OK {
            ("a", &b)
        } else {
            ("b", &a)
        };
        assert_eq!(loser.code(), "bad_request");
        let message = loser.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains(&format!("belongs to zone {winner}")),
            "{message}"
        );
        // Both zones give it up again for the next round.
        for zone in ["a", "b"] {
            assert_eq!(claim(zone, json!([])).await.status, StatusCode::OK);
        }
    }
}
