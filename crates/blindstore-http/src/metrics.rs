//! Prometheus metrics: `GET /v1/metrics` (admin token), and the layer that counts requests.
//!
//! Series are recorded with the `metrics` crate wherever the thing happens (storage commits in
//! blindstore-storage, Raft batches in blindstore-cluster, connections in blindstore-web) and
//! rendered by `metrics-exporter-prometheus`. Gauges that describe state (Raft term, leader,
//! applied index, chunks held, repair backlog) are read from the node when scraped.
//! docs/operations.md lists every series.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::admin::Admin;
use crate::{ApiError, AppState};

/// Latency buckets, in seconds: 100 µs to 10 s.
const SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Commands per Raft log entry.
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The process's recorder, installed on first use (one per process: every node in it shares
/// the series).
pub(crate) fn handle() -> &'static PrometheusHandle {
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
        "LMDB write transaction commits including their fsync, by store (raft_log, state, chunks)"
    );
    describe_gauge!("blindstore_chunks_held", "Chunks stored on this node");
    describe_gauge!(
        "blindstore_chunk_bytes_held",
        Unit::Bytes,
        "Bytes of chunks stored on this node"
    );
    describe_counter!(
        "blindstore_chunk_reads_total",
        "Chunk and payload-chunk reads, by where the bytes came from (local, peer, none)"
    );
    describe_gauge!(
        "blindstore_repair_backlog_chunks",
        "Chunks held here that some owner lacked at the last repair pass"
    );
    for source in ["local", "peer", "none"] {
        metrics::counter!("blindstore_chunk_reads_total", "source" => source).absolute(0);
    }
    metrics::gauge!("blindstore_http_open_connections").increment(0.0);
}

/// Counts every request by route template, method and status, with its latency.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".to_owned());
    let method = request.method().as_str().to_owned();
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

/// This node's metrics in the Prometheus text format.
#[utoipa::path(get, path = "/v1/metrics", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4 (series in docs/operations.md)", content_type = "text/plain"),
        (status = 401, description = "`unauthorized`", body = blindstore_types::api::ErrorBody),
    ))]
pub(crate) async fn metrics(_: Admin, State(state): State<AppState>) -> Result<Response, ApiError> {
    let health = state.node.health();
    metrics::gauge!("blindstore_raft_term").set(health.term as f64);
    metrics::gauge!("blindstore_raft_leader").set(health.leader.map_or(-1.0, |l| l as f64));
    metrics::gauge!("blindstore_raft_is_leader")
        .set(f64::from(u8::from(health.leader == Some(health.node_id))));
    metrics::gauge!("blindstore_raft_last_log_index")
        .set(health.last_log_index.unwrap_or(0) as f64);
    metrics::gauge!("blindstore_raft_applied_index").set(health.last_applied.unwrap_or(0) as f64);
    metrics::gauge!("blindstore_repair_backlog_chunks").set(health.under_replicated as f64);
    let usage = state.node.chunk_usage()?;
    metrics::gauge!("blindstore_chunks_held").set(usage.chunks as f64);
    metrics::gauge!("blindstore_chunk_bytes_held").set(usage.bytes as f64);
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle().render(),
    )
        .into_response())
}
