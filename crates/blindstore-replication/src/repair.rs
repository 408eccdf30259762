//! Restoring and rebalancing chunk copies.
//!
//! Every node runs a repairer over the chunks it holds. For each chunk it computes the current
//! owners — the top `replication` storage members by rendezvous rank, leaving out nodes that
//! have been unreachable for longer than `down_after` — and makes sure each owner holds a copy,
//! sending one where missing. A node that is not an owner of a chunk it holds (a hinted copy, or
//! a chunk whose owners changed when a node joined or left) deletes its copy only after every
//! owner has confirmed holding it, so a move never lowers a chunk's number of copies.
//!
//! Because every holder checks every owner, a copy an owner silently lost is restored by its
//! co-owner on the next pass (anti-entropy by exhaustive comparison; per-partition digests are
//! future work). The repairer keeps no state of its own: it is idempotent and simply resumes
//! after a restart. Each pass sends at most `MAX_COPIES_PER_PASS` chunks. Garbage (unreferenced
//! chunks past the staging TTL) is never copied: garbage collection on one owner and repair
//! from the other would otherwise keep it alive for ever.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use blindstore_types::raft::{NodeId, NodeInfo};
use blindstore_types::{Hash32, ZoneId};
use tokio_util::sync::CancellationToken;

use crate::placement::rank;
use crate::{now_secs, ChunkError, Replicator, Writer};

/// Chunks read per step of a pass.
const PAGE: usize = 1000;
/// Copies sent per pass at most: repair must not crowd out client traffic.
const MAX_COPIES_PER_PASS: usize = 512;

/// When each peer was first seen unreachable (cleared when it answers).
#[derive(Default)]
pub(crate) struct Liveness {
    down_since: Mutex<HashMap<NodeId, Instant>>,
}

impl Liveness {
    fn record(&self, node: NodeId, reachable: bool) {
        let mut down = self
            .down_since
            .lock()
            .expect("liveness lock is never poisoned");
        if reachable {
            down.remove(&node);
        } else {
            down.entry(node).or_insert_with(Instant::now);
        }
    }

    fn down_longer_than(&self, node: NodeId, limit: Duration) -> bool {
        let down = self
            .down_since
            .lock()
            .expect("liveness lock is never poisoned");
        down.get(&node).is_some_and(|since| since.elapsed() > limit)
    }
}

/// What one pass found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RepairReport {
    /// Chunks held here.
    pub scanned: u64,
    /// Chunks with fewer reachable copies than the replication factor, counted on one holder
    /// only (the first in rank order), so the cluster's count is the sum over nodes. A chunk
    /// that is only in the wrong place (an owner lacks it, but enough other nodes hold it: a
    /// node joined or is draining) is not under-replicated.
    pub under_replicated: u64,
    /// Held chunks some owner lacked (or could not be asked about): the copies this node still
    /// owes, rebalancing included — its repair backlog.
    pub backlog: u64,
    /// Copies sent to owners.
    pub copied: u64,
    /// Local copies dropped because their owners hold them.
    pub handed_off: u64,
}

/// The pause between repair passes on a node being drained.
const DRAINING_INTERVAL: Duration = Duration::from_millis(200);

/// Runs passes every `interval` until `shutdown`.
pub(crate) async fn run(replicator: Replicator, interval: Duration, shutdown: CancellationToken) {
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "repairer started"
    );
    // Exposed from the start (0), not from the first pass.
    metrics::counter!("blindstore_repair_passes_total", "outcome" => "done").absolute(0);
    metrics::counter!("blindstore_repair_copies_total").absolute(0);
    metrics::counter!("blindstore_repair_handoffs_total").absolute(0);
    loop {
        // A node being drained moves its chunks off as fast as passes allow, so the drain's
        // progress moves chunk by chunk rather than once per interval.
        let wait = if replicator.is_draining() {
            interval.min(DRAINING_INTERVAL)
        } else {
            interval
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let report = replicator.repair_pass().await;
        let outcome = if report.is_ok() { "done" } else { "failed" };
        metrics::counter!("blindstore_repair_passes_total", "outcome" => outcome).increment(1);
        if let Ok(r) = &report {
            metrics::counter!("blindstore_repair_copies_total").increment(r.copied);
            metrics::counter!("blindstore_repair_handoffs_total").increment(r.handed_off);
        }
        match report {
            Ok(r) if r.copied > 0 || r.handed_off > 0 => tracing::info!(
                scanned = r.scanned,
                under_replicated = r.under_replicated,
                backlog = r.backlog,
                copied = r.copied,
                handed_off = r.handed_off,
                "repair pass"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "repair pass failed"),
        }
    }
    tracing::info!("repairer stopped");
}

