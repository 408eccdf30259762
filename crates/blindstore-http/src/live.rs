//! Live updates: server-sent events for one chain or many, and long polls of `entries`.
//!
//! A subscription is a task that reads what this node has applied past each chain's cursor,
//! sends it into a small bounded channel, and waits for the node's next change. Nothing is
//! buffered beyond that channel: a consumer that does not take an event within
//! `slow_consumer` is dropped, and resumes from the last id it received (`Last-Event-ID`,
//! which browsers' `EventSource` sends by itself). Cursors start from a linearizable read, so
//! a client that reconnects to another node after a failover resumes exactly where it was.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use blindstore_cluster::{Consistency, Node, NodeError, ReadEntries};
use blindstore_types::api::ErrorBody;
use blindstore_types::{ChainId, ZoneId};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;

use crate::entry_shapes::{api_entry, parse_chain_path, EntriesForm};
use crate::rate::ClientIp;
use crate::{parse_zone, ApiError, ApiPath, ApiQuery, AppState};

/// Limits of live updates (documented in README.md and docs/api.md).
#[derive(Debug, Clone)]
pub struct LiveLimits {
    /// Open event streams and waiting long polls on this node.
    pub max_subscribers: usize,
    /// Of those, from one client IP (IPv6: one /64).
    pub max_subscribers_per_ip: usize,
    /// How long an event may wait for a consumer that does not read before it is dropped.
    pub slow_consumer: Duration,
    /// A comment line this often on an idle stream, so proxies keep it open.
    pub keep_alive: Duration,
    /// The longest long poll (`wait`).
    pub max_wait: Duration,
    /// Chains one stream may follow.
    pub max_chains_per_stream: usize,
}

impl Default for LiveLimits {
    fn default() -> Self {
        Self {
            max_subscribers: 10_000,
            max_subscribers_per_ip: 64,
            slow_consumer: Duration::from_secs(30),
            keep_alive: Duration::from_secs(15),
            max_wait: Duration::from_secs(30),
            max_chains_per_stream: 32,
        }
    }
}

/// Entries read per chain per step.
const BATCH: usize = 100;
/// Events queued for one consumer.
const QUEUE: usize = 16;
/// What a browser waits before reconnecting after a stream ends (ms).
const RETRY_MS: u64 = 1_000;

/// Who is subscribed, to hold the limits.
#[derive(Default)]
pub(crate) struct Subscribers {
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// Times a subscriber was woken to look for new entries.
    wakeups: std::sync::atomic::AtomicU64,
}

/// One subscription's place; given back when dropped.
pub(crate) struct Subscription {
    registry: Arc<Subscribers>,
    ip: IpAddr,
}

impl Subscribers {
    fn join(self: &Arc<Self>, ip: IpAddr, limits: &LiveLimits) -> Result<Subscription, ApiError> {
        let ip = blindstore_web::client_key(ip);
        let mut counts = self.counts.lock().expect("subscriber counts");
        if counts.0 >= limits.max_subscribers {
            return Err(ApiError::Node(NodeError::Unavailable(
                "too many live subscribers on this node; retry later or on another node".into(),
            )));
        }
        let mine = counts.1.entry(ip).or_default();
        if *mine >= limits.max_subscribers_per_ip {
            return Err(ApiError::RateLimited(Duration::from_secs(5)));
        }
        *mine += 1;
        counts.0 += 1;
        Ok(Subscription {
            registry: self.clone(),
            ip,
        })
    }
}

impl Subscription {
    /// Counts a wake-up of this subscriber.
    fn woken(&self) {
        use std::sync::atomic::Ordering;
        self.registry.wakeups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("blindstore_live_wakeups_total").increment(1);
    }
}

impl Subscribers {
    /// Times subscribers were woken to look for new entries.
    pub(crate) fn wakeups(&self) -> u64 {
        self.wakeups.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut counts = self.registry.counts.lock().expect("subscriber counts");
        counts.0 -= 1;
        if let Some(n) = counts.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.1.remove(&self.ip);
            }
        }
    }
}

