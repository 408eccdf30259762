//! Live updates and the web edge through the router: server-sent events for one chain and
//! many (resume with `Last-Event-ID`, the explicit end of an unservable position, the drop of
//! a slow consumer), long polls, subscriber limits, CORS per zone and security headers.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use blindstore_client::ChainWriter;
use blindstore_cluster::Limits;
use blindstore_http::{router, LiveLimits};
use blindstore_types::Hash32;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::api::{append, create_chain, entries_uri, writer};
use crate::support::{start, Reply, TestNode};

/// One server-sent event.
#[derive(Debug, Default)]
struct Sse {
    event: String,
    id: Option<String>,
    data: String,
}

/// An open event stream, read event by event.
struct Stream {
    body: Body,
    buffer: String,
}

impl Stream {
    /// The next event (comments and `retry`-only blocks skipped), or `None` when the stream
    /// ended; fails after `within`.
    async fn next(&mut self, within: Duration) -> Option<Sse> {
        tokio::time::timeout(within, async {
            loop {
                while let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = Sse::default();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event: ") {
                            event.event = v.to_owned();
                        } else if let Some(v) = line.strip_prefix("id: ") {
                            event.id = Some(v.to_owned());
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            event.data.push_str(v);
                        }
                    }
                    if !event.event.is_empty() {
                        return Some(event);
                    }
                }
                match self.body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                        }
                    }
                    _ => return None,
                }
            }
        })
        .await
        .expect("no event in time")
    }
}

fn from_ip(request: &mut Request<Body>, ip: [u8; 4]) {
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
}

async fn open(t: &TestNode, uri: &str, last_event_id: Option<&str>) -> Result<Stream, Reply> {
    let mut builder = Request::builder().uri(uri);
    if let Some(id) = last_event_id {
        builder = builder.header("last-event-id", id);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    from_ip(&mut request, [10, 0, 0, 1]);
    let response = t.app.clone().oneshot(request).await.unwrap();
    if response.status() != StatusCode::OK {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        return Err(Reply {
            status,
            headers,
            body: body.to_vec(),
        });
    }
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    Ok(Stream {
        body: response.into_body(),
        buffer: String::new(),
    })
}

fn events_uri(w: &ChainWriter) -> String {
    format!("/v1/zones/demo/chains/{}/events", w.chain_id())
}

const SOON: Duration = Duration::from_secs(5);

fn payload_of(event: &Sse) -> String {
    let entry: Value = serde_json::from_str(&event.data).unwrap();
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        entry["payload"].as_str().unwrap(),
    )
    .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn a_chain_streams_its_entries_live_and_resumes_after_the_last_event_id() {
    let t = start(Limits::default()).await;
    let w = writer(1);
    create_chain(&t, &w).await;
    let head = append(&t, &w, 0, 3, w.genesis()).await;

    let mut stream = open(&t, &format!("{}?from=1", events_uri(&w)), None)
        .await
        .unwrap();
    for i in 1..3 {
        let event = stream.next(SOON).await.unwrap();
        assert_eq!(event.event, "entry");
        assert_eq!(event.id.as_deref(), Some(i.to_string().as_str()));
        assert_eq!(payload_of(&event), format!("entry {i}"));
    }
    // A new entry arrives as it is appended.
    let head = append(&t, &w, 3, 4, head).await;
    let event = stream.next(SOON).await.unwrap();
    assert_eq!(
        (event.id.as_deref(), payload_of(&event).as_str()),
        (Some("3"), "entry 3")
    );
    drop(stream);

    // Last-Event-ID wins over `from`: the stream goes on after it, with nothing repeated.
    append(&t, &w, 4, 6, head).await;
    let mut resumed = open(&t, &format!("{}?from=0", events_uri(&w)), Some("3"))
        .await
        .unwrap();
    let ids: Vec<String> = [
        resumed.next(SOON).await.unwrap(),
        resumed.next(SOON).await.unwrap(),
    ]
    .into_iter()
    .map(|e| e.id.unwrap())
    .collect();
    assert_eq!(ids, ["4", "5"]);

    // A position past the end of the chain is said, not skipped; the stream then ends.
    let mut ahead = open(&t, &format!("{}?from=9", events_uri(&w)), None)
        .await
        .unwrap();
    let event = ahead.next(SOON).await.unwrap();
    assert_eq!(event.event, "unavailable");
    let body: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        (&body["code"], &body["from"], &body["length"]),
        (&json!("position_unavailable"), &json!(9), &json!(6))
    );
    assert!(ahead.next(SOON).await.is_none(), "the stream ends");

    // An unknown chain or a malformed Last-Event-ID is an ordinary error.
    let unknown = open(&t, &events_uri(&writer(2)), None).await.err().unwrap();
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "unknown_chain");
    let bad = open(&t, &events_uri(&w), Some("soon")).await.err().unwrap();
    assert_eq!(bad.code(), "bad_request");
}