impl Replicator {
    /// Whether this node is being drained.
    pub fn is_draining(&self) -> bool {
        self.inner
            .state
            .draining()
            .is_ok_and(|set| set.contains(&self.me()))
    }

    /// Storage members that can own chunks: all but those being drained and those unreachable
    /// for over `down_after`. (A draining node itself ranks only the others, so its own chunks
    /// go to them.)
    pub fn owner_candidates(&self) -> Vec<(NodeId, NodeInfo)> {
        let me = self.me();
        let draining = match self.inner.state.draining() {
            Ok(set) => set,
            Err(e) => {
                tracing::error!(error = %e, "reading the draining set");
                Default::default()
            }
        };
        let down_after = self.inner.config.down_after;
        self.storage_members()
            .into_iter()
            .filter(|(id, _)| !draining.contains(id))
            .filter(|(id, _)| *id == me || !self.inner.liveness.down_longer_than(*id, down_after))
            .collect()
    }

    /// The chunk's current owners, as the repairer sees them.
    pub fn owners(&self, zone: &ZoneId, hash: &Hash32) -> Vec<NodeId> {
        let live = self.owner_candidates();
        let copies = self.inner.config.replication.min(live.len()).max(1);
        rank(&live, zone, hash)
            .into_iter()
            .take(copies)
            .map(|(id, _)| id)
            .collect()
    }