/// `?from=N` for one chain's stream.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChainEventsQuery {
    /// The first index to send (default 0). `Last-Event-ID: N` (the last index received)
    /// takes precedence: the stream resumes at N + 1.
    from: Option<u64>,
}

/// `?chains=ID[:FROM],...` for a stream of many chains.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ZoneEventsQuery {
    /// Chain ids (lowercase hex), comma-separated, each optionally followed by `:FROM`, the
    /// first index to send (default 0). At most 32. `Last-Event-ID` (an event id of this
    /// stream: the next index of every chain, in this order, comma-separated) takes
    /// precedence.
    chains: String,
}

/// Follows one chain as server-sent events: `event: entry`, `id: <index>`, the entry as
/// `entries` returns it. Resumes after `Last-Event-ID`. If the resume position is past the
/// chain's end, one `event: unavailable` says so and the stream ends; when the node shuts
/// down, `event: end`; a consumer too slow to read is dropped (reconnect to resume).
/// Comment lines keep an idle stream open.
#[utoipa::path(get, path = "/v1/zones/{zone}/chains/{chain_id}/events", tag = "live",
    params(("zone" = String, Path, description = "Zone id"), ("chain_id" = String, Path, description = "Chain id, lowercase hex"), ChainEventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last index received")),
    responses(
        (status = 200, description = "`text/event-stream`", content_type = "text/event-stream"),
        (status = 404, description = "`unknown_zone` or `unknown_chain`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many subscriptions from this address", body = ErrorBody),
        (status = 503, description = "`unavailable`: too many subscribers on this node", body = ErrorBody)))]
pub(crate) async fn chain_events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath((zone, chain)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ChainEventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (zone, chain) = parse_chain_path(&zone, &chain)?;
    let from = match last_event_id(&headers)? {
        Some(id) => id
            .parse::<u64>()
            .ok()
            .and_then(|last| last.checked_add(1))
            .ok_or_else(|| {
                ApiError::BadRequest("Last-Event-ID must be the last index received".into())
            })?,
        None => q.from.unwrap_or(0),
    };
    stream(state, ip, zone, vec![(chain, from)], false).await
}

/// Follows many chains on one connection (browsers allow few connections per origin):
/// `event: entry` with `{"chain", ...entry}`; each event's id holds the next index of every
/// chain, so `Last-Event-ID` resumes them all. Otherwise like one chain's stream.
#[utoipa::path(get, path = "/v1/zones/{zone}/events", tag = "live",
    params(("zone" = String, Path, description = "Zone id"), ZoneEventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "An event id of this stream")),
    responses(
        (status = 200, description = "`text/event-stream`", content_type = "text/event-stream"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 404, description = "`unknown_zone` or `unknown_chain`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many subscriptions from this address", body = ErrorBody),
        (status = 503, description = "`unavailable`: too many subscribers on this node", body = ErrorBody)))]