#[tokio::test]
async fn one_stream_follows_many_chains_with_one_resume_position_each() {
    let t = start(Limits::default()).await;
    let (a, b) = (writer(1), writer(2));
    create_chain(&t, &a).await;
    create_chain(&t, &b).await;
    let head_a = append(&t, &a, 0, 2, a.genesis()).await;
    let uri = format!(
        "/v1/zones/demo/events?chains={}:1,{}",
        a.chain_id(),
        b.chain_id()
    );
    let mut stream = open(&t, &uri, None).await.unwrap();
    let first = stream.next(SOON).await.unwrap();
    let body: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(body["chain"], a.chain_id().to_hex());
    assert_eq!(body["index"], 1);
    assert_eq!(first.id.as_deref(), Some("2,0"));
    append(&t, &b, 0, 1, b.genesis()).await;
    let second = stream.next(SOON).await.unwrap();
    let body: Value = serde_json::from_str(&second.data).unwrap();
    assert_eq!(
        (body["chain"].as_str(), &body["index"]),
        (Some(b.chain_id().to_hex().as_str()), &json!(0))
    );
    assert_eq!(second.id.as_deref(), Some("2,1"));
    drop(stream);

    append(&t, &a, 2, 3, head_a).await;
    let mut resumed = open(&t, &uri, Some("2,1")).await.unwrap();
    let next = resumed.next(SOON).await.unwrap();
    assert_eq!(next.id.as_deref(), Some("3,1"));

    for bad in [
        "/v1/zones/demo/events?chains=".to_owned(),
        "/v1/zones/demo/events?chains=xyz".to_owned(),
        format!("/v1/zones/demo/events?chains={0},{0}", a.chain_id()),
        format!("/v1/zones/demo/events?chains={}:x", a.chain_id()),
    ] {
        let r = open(&t, &bad, None).await.err().unwrap();
        assert_eq!(r.code(), "bad_request", "{bad}");
    }
    let r = open(&t, &uri, Some("1")).await.err().unwrap();
    assert_eq!(r.code(), "bad_request", "one position per chain");
}

