//! Garbage collection of staged chunks: a chunk that no committed entry references is deleted
//! once it has not been stored or named by an append for `staging_ttl`. This is what lets
//! clients upload chunks one by one and commit them with one append, and still leaves nothing
//! behind from abandoned uploads.

use std::time::Duration;

use blindstore_storage::{ChunkStore, GcReport, StateMachineStore, StorageError};
use tokio_util::sync::CancellationToken;

use crate::node::now_secs;

/// Chunks deleted per pass at most, so one pass never holds the chunk store's write lock long.
const MAX_DELETES_PER_PASS: usize = 10_000;

/// Runs a pass every `interval` until `shutdown` is cancelled.
pub(crate) async fn run(
    chunks: ChunkStore,
    state: StateMachineStore,
    staging_ttl: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tracing::info!(
        staging_ttl_secs = staging_ttl.as_secs(),
        interval_secs = interval.as_secs(),
        "garbage collector started"
    );
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        match collect_once(&chunks, &state, staging_ttl).await {
            Ok(report) if report.deleted > 0 => {
                tracing::info!(
                    deleted = report.deleted,
                    bytes_freed = report.bytes_freed,
                    scanned = report.scanned,
                    "garbage collected"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "garbage collection pass failed"),
        }
    }
    tracing::info!("garbage collector stopped");
}

/// One pass: deletes unreferenced chunks untouched for `staging_ttl`.
pub(crate) async fn collect_once(
    chunks: &ChunkStore,
    state: &StateMachineStore,
    staging_ttl: Duration,
) -> Result<GcReport, StorageError> {
    let cutoff = now_secs().saturating_sub(staging_ttl.as_secs());
    let state = state.clone();
    chunks
        .collect_garbage(cutoff, MAX_DELETES_PER_PASS, move |zone, hash| {
            state.is_referenced(zone, hash)
        })
        .await
}
