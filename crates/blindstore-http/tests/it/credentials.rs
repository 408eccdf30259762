//! The cluster's admin credentials over HTTP: the node's own token until the first rotation,
//! then only the cluster's admin token (and the metrics token for `/v1/metrics` alone).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use blindstore_cluster::Limits;

use crate::support::{start, Reply, TestNode, TOKEN};

async fn with_token(node: &TestNode, method: Method, uri: &str, token: &str) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    node.send(request).await
}

async fn rotate(node: &TestNode, token: &str, credential: &str) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/admin/cluster/credentials/rotate")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(format!(r#"{{"credential":"{credential}"}}"#)))
        .unwrap();
    node.send(request).await
}

#[tokio::test]
async fn rotating_the_cluster_credentials_retires_the_nodes_own_token() {
    let node = start(Limits::default()).await;
    // A new cluster moves to its build's version within a second of electing itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while node.call(Method::GET, "/v1/health", None).await.json()["cluster_version"]
        .as_u64()
        .unwrap_or(0)
        < 3
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the version moves to 3 or more"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let zones = "/v1/admin/zones";
    assert_eq!(
        with_token(&node, Method::GET, zones, TOKEN).await.status,
        StatusCode::OK
    );
    let r = rotate(&node, TOKEN, "root").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json());

    // The first rotation, of the metrics token, makes the admin credential too.
    let r = rotate(&node, TOKEN, "metrics").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let admin = r.json()["admin_token"].as_str().unwrap().to_owned();
    let metrics = r.json()["metrics_token"].as_str().unwrap().to_owned();
    let status = |r: Reply| r.status;
    assert_eq!(
        status(with_token(&node, Method::GET, zones, TOKEN).await),
        StatusCode::UNAUTHORIZED,
        "the node's own token is retired"
    );
    assert_eq!(
        status(with_token(&node, Method::GET, zones, &admin).await),
        StatusCode::OK
    );
    assert_eq!(
        status(with_token(&node, Method::GET, "/v1/metrics", &metrics).await),
        StatusCode::OK
    );
    assert_eq!(
        status(with_token(&node, Method::GET, zones, &metrics).await),
        StatusCode::UNAUTHORIZED,
        "the metrics token reads metrics only"
    );
    assert_eq!(
        status(rotate(&node, &metrics, "admin").await),
        StatusCode::UNAUTHORIZED
    );

    // Rotating the admin token keeps the metrics token.
    let r = rotate(&node, &admin, "admin").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert!(r.json()["metrics_token"].is_null());
    let new_admin = r.json()["admin_token"].as_str().unwrap().to_owned();
    assert_ne!(new_admin, admin);
    assert_eq!(
        status(with_token(&node, Method::GET, zones, &admin).await),
        StatusCode::UNAUTHORIZED,
        "the previous admin token is retired"
    );
    assert_eq!(
        status(with_token(&node, Method::GET, zones, &new_admin).await),
        StatusCode::OK
    );
    assert_eq!(
        status(with_token(&node, Method::GET, "/v1/metrics", &metrics).await),
        StatusCode::OK
    );
}