#[tokio::test]
async fn a_long_poll_answers_when_the_entry_arrives_or_empty_at_the_deadline() {
    let t = start(Limits::default()).await;
    let w = writer(1);
    create_chain(&t, &w).await;
    let head = append(&t, &w, 0, 1, w.genesis()).await;

    // An existing entry: at once.
    let r = t
        .call(
            Method::GET,
            &format!("{}?from=0&wait=30s", entries_uri(&w)),
            None,
        )
        .await;
    assert_eq!(r.json()["entries"].as_array().unwrap().len(), 1);

    // A missing one: when it is appended.
    let started = std::time::Instant::now();
    let poll = {
        let app = t.app.clone();
        let uri = format!("{}?from=1&wait=20", entries_uri(&w));
        tokio::spawn(async move {
            let response = app
                .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&body).unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&t, &w, 1, 2, head).await;
    let answer = tokio::time::timeout(SOON, poll).await.unwrap().unwrap();
    assert_eq!(answer["entries"][0]["index"], 1);
    assert_eq!(answer["length"], 2);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Nothing comes: an empty answer at the deadline.
    let started = std::time::Instant::now();
    let r = t
        .call(
            Method::GET,
            &format!("{}?from=2&wait=1", entries_uri(&w)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["entries"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(900));

    for bad in ["wait=soon", "last=1&wait=1"] {
        let r = t
            .call(Method::GET, &format!("{}?{bad}", entries_uri(&w)), None)
            .await;
        assert_eq!(r.code(), "bad_request", "{bad}");
    }
}

/// A node with small live limits, its state and router.
async fn with_limits(live: LiveLimits) -> TestNode {
    let mut t = start(Limits::default()).await;
    let state = t.state.clone().with_live_limits(live);
    t.app = router(state);
    t
}

#[tokio::test]
async fn a_consumer_that_does_not_read_is_dropped_and_resumes_where_it_was() {
    let t = with_limits(LiveLimits {
        slow_consumer: Duration::from_millis(300),
        ..LiveLimits::default()
    })
    .await;
    let w = writer(1);
    create_chain(&t, &w).await;
    let mut stream = open(&t, &events_uri(&w), None).await.unwrap();
    // 60 entries while the consumer reads nothing: far more than the server queues for it.
    append(&t, &w, 0, 60, w.genesis()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut received = Vec::new();
    while let Some(event) = stream.next(SOON).await {
        received.push(event.id.unwrap().parse::<u64>().unwrap());
    }
    assert!(
        !received.is_empty() && received.len() < 60,
        "dropped after what was queued: {received:?}"
    );
    assert_eq!(received, (0..received.len() as u64).collect::<Vec<_>>());
    // Resuming from the last id it got delivers the rest, once each.
    let last = received.last().unwrap().to_string();
    let mut resumed = open(&t, &events_uri(&w), Some(&last)).await.unwrap();
    for i in received.len() as u64..60 {
        let event = resumed.next(SOON).await.unwrap();
        assert_eq!(event.id.unwrap(), i.to_string());
    }
}

#[tokio::test]
async fn subscribers_are_limited_per_address_and_freed_when_they_leave() {
    let t = with_limits(LiveLimits {
        max_subscribers_per_ip: 2,
        ..LiveLimits::default()
    })
    .await;
    let w = writer(1);
    create_chain(&t, &w).await;
    let one = open(&t, &events_uri(&w), None).await.unwrap();
    let _two = open(&t, &events_uri(&w), None).await.unwrap();
    let refused = open(&t, &events_uri(&w), None).await.err().unwrap();
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key("retry-after"));
    // Another address is not affected.
    let mut request = Request::builder()
        .uri(events_uri(&w))
        .body(Body::empty())
        .unwrap();
    from_ip(&mut request, [10, 0, 0, 2]);
    let other = t.app.clone().oneshot(request).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    // A closed stream gives its place back.
    drop(one);
    let mut freed = false;
    for _ in 0..50 {
        if open(&t, &events_uri(&w), None).await.is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed);
}

fn preflight(uri: &str, origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri(uri)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_follows_the_zone_settings_and_never_covers_admin_routes() {
    let t = start(Limits::default()).await;
    let allowed = "https://budget.example";
    let chains = "/v1/zones/demo/chains";

    // No origins configured: a preflight gets no permission.
    let r = t.send(preflight(chains, allowed)).await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));

    let settings = json!({"cors_origins": [allowed]});
    let r = t.set_settings(settings).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let bad = json!({"cors_origins": ["budget.example/"]});
    assert_eq!(t.set_settings(bad).await.code(), "bad_request");

    let r = t.send(preflight(chains, allowed)).await;
    assert!(r.status.is_success(), "{:?} {:?}", r.status, r.headers);
    assert_eq!(r.headers["access-control-allow-origin"], allowed);
    let methods = r.headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST") && methods.contains("DELETE"));
    let headers = r.headers["access-control-allow-headers"].to_str().unwrap();
    assert!(headers.contains("authorization") && headers.contains("last-event-id"));

    // Another origin gets nothing; nor does any admin route, for any origin.
    let r = t.send(preflight(chains, "https://evil.example")).await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    let r = t.send(preflight("/v1/admin/zones/demo", allowed)).await;
    assert!(
        !r.headers
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{:?}",
        r.headers
    );

    // An actual request: allowed, with the ETag readable by the page.
    let w = writer(1);
    let request = Request::builder()
        .method(Method::POST)
        .uri(chains)
        .header("origin", allowed)
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"public_key": w.public_key().to_b64()}).to_string(),
        ))
        .unwrap();
    let r = t.send(request).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["access-control-allow-origin"], allowed);
    assert!(r.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("etag"));

    // Chunks can be embedded cross-origin now, and never run as a page.
    let bytes = b"chunk".to_vec();
    let hash = Hash32::digest(&bytes).to_hex();
    let uri = format!("/v1/zones/demo/chunks/{hash}");
    assert!(t.put_raw(&uri, bytes).await.status.is_success());
    let r = t.call(Method::GET, &uri, None).await;
    assert_eq!(r.headers["content-security-policy"], "sandbox");
    assert_eq!(r.headers["cross-origin-resource-policy"], "cross-origin");

    // `*` allows any origin.
    let any = json!({"cors_origins": ["*"]});
    assert_eq!(t.set_settings(any).await.status, StatusCode::OK);
    let r = t.send(preflight(chains, "https://anyone.example")).await;
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://anyone.example"
    );
}

