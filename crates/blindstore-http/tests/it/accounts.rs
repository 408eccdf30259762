//! Accounts through the HTTP API: OPAQUE registration and login (the client side from
//! `blindstore_auth::client`), sessions, envelopes with compare-and-set, password change,
//! deletion.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use blindstore_auth::client;
use blindstore_cluster::Limits;
use blindstore_http::AuthLimits;
use serde_json::{json, Value};

use crate::support::{start, start_full, Reply, TestNode, TOKEN};

const AUTH: &str = "/v1/zones/demo/auth";

/// `reply` is an API error with this status and code.
#[track_caller]
fn refused(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (status, code),
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// The first two steps of a registration: a record for `password`, not yet uploaded.
async fn registration_record(t: &TestNode, account: &str, password: &[u8]) -> client::Finished {
    let (state, request) = client::start_registration(password).unwrap();
    let r = t
        .call(
            Method::POST,
            &format!("{AUTH}/register/start"),
            Some(json!({"account": account, "registration_request": request})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    state
        .finish(
            password,
            r.json()["registration_response"].as_str().unwrap(),
        )
        .unwrap()
}

async fn register(t: &TestNode, account: &str, password: &[u8]) -> Vec<u8> {
    let done = registration_record(t, account, password).await;
    let r = t
        .call(
            Method::POST,
            &format!("{AUTH}/register/finish"),
            Some(json!({"account": account, "registration_record": done.message})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    done.export_key
}

/// Starts a login: the client state and the server's answer.
async fn login_start(t: &TestNode, account: &str, password: &[u8]) -> (client::Login, Value) {
    let (state, request) = client::start_login(password).unwrap();
    let r = t
        .call(
            Method::POST,
            &format!("{AUTH}/login/start"),
            Some(json!({"account": account, "start_login_request": request})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    (state, r.json())
}

async fn login_finish(t: &TestNode, ticket: &str, message: &str, label: &str) -> Reply {
    t.call(
        Method::POST,
        &format!("{AUTH}/login/finish"),
        Some(json!({"login_ticket": ticket, "finish_login_request": message, "label": label})),
    )
    .await
}

/// A logged-in session: its token (what `&session` reads as where a token is expected), the
/// step-up its login gave, and the device token.
#[derive(Clone)]
struct Signed {
    token: String,
    step_up: String,
    device: String,
}

impl std::ops::Deref for Signed {
    type Target = str;
    fn deref(&self) -> &str {
        &self.token
    }
}

/// A full login: the session and the export key.
async fn login(t: &TestNode, account: &str, password: &[u8], label: &str) -> (Signed, Vec<u8>) {
    let (state, started) = login_start(t, account, password).await;
    let done = state
        .finish(password, started["login_response"].as_str().unwrap())
        .unwrap();
    let r = login_finish(
        t,
        started["login_ticket"].as_str().unwrap(),
        &done.message,
        label,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let field = |name: &str| r.json()[name].as_str().unwrap().to_owned();
    let signed = Signed {
        token: field("token"),
        step_up: field("step_up"),
        device: field("device_token"),
    };
    (signed, done.export_key)
}

async fn with_session(
    t: &TestNode,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> Reply {
    session_call(t, method, path, token, None, body, if_match).await
}

/// A request of `session` with its step-up, for what cannot be undone.
async fn stepped_up(
    t: &TestNode,
    method: Method,
    path: &str,
    session: &Signed,
    body: Option<Value>,
    if_match: Option<&str>,
) -> Reply {
    let step_up = Some(session.step_up.as_str());
    session_call(t, method, path, session, step_up, body, if_match).await
}

async fn session_call(
    t: &TestNode,
    method: Method,
    path: &str,
    token: &str,
    step_up: Option<&str>,
    body: Option<Value>,
    if_match: Option<&str>,
) -> Reply {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("{AUTH}/{path}"))
        .header("authorization", format!("Bearer {token}"));
    if let Some(v) = step_up {
        builder = builder.header("blindstore-step-up", v);
    }
    if let Some(v) = if_match {
        builder = builder.header("if-match", v);
    }
    let body = match body {
        Some(v) => {
            builder = builder.header("content-type", "application/json");
            Body::from(serde_json::to_vec(&v).unwrap())
        }
        None => Body::empty(),
    };
    t.send(builder.body(body).unwrap()).await
}

#[tokio::test]
async fn register_log_in_use_a_session_and_log_out() {
    let t = start(Limits::default()).await;
    let registered = register(&t, "alice", b"correct horse").await;
    let (token, export_key) = login(&t, "alice", b"correct horse", "laptop").await;
    assert_eq!(export_key, registered, "the same export key at every login");

    let r = with_session(&t, Method::GET, "sessions", &token, None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let sessions = r.json();
    assert_eq!(sessions["account"], "alice");
    assert_eq!(sessions["sessions"][0]["label"], "laptop");
    assert_eq!(sessions["sessions"][0]["current"], true);

    // The id is taken: 409, and the first registration still logs in.
    let done = registration_record(&t, "alice", b"other").await;
    let r = t
        .call(
            Method::POST,
            &format!("{AUTH}/register/finish"),
            Some(json!({"account": "alice", "registration_record": done.message})),
        )
        .await;
    refused(&r, StatusCode::CONFLICT, "account_exists");
    login(&t, "alice", b"correct horse", "still works").await;

    let r = with_session(&t, Method::POST, "logout", &token, None, None).await;
    assert_eq!(
        (r.status, r.json()["revoked"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let r = with_session(&t, Method::GET, "sessions", &token, None, None).await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_session");
    let r = t.call(Method::GET, &format!("{AUTH}/sessions"), None).await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_session");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_account_look_the_same() {
    let t = start(Limits::default()).await;
    register(&t, "alice", b"alice's password").await;
    register(&t, "bob", b"bob's password").await;
    // A well-formed last message that proves nothing about alice's password: bob's.
    let (state, started) = login_start(&t, "bob", b"bob's password").await;
    let bobs = state
        .finish(
            b"bob's password",
            started["login_response"].as_str().unwrap(),
        )
        .unwrap()
        .message;

    let (_, known) = login_start(&t, "alice", b"guess").await;
    // (An id of the same length: the ticket carries the id the client sent.)
    let (_, unknown) = login_start(&t, "nobod", b"guess").await;
    for field in ["login_response", "login_ticket"] {
        assert_eq!(
            known[field].as_str().unwrap().len(),
            unknown[field].as_str().unwrap().len(),
            "{field} of an unknown account has the same shape"
        );
    }
    let wrong = login_finish(&t, known["login_ticket"].as_str().unwrap(), &bobs, "").await;
    let none = login_finish(&t, unknown["login_ticket"].as_str().unwrap(), &bobs, "").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!((none.status, &none.body), (wrong.status, &wrong.body));
    assert_eq!(wrong.code(), "invalid_login");

    // A forged ticket, a ticket for another zone: the same answer.
    let forged = login_finish(&t, "AAAA", &bobs, "").await;
    assert_eq!((forged.status, &forged.body), (wrong.status, &wrong.body));
}

#[tokio::test]
async fn a_login_ticket_works_once() {
    let t = start(Limits::default()).await;
    register(&t, "alice", b"pw").await;
    let (state, started) = login_start(&t, "alice", b"pw").await;
    let done = state
        .finish(b"pw", started["login_response"].as_str().unwrap())
        .unwrap();
    let ticket = started["login_ticket"].as_str().unwrap();
    let first = login_finish(&t, ticket, &done.message, "").await;
    assert_eq!(first.status, StatusCode::OK);
    let again = login_finish(&t, ticket, &done.message, "").await;
    refused(&again, StatusCode::UNAUTHORIZED, "invalid_login");
}

#[tokio::test]
async fn envelopes_are_written_with_compare_and_set() {
    let t = start(Limits::default()).await;
    register(&t, "alice", b"pw").await;
    let (token, _) = login(&t, "alice", b"pw", "").await;
    let put = |data: &str, if_match: Option<&'static str>| {
        let (t, token) = (&t, token.clone());
        let body = json!({ "data": data });
        async move {
            with_session(
                t,
                Method::PUT,
                "envelopes/password",
                &token,
                Some(body),
                if_match,
            )
            .await
        }
    };
    let r = put("AAEC", None).await;
    assert_eq!(
        (r.status, r.json()["version"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    assert_eq!(r.headers["etag"], "\"1\"");
    // Creating it again, or replacing a version that is not the current one: 409 with the
    // current version, and nothing changes.
    let r = put("BBBB", None).await;
    refused(&r, StatusCode::CONFLICT, "envelope_conflict");
    assert_eq!(r.json()["error"]["version"], 1);
    let r = put("BBBB", Some("\"7\"")).await;
    assert_eq!(
        (r.status, r.json()["error"]["version"].as_u64()),
        (StatusCode::CONFLICT, Some(1))
    );
    let r = with_session(&t, Method::GET, "envelopes/password", &token, None, None).await;
    assert_eq!(
        (r.json()["data"].as_str(), r.json()["version"].as_u64()),
        (Some("AAEC"), Some(1))
    );
    let r = put("BBBB", Some("\"1\"")).await;
    assert_eq!(
        (r.status, r.json()["version"].as_u64()),
        (StatusCode::OK, Some(2))
    );
    let r = with_session(&t, Method::GET, "envelopes/password", &token, None, None).await;
    assert_eq!(r.json()["data"], "BBBB");

    let r = with_session(&t, Method::GET, "envelopes", &token, None, None).await;
    assert_eq!(r.json()["envelopes"][0]["name"], "password");
    let r = with_session(&t, Method::GET, "envelopes/nothing", &token, None, None).await;
    refused(&r, StatusCode::NOT_FOUND, "unknown_envelope");
    let r = with_session(&t, Method::GET, "envelopes/Bad%20Name", &token, None, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let big = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        vec![0u8; 64 * 1024 + 1],
    );
    let r = with_session(
        &t,
        Method::PUT,
        "envelopes/big",
        &token,
        Some(json!({"data": big})),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Someone else's session cannot read it.
    register(&t, "bob", b"pw").await;
    let (bobs, _) = login(&t, "bob", b"pw", "").await;
    let r = with_session(&t, Method::GET, "envelopes/password", &bobs, None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_password_change_is_one_step_and_can_end_other_sessions() {
    let t = start(Limits::default()).await;
    register(&t, "alice", b"old").await;
    let (here, _) = login(&t, "alice", b"old", "here").await;
    let (elsewhere, _) = login(&t, "alice", b"old", "elsewhere").await;
    let r = with_session(
        &t,
        Method::PUT,
        "envelopes/password",
        &here,
        Some(json!({"data": "AAAA"})),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // A stale envelope version: nothing changes, the old password still works.
    let record = registration_record(&t, "alice", b"new").await;
    let body = json!({
        "registration_record": record.message,
        "envelope": {"name": "password", "data": "BBBB", "if_version": 0},
        "revoke_other_sessions": true
    });
    let r = stepped_up(&t, Method::POST, "password", &here, Some(body), None).await;
    refused(&r, StatusCode::CONFLICT, "envelope_conflict");
    login(&t, "alice", b"old", "").await;

    let body = json!({
        "registration_record": record.message,
        "envelope": {"name": "password", "data": "BBBB", "if_version": 1},
        "revoke_other_sessions": true
    });
    // The session alone, or with another session's step-up, is not enough.
    let r = with_session(
        &t,
        Method::POST,
        "password",
        &here,
        Some(body.clone()),
        None,
    )
    .await;
    refused(&r, StatusCode::FORBIDDEN, "step_up_required");
    let borrowed = Some(elsewhere.step_up.as_str());
    let r = session_call(
        &t,
        Method::POST,
        "password",
        &here,
        borrowed,
        Some(body.clone()),
        None,
    )
    .await;
    refused(&r, StatusCode::FORBIDDEN, "step_up_required");
    login(&t, "alice", b"old", "").await;
    let r = stepped_up(&t, Method::POST, "password", &here, Some(body), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert_eq!(r.json(), json!({"revoked": 3, "passkeys": []}));
    let (_, new_key) = login(&t, "alice", b"new", "").await;
    assert_eq!(new_key, record.export_key);
    let (state, started) = login_start(&t, "alice", b"old").await;
    assert!(state
        .finish(b"old", started["login_response"].as_str().unwrap())
        .is_err());
    let r = with_session(&t, Method::GET, "envelopes/password", &here, None, None).await;
    assert_eq!(r.json()["data"], "BBBB");
    let r = with_session(&t, Method::GET, "sessions", &elsewhere, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "other sessions ended");
}

#[tokio::test]
async fn an_account_can_be_deleted_by_itself_or_an_administrator() {
    let t = start(Limits::default()).await;
    register(&t, "alice", b"pw").await;
    let (token, _) = login(&t, "alice", b"pw", "").await;
    with_session(
        &t,
        Method::PUT,
        "envelopes/password",
        &token,
        Some(json!({"data": "AAAA"})),
        None,
    )
    .await;
    let r = with_session(&t, Method::DELETE, "account", &token, None, None).await;
    refused(&r, StatusCode::FORBIDDEN, "step_up_required");
    let r = stepped_up(&t, Method::DELETE, "account", &token, None, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = with_session(&t, Method::GET, "envelopes/password", &token, None, None).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "its sessions went with it"
    );
    // The id is free again.
    register(&t, "alice", b"pw2").await;

    let r = t
        .admin(Method::DELETE, "/v1/admin/zones/demo/accounts/alice")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t
        .admin(Method::DELETE, "/v1/admin/zones/demo/accounts/alice")
        .await;
    refused(&r, StatusCode::NOT_FOUND, "unknown_account");
    let r = t
        .call(Method::DELETE, "/v1/admin/zones/demo/accounts/alice", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let _ = TOKEN;
}

#[tokio::test]
async fn malformed_account_requests_are_refused_with_nothing_changed() {
    let t = start(Limits::default()).await;
    let cases = [
        (
            "register/start",
            json!({"account": "", "registration_request": "AAAA"}),
        ),
        (
            "register/start",
            json!({"account": "a".repeat(257), "registration_request": "AAAA"}),
        ),
        (
            "register/start",
            json!({"account": "alice", "registration_request": "not base64!"}),
        ),
        (
            "register/start",
            json!({"account": "alice", "registration_request": "AAAA"}),
        ),
        (
            "register/finish",
            json!({"account": "alice", "registration_record": "AAAA"}),
        ),
        (
            "login/start",
            json!({"account": "alice", "start_login_request": "AAAA"}),
        ),
        (
            "login/start",
            json!({"account": "alice", "start_login_request": "AAAA", "extra": 1}),
        ),
    ];
    for (path, body) in cases {
        let r = t
            .call(Method::POST, &format!("{AUTH}/{path}"), Some(body.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {:?}",
            r.json()
        );
    }
    let r = t
        .call(
            Method::POST,
            "/v1/zones/nowhere/auth/login/start",
            Some(json!({"account": "a", "start_login_request": "AAAA"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Nothing was registered.
    let r = t
        .admin(Method::DELETE, "/v1/admin/zones/demo/accounts/alice")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A login start from `peer` (optionally through `X-Forwarded-For`).
async fn login_start_from(
    t: &TestNode,
    account: &str,
    peer: &str,
    forwarded_for: Option<&str>,
) -> Reply {
    let (_, request) = client::start_login(b"pw").unwrap();
    let body = json!({"account": account, "start_login_request": request});
    post_from(t, "login/start", body, peer, forwarded_for).await
}

/// `POST {AUTH}/{path}` with `body`, from `peer` (optionally through `X-Forwarded-For`).
async fn post_from(
    t: &TestNode,
    path: &str,
    body: Value,
    peer: &str,
    forwarded_for: Option<&str>,
) -> Reply {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(format!("{AUTH}/{path}"))
        .header("content-type", "application/json");
    if let Some(xff) = forwarded_for {
        builder = builder.header("x-forwarded-for", xff);
    }
    let mut request = builder
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let peer: std::net::SocketAddr = format!("{peer}:4000").parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    t.send(request).await
}

#[tokio::test]
async fn logins_and_registrations_are_rate_limited_per_ip_and_per_account() {
    let limits = AuthLimits {
        login_per_ip: 4,
        login_per_account: 2,
        register_per_ip: 3,
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..AuthLimits::default()
    };
    let t = start_full(Limits::default(), |_| {}, &limits).await;
    // Per account: two attempts, then 429 with Retry-After, from any address.
    for _ in 0..2 {
        assert_eq!(
            login_start_from(&t, "alice", "192.0.2.1", None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let r = login_start_from(&t, "alice", "192.0.2.2", None).await;
    refused(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After: {retry}");
    // Per IP: 192.0.2.1 has used 2 of its 4 (the refused attempt was 192.0.2.2's first).
    for account in ["bob", "carol"] {
        assert_eq!(
            login_start_from(&t, account, "192.0.2.1", None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let r = login_start_from(&t, "dave", "192.0.2.1", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // An untrusted peer cannot pick its key with X-Forwarded-For.
    let r = login_start_from(&t, "erin", "192.0.2.1", Some("198.51.100.9")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Behind a trusted proxy, the client is the right-most untrusted forwarded address.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = login_start_from(&t, "frank", "10.1.1.1", Some("198.51.100.7, 10.2.2.2")).await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429], "frank's account limit");
    let r = login_start_from(&t, "grace", "10.1.1.1", Some("198.51.100.8")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "another client behind the same proxy"
    );
    let r = login_start_from(&t, "heidi", "10.1.1.1", Some("198.51.100.7")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "frank's account limit is not the proxy's IP limit"
    );

    // Registrations: three steps per IP per minute.
    let (_, request) = client::start_registration(b"pw").unwrap();
    let mut statuses = Vec::new();
    for account in ["ivan", "judy", "ken", "lou"] {
        let body = json!({"account": account, "registration_request": request});
        let r = t
            .call(Method::POST, &format!("{AUTH}/register/start"), Some(body))
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
}

#[tokio::test]
async fn a_zone_whose_writes_need_accounts_refuses_anonymous_writes_and_counts_per_account() {
    let t = start(Limits::default()).await;
    let settings =
        json!({"writes": "accounts", "account_max_chains": 1, "account_max_chunk_bytes": 100});
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/v1/admin/zones/demo/settings")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(settings.to_string()))
        .unwrap();
    let r = t.send(request).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert_eq!(r.json()["writes"], "accounts");
    let r = t.admin(Method::GET, "/v1/admin/zones/demo").await;
    assert_eq!(r.json()["settings"]["account_quota"]["max_chains"], 1);

    let chunk = |bytes: &[u8], token: Option<&str>| {
        let hash = blindstore_types::Hash32::digest(bytes).to_hex();
        let mut builder = Request::builder()
            .method(Method::PUT)
            .uri(format!("/v1/zones/demo/chunks/{hash}"));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(Body::from(bytes.to_vec())).unwrap()
    };
    let chain = |seed: u8, token: Option<&str>| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let public = blindstore_types::PublicKey(key.verifying_key().to_bytes());
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri("/v1/zones/demo/chains")
            .header("content-type", "application/json");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = json!({"public_key": public.to_b64()});
        builder.body(Body::from(body.to_string())).unwrap()
    };

    // Without a session, or with a dead one: 401, nothing stored.
    let r = t.send(chunk(&[1; 50], None)).await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_session");
    let r = t.send(chunk(&[1; 50], Some("AAAA"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.send(chain(1, None)).await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_session");
    let r = t
        .call(
            Method::POST,
            "/v1/zones/demo/chunks/missing",
            Some(json!({"hashes": [blindstore_types::Hash32::digest(&[1; 50]).to_hex()]})),
        )
        .await;
    assert_eq!(r.json()["missing"].as_array().unwrap().len(), 1);

    // With a session: written, and counted against the account's quotas.
    register(&t, "alice", b"pw").await;
    let (alice, _) = login(&t, "alice", b"pw", "").await;
    assert_eq!(
        t.send(chunk(&[1; 50], Some(&alice))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        t.send(chunk(&[1; 50], Some(&alice))).await.status,
        StatusCode::OK,
        "stored once, charged once"
    );
    let r = t.send(chunk(&[2; 60], Some(&alice))).await;
    refused(&r, StatusCode::FORBIDDEN, "quota_exceeded");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("account"));
    assert_eq!(
        t.send(chain(1, Some(&alice))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        t.send(chain(1, Some(&alice))).await.status,
        StatusCode::OK,
        "the same chain again"
    );
    let r = t.send(chain(2, Some(&alice))).await;
    refused(&r, StatusCode::FORBIDDEN, "quota_exceeded");
    // Another account has its own quotas; reads need no session.
    register(&t, "bob", b"pw").await;
    let (bob, _) = login(&t, "bob", b"pw", "").await;
    assert_eq!(
        t.send(chain(2, Some(&bob))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        t.send(chunk(&[2; 60], Some(&bob))).await.status,
        StatusCode::CREATED
    );
    let hash = blindstore_types::Hash32::digest(&[2; 60]).to_hex();
    let r = t
        .call(Method::GET, &format!("/v1/zones/demo/chunks/{hash}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // Back to open: anonymous writes work again.
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/v1/admin/zones/demo/settings")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"writes": "open"}).to_string()))
        .unwrap();
    assert_eq!(t.send(request).await.status, StatusCode::OK);
    assert_eq!(
        t.send(chunk(&[3; 10], None)).await.status,
        StatusCode::CREATED
    );
    assert_eq!(t.send(chain(3, None)).await.status, StatusCode::CREATED);
}

/// Passkeys are off until the zone names a relying party; settings browsers would refuse are
/// refused and change nothing; a configured zone answers registration options for its
/// origin, and a passkey login for an account without passkeys is `invalid_login`.
#[tokio::test]
async fn passkeys_are_off_until_configured_and_bad_settings_change_nothing() {
    let t = start(Limits::default()).await;
    register(&t, "alice", b"pw").await;
    let (token, _) = login(&t, "alice", b"pw", "").await;

    let r = stepped_up(
        &t,
        Method::POST,
        "passkeys/register/start",
        &token,
        None,
        None,
    )
    .await;
    refused(&r, StatusCode::FORBIDDEN, "passkeys_off");
    let r = t
        .call(
            Method::POST,
            &format!("{AUTH}/passkeys/login/start"),
            Some(json!({"account": "alice"})),
        )
        .await;
    refused(&r, StatusCode::FORBIDDEN, "passkeys_off");

    for bad in [
        json!({"passkey_rp_id": "127.0.0.1", "passkey_origins": ["http://127.0.0.1:8080"]}),
        json!({"passkey_rp_id": "example.com", "passkey_origins": ["http://example.com"]}),
        json!({"passkey_rp_id": "example.com", "passkey_origins": ["https://example.org"]}),
        json!({"passkey_rp_id": "example.com"}),
        json!({"passkey_origins": ["https://example.com"]}),
    ] {
        let r = t.set_settings(bad.clone()).await;
        refused(&r, StatusCode::BAD_REQUEST, "bad_request");
        let zone = t.admin(Method::GET, "/v1/admin/zones/demo").await;
        assert_eq!(zone.json()["settings"]["passkeys"], Value::Null, "{bad}");
    }

    let good = json!({"passkey_rp_id": "example.com",
        "passkey_origins": ["https://example.com", "https://app.example.com:8443"]});
    let r = t.set_settings(good).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert_eq!(r.json()["passkeys"]["rp_id"], "example.com");
    let r = stepped_up(
        &t,
        Method::POST,
        "passkeys/register/start",
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let options = &r.json()["options"]["publicKey"];
    assert_eq!(options["rp"]["id"], "example.com");
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert!(!r.json()["ticket"].as_str().unwrap().is_empty());
    // A made-up credential does not verify; a ticket from another session is refused.
    let ticket = r.json()["ticket"].as_str().unwrap().to_owned();
    let (other, _) = login(&t, "alice", b"pw", "other").await;
    let finish = json!({"ticket": ticket, "credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}}});
    for session in [&token, &other] {
        let r = with_session(
            &t,
            Method::POST,
            "passkeys/register/finish",
            session,
            Some(finish.clone()),
            None,
        )
        .await;
        refused(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = with_session(&t, Method::GET, "passkeys", &token, None, None).await;
    assert_eq!(r.json()["passkeys"], json!([]));

    let r = t
        .call(
            Method::POST,
            &format!("{AUTH}/passkeys/login/start"),
            Some(json!({"account": "alice"})),
        )
        .await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_login");

    // Turned off again: the relying party goes.
    let r = t.set_settings(json!({"passkey_rp_id": ""})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["passkeys"], Value::Null);
}

/// A registration start for `account` from `peer`, optionally with a device token.
async fn register_start_from(
    t: &TestNode,
    account: &str,
    peer: &str,
    device: Option<&str>,
) -> Reply {
    let (_, request) = client::start_registration(b"guess").unwrap();
    let body = json!({"account": account, "registration_request": request, "device_token": device});
    post_from(t, "register/start", body, peer, None).await
}

/// `register/start` for an existing id answers with the account's OPRF evaluation, as
/// `login/start` does: it is held to the same per-account limit, whatever the address, so it
/// is no way around the login limit (60 of 60 answers from 6 addresses got through before).
#[tokio::test]
async fn registration_starts_are_no_password_oracle_beyond_the_login_limit() {
    let limits = AuthLimits {
        login_per_ip: 1000,
        register_per_ip: 1000,
        ..AuthLimits::default()
    };
    let t = start_full(Limits::default(), |_| {}, &limits).await;
    register(&t, "alice", b"pw").await;
    let (owner, _) = login(&t, "alice", b"pw", "").await;
    let mut answered = 0;
    for peer in 1..=6 {
        for _ in 0..10 {
            let r = register_start_from(&t, "alice", &format!("192.0.2.{peer}"), None).await;
            match r.status {
                StatusCode::OK => answered += 1,
                _ => refused(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            }
        }
    }
    // The registration and the login above used two; starts of both kinds share the rest.
    assert!(
        answered <= 8,
        "{answered} OPRF answers for one account in a minute"
    );
    let r = login_start_from(&t, "alice", "198.51.100.1", None).await;
    refused(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // The owner's device (its token from a login) has a limit of its own: a password change
    // still works. A token another node's zone issued is a stranger's.
    let r = register_start_from(&t, "alice", "192.0.2.1", Some(&owner.device)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let (elsewhere, _) = {
        let t2 = start(Limits::default()).await;
        register(&t2, "alice", b"pw").await;
        login(&t2, "alice", b"pw", "").await
    };
    let r = register_start_from(&t, "alice", "192.0.2.1", Some(&elsewhere.device)).await;
    refused(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

/// A login start for `account` from `peer` with a device token.
async fn device_login_start(t: &TestNode, account: &str, peer: &str, device: &str) -> Reply {
    let (_, request) = client::start_login(b"pw").unwrap();
    let body = json!({"account": account, "start_login_request": request, "device_token": device});
    post_from(t, "login/start", body, peer, None).await
}

/// Strangers share the account's login limit; a device that logged in before has its own
/// (OWASP's device cookies), so 200 attempts by a stranger do not lock the owner out. A device
/// token of another account, of another zone's secrets or forged counts for nothing.
#[tokio::test]
async fn a_strangers_attempts_do_not_lock_the_owners_device_out() {
    let t = start(Limits::default()).await;
    register(&t, "alice", b"pw").await;
    register(&t, "bob", b"pw").await;
    let (alice, _) = login(&t, "alice", b"pw", "laptop").await;
    let (bob, _) = login(&t, "bob", b"pw", "").await;
    let mut refused_count = 0;
    for i in 0..200 {
        let r = login_start_from(&t, "alice", &format!("203.0.113.{}", i % 250), None).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused_count += 1;
        }
    }
    assert!(
        refused_count >= 190,
        "the stranger got {} tries",
        200 - refused_count
    );
    // The stranger's bucket is empty; the owner's device logs in, from the same address.
    for peer in ["203.0.113.1", "192.0.2.50"] {
        let r = device_login_start(&t, "alice", peer, &alice.device).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    }
    // The whole login, and the new device token keeps the device.
    let (state, request) = client::start_login(b"pw").unwrap();
    let body =
        json!({"account": "alice", "start_login_request": request, "device_token": alice.device});
    let started = t
        .call(Method::POST, &format!("{AUTH}/login/start"), Some(body))
        .await;
    assert_eq!(started.status, StatusCode::OK);
    let done = state
        .finish(b"pw", started.json()["login_response"].as_str().unwrap())
        .unwrap();
    let body = json!({"login_ticket": started.json()["login_ticket"], "finish_login_request": done.message,
        "device_token": alice.device});
    let r = t
        .call(Method::POST, &format!("{AUTH}/login/finish"), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let renewed = r.json()["device_token"].as_str().unwrap().to_owned();
    assert_ne!(renewed, alice.device);
    // Same device, same bucket: its limit (10 a minute) was partly used above.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            device_login_start(&t, "alice", "192.0.2.51", &renewed)
                .await
                .status,
        );
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "one bucket per device"
    );
    // Bob's device token, or garbage, is a stranger's for alice.
    for token in [bob.device.as_str(), "AAAA", ""] {
        let r = device_login_start(&t, "alice", "192.0.2.52", token).await;
        refused(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
}

/// What cannot be undone needs a step-up of the session: from its login, or from a password
/// login proved again for it (`auth/step-up`), which opens no session. A wrong password, a
/// login of another account and another session's step-up are refused.
#[tokio::test]
async fn what_cannot_be_undone_needs_a_fresh_proof() {
    let t = start(Limits::default()).await;
    register(&t, "alice", b"pw").await;
    register(&t, "bob", b"pw").await;
    let (stolen, _) = login(&t, "alice", b"pw", "phone").await;
    let (other, _) = login(&t, "alice", b"pw", "laptop").await;
    let put = Some(json!({"data": "AAAA"}));
    let r = with_session(&t, Method::PUT, "envelopes/vault", &stolen, put, None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "everyday writes need the session only"
    );
    let sessions = with_session(&t, Method::GET, "sessions", &stolen, None, None).await;
    let other_id = sessions.json()["sessions"][1]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = registration_record(&t, "alice", b"attacker's").await;
    let new_password =
        json!({"registration_record": record.message, "revoke_other_sessions": true});
    let attempts = [
        (
            Method::POST,
            "password".to_owned(),
            Some(new_password.clone()),
            None,
        ),
        (Method::POST, "logout-all".to_owned(), None, None),
        (Method::DELETE, format!("sessions/{other_id}"), None, None),
        (
            Method::DELETE,
            "envelopes/vault".to_owned(),
            None,
            Some("\"1\""),
        ),
        (Method::DELETE, "account".to_owned(), None, None),
        (
            Method::POST,
            "passkeys/register/start".to_owned(),
            None,
            None,
        ),
        (Method::DELETE, "passkeys/AAAA".to_owned(), None, None),
    ];
    for (method, path, body, if_match) in &attempts {
        for step_up in [None, Some(other.step_up.as_str()), Some("AAAA")] {
            let r = session_call(
                &t,
                method.clone(),
                path,
                &stolen,
                step_up,
                body.clone(),
                *if_match,
            )
            .await;
            refused(&r, StatusCode::FORBIDDEN, "step_up_required");
        }
    }
    // Nothing changed: both sessions live, the password and the envelope as they were.
    let r = with_session(&t, Method::GET, "sessions", &other, None, None).await;
    assert_eq!(r.json()["sessions"].as_array().unwrap().len(), 2);
    login(&t, "alice", b"pw", "").await;
    // Its own session it may always end.
    let stolen_id = sessions.json()["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sessions.json()["sessions"][0]["current"], true);

    // A step-up from a password login proved for the session.
    let step_up = |account: &'static str, password: &'static [u8], session: Signed| {
        let t = &t;
        async move {
            let (state, started) = login_start(t, account, password).await;
            let message = match state.finish(password, started["login_response"].as_str().unwrap())
            {
                Ok(done) => done.message,
                Err(_) => client::start_login(b"x").unwrap().1,
            };
            let body =
                json!({"login_ticket": started["login_ticket"], "finish_login_request": message});
            with_session(t, Method::POST, "step-up", &session, Some(body), None).await
        }
    };
    let r = step_up("alice", b"wrong", other.clone()).await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_login");
    let r = step_up("bob", b"pw", other.clone()).await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_login");
    let r = step_up("alice", b"pw", other.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let fresh = Signed {
        step_up: r.json()["step_up"].as_str().unwrap().to_owned(),
        ..other.clone()
    };
    // One login proves one step-up: the same finished login again is refused.
    let (state, started) = login_start(&t, "alice", b"pw").await;
    let done = state
        .finish(b"pw", started["login_response"].as_str().unwrap())
        .unwrap();
    let body =
        json!({"login_ticket": started["login_ticket"], "finish_login_request": done.message});
    let r = with_session(
        &t,
        Method::POST,
        "step-up",
        &other,
        Some(body.clone()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = with_session(&t, Method::POST, "step-up", &other, Some(body), None).await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_login");
    let sessions_before = with_session(&t, Method::GET, "sessions", &other, None, None).await;
    assert_eq!(
        sessions_before.json()["sessions"].as_array().unwrap().len(),
        3,
        "no session opened"
    );
    let r = stepped_up(
        &t,
        Method::DELETE,
        &format!("sessions/{stolen_id}"),
        &fresh,
        None,
        None,
    )
    .await;
    assert_eq!(r.json()["revoked"], 1);
    let r = with_session(&t, Method::GET, "sessions", &stolen, None, None).await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_session");
    let r = stepped_up(
        &t,
        Method::DELETE,
        "envelopes/vault",
        &fresh,
        None,
        Some("\"1\""),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // "Log out everywhere" naming a passkey the account does not have changes nothing.
    let body = Some(json!({"remove_passkeys": ["AAAA"]}));
    let r = stepped_up(&t, Method::POST, "logout-all", &fresh, body, None).await;
    refused(&r, StatusCode::NOT_FOUND, "unknown_passkey");
    let r = stepped_up(&t, Method::POST, "logout-all", &fresh, None, None).await;
    assert_eq!(r.json(), json!({"revoked": 2, "passkeys": []}));
    let r = with_session(&t, Method::GET, "sessions", &other, None, None).await;
    refused(&r, StatusCode::UNAUTHORIZED, "invalid_session");
}

async fn zone(t: &TestNode) -> Value {
    t.admin(Method::GET, "/v1/admin/zones/demo").await.json()
}

async fn set(t: &TestNode, change: Value) -> Value {
    let r = t
        .admin_json(Method::PUT, "/v1/admin/zones/demo/registration", change)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    r.json()
}

/// Registration with an invite code (or none).
async fn register_with(t: &TestNode, account: &str, invite: Option<&str>) -> Reply {
    let done = registration_record(t, account, b"pw").await;
    let body = json!({"account": account, "registration_record": done.message, "invite": invite});
    t.call(Method::POST, &format!("{AUTH}/register/finish"), Some(body))
        .await
}

/// Accounts cannot fill the replicated state: a zone's registration is `open`, `invite` (one-
/// time codes an administrator creates) or `closed`; its accounts and their envelope bytes
/// are capped and counted in its usage; envelope writes are rate-limited per account.
#[tokio::test]
async fn registration_policy_invites_and_caps_bound_what_accounts_keep() {
    let limits = AuthLimits {
        register_per_ip: 1000,
        envelope_writes_per_account: 4,
        ..AuthLimits::default()
    };
    let t = start_full(Limits::default(), |_| {}, &limits).await;
    let z = zone(&t).await;
    assert_eq!(
        z["registration"],
        json!({"policy": "open", "max_accounts": 100_000, "max_envelope_bytes": 1u64 << 30})
    );
    assert_eq!(z["accounts"], json!({"accounts": 0, "envelope_bytes": 0}));
    register(&t, "alice", b"pw").await;

    // The account cap.
    set(&t, json!({"max_accounts": 2})).await;
    assert_eq!(
        register_with(&t, "bob", None).await.status,
        StatusCode::CREATED
    );
    let r = register_with(&t, "carol", None).await;
    refused(&r, StatusCode::FORBIDDEN, "quota_exceeded");
    assert_eq!(zone(&t).await["accounts"]["accounts"], 2);

    // Closed: no new accounts, but an existing one can still change its password (the
    // registration start answers).
    set(&t, json!({"policy": "closed", "max_accounts": 100})).await;
    let r = register_with(&t, "dave", None).await;
    refused(&r, StatusCode::FORBIDDEN, "registration_closed");
    let r = register_with(&t, "alice", None).await;
    refused(&r, StatusCode::FORBIDDEN, "registration_closed");
    registration_record(&t, "alice", b"new").await;

    // Invite: a one-time code from the administrator.
    set(&t, json!({"policy": "invite"})).await;
    let r = register_with(&t, "erin", None).await;
    refused(&r, StatusCode::FORBIDDEN, "invalid_invite");
    for bad in [
        json!({"count": 0}),
        json!({"count": 1001}),
        json!({"count": 1, "ttl_secs": 0}),
    ] {
        let r = t
            .admin_json(Method::POST, "/v1/admin/zones/demo/invites", bad.clone())
            .await;
        refused(&r, StatusCode::BAD_REQUEST, "bad_request");
    }
    let r = t
        .admin_json(
            Method::POST,
            "/v1/admin/zones/demo/invites",
            json!({"count": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    let codes: Vec<String> = serde_json::from_value(r.json()["codes"].clone()).unwrap();
    assert_eq!(codes.len(), 2);
    let r = register_with(&t, "erin", Some("not-a-code")).await;
    refused(&r, StatusCode::FORBIDDEN, "invalid_invite");
    // Without a code, an existing id looks like any other: no existence oracle.
    let r = register_with(&t, "alice", None).await;
    refused(&r, StatusCode::FORBIDDEN, "invalid_invite");
    // With a code, an existing id is 409 and the code is not used up.
    let r = register_with(&t, "alice", Some(&codes[0])).await;
    refused(&r, StatusCode::CONFLICT, "account_exists");
    assert_eq!(
        register_with(&t, "erin", Some(&codes[0])).await.status,
        StatusCode::CREATED
    );
    let r = register_with(&t, "frank", Some(&codes[0])).await;
    refused(&r, StatusCode::FORBIDDEN, "invalid_invite");
    assert_eq!(
        register_with(&t, "frank", Some(&codes[1])).await.status,
        StatusCode::CREATED
    );
    assert_eq!(zone(&t).await["accounts"]["accounts"], 4);

    // The zone's envelope bytes.
    set(&t, json!({"max_envelope_bytes": 100_000})).await;
    let (alice, _) = login(&t, "alice", b"pw", "").await;
    let big = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [7u8; 60_000],
    );
    let small = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [7u8; 30_000],
    );
    let put = |name: &'static str, data: &String, if_match: Option<&'static str>| {
        let (t, alice, body) = (&t, alice.clone(), json!({ "data": data }));
        async move {
            with_session(
                t,
                Method::PUT,
                &format!("envelopes/{name}"),
                &alice,
                Some(body),
                if_match,
            )
            .await
        }
    };
    assert_eq!(put("a", &big, None).await.status, StatusCode::OK);
    let r = put("b", &big, None).await;
    refused(&r, StatusCode::FORBIDDEN, "quota_exceeded");
    assert_eq!(put("b", &small, None).await.status, StatusCode::OK);
    assert_eq!(zone(&t).await["accounts"]["envelope_bytes"], 90_000);
    // Replacing with fewer bytes frees them; deleting the account frees the rest.
    assert_eq!(put("a", &small, Some("\"1\"")).await.status, StatusCode::OK);
    assert_eq!(zone(&t).await["accounts"]["envelope_bytes"], 60_000);
    // Envelope writes of one account: four a minute here (a refused one counts too).
    let r = put("c", &small, None).await;
    refused(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let r = stepped_up(&t, Method::DELETE, "account", &alice, None, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        zone(&t).await["accounts"],
        json!({"accounts": 3, "envelope_bytes": 0})
    );
}

/// An account holds 20 envelopes: one for each of its 16 passkeys, the vault, the password's
/// key and two to spare; the 21st is refused and nothing changes.
#[tokio::test]
async fn an_account_holds_an_envelope_for_each_passkey_and_its_vault() {
    let t = start(Limits::default()).await;
    register(&t, "alice", b"pw").await;
    let (alice, _) = login(&t, "alice", b"pw", "").await;
    let body = || Some(json!({"data": "AAAA"}));
    for i in 0..20 {
        let path = format!("envelopes/e{i}");
        let r = with_session(&t, Method::PUT, &path, &alice, body(), None).await;
        assert_eq!(r.status, StatusCode::OK, "envelope {i}: {:?}", r.json());
    }
    let r = with_session(&t, Method::PUT, "envelopes/e20", &alice, body(), None).await;
    refused(&r, StatusCode::FORBIDDEN, "quota_exceeded");
    let r = with_session(&t, Method::GET, "envelopes", &alice, None, None).await;
    assert_eq!(r.json()["envelopes"].as_array().unwrap().len(), 20);
}
