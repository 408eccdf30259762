//! Serving the router over TCP with the limits a public server needs, so that one client can
//! neither hold the server open nor flood it:
//!
//! - a connection must finish sending its request headers within `header_read_timeout`
//!   (hyper's header timer; also a connection that sends nothing, and an idle keep-alive one),
//!   and a request body must arrive within `body_read_timeout`;
//! - a whole request is answered within `request_timeout` (503: `unavailable` for reads,
//!   `outcome_unknown` for writes, which may have happened);
//! - at most `max_connections` connections are open: beyond, a new one is answered 503 and
//!   closed at once (at most 64 such answers at a time; more are closed unanswered);
//! - at most `max_requests` requests are handled at a time: beyond, 503 at once (load
//!   shedding), never an unbounded queue.
//!
//! Shutdown is graceful: new connections stop, requests in flight finish (the caller bounds
//! how long that may take).
//!
//! With [`Tls`], connections are TLS (the handshake within `header_read_timeout`) and speak
//! HTTP/2 or HTTP/1.1 as ALPN decides; without, plain HTTP/1.1.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::http::Method;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use blindstore_types::api::ErrorCode;

use crate::{error_response, OUTCOME_UNKNOWN};

/// Whether a request came over TLS (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secure(pub bool);

/// Connections over the limit being answered 503 at once, at most.
const MAX_REFUSALS: usize = 64;

/// The limits of the HTTP server. Defaults are documented in docs/operations.md.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_requests: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_requests: 256,
        }
    }
}

/// `router` with the per-request limits: load shedding above `max_requests` in flight, the
/// request deadline and the body deadline. Errors of these layers become JSON 503s. Every
/// answer says `X-Content-Type-Options: nosniff`.
pub fn limited(router: Router, limits: &ServerLimits) -> Router {
    let layers = tower::ServiceBuilder::new()
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        ))
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_requests,
        ))
        .timeout(limits.request_timeout)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_read_timeout,
        ));
    router.layer(layers)
}

async fn overloaded(method: Method, error: tower::BoxError) -> axum::response::Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
        return error_response(
            ErrorCode::Unavailable,
            "too many requests in flight; retry later",
        );
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        let read = method == Method::GET || method == Method::HEAD;
        return if read {
            error_response(
                ErrorCode::Unavailable,
                "the request took longer than the server allows; nothing was changed",
            )
        } else {
            tracing::warn!("request deadline passed; answered 503 outcome_unknown");
            error_response(ErrorCode::OutcomeUnknown, OUTCOME_UNKNOWN)
        };
    }
    tracing::error!(error = %error, "request failed in a middleware layer");
    error_response(ErrorCode::Internal, "internal error; see the server log")
}

/// An accepted connection's slot under `max_connections`, counted in the
/// `blindstore_http_open_connections` gauge while it is open.
struct OpenConnection(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl OpenConnection {
    fn new(permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        metrics::gauge!("blindstore_http_open_connections").increment(1.0);
        Self(permit)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("blindstore_http_open_connections").decrement(1.0);
    }
}

/// Serves `app` (already [`limited`]) on `listener`, over TLS when `tls` is given, until
/// `shutdown` completes, then stops accepting and waits for open connections to finish their
/// requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: impl Future<Output = ()>,
) {
    // HTTP/1.1 only (HTTP/2 comes with TLS): hyper's header timer then runs from the moment a
    // connection is accepted, so a socket that never sends a byte is closed too.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals are bounded too: beyond this many at once, an extra connection is just closed.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached; refusing");
            if let Ok(refusing) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusing);
                });
            }
            continue;
        };
        let permit = OpenConnection::new(permit);
        let _ = stream.set_nodelay(true);
        // Handlers that need the peer (rate limits) find it as axum's `ConnectInfo`, and
        // whether the connection is TLS as `Secure`.
        let secure = Secure(tls.is_some());
        let app =
            app.clone()
                .map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    let extensions = request.extensions_mut();
                    extensions.insert(axum::extract::ConnectInfo(peer));
                    extensions.insert(secure);
                    request
                });
        let service = TowerToHyperService::new(app);
        let Some(tls) = &tls else {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
            continue;
        };
        let acceptor = tls.acceptor();
        let watcher = graceful.watcher();
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let mut auto =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            auto.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(handshake_timeout);
            auto.http2().timer(TokioTimer::new());
            let connection = auto.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers a connection over the limit with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let body = serde_json::to_string(&blindstore_types::api::ErrorBody::new(
        blindstore_types::api::ErrorCode::Unavailable,
        "too many open connections; retry later",
    ))
    .expect("an error body serialises");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    // Read the request head first (a client that gets an answer before it has asked treats it
    // as a broken connection), answer, close our side, then read what is left until the client
    // closes too (closing with data unread would reset the connection under the answer).
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}
