//! Garbage collection of staged chunks: a chunk that no committed entry references is deleted
//! once it has not been stored or named by an append for `staging_ttl`. This is what lets
//! clients upload chunks one by one and commit them with one append, and still leaves nothing
//! behind from abandoned uploads.
//!
//! Three guards keep a referenced chunk: a pass starts only after a linearizable read barrier
//! (this node has applied every entry committed before the pass, so a node that lagged or was
//! partitioned while an append referenced the chunk knows the reference before it collects);
//! an append touches the chunks it names on every holder (not only the first that answers);
//! and the reference is checked again inside the deleting transaction.

use std::time::Duration;

use blindstore_storage::{ChunkStore, GcReport, StateMachineStore};
use tokio_util::sync::CancellationToken;

use crate::{now_secs, ChunkError, Replicator};

/// Chunks deleted per pass at most, so one pass never holds the chunk store's write lock long.
const MAX_DELETES_PER_PASS: usize = 10_000;

/// Runs a pass every `interval` until `shutdown` is cancelled.
pub(crate) async fn run(replicator: Replicator, interval: Duration, shutdown: CancellationToken) {
    let staging_ttl = replicator.inner.config.staging_ttl;
    tracing::info!(
        staging_ttl_secs = staging_ttl.as_secs(),
        interval_secs = interval.as_secs(),
        "garbage collector started"
    );
    metrics::counter!("blindstore_gc_passes_total", "outcome" => "done").absolute(0);
    metrics::counter!("blindstore_gc_chunks_deleted_total").absolute(0);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let collected = replicator.collect_garbage(staging_ttl).await;
        let outcome = if collected.is_ok() { "done" } else { "skipped" };
        metrics::counter!("blindstore_gc_passes_total", "outcome" => outcome).increment(1);
        if let Ok(report) = &collected {
            metrics::counter!("blindstore_gc_chunks_deleted_total").increment(report.deleted);
        }
        match collected {
            Ok(report) if report.deleted > 0 => {
                tracing::info!(
                    deleted = report.deleted,
                    bytes_freed = report.bytes_freed,
                    scanned = report.scanned,
                    "garbage collected"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "garbage collection pass skipped"),
        }
    }
    tracing::info!("garbage collector stopped");
}

impl Replicator {
    /// One pass: after a read barrier, deletes unreferenced chunks untouched for
    /// `staging_ttl`. Without a barrier (no leader, partitioned) nothing is deleted.
    pub async fn collect_garbage(&self, staging_ttl: Duration) -> Result<GcReport, ChunkError> {
        self.inner.view.read_barrier().await?;
        let report =
            collect_unreferenced(&self.inner.chunks, &self.inner.state, staging_ttl).await?;
        if report.deleted > 0 {
            // A collected chunk is not served from memory afterwards.
            self.inner.cache.clear();
        }
        Ok(report)
    }
}

async fn collect_unreferenced(
    chunks: &ChunkStore,
    state: &StateMachineStore,
    staging_ttl: Duration,
) -> Result<GcReport, blindstore_storage::StorageError> {
    let cutoff = now_secs().saturating_sub(staging_ttl.as_secs());
    let state = state.clone();
    chunks
        .collect_garbage(cutoff, MAX_DELETES_PER_PASS, move |zone, hash| {
            state.is_referenced(zone, hash)
        })
        .await
}
