//! Prometheus metrics shared by nodes and gateways: the process's recorder, the series'
//! descriptions, and the layer that counts requests.
//!
//! Series are recorded with the `metrics` crate wherever the thing happens (storage commits in
//! blindstore-storage, Raft batches in blindstore-cluster, connections here, cache lookups in
//! the gateway) and rendered by `metrics-exporter-prometheus` for `GET /v1/metrics`.
//! docs/operations.md lists every series.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: 100 µs to 10 s.
const SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Commands per Raft log entry.
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The process's recorder, installed on first use (one per process: every node in it shares
/// the series).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("blindstore_raft_batch_commands".into()),
                    BATCH,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was installed already: /v1/metrics shows only gauges"
            );
        }
        describe();
        handle
    })
}

/// The help text of each series; counters that only some requests move start at zero, so a
/// scrape shows them from the start.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "blindstore_http_requests_total",
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        "blindstore_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency until the response head, by route template and method"
    );
    describe_gauge!(
        "blindstore_http_open_connections",
        "HTTP connections open now"
    );
    describe_gauge!("blindstore_raft_term", "Raft term");
    describe_gauge!(
        "blindstore_raft_leader",
        "The leader's node id (-1: none known)"
    );
    describe_gauge!("blindstore_raft_is_leader", "1 if this node leads");
    describe_gauge!(
        "blindstore_raft_last_log_index",
        "Index of the last entry in this node's Raft log"
    );
    describe_gauge!(
        "blindstore_raft_commit_index",
        "Index of the last committed entry this node knows of"
    );
    describe_gauge!(
        "blindstore_raft_applied_index",
        "Index of the last entry applied to this node's state machine"
    );
    describe_histogram!(
        "blindstore_raft_batch_commands",
        "Commands per Raft log entry proposed by this node as leader"
    );
    describe_histogram!(
        "blindstore_storage_commit_seconds",
        Unit::Seconds,
        "Durable writes by store: raft_log (a log write and its one fdatasync), state (an applied batch's commit, not synced), state_sync (the background sync of the state), chunks (a group of chunk writes and its sync)"
    );
    describe_gauge!("blindstore_chunks_held", "Chunks stored on this node");
    describe_gauge!(
        "blindstore_chunk_bytes_held",
        Unit::Bytes,
        "Bytes of chunks stored on this node"
    );
    describe_counter!(
        "blindstore_chunk_reads_total",
        "Chunk and payload-chunk reads, by where the bytes came from (cache, local, peer, none)"
    );
    describe_gauge!(
        "blindstore_repair_backlog_chunks",
        "Chunks held here that some owner lacked at the last repair pass"
    );
    describe_counter!(
        "blindstore_cache_requests_total",
        "Chunk reads, by whether the memory cache answered (hit) or not (miss)"
    );
    describe_gauge!(
        "blindstore_cache_bytes",
        Unit::Bytes,
        "Bytes in the chunk cache, by tier (memory, disk)"
    );
    for source in ["cache", "local", "peer", "none"] {
        metrics::counter!("blindstore_chunk_reads_total", "source" => source).absolute(0);
    }
    metrics::gauge!("blindstore_http_open_connections").increment(0.0);
}

/// A request no route template matched (a gateway forwards those): labelled by the API part
/// it belongs to, never by its own path (which would make a series per chain or chunk).
fn route_class(path: &str) -> &'static str {
    if path.starts_with("/v1/admin/") {
        "/v1/admin/*"
    } else if path.starts_with("/v1/zones/") {
        "/v1/zones/*"
    } else if path.starts_with("/v1/") {
        "/v1/*"
    } else {
        "other"
    }
}

/// Counts every request by route template, method and status, with its latency.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| route_class(request.uri().path()).to_owned());
    // Methods outside the standard ones are any token a client sends: one label for them all.
    let method = match *request.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::OPTIONS
        | Method::PATCH => request.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "blindstore_http_request_duration_seconds",
        "route" => route.clone(),
        "method" => method.clone()
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "blindstore_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => status
    )
    .increment(1);
    response
}

/// The exposition of every series, as a `GET /v1/metrics` answer.
/// The standard process series, read from `/proc/self` at scrape time (Linux; nothing
/// elsewhere): `process_resident_memory_bytes`, `process_open_fds`, `process_cpu_seconds_total`
/// (user and system time, in the kernel's 100 ticks per second).
pub fn record_process() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
        if let Some(kib) = rss_kib {
            metrics::gauge!("process_resident_memory_bytes").set(kib * 1024.0);
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("process_open_fds").set(fds.count() as f64);
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces, in parentheses): utime and
        // stime are the 12th and 13th.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
            metrics::gauge!("process_cpu_seconds_total").set((user + system) / 100.0);
        }
    }
}

/// `blindstore_build_info`: 1, labelled with the build this process runs and its role. Call
/// once the recorder is installed (after the router is built).
pub fn build_info(version: &str, revision: &str, feature_level: u32, role: &'static str) {
    metrics::gauge!(
        "blindstore_build_info",
        "version" => version.to_owned(),
        "revision" => revision.to_owned(),
        "feature_level" => feature_level.to_string(),
        "role" => role
    )
    .set(1.0);
}

pub fn exposition() -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle().render(),
    )
        .into_response()
}