    /// One repair pass over the chunks this node holds.
    pub async fn repair_pass(&self) -> Result<RepairReport, ChunkError> {
        let members = self.storage_members();
        let me = self.me();
        // Ask every peer something cheap, so liveness is known even for peers we owe nothing.
        for (id, info) in members.iter().filter(|(id, _)| *id != me) {
            let reachable = self
                .missing_remote(
                    info,
                    &ZoneId::new("x").expect("a valid zone id"),
                    &[],
                    false,
                    false,
                )
                .await
                .is_ok();
            self.inner.liveness.record(*id, reachable);
        }
        let live = self.owner_candidates();
        let copies = self.inner.config.replication.min(live.len()).max(1);
        // Every member that may hold a copy and answers (draining ones included): a chunk's
        // copies are counted wherever they are, not only on its owners.
        let askable: Vec<(NodeId, NodeInfo)> = members
            .iter()
            .filter(|(id, _)| {
                *id != me
                    && !self
                        .inner
                        .liveness
                        .down_longer_than(*id, self.inner.config.down_after)
            })
            .cloned()
            .collect();
        let started = std::time::Instant::now();

        let mut report = RepairReport::default();
        let mut after = None;
        loop {
            let page = self.inner.chunks.list(after.as_ref(), PAGE)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            after = Some(last);
            report.scanned += page.len() as u64;

            // For each chunk: its owners; then, per (owner, zone), which of them the owner lacks.
            let mut owners_of: Vec<((ZoneId, Hash32), Vec<NodeId>)> =
                Vec::with_capacity(page.len());
            let mut asks: BTreeMap<(NodeId, ZoneId), Vec<Hash32>> = BTreeMap::new();
            for (zone, hash) in page {
                let owners: Vec<NodeId> = rank(&live, &zone, &hash)
                    .into_iter()
                    .take(copies)
                    .map(|(id, _)| id)
                    .collect();
                for (member, _) in &askable {
                    asks.entry((*member, zone.clone())).or_default().push(hash);
                }
                owners_of.push(((zone, hash), owners));
            }
            let addresses: HashMap<NodeId, NodeInfo> =
                live.iter().chain(&askable).cloned().collect();
            // (member, zone, hash) → whether the member is known to hold it.
            let mut held: HashMap<(NodeId, ZoneId, Hash32), bool> = HashMap::new();
            for ((owner, zone), hashes) in &asks {
                let info = &addresses[owner];
                match self.missing_remote(info, zone, hashes, false, false).await {
                    Ok(missing) => {
                        self.inner.liveness.record(*owner, true);
                        for h in hashes {
                            held.insert((*owner, zone.clone(), *h), !missing.contains(h));
                        }
                    }
                    Err(e) => {
                        self.inner.liveness.record(*owner, false);
                        tracing::debug!(node_id = owner, error = %e, "repair: peer not reachable");
                    }
                }
            }

            for ((zone, hash), owners) in owners_of {
                // Garbage waiting for collection is not copied: a copy would restart its
                // staging clock on the owner and bring back what the owner's GC just deleted.
                if self.is_garbage(&zone, &hash)? {
                    continue;
                }
                let mut complete = true;
                for owner in owners.iter().filter(|o| **o != me) {
                    match held.get(&(*owner, zone.clone(), hash)) {
                        Some(true) => {}
                        Some(false) => {
                            complete = false;
                            if report.copied < MAX_COPIES_PER_PASS as u64
                                && self.copy_to(&addresses[owner], &zone, &hash).await
                            {
                                report.copied += 1;
                            }
                        }
                        None => complete = false,
                    }
                }
                // The reachable copies, this one included; counted once, by the first holder in
                // rank order over every member.
                let holders: Vec<NodeId> = rank(&members, &zone, &hash)
                    .into_iter()
                    .map(|(id, _)| id)
                    .filter(|id| *id == me || held.get(&(*id, zone.clone(), hash)) == Some(&true))
                    .collect();
                if holders.len() < copies && holders.first() == Some(&me) {
                    report.under_replicated += 1;
                }
                if !complete {
                    report.backlog += 1;
                } else if !owners.contains(&me)
                    && self
                        .owners_hold_intact(&addresses, &owners, &zone, &hash)
                        .await
                    && self.inner.chunks.remove(&zone, &hash).await?
                {
                    report.handed_off += 1;
                }
            }
        }
        self.inner
            .under_replicated
            .store(report.under_replicated, Ordering::Relaxed);
        self.inner.backlog.store(report.backlog, Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        self.inner
            .copy_rate
            .store((report.copied as f64 / secs).to_bits(), Ordering::Relaxed);
        Ok(report)
    }

    /// Whether this node's copy of a chunk is garbage: no committed entry references it and
    /// it has not been stored or named by an append for `staging_ttl`.
    fn is_garbage(&self, zone: &ZoneId, hash: &Hash32) -> Result<bool, ChunkError> {
        let cutoff = now_secs().saturating_sub(self.inner.config.staging_ttl.as_secs());
        let old = self
            .inner
            .chunks
            .touched_at(zone, hash)?
            .is_some_and(|t| t < cutoff);
        Ok(old && !self.inner.state.is_referenced(zone, hash)?)
    }

    /// Before a non-owner drops its copy: whether every owner holds an intact one (each
    /// reads and hashes its copy), so a corrupt copy never stands in for a real one.
    async fn owners_hold_intact(
        &self,
        addresses: &HashMap<NodeId, NodeInfo>,
        owners: &[NodeId],
        zone: &ZoneId,
        hash: &Hash32,
    ) -> bool {
        for owner in owners {
            let Some(info) = addresses.get(owner) else {
                return false;
            };
            match self.missing_remote(info, zone, &[*hash], false, true).await {
                Ok(missing) if missing.is_empty() => {}
                Ok(_) => {
                    tracing::warn!(node_id = owner, hash = %hash, "an owner's copy is missing or corrupt; keeping this one");
                    return false;
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Sends this node's copy of a chunk to `owner`. Logs and returns false on failure.
    async fn copy_to(&self, owner: &NodeInfo, zone: &ZoneId, hash: &Hash32) -> bool {
        let bytes = match self.inner.chunks.get(zone, hash).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(error = %e, "repair: local copy unusable; not copying it");
                return false;
            }
        };
        match self
            .put_remote(owner, zone, hash, bytes, &Writer::Repair)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, hash = %hash, "repair: copy failed");
                false
            }
        }
    }
}