pub(crate) async fn zone_events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(zone): ApiPath<String>,
    ApiQuery(q): ApiQuery<ZoneEventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let zone = parse_zone(&zone)?;
    let mut cursors = Vec::new();
    for item in q.chains.split(',').filter(|s| !s.is_empty()) {
        let (id, from) = match item.split_once(':') {
            Some((id, from)) => (
                id,
                from.parse::<u64>()
                    .map_err(|_| ApiError::BadRequest(format!("bad position in {item:?}")))?,
            ),
            None => (item, 0),
        };
        let chain = ChainId::from_hex(id)
            .map_err(|_| ApiError::BadRequest(format!("{id:?} is not a chain id")))?;
        if cursors.iter().any(|(c, _)| *c == chain) {
            return Err(ApiError::BadRequest(format!("chain {id} is listed twice")));
        }
        cursors.push((chain, from));
    }
    let max = state.live_limits.max_chains_per_stream;
    if cursors.is_empty() || cursors.len() > max {
        return Err(ApiError::BadRequest(format!(
            "chains lists 1 to {max} chain ids"
        )));
    }
    if let Some(id) = last_event_id(&headers)? {
        let positions: Vec<u64> = id
            .split(',')
            .map(|p| p.parse::<u64>())
            .collect::<Result<_, _>>()
            .ok()
            .filter(|p: &Vec<u64>| p.len() == cursors.len())
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "Last-Event-ID is not an event id of this stream (one position per chain)"
                        .into(),
                )
            })?;
        for ((_, from), position) in cursors.iter_mut().zip(positions) {
            *from = position;
        }
    }
    stream(state, ip, zone, cursors, true).await
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| ApiError::BadRequest("Last-Event-ID is not text".into()))
        })
        .transpose()
}

async fn stream(
    state: AppState,
    ip: IpAddr,
    zone: ZoneId,
    cursors: Vec<(ChainId, u64)>,
    many: bool,
) -> Result<Response, ApiError> {
    let limits = state.live_limits.clone();
    let subscription = state.subscribers.join(ip, &limits)?;
    // Where every chain stands now, cluster-wide: a cursor past the end can never be served.
    for (chain, _) in &cursors {
        state
            .node
            .chains()
            .chain(&zone, chain, Consistency::Linearizable)
            .await?;
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(follow(
        state.node.clone(),
        zone,
        cursors,
        many,
        tx,
        limits.slow_consumer,
        subscription,
    ));
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(limits.keep_alive))
        .into_response();
    // Proxies must neither buffer nor cache the stream.
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The subscription's task: sends what is new past each cursor, then waits for the next
/// change on this node, until the consumer leaves, is too slow, or the node stops.
async fn follow(
    node: Node,
    zone: ZoneId,
    mut cursors: Vec<(ChainId, u64)>,
    many: bool,
    tx: mpsc::Sender<Event>,
    slow_consumer: Duration,
    _subscription: Subscription,
) {
    // Woken only by appends to the chains followed here (each wake is counted).
    let mut changes: Vec<_> = cursors
        .iter()
        .map(|(chain, _)| node.chains().chain_changes(&zone, chain))
        .collect();
    let mut stopping = std::pin::pin!(node.stopping());
    let retry = Event::default().retry(Duration::from_millis(RETRY_MS));
    if tx.send(retry).await.is_err() {
        return;
    }
    loop {
        changes.iter_mut().for_each(|c| c.mark_seen());
        let mut more = false;
        for i in 0..cursors.len() {
            let (chain, from) = cursors[i];
            let which = ReadEntries::From { from, limit: BATCH };
            let page = match node
                .chains()
                .entries(&zone, &chain, which, Consistency::Stale)
                .await
            {
                Ok(page) => page,
                // Gone for good: say so. Anything else (a payload's holders unreachable for a
                // moment): end the stream, and the client reconnects and resumes.
                Err(e @ (NodeError::UnknownChain | NodeError::UnknownZone)) => {
                    let event = unavailable(&chain, from, None, &e.to_string());
                    let _ = tx.send_timeout(event, slow_consumer).await;
                    return;
                }
                Err(e) => {
                    tracing::debug!(%zone, error = %e, "ending a live stream on a read error");
                    return;
                }
            };
            if from > page.chain.length {
                let event = unavailable(
                    &chain,
                    from,
                    Some(page.chain.length),
                    "the stream's position is past the end of the chain",
                );
                let _ = tx.send_timeout(event, slow_consumer).await;
                return;
            }
            more |= page.next.is_some();
            for (header, payload) in page.entries {
                let index = header.index;
                cursors[i].1 = index + 1;
                let entry = api_entry(header, payload);
                let (data, id) = if many {
                    let positions: Vec<String> =
                        cursors.iter().map(|(_, p)| p.to_string()).collect();
                    (
                        serde_json::to_string(&ChainEntry {
                            chain: chain.to_hex(),
                            entry: &entry,
                        }),
                        positions.join(","),
                    )
                } else {
                    (serde_json::to_string(&entry), index.to_string())
                };
                let event = Event::default()
                    .event("entry")
                    .id(id)
                    .data(data.expect("an entry serialises"));
                match tx.send_timeout(event, slow_consumer).await {
                    Ok(()) => {}
                    Err(SendTimeoutError::Timeout(_)) => {
                        tracing::debug!(%zone, "dropped a live consumer too slow to read");
                        return;
                    }
                    Err(SendTimeoutError::Closed(_)) => return,
                }
            }
        }
        if more {
            continue;
        }
        let any_changed =
            futures::future::select_all(changes.iter_mut().map(|c| Box::pin(c.changed())));
        tokio::select! {
            _ = any_changed => _subscription.woken(),
            _ = &mut stopping => {
                let end = Event::default().event("end").data("{\"reason\":\"shutting down\"}");
                let _ = tx.try_send(end);
                return;
            }
            _ = tx.closed() => return,
        }
    }
}

#[derive(serde::Serialize)]
struct ChainEntry<'a> {
    chain: String,
    #[serde(flatten)]
    entry: &'a blindstore_types::api::Entry,
}

