use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use blindstore_cluster::{Limits, Node, NodeConfig};
use blindstore_http::{router, AppState, AuthLimits};
use blindstore_types::ZoneId;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const TOKEN: &str = "test-admin-token-0123456789";

pub struct TestNode {
    pub app: Router,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

pub async fn start(limits: Limits) -> TestNode {
    start_with(limits, |_| {}).await
}

/// Like [`start`], with the node's configuration changed by `tweak` first.
pub async fn start_with(limits: Limits, tweak: impl FnOnce(&mut NodeConfig)) -> TestNode {
    start_full(limits, tweak, &AuthLimits::default()).await
}

/// Like [`start_with`], with these rate limits on account endpoints.
pub async fn start_full(
    limits: Limits,
    tweak: impl FnOnce(&mut NodeConfig),
    auth_limits: &AuthLimits,
) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig {
        http_addr: "127.0.0.1:0".into(),
        limits,
        ..NodeConfig::small(dir.path(), "test-cluster-secret-0123456789")
    };
    tweak(&mut config);
    let node = Node::start(config, None).await.unwrap();
    node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
    node.zones()
        .create_zone(ZoneId::new("demo").unwrap())
        .await
        .unwrap();
    let state = AppState::new(node.clone(), TOKEN, auth_limits);
    let app = router(state.clone());
    TestNode {
        app,
        state,
        _dir: dir,
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The error code of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl TestNode {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&v).unwrap())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    /// An admin request with a JSON body.
    pub async fn admin_json(&self, method: Method, uri: &str, body: Value) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    /// `PUT /v1/admin/zones/demo/settings` with `change`.
    pub async fn set_settings(&self, change: Value) -> Reply {
        self.admin_json(Method::PUT, "/v1/admin/zones/demo/settings", change)
            .await
    }

    pub async fn admin(&self, method: Method, uri: &str) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    pub async fn put_raw(&self, uri: &str, bytes: Vec<u8>) -> Reply {
        let request = Request::builder()
            .method(Method::PUT)
            .uri(uri)
            .body(Body::from(bytes))
            .unwrap();
        self.send(request).await
    }
}
