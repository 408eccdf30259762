//! Serving the router over TCP with the limits a public server needs, so that one client can
//! neither hold the server open nor flood it:
//!
//! - a TLS handshake must finish within `header_read_timeout`; the protocol is then the one
//!   ALPN chose (no sniffing of the first bytes, which had no deadline);
//! - the first request must arrive within `header_read_timeout` of the connection (HTTP/1.1:
//!   its headers, by hyper's header timer, which also closes a keep-alive connection idle for
//!   that long; HTTP/2: its first stream, by the idle watch below), and a request body within
//!   `body_read_timeout`;
//! - a connection with no request in flight (a streaming answer counts until its body ends)
//!   for `idle_timeout` is closed (HTTP/2: GOAWAY); HTTP/2 connections are pinged every
//!   20 s and closed when a ping goes unanswered for 20 s;
//! - a whole request is answered within `request_timeout` (503: `unavailable` for reads,
//!   `outcome_unknown` for writes, which may have happened);
//! - at most `max_connections` connections are open: beyond, a new one is answered 503 and
//!   closed at once; at most `max_connections_per_ip` of them from one client address (IPv6:
//!   one /64; peers in `trusted_proxies` are exempt): beyond, 429 (at most 64 such answers at
//!   a time; more are closed unanswered);
//! - at most `max_requests` requests are handled at a time: beyond, 503 at once (load
//!   shedding), never an unbounded queue.
//!
//! Shutdown is graceful: new connections stop, requests in flight finish (the caller bounds
//! how long that may take).
//!
//! With [`Tls`], connections are TLS and speak HTTP/2 or HTTP/1.1 as ALPN decides; without,
//! plain HTTP/1.1.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::http::Method;
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use blindstore_types::api::ErrorCode;

use crate::{error_response, OUTCOME_UNKNOWN};

/// Whether a request came over TLS (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secure(pub bool);

/// Connections over a limit being answered at once, at most.
const MAX_REFUSALS: usize = 64;
/// HTTP/2: a ping this often, and the connection closed if one is not answered this soon.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// How often a connection's idle watch looks.
const IDLE_TICK: Duration = Duration::from_millis(500);

/// The limits of the HTTP server. Defaults are documented in docs/operations.md.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64).
    pub max_connections_per_ip: usize,
    /// Peers not held to `max_connections_per_ip` (gateways, load balancers).
    pub trusted_proxies: Vec<IpNet>,
    pub max_requests: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_ip: 64,
            trusted_proxies: Vec::new(),
            max_requests: 256,
        }
    }
}

/// The key a client address is limited under: IPv4 as is, IPv6 by its /64 (one subscriber's
/// usual allocation); IPv4-mapped IPv6 addresses count as IPv4.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
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

/// An accepted connection's slots under `max_connections` and its address's share, counted
/// in the `blindstore_http_open_connections` gauge while it is open.
struct OpenConnection {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _share: Option<Share>,
}

impl OpenConnection {
    fn new(permit: tokio::sync::OwnedSemaphorePermit, share: Option<Share>) -> Self {
        metrics::gauge!("blindstore_http_open_connections").increment(1.0);
        Self {
            _permit: permit,
            _share: share,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("blindstore_http_open_connections").decrement(1.0);
    }
}

/// Open connections per client address.
#[derive(Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's share.
struct Share {
    key: IpAddr,
    table: Arc<PerAddress>,
}

impl PerAddress {
    fn join(self: &Arc<Self>, key: IpAddr, limit: usize) -> Option<Share> {
        let mut open = self.open.lock().expect("connections per address");
        let n = open.entry(key).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Share {
            key,
            table: self.clone(),
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().expect("connections per address");
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What a connection is doing: requests in flight (until their answer's body ends) and when
/// it last started or finished one.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds since `opened` of the last start or end of a request.
    last_ms: AtomicU64,
}

/// A request in flight on its connection, until dropped with the answer's body.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    /// Completes once the connection has been idle too long: no first request within
    /// `first`, or no request in flight for `idle` after one.
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            tokio::time::sleep(IDLE_TICK).await;
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                continue;
            }
            let limit = if self.requests.load(Ordering::Relaxed) == 0 {
                first
            } else {
                idle
            };
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if self.opened.elapsed().saturating_sub(last) >= limit {
                return;
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A hyper connection that can be asked to finish.
trait GracefulConnection: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

// The two impls' bounds are hyper's own for each connection type, repeated on purpose: hyper
// has no trait that names them.
impl<I, S, B> GracefulConnection for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::Connection::graceful_shutdown(self)
    }
}

impl<I, S, B, E> GracefulConnection for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self)
    }
}

