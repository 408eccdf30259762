//! The HTTP API end to end through the router: chains, chunks, limits and errors.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use blindstore_client::ChainWriter;
use blindstore_cluster::Limits;
use blindstore_types::{Hash32, ZoneId};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use crate::support::{start, TestNode};

fn demo() -> ZoneId {
    ZoneId::new("demo").unwrap()
}

pub(crate) fn writer(seed: u8) -> ChainWriter {
    ChainWriter::new(demo(), SigningKey::from_bytes(&[seed; 32]))
}

pub(crate) async fn create_chain(t: &TestNode, w: &ChainWriter) -> Value {
    let r = t
        .call(
            Method::POST,
            "/v1/zones/demo/chains",
            Some(json!({"public_key": w.public_key().to_b64()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    r.json()
}

pub(crate) fn entries_uri(w: &ChainWriter) -> String {
    format!("/v1/zones/demo/chains/{}/entries", w.chain_id())
}

/// Appends `n` entries with payload "entry i"; returns the head.
async fn append_n(t: &TestNode, w: &ChainWriter, n: u64) -> Hash32 {
    append(t, w, 0, n, w.genesis()).await
}

/// Appends entries `from..to` ("entry i") after `prev`; returns the new head.
pub(crate) async fn append(
    t: &TestNode,
    w: &ChainWriter,
    from: u64,
    to: u64,
    mut prev: Hash32,
) -> Hash32 {
    for i in from..to {
        let (req, hash) = w.sign(i, prev, format!("entry {i}").as_bytes(), vec![]);
        let r = t
            .call(
                Method::POST,
                &entries_uri(w),
                Some(serde_json::to_value(&req).unwrap()),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
        assert_eq!(r.json()["entry_hash"], hash.to_hex());
        prev = hash;
    }
    prev
}

#[tokio::test]
async fn chain_create_is_idempotent_and_self_certifying() {
    let t = start(Limits::default()).await;
    let w = writer(1);
    let body = create_chain(&t, &w).await;
    assert_eq!(body["chain_id"], w.chain_id().to_hex());
    assert_eq!(body["length"], 0);
    assert_eq!(body["head"], w.genesis().to_hex());
    let again = t
        .call(
            Method::POST,
            "/v1/zones/demo/chains",
            Some(json!({"public_key": w.public_key().to_b64()})),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), body);

    let bad_key = t
        .call(
            Method::POST,
            "/v1/zones/demo/chains",
            Some(json!({"public_key": "AAAA"})),
        )
        .await;
    assert_eq!(
        (bad_key.status, bad_key.code()),
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    let unknown_field = t
        .call(
            Method::POST,
            "/v1/zones/demo/chains",
            Some(json!({"public_key": w.public_key().to_b64(), "extra": 1})),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    assert!(unknown_field.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown field"));
    let no_zone = t
        .call(
            Method::POST,
            "/v1/zones/nope/chains",
            Some(json!({"public_key": w.public_key().to_b64()})),
        )
        .await;
    assert_eq!(
        (no_zone.status, no_zone.code()),
        (StatusCode::NOT_FOUND, "unknown_zone".into())
    );
}

#[tokio::test]
async fn rejected_appends_change_nothing() {
    let t = start(Limits::default()).await;
    let w = writer(2);
    create_chain(&t, &w).await;
    let head = append_n(&t, &w, 2).await;
    let usage_before = t.admin(Method::GET, "/v1/admin/zones/demo").await.json();
    let uri = entries_uri(&w);
    let as_json = |req| serde_json::to_value(req).unwrap();

    // Wrong index: 409 with the current length and head.
    let (req, _) = w.sign(5, head, b"x", vec![]);
    let r = t.call(Method::POST, &uri, Some(as_json(&req))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "index_conflict".into())
    );
    let body = r.json();
    assert_eq!(body["length"], 2);
    assert_eq!(body["head"], head.to_hex());
    assert_eq!(body["error"]["length"], 2);

    // Right index, stale prev: also a conflict.
    let (req, _) = w.sign(2, w.genesis(), b"x", vec![]);
    let r = t.call(Method::POST, &uri, Some(as_json(&req))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Signed by another key.
    let (req, _) = writer(3).sign(2, head, b"x", vec![]);
    let mut req = as_json(&req);
    let r = t.call(Method::POST, &uri, Some(req.clone())).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_signature".into())
    );

    // Signature bytes tampered with.
    let (good, _) = w.sign(2, head, b"x", vec![]);
    let mut sig = good.signature;
    sig.0[10] ^= 0x40;
    req = as_json(&good);
    req["signature"] = json!(sig.to_b64());
    let r = t.call(Method::POST, &uri, Some(req)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_signature".into())
    );

    // Payload changed after signing.
    let mut req = as_json(&good);
    req["payload"] = json!("eQ");
    let r = t.call(Method::POST, &uri, Some(req)).await;
    assert_eq!(r.code(), "bad_signature");

    // Oversized payload.
    let big = vec![7u8; 64 * 1024 + 1];
    let (req, _) = w.sign(2, head, &big, vec![]);
    let r = t.call(Method::POST, &uri, Some(as_json(&req))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );

    // Referencing a chunk that is not stored.
    let (req, _) = w.sign(2, head, b"x", vec![Hash32::digest(b"never uploaded")]);
    let r = t.call(Method::POST, &uri, Some(as_json(&req))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "missing_chunk".into())
    );

    // Read through another zone.
    t.admin(Method::PUT, "/v1/admin/zones/other").await;
    let r = t
        .call(
            Method::GET,
            &format!("/v1/zones/other/chains/{}", w.chain_id()),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "unknown_chain".into())
    );
    let r = t
        .call(
            Method::GET,
            &format!("/v1/zones/other/chains/{}/entries", w.chain_id()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Malformed fields.
    let mut req = as_json(&good);
    req["prev"] = json!("ABC");
    assert_eq!(
        t.call(Method::POST, &uri, Some(req)).await.status,
        StatusCode::BAD_REQUEST
    );
    let mut req = as_json(&good);
    req["payload"] = json!("not base64!");
    assert_eq!(
        t.call(Method::POST, &uri, Some(req)).await.code(),
        "bad_request"
    );

    // Nothing changed: same chain, same usage.
    let chain = t
        .call(
            Method::GET,
            &format!("/v1/zones/demo/chains/{}", w.chain_id()),
            None,
        )
        .await
        .json();
    assert_eq!(chain["length"], 2);
    assert_eq!(chain["head"], head.to_hex());
    assert_eq!(
        t.admin(Method::GET, "/v1/admin/zones/demo").await.json(),
        usage_before
    );

    // And the right append still works.
    let r = t.call(Method::POST, &uri, Some(as_json(&good))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["length"], 3);
}

#[tokio::test]
async fn entries_with_chunks_read_back_and_page() {
    // Each entry counts about 525 bytes against the answer cap (base64 payload, fixed fields).
    let t = start(Limits {
        max_read_bytes: 5000,
        max_read_entries: 10,
        ..Limits::default()
    })
    .await;
    let w = writer(4);
    create_chain(&t, &w).await;
    let attachment = b"an attachment".to_vec();
    let hash = Hash32::digest(&attachment);
    let put = t
        .put_raw(&format!("/v1/zones/demo/chunks/{hash}"), attachment)
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let (req, first) = w.sign(0, w.genesis(), b"with chunk", vec![hash]);
    let r = t
        .call(
            Method::POST,
            &entries_uri(&w),
            Some(serde_json::to_value(&req).unwrap()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let mut prev = first;
    for i in 1..25u64 {
        let (req, h) = w.sign(i, prev, format!("entry {i:02}").as_bytes(), vec![]);
        let r = t
            .call(
                Method::POST,
                &entries_uri(&w),
                Some(serde_json::to_value(&req).unwrap()),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        prev = h;
    }

    let page = t
        .call(
            Method::GET,
            &format!("{}?from=0&limit=3", entries_uri(&w)),
            None,
        )
        .await
        .json();
    assert_eq!(page["length"], 25);
    assert_eq!(page["entries"].as_array().unwrap().len(), 3);
    assert_eq!(page["entries"][0]["chunks"][0], hash.to_hex());
    assert_eq!(page["next"], 3);

    // The answer cap (5000 bytes here) cuts a long read short, counting the whole answer.
    let reply = t
        .call(
            Method::GET,
            &format!("{}?from=0&limit=1000", entries_uri(&w)),
            None,
        )
        .await;
    assert!(reply.body.len() <= 5000, "{} bytes", reply.body.len());
    let page = reply.json();
    let n = page["entries"].as_array().unwrap().len();
    assert_eq!(n, 9, "byte cap applied");
    assert_eq!(page["next"], n);

    // `last` beyond the caps returns the newest entries that fit, not older ones.
    let reply = t
        .call(Method::GET, &format!("{}?last=1000", entries_uri(&w)), None)
        .await;
    assert!(reply.body.len() <= 5000, "{} bytes", reply.body.len());
    let last = reply.json();
    let indexes: Vec<u64> = last["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (16..25).collect::<Vec<u64>>());
    assert!(last.get("next").is_none());

    let last = t
        .call(Method::GET, &format!("{}?last=5", entries_uri(&w)), None)
        .await
        .json();
    let indexes: Vec<u64> = last["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![20, 21, 22, 23, 24]);
    assert!(last.get("next").is_none());
    assert_eq!(last["head"], prev.to_hex());

    let stale = t
        .call(
            Method::GET,
            &format!("{}?last=1&consistency=stale", entries_uri(&w)),
            None,
        )
        .await;
    assert_eq!(stale.status, StatusCode::OK);
    for bad in [
        "?last=0",
        "?limit=0",
        "?last=2&from=1",
        "?consistency=weird",
        "?bogus=1",
        "?from=-1",
    ] {
        let r = t
            .call(Method::GET, &format!("{}{bad}", entries_uri(&w)), None)
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "bad_request".into()),
            "{bad}"
        );
    }
    let past_end = t
        .call(Method::GET, &format!("{}?from=100", entries_uri(&w)), None)
        .await
        .json();
    assert_eq!(past_end["entries"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn chunks_are_checked_cached_and_resumable() {
    let t = start(Limits {
        max_chunk_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let bytes = b"chunk body".to_vec();
    let hash = Hash32::digest(&bytes);
    let uri = format!("/v1/zones/demo/chunks/{hash}");

    let wrong = t.put_raw(&uri, b"other body".to_vec()).await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::BAD_REQUEST, "hash_mismatch".into())
    );
    let get = t.call(Method::GET, &uri, None).await;
    assert_eq!(
        (get.status, get.code()),
        (StatusCode::NOT_FOUND, "unknown_chunk".into())
    );

    assert_eq!(
        t.put_raw(&uri, bytes.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(t.put_raw(&uri, bytes.clone()).await.status, StatusCode::OK);
    let get = t.call(Method::GET, &uri, None).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.body, bytes);
    assert_eq!(get.headers["etag"], format!("\"{hash}\""));
    assert_eq!(
        get.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );

    let conditional = Request::get(&uri)
        .header("if-none-match", format!("\"{hash}\""))
        .body(Body::empty())
        .unwrap();
    let r = t.send(conditional).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());

    let head = t
        .send(Request::head(&uri).body(Body::empty()).unwrap())
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["content-length"], bytes.len().to_string());

    // Too large, declared up front and streamed without a length.
    let big = vec![1u8; 1025];
    let big_uri = format!("/v1/zones/demo/chunks/{}", Hash32::digest(&big));
    let r = t.put_raw(&big_uri, big.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    let stream = futures::stream::iter(
        big.chunks(100)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = t
        .send(
            Request::put(&big_uri)
                .body(Body::from_stream(stream))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Resuming an upload: ask which are missing.
    let absent = Hash32::digest(b"absent");
    let r = t
        .call(
            Method::POST,
            "/v1/zones/demo/chunks/missing",
            Some(json!({"hashes": [hash.to_hex(), absent.to_hex()]})),
        )
        .await;
    assert_eq!(r.json(), json!({"missing": [absent.to_hex()]}));

    // Zones are isolated, and bad addresses are refused.
    t.admin(Method::PUT, "/v1/admin/zones/other").await;
    assert_eq!(
        t.call(Method::GET, &uri.replace("demo", "other"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.call(Method::GET, &uri.replace("demo", "nope"), None)
            .await
            .code(),
        "unknown_zone"
    );
    assert_eq!(
        t.call(Method::GET, "/v1/zones/demo/chunks/ABC", None)
            .await
            .code(),
        "bad_request"
    );

    let usage = t.admin(Method::GET, "/v1/admin/zones/demo").await.json();
    assert_eq!(usage["usage"]["chunks"], 1);
    assert_eq!(usage["usage"]["bytes"], bytes.len());
}

#[tokio::test]
async fn admin_routes_need_the_token() {
    let t = start(Limits::default()).await;
    let r = t.call(Method::GET, "/v1/admin/zones", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let wrong = Request::get("/v1/admin/zones")
        .header("authorization", "Bearer nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(t.send(wrong).await.status, StatusCode::UNAUTHORIZED);
    let r = t.call(Method::PUT, "/v1/admin/zones/x", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let created = t.admin(Method::PUT, "/v1/admin/zones/budget-1").await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["zone"], "budget-1");
    assert_eq!(
        t.admin(Method::PUT, "/v1/admin/zones/budget-1")
            .await
            .status,
        StatusCode::OK
    );
    for bad in ["Budget", "-x", "a_b", &"a".repeat(64)] {
        let r = t
            .admin(Method::PUT, &format!("/v1/admin/zones/{bad}"))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "bad_request".into()),
            "{bad}"
        );
    }
    let list = t.admin(Method::GET, "/v1/admin/zones").await.json();
    let names: Vec<&str> = list["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zone"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["budget-1", "demo"]);
    assert_eq!(
        t.admin(Method::GET, "/v1/admin/zones/none").await.code(),
        "unknown_zone"
    );

    let health = t.call(Method::GET, "/v1/health", None).await.json();
    assert_eq!(health["role"], "voter");
    assert_eq!(health["leader"], health["node_id"]);
    assert!(health["last_applied"].as_u64().unwrap() >= 1);
}

/// Every answer that is not a success is the documented JSON error body: unknown routes,
/// wrong methods and every extractor's rejection included.
#[tokio::test]
async fn every_error_is_the_json_error_body() {
    let t = start(Limits::default()).await;
    let cases: Vec<(Method, &str, StatusCode, &str)> = vec![
        (Method::GET, "/nowhere", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/v1/zones", StatusCode::NOT_FOUND, "not_found"),
        (
            Method::DELETE,
            "/v1/zones/demo/chains",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::PATCH,
            "/v1/health",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, uri, status, code) in cases {
        let r = t.call(method.clone(), uri, None).await;
        assert_eq!(
            (r.status, r.code()),
            (status, code.into()),
            "{method} {uri}"
        );
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {uri}"
        );
    }
    let r = t
        .admin(Method::POST, "/v1/admin/cluster/nodes/not-a-number/drain")
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    // A JSON body that is not JSON, and one without a content type.
    let r = t
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/v1/zones/demo/chains")
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    let r = t
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/v1/zones/demo/chains")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
}

/// Sends `body` as JSON with the admin token.
async fn admin_json(t: &TestNode, method: Method, uri: &str, body: Value) -> crate::support::Reply {
    t.send(
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", crate::support::TOKEN))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

/// Quotas: chains and entries per zone (checked where commands apply), chunks and chunk bytes
/// per node; a refusal is 403 `quota_exceeded` and changes nothing.
#[tokio::test]
async fn zone_quotas_are_enforced_and_refusals_change_nothing() {
    let t = start(Limits::default()).await;
    let quota =
        json!({"max_chains": 1, "max_entries": 2, "max_chunks": 3, "max_chunk_bytes": 1000});
    let r = admin_json(&t, Method::PUT, "/v1/admin/zones/demo/quota", quota.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert_eq!(r.json(), quota);
    // Fields left out keep their values; unknown fields are refused.
    let r = admin_json(
        &t,
        Method::PUT,
        "/v1/admin/zones/demo/quota",
        json!({"max_chunk_bytes": 900}),
    )
    .await;
    assert_eq!(r.json()["max_chains"], 1);
    assert_eq!(r.json()["max_chunk_bytes"], 900);
    let r = admin_json(
        &t,
        Method::PUT,
        "/v1/admin/zones/demo/quota",
        json!({"max_cats": 1}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    let r = admin_json(&t, Method::PUT, "/v1/admin/zones/none/quota", json!({})).await;
    assert_eq!(r.code(), "unknown_zone");
    assert_eq!(
        t.admin(Method::GET, "/v1/admin/zones/demo").await.json()["quota"]["max_entries"],
        2
    );

    let w = writer(21);
    create_chain(&t, &w).await;
    let second = writer(22);
    let r = t
        .call(
            Method::POST,
            "/v1/zones/demo/chains",
            Some(json!({"public_key": second.public_key()})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "quota_exceeded".into())
    );

    append_n(&t, &w, 2).await;
    let usage = t.admin(Method::GET, "/v1/admin/zones/demo").await.json()["usage"].clone();
    let chain = t
        .call(
            Method::GET,
            &format!("/v1/zones/demo/chains/{}", w.chain_id()),
            None,
        )
        .await
        .json();
    let (req, _) = w.sign(
        2,
        chain["head"].as_str().unwrap().parse().unwrap(),
        b"third",
        vec![],
    );
    let r = t
        .call(
            Method::POST,
            &entries_uri(&w),
            Some(serde_json::to_value(&req).unwrap()),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "quota_exceeded".into())
    );
    assert_eq!(
        t.admin(Method::GET, "/v1/admin/zones/demo").await.json()["usage"],
        usage,
        "a refused append stores nothing, not even its payload"
    );

    // Small payloads travel in the Raft entry, not as chunks: three chunks fit the count,
    // then none.
    let small = |s: &str| s.as_bytes().to_vec();
    let put = |bytes: Vec<u8>| {
        let uri = format!("/v1/zones/demo/chunks/{}", Hash32::digest(&bytes));
        (uri, bytes)
    };
    for chunk in ["the first chunk", "the second chunk", "the third chunk"] {
        let (uri, bytes) = put(small(chunk));
        assert_eq!(t.put_raw(&uri, bytes).await.status, StatusCode::CREATED);
    }
    let (uri, bytes) = put(small("a fourth chunk"));
    let r = t.put_raw(&uri, bytes).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "quota_exceeded".into())
    );
    // Bytes: raise the count, then a chunk past the byte quota is refused.
    admin_json(
        &t,
        Method::PUT,
        "/v1/admin/zones/demo/quota",
        json!({"max_chunks": 100}),
    )
    .await;
    let (uri, bytes) = put(vec![7u8; 901]);
    let r = t.put_raw(&uri, bytes).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "quota_exceeded".into())
    );
    let (uri, bytes) = put(small("fits"));
    assert_eq!(t.put_raw(&uri, bytes).await.status, StatusCode::CREATED);
}

/// A full chunk store (LMDB map) answers 507 and stays healthy: reads and Raft go on.
#[tokio::test]
async fn a_full_chunk_store_is_a_clear_recoverable_error() {
    let t = crate::support::start_with(Limits::default(), |c| c.map_sizes.chunks = 2 << 20).await;
    let mut stored = Vec::new();
    let mut refused = None;
    for i in 0..40u8 {
        let bytes = vec![i; 200_000];
        let uri = format!("/v1/zones/demo/chunks/{}", Hash32::digest(&bytes));
        let r = t.put_raw(&uri, bytes).await;
        if r.status == StatusCode::CREATED {
            stored.push(uri);
        } else {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("a 2 MiB map fills up");
    assert_eq!(
        (refused.status, refused.code()),
        (
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage".into()
        )
    );
    assert!(!stored.is_empty());
    for uri in &stored {
        assert_eq!(t.call(Method::GET, uri, None).await.status, StatusCode::OK);
    }
    // Raft still commits: a chain can be made and read.
    let w = writer(30);
    create_chain(&t, &w).await;
}

/// The Raft state store is never filled to the point where applying a committed entry could
/// fail: past 90% of its map, new chains are refused with 507 before they are proposed.
#[tokio::test]
async fn a_nearly_full_state_store_refuses_new_chains_before_raft_does() {
    let t = crate::support::start_with(Limits::default(), |c| c.map_sizes.state = 256 << 10).await;
    let mut made = 0u32;
    let refused = loop {
        let w = ChainWriter::new(
            demo(),
            SigningKey::from_bytes(&Hash32::digest(&made.to_be_bytes()).0),
        );
        let r = t
            .call(
                Method::POST,
                "/v1/zones/demo/chains",
                Some(json!({"public_key": w.public_key()})),
            )
            .await;
        if r.status != StatusCode::CREATED {
            break r;
        }
        made += 1;
        assert!(made < 20_000, "never refused");
    };
    assert_eq!(
        (refused.status, refused.code()),
        (
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage".into()
        ),
        "after {made} chains"
    );
    assert!(made > 10);
    // Reads go on.
    assert_eq!(
        t.call(Method::GET, "/v1/health", None).await.status,
        StatusCode::OK
    );
}

/// `POST /v1/admin/cluster/rotate-token`: admin only; a grace above the limit is refused with
/// nothing changed; a rotation answers new tokens, and the next one must start from them.
#[tokio::test]
async fn rotating_the_join_token_over_http() {
    let t = start(Limits::default()).await;
    let uri = "/v1/admin/cluster/rotate-token";
    let anonymous = t.call(Method::POST, uri, Some(json!({}))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let too_long = t
        .admin_json(Method::POST, uri, json!({"grace_seconds": 7200}))
        .await;
    assert_eq!(
        too_long.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        too_long.json()
    );
    assert!(
        too_long.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3600"),
        "{:?}",
        too_long.json()
    );
    let unknown = t.admin_json(Method::POST, uri, json!({"grace": 5})).await;
    assert_eq!(
        unknown.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        String::from_utf8_lossy(&unknown.body)
    );

    let first = t
        .admin_json(Method::POST, uri, json!({"grace_seconds": 5}))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.json());
    let first = first.json();
    assert_eq!(first["grace_seconds"], 5);
    let join = first["join_token"].as_str().unwrap().to_owned();
    let gateway = first["gateway_token"].as_str().unwrap();
    assert_eq!(join.len(), 64);
    assert_eq!(gateway.len(), 64);
    assert_ne!(gateway, join);
    let second = t.admin_json(Method::POST, uri, json!({})).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.json());
    let second = second.json();
    assert_eq!(second["grace_seconds"], 60);
    assert_ne!(second["join_token"].as_str().unwrap(), join);
}

/// `Accept: application/vnd.blindstore.entries` gets the same page in the compact binary form
/// (plain reads, `last`, and a long poll); anything else gets JSON. Both say `Vary: Accept`.
#[tokio::test]
async fn entries_come_in_the_binary_form_when_asked_for() {
    use blindstore_types::api::Entries;
    use blindstore_types::entries_binary::{decode, CONTENT_TYPE};
    let t = start(Limits::default()).await;
    let w = writer(41);
    create_chain(&t, &w).await;
    append_n(&t, &w, 30).await;
    let get = |uri: String, accept: &'static str| {
        let t = &t;
        async move {
            let request = Request::builder()
                .method(Method::GET)
                .uri(uri)
                .header("accept", accept)
                .body(Body::empty())
                .unwrap();
            t.send(request).await
        }
    };
    for query in ["from=0&limit=10", "last=20", "from=5&limit=3&wait=1"] {
        let uri = format!("{}?{query}", entries_uri(&w));
        let json = get(uri.clone(), "application/json").await;
        assert_eq!(json.status, StatusCode::OK);
        assert_eq!(json.headers["content-type"], "application/json", "{query}");
        assert_eq!(json.headers["vary"], "accept", "{query}");
        let from_json: Entries = serde_json::from_slice(&json.body).unwrap();

        let binary = get(
            uri.clone(),
            "text/html, application/vnd.blindstore.entries;q=0.9",
        )
        .await;
        assert_eq!(binary.status, StatusCode::OK);
        assert_eq!(binary.headers["content-type"], CONTENT_TYPE, "{query}");
        assert_eq!(binary.headers["vary"], "accept", "{query}");
        let from_binary = decode(&binary.body).unwrap();
        assert_eq!(
            serde_json::to_value(&from_binary).unwrap(),
            serde_json::to_value(&from_json).unwrap(),
            "{query}: the same page"
        );
        assert!(
            binary.body.len() < json.body.len(),
            "{query}: {} binary bytes vs {} JSON",
            binary.body.len(),
            json.body.len()
        );
    }
    // The default, for people and curl, is JSON.
    let plain = t
        .call(Method::GET, &format!("{}?last=2", entries_uri(&w)), None)
        .await;
    assert_eq!(plain.headers["content-type"], "application/json");
}