fn unavailable(chain: &ChainId, from: u64, length: Option<u64>, message: &str) -> Event {
    let body = serde_json::json!({
        "code": "position_unavailable",
        "chain": chain.to_hex(),
        "from": from,
        "length": length,
        "message": message,
    });
    Event::default().event("unavailable").data(body.to_string())
}

/// A long poll of `entries?from=N&wait=...`: answers at once when entry N exists; otherwise
/// the 200 goes out now and its body when entry N is applied here or at the deadline (then
/// with no entries), so a waiting poll holds no request slot.
pub(crate) async fn long_poll(
    state: &AppState,
    ip: IpAddr,
    zone: ZoneId,
    chain: ChainId,
    (from, limit): (u64, usize),
    wait: Duration,
    form: EntriesForm,
) -> Result<Response, ApiError> {
    let which = ReadEntries::From { from, limit };
    let page = state
        .node
        .chains()
        .entries(&zone, &chain, which, Consistency::Linearizable)
        .await?;
    if !page.entries.is_empty() || from > page.chain.length {
        return Ok(form.response(page));
    }
    let subscription = state.subscribers.join(ip, &state.live_limits)?;
    let wait = wait.min(state.live_limits.max_wait);
    let node = state.node.clone();
    let body = futures::stream::once(async move {
        let _subscription = subscription;
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = node.chains().chain_changes(&zone, &chain);
        let mut stopping = std::pin::pin!(node.stopping());
        let mut page = page;
        loop {
            changes.mark_seen();
            match node
                .chains()
                .entries(&zone, &chain, which, Consistency::Stale)
                .await
            {
                Ok(now) if !now.entries.is_empty() => {
                    page = now;
                    break;
                }
                Ok(now) => page = now,
                Err(e) => {
                    tracing::debug!(error = %e, "long poll read failed; answering empty");
                    break;
                }
            }
            tokio::select! {
                _ = changes.changed() => _subscription.woken(),
                _ = tokio::time::sleep_until(deadline) => break,
                _ = &mut stopping => break,
            }
        }
        Ok::<_, Infallible>(form.body(page))
    });
    let mut response = Response::new(axum::body::Body::from_stream(body));
    let headers = response.headers_mut();
    form.set_headers(headers);
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Parses `wait`: seconds, as `30` or `30s`.
pub(crate) fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    text.strip_suffix('s')
        .unwrap_or(text)
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| ApiError::BadRequest("wait is a number of seconds, e.g. 30 or 30s".into()))
}
