//! `GET /v1/metrics` on a node: the state gauges read at scrape time, then every series
//! (blindstore_web::metrics; docs/operations.md lists them).

use axum::extract::State;
use axum::response::Response;

use crate::extract::MetricsReader;
use crate::{ApiError, AppState};

/// This node's metrics in the Prometheus text format.
#[utoipa::path(get, path = "/v1/metrics", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4 (series in docs/operations.md)", content_type = "text/plain"),
        (status = 401, description = "`unauthorized`: neither an admin nor the metrics credential", body = blindstore_types::api::ErrorBody),
    ))]
pub(crate) async fn metrics(
    _: MetricsReader,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let health = state.node.health();
    metrics::gauge!("blindstore_raft_term").set(health.term as f64);
    metrics::gauge!("blindstore_raft_leader").set(health.leader.map_or(-1.0, |l| l as f64));
    metrics::gauge!("blindstore_raft_is_leader")
        .set(f64::from(u8::from(health.leader == Some(health.node_id))));
    metrics::gauge!("blindstore_raft_last_log_index")
        .set(health.last_log_index.unwrap_or(0) as f64);
    metrics::gauge!("blindstore_raft_applied_index").set(health.last_applied.unwrap_or(0) as f64);
    metrics::gauge!("blindstore_under_replicated_chunks").set(health.under_replicated as f64);
    metrics::gauge!("blindstore_repair_backlog_chunks").set(health.repair_backlog as f64);
    let (free, reserve) = state
        .node
        .chunks()
        .replicator()
        .disk_space()
        .map_err(blindstore_cluster::NodeError::from)?;
    metrics::gauge!("blindstore_disk_free_bytes").set(free as f64);
    // Sets the cache's byte gauge as of now.
    state.node.chunks().replicator().cache_stats();
    metrics::gauge!("blindstore_disk_reserve_bytes").set(reserve as f64);
    blindstore_web::metrics::record_process();
    let usage = state.node.chunks().chunk_usage()?;
    metrics::gauge!("blindstore_chunks_held").set(usage.chunks as f64);
    metrics::gauge!("blindstore_chunk_bytes_held").set(usage.bytes as f64);
    Ok(blindstore_web::metrics::exposition())
}