#[tokio::test]
async fn chunks_of_a_zone_without_cors_stay_same_origin() {
    let t = start(Limits::default()).await;
    let bytes = b"chunk".to_vec();
    let hash = Hash32::digest(&bytes).to_hex();
    let uri = format!("/v1/zones/demo/chunks/{hash}");
    assert!(t.put_raw(&uri, bytes).await.status.is_success());
    let r = t.call(Method::GET, &uri, None).await;
    assert_eq!(r.headers["cross-origin-resource-policy"], "same-origin");
    assert_eq!(r.headers["content-security-policy"], "sandbox");
}

/// This process's CPU time so far (user and system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 after the command.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // Linux reports them in USER_HZ, 100 per second on every architecture it runs on.
    Duration::from_millis(ticks * 10)
}

/// Appends wake only the subscribers of the chain appended to: with 10,000 idle subscribers of
/// one chain, 300 appends to another wake none of them (each wake-up is counted) and cost the
/// node what they cost with no subscribers (the CPU time of both runs is printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscribers_of_one_chain_cost_appends_to_another_nothing() {
    const SUBSCRIBERS: usize = 10_000;
    const APPENDS: u64 = 300;
    let t = with_limits(LiveLimits {
        max_subscribers: SUBSCRIBERS,
        max_subscribers_per_ip: SUBSCRIBERS,
        ..LiveLimits::default()
    })
    .await;
    let (idle, busy) = (writer(1), writer(2));
    create_chain(&t, &idle).await;
    create_chain(&t, &busy).await;
    let idle_head = append(&t, &idle, 0, 1, idle.genesis()).await;

    let started = (std::time::Instant::now(), cpu_time());
    let mut head = append(&t, &busy, 0, APPENDS, busy.genesis()).await;
    let (alone_wall, alone_cpu) = (started.0.elapsed(), cpu_time() - started.1);

    let mut streams = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        let mut stream = open(&t, &events_uri(&idle), None).await.unwrap();
        // Its first entry came: the subscriber has read the chain and now waits.
        assert_eq!(stream.next(SOON).await.unwrap().event, "entry");
        streams.push(stream);
    }
    let before = t.state.live_wakeups();
    let started = (std::time::Instant::now(), cpu_time());
    head = append(&t, &busy, APPENDS, 2 * APPENDS, head).await;
    let (crowded_wall, crowded_cpu) = (started.0.elapsed(), cpu_time() - started.1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        t.state.live_wakeups(),
        before,
        "appends to another chain woke idle subscribers"
    );
    println!(
        "{APPENDS} appends to another chain: {alone_wall:?} wall, {alone_cpu:?} CPU with no subscribers; \
         {crowded_wall:?} wall, {crowded_cpu:?} CPU with {SUBSCRIBERS} idle subscribers"
    );

    // An append to their chain wakes them all, and each gets the entry.
    append(&t, &idle, 1, 2, idle_head).await;
    for stream in streams.iter_mut().step_by(997) {
        let event = stream.next(SOON).await.unwrap();
        assert_eq!(event.id.as_deref(), Some("1"));
    }
    let _ = head;
}