/// Runs `connection` until it ends, asking it to finish when it has been idle too long or the
/// server stops.
async fn drive<C: GracefulConnection>(
    connection: C,
    activity: &Activity,
    limits: &ServerLimits,
    mut stop: watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) {
    tokio::pin!(connection);
    let idle = activity.idle(limits.header_read_timeout, limits.idle_timeout);
    let idled = tokio::select! {
        ended = connection.as_mut() => {
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = idle => true,
        _ = stop.wait_for(|stop| *stop) => false,
    };
    connection.as_mut().graceful_shutdown();
    if idled {
        // Nothing is in flight: a peer that does not play its part in a graceful close (an
        // HTTP/2 client that never answers the GOAWAY's ping) is cut off soon after.
        tracing::debug!(%peer, "closing an idle connection");
        let _ = tokio::time::timeout(limits.header_read_timeout, connection).await;
    } else if let Err(e) = connection.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
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
    let limits = Arc::new(limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    // Refusals are bounded too: beyond this many at once, an extra connection is just closed.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let (stop, stopping) = watch::channel(false);
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
        let refuse_with = |stream, refusal: Refusal| {
            if let Ok(refusing) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, refusal).await;
                    drop(refusing);
                });
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection limit reached; refusing");
            refuse_with(stream, Refusal::TooMany);
            continue;
        };
        let ip = peer.ip().to_canonical();
        let share = if limits.trusted_proxies.iter().any(|net| net.contains(&ip)) {
            None
        } else {
            match per_address.join(client_key(ip), limits.max_connections_per_ip) {
                Some(share) => Some(share),
                None => {
                    tracing::debug!(%peer, "connection limit of the address reached; refusing");
                    refuse_with(stream, Refusal::TooManyFromAddress);
                    continue;
                }
            }
        };
        let open = OpenConnection::new(permit, share);
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        // Handlers that need the peer (rate limits) find it as axum's `ConnectInfo`, and
        // whether the connection is TLS as `Secure`. Each request counts as in flight until
        // its answer's body has been sent (or dropped).
        let secure = Secure(tls.is_some());
        let tracked = activity.clone();
        let app = app
            .clone()
            .map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                let extensions = request.extensions_mut();
                extensions.insert(axum::extract::ConnectInfo(peer));
                extensions.insert(secure);
                request
            })
            .map_future(move |answer| {
                let in_flight = tracked.start();
                async move {
                    answer.await.map(|response: axum::response::Response| {
                        response.map(|body| {
                            axum::body::Body::new(body.map_frame(move |frame| {
                                let _ = &in_flight;
                                frame
                            }))
                        })
                    })
                }
            });
        let service = TowerToHyperService::new(app);
        let limits = limits.clone();
        let stop = stopping.clone();
        let tls = tls.as_ref().map(|tls| tls.acceptor());
        tokio::spawn(async move {
            let _open = open;
            let Some(acceptor) = tls else {
                // HTTP/1.1: hyper's header timer runs from the moment the connection is
                // accepted, so a socket that never sends a byte is closed too.
                let connection = http1(&limits).serve_connection(TokioIo::new(stream), service);
                drive(connection, &activity, &limits, stop, peer).await;
                return;
            };
            let handshake =
                tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
            let stream = match handshake.await {
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
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder
                    .timer(TokioTimer::new())
                    .keep_alive_interval(H2_KEEP_ALIVE)
                    .keep_alive_timeout(H2_KEEP_ALIVE);
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                drive(connection, &activity, &limits, stop, peer).await;
            } else {
                let connection = http1(&limits).serve_connection(TokioIo::new(stream), service);
                drive(connection, &activity, &limits, stop, peer).await;
            }
        });
    }
    drop(listener);
    // Every connection finishes what it has in flight; the last one gives back the last slot.
    let _ = stop.send(true);
    let _ = connections
        .acquire_many(limits.max_connections as u32)
        .await;
}

fn http1(limits: &ServerLimits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
}

/// Why a connection is refused at once.
#[derive(Clone, Copy)]
enum Refusal {
    TooMany,
    TooManyFromAddress,
}

/// Answers a connection over a limit (503 for the server's, 429 for its address's) and closes
/// it.
async fn refuse(mut stream: impl AsyncRead + AsyncWrite + Unpin, refusal: Refusal) {
    let (status, code, message) = match refusal {
        Refusal::TooMany => (
            "503 Service Unavailable",
            ErrorCode::Unavailable,
            "too many open connections; retry later",
        ),
        Refusal::TooManyFromAddress => (
            "429 Too Many Requests",
            ErrorCode::RateLimited,
            "too many open connections from your address; close some or retry later",
        ),
    };
    let body = serde_json::to_string(&blindstore_types::api::ErrorBody::new(code, message))
        .expect("an error body serialises");
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
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
