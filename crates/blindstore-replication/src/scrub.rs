//! The scrubber: reads every chunk this node holds, at a bounded rate, and checks it against
//! its hash. A copy that fails is deleted at once (so it never counts as a replica) and
//! replaced by an intact copy from a peer when one is reachable; otherwise the repairer of a
//! node holding an intact copy restores it. One pass starts right after start-up and then one
//! every `interval`; a pass reads at most `bytes_per_sec`, so it never crowds out clients.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::Replicator;

/// Chunks hashed per step at most.
const STEP_CHUNKS: usize = 256;

/// Settings of the scrubber.
#[derive(Debug, Clone, Copy)]
pub struct ScrubConfig {
    /// Time from the start of one pass to the start of the next.
    pub interval: Duration,
    /// Bytes read per second at most.
    pub bytes_per_sec: u64,
}

/// What one pass found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScrubReport {
    pub checked: u64,
    pub bytes: u64,
    /// Copies that failed their hash and were deleted.
    pub corrupt: u64,
    /// Of those, replaced at once from a peer.
    pub restored: u64,
}

/// Runs passes until `shutdown`.
pub(crate) async fn run(replicator: Replicator, config: ScrubConfig, shutdown: CancellationToken) {
    tracing::info!(
        interval_secs = config.interval.as_secs(),
        bytes_per_sec = config.bytes_per_sec,
        "scrubber started"
    );
    metrics::counter!("blindstore_scrub_passes_total", "outcome" => "done").absolute(0);
    metrics::counter!("blindstore_scrub_chunks_checked_total").absolute(0);
    metrics::counter!("blindstore_scrub_corrupt_total").absolute(0);
    loop {
        let started = Instant::now();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            report = replicator.scrub_pass(config.bytes_per_sec) => match report {
                Ok(r) => {
                    metrics::counter!("blindstore_scrub_passes_total", "outcome" => "done").increment(1);
                    metrics::counter!("blindstore_scrub_chunks_checked_total").increment(r.checked);
                    metrics::counter!("blindstore_scrub_corrupt_total").increment(r.corrupt);
                    tracing::info!(
                    checked = r.checked,
                    bytes = r.bytes,
                    corrupt = r.corrupt,
                    restored = r.restored,
                    secs = started.elapsed().as_secs(),
                    "scrub pass done"
                    )
                }
                Err(e) => {
                    metrics::counter!("blindstore_scrub_passes_total", "outcome" => "failed").increment(1);
                    tracing::warn!(error = %e, "scrub pass failed")
                }
            }
        }
        let wait = config.interval.saturating_sub(started.elapsed());
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("scrubber stopped");
}

impl Replicator {
    /// One pass over every chunk held here, reading at most `bytes_per_sec`.
    pub async fn scrub_pass(&self, bytes_per_sec: u64) -> Result<ScrubReport, crate::ChunkError> {
        let step_bytes = bytes_per_sec.clamp(1, 64 << 20);
        let mut report = ScrubReport::default();
        let mut after = None;
        loop {
            let began = Instant::now();
            let step = self
                .inner
                .chunks
                .scrub_step(after, STEP_CHUNKS, step_bytes)
                .await?;
            report.checked += step.checked;
            report.bytes += step.bytes;
            for (zone, hash) in &step.corrupt {
                report.corrupt += 1;
                if self.restore_local(zone, hash).await {
                    report.restored += 1;
                }
            }
            let Some(next) = step.next else { break };
            after = Some(next);
            // Pace: `step.bytes` may take `step.bytes / bytes_per_sec` seconds.
            let budget = Duration::from_secs_f64(step.bytes as f64 / bytes_per_sec.max(1) as f64);
            if let Some(rest) = budget.checked_sub(began.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        Ok(report)
    }
}
