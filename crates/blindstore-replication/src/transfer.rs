//! Chunks across the cluster: written to their rendezvous owners, read from whichever holder
//! answers first in rank order, and looked up everywhere when an append must know they exist.

use std::collections::BTreeSet;
use std::time::Duration;

use blindstore_rpc::v1::{GetChunkRequest, MissingChunksRequest, PutChunkRequest};
use blindstore_types::raft::{NodeId, NodeInfo};
use blindstore_types::{Hash32, ZoneId};
use bytes::Bytes;
use futures::StreamExt;

use blindstore_storage::{ClientWrite, StorageError};

use crate::placement::rank;
use crate::{hash_from_bytes, now_secs, ChunkError, Replicator, Writer};

/// How long one chunk transfer to or from a peer may take.
const CHUNK_RPC_TIMEOUT: Duration = Duration::from_secs(15);

impl Replicator {
    pub(crate) fn storage_members(&self) -> Vec<(NodeId, NodeInfo)> {
        self.inner.view.storage_members()
    }

    /// Where a chunk is written: the owner candidates in rank order (the first `copies` are
    /// its owners, the rest stand-ins), and how many copies it should have.
    fn placement(&self, zone: &ZoneId, hash: &Hash32) -> (Vec<(NodeId, NodeInfo)>, usize) {
        let ranked = rank(&self.owner_candidates(), zone, hash);
        (ranked, self.required_copies())
    }

    /// How many copies make a chunk fully replicated: `replication`, or every storage member
    /// that is not being drained in a smaller cluster. Unreachable members count (with too
    /// few nodes up, a write fails rather than being acknowledged with fewer copies); draining
    /// ones do not (they are on their way out).
    pub fn required_copies(&self) -> usize {
        let draining = self.inner.state.draining().unwrap_or_default();
        let members = self
            .storage_members()
            .iter()
            .filter(|(id, _)| !draining.contains(id))
            .count();
        self.inner.config.replication.min(members).max(1)
    }

    /// Stores a chunk on its owners, durably, before returning. An owner that cannot be reached
    /// (or is out of room) is replaced by the next node in rank order (a hinted copy, for
    /// repair to move later). A `client_write` is held to the zone's per-node quotas and each
    /// holder's free-space reserve; a holder at the quota ends the write with
    /// `QuotaExceeded`. Returns whether any holder stored it as new.
    pub async fn store(
        &self,
        zone: &ZoneId,
        hash: Hash32,
        bytes: Vec<u8>,
        writer: &Writer,
    ) -> Result<bool, ChunkError> {
        let actual = Hash32::digest(&bytes);
        if actual != hash {
            return Err(ChunkError::HashMismatch {
                expected: hash,
                actual,
            });
        }
        let (ranked, copies) = self.placement(zone, &hash);
        // The owners are written at once (the local copy and the replica in parallel, not one
        // after the other); each failure brings in the next node in rank order.
        let mut candidates = ranked.into_iter();
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let put = |(id, info): (NodeId, NodeInfo)| {
            let bytes = bytes.clone();
            async move {
                let result = if id == self.me() {
                    self.put_local(zone, hash, bytes, writer).await
                } else {
                    self.put_remote(&info, zone, &hash, bytes, writer).await
                };
                (id, result)
            }
        };
        in_flight.extend(candidates.by_ref().take(copies).map(put));
        let mut stored = 0;
        let mut created = false;
        let mut out_of_room = None;
        while let Some((id, result)) = in_flight.next().await {
            match result {
                Ok(new) => {
                    stored += 1;
                    created |= new;
                    continue;
                }
                Err(e @ ChunkError::QuotaExceeded(_)) => return Err(e),
                Err(e @ ChunkError::InsufficientStorage(_)) => {
                    tracing::warn!(node_id = id, error = %e, hash = %hash, "a holder is out of room; trying the next node");
                    out_of_room = Some(e);
                }
                Err(e) => peer_failed(id, &e, "could not store a chunk copy; trying the next node"),
            }
            in_flight.extend(candidates.next().map(put));
        }
        if stored < copies {
            if let Some(e) = out_of_room {
                return Err(e);
            }
            return Err(ChunkError::Unavailable(format!(
                "stored {stored} of {copies} copies of chunk {hash}"
            )));
        }
        Ok(created)
    }

    /// Stores a copy here; a client's write is held to the zone's quotas (and the account's)
    /// and the reserve. (Its signature is `store`'s on purpose: a copy stored here is the
    /// local case of storing on the owners.)
    pub async fn put_local(
        &self,
        zone: &ZoneId,
        hash: Hash32,
        bytes: Vec<u8>,
        writer: &Writer,
    ) -> Result<bool, ChunkError> {
        let client = match writer {
            Writer::Repair => None,
            Writer::Client(account) => {
                self.disk_room()?;
                let account_quota = self.inner.state.zone_settings(zone)?.account_quota;
                Some(ClientWrite {
                    zone_quota: self.inner.state.quota(zone)?,
                    account: account.clone().map(|a| (a, account_quota)),
                })
            }
        };
        Ok(self
            .inner
            .chunks
            .put_within(zone, hash, bytes, now_secs(), client)
            .await?)
    }

    pub async fn put_remote(
        &self,
        info: &NodeInfo,
        zone: &ZoneId,
        hash: &Hash32,
        data: Vec<u8>,
        writer: &Writer,
    ) -> Result<bool, ChunkError> {
        let mut client = self.peer(info)?;
        let client_write = matches!(writer, Writer::Client(_));
        // A client is waiting: an owner that does not answer soon (paused, overloaded) is
        // passed over for the next node in rank order well within the write deadline.
        let limit = if client_write {
            self.per_peer_deadline() + Duration::from_secs_f64(data.len() as f64 / (8 << 20) as f64)
        } else {
            CHUNK_RPC_TIMEOUT
        };
        let request = PutChunkRequest {
            zone: zone.to_string(),
            hash: hash.0.to_vec(),
            data,
            client_write,
            account: match writer {
                Writer::Client(Some(account)) => account.to_string(),
                _ => String::new(),
            },
        };
        let reply = self
            .call_peer(info, limit, "chunk put", client.put(request))
            .await?
            .map_err(|s| match s.code() {
                tonic::Code::FailedPrecondition => ChunkError::QuotaExceeded(s.message().into()),
                tonic::Code::ResourceExhausted => {
                    ChunkError::InsufficientStorage(s.message().into())
                }
                _ => unavailable(s),
            })?;
        Ok(reply.created)
    }

    /// A chunk's verified bytes from this node or, failing that, from the first holder in rank
    /// order that has an intact copy.
    pub async fn fetch(&self, zone: &ZoneId, hash: &Hash32) -> Result<Bytes, ChunkError> {
        if let Some(bytes) = self.inner.cache.get(zone, hash) {
            metrics::counter!("blindstore_chunk_reads_total", "source" => "cache").increment(1);
            return Ok(bytes);
        }
        let mut corrupt_here = false;
        match self.inner.chunks.get(zone, hash).await {
            Ok(Some(bytes)) => {
                metrics::counter!("blindstore_chunk_reads_total", "source" => "local").increment(1);
                let bytes = Bytes::from(bytes);
                self.inner.cache.insert(zone, hash, bytes.clone());
                return Ok(bytes);
            }
            Ok(None) => {}
            // Never served; an intact copy from elsewhere replaces it below.
            Err(StorageError::CorruptChunk { .. }) => corrupt_here = true,
            Err(e) => tracing::error!(error = %e, "local chunk copy unusable"),
        }
        match self.fetch_from_peers(zone, hash).await {
            Some(bytes) => {
                metrics::counter!("blindstore_chunk_reads_total", "source" => "peer").increment(1);
                if corrupt_here {
                    self.rewrite_local(zone, hash, bytes.clone()).await;
                }
                let bytes = Bytes::from(bytes);
                self.inner.cache.insert(zone, hash, bytes.clone());
                Ok(bytes)
            }
            None if corrupt_here => Err(ChunkError::CorruptChunk(*hash)),
            None => {
                metrics::counter!("blindstore_chunk_reads_total", "source" => "none").increment(1);
                Err(ChunkError::UnknownChunk)
            }
        }
    }

    /// An intact copy of a chunk from the first other holder in rank order that has one.
    async fn fetch_from_peers(&self, zone: &ZoneId, hash: &Hash32) -> Option<Vec<u8>> {
        // Every storage member, draining and down ones included: a copy may be anywhere.
        let ranked = rank(&self.storage_members(), zone, hash);
        for (id, info) in ranked.into_iter().filter(|(id, _)| *id != self.me()) {
            match self.get_remote(&info, zone, hash).await {
                Ok(Some(bytes)) if Hash32::digest(&bytes) == *hash => return Some(bytes),
                Ok(Some(_)) => {
                    tracing::error!(node_id = id, hash = %hash, "peer sent a chunk that fails its hash")
                }
                Ok(None) => {}
                Err(e) => peer_failed(id, &e, "chunk fetch failed; trying the next holder"),
            }
        }
        None
    }

    /// After the scrubber deleted a corrupt local copy: stores an intact one from a peer, if
    /// any peer has it. Returns whether the copy was restored.
    pub async fn restore_local(&self, zone: &ZoneId, hash: &Hash32) -> bool {
        match self.fetch_from_peers(zone, hash).await {
            Some(bytes) => {
                self.rewrite_local(zone, hash, bytes).await;
                true
            }
            None => false,
        }
    }

    /// Replaces this node's copy of a chunk (corrupt or deleted) with intact bytes. `put`
    /// rewrites a stored copy that fails its hash.
    async fn rewrite_local(&self, zone: &ZoneId, hash: &Hash32, bytes: Vec<u8>) {
        match self.inner.chunks.put(zone, *hash, bytes, now_secs()).await {
            Ok(_) => {
                tracing::warn!(zone = %zone, hash = %hash, "replaced a corrupt chunk copy with an intact one from a peer")
            }
            Err(e) => {
                tracing::error!(error = %e, hash = %hash, "could not replace a corrupt chunk copy")
            }
        }
    }

    /// The Chunks client of the member at `info`.
    fn peer(
        &self,
        info: &NodeInfo,
    ) -> Result<blindstore_rpc::v1::chunks_client::ChunksClient<blindstore_rpc::Authed>, ChunkError>
    {
        self.inner.peers.chunks(&info.rpc_addr).map_err(unavailable)
    }

    /// Makes a call to the member at `info` within `limit` and notes whether it answered (the
    /// node's peer reachability): a timeout is `Unavailable`; a status is handed back.
    async fn call_peer<T>(
        &self,
        info: &NodeInfo,
        limit: Duration,
        what: &str,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<Result<T, tonic::Status>, ChunkError> {
        let node = self
            .storage_members()
            .into_iter()
            .find(|(_, m)| m.rpc_addr == info.rpc_addr)
            .map_or(0, |(id, _)| id);
        let reachability = self.inner.peers.reachability();
        match tokio::time::timeout(limit, call).await {
            Err(_) => {
                reachability.failed(node, &info.rpc_addr, &format!("{what} timed out"));
                Err(ChunkError::Unavailable(format!("{what} timed out")))
            }
            Ok(Err(status)) => {
                if blindstore_rpc::never_sent(&status) {
                    reachability.failed(node, &info.rpc_addr, &status.message());
                } else {
                    reachability.answered(node, &info.rpc_addr);
                }
                Ok(Err(status))
            }
            Ok(Ok(reply)) => {
                reachability.answered(node, &info.rpc_addr);
                Ok(Ok(reply.into_inner()))
            }
        }
    }

    async fn get_remote(
        &self,
        info: &NodeInfo,
        zone: &ZoneId,
        hash: &Hash32,
    ) -> Result<Option<Vec<u8>>, ChunkError> {
        let mut client = self.peer(info)?;
        let request = GetChunkRequest {
            zone: zone.to_string(),
            hash: hash.0.to_vec(),
        };
        let reply = self
            .call_peer(info, CHUNK_RPC_TIMEOUT, "chunk get", client.get(request))
            .await?
            .map_err(unavailable)?;
        Ok(reply.found.then_some(reply.data))
    }

    /// The hashes among `hashes` that are not fully replicated: held by fewer than
    /// [`Replicator::required_copies`] storage members. Every member is asked at once, each within
    /// `CHUNK_RPC_TIMEOUT`; with `touch`, every holder restarts the staging clock of the ones
    /// it has, so no holder collects a chunk an append is about to reference. A member that
    /// cannot be asked counts as not holding anything, so the answer errs towards "missing",
    /// never towards "present"; with `touch` (an append), a hash short only because some
    /// member could not be asked is `Unavailable` (retry later), not the client's mistake.
    pub async fn missing_anywhere(
        &self,
        zone: &ZoneId,
        hashes: &[Hash32],
        touch: bool,
    ) -> Result<Vec<Hash32>, ChunkError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let members = self.storage_members();
        let copies = self.required_copies();
        let mut unasked = 0;
        let mut asks = tokio::task::JoinSet::new();
        for (id, info) in members.into_iter().filter(|(id, _)| *id != self.me()) {
            let (node, zone, hashes) = (self.clone(), zone.clone(), hashes.to_vec());
            let limit = if touch {
                self.per_peer_deadline()
            } else {
                CHUNK_RPC_TIMEOUT
            };
            asks.spawn(async move {
                let answer = node
                    .missing_remote_within(&info, &zone, &hashes, touch, false, limit)
                    .await;
                (id, answer)
            });
        }
        let local = if touch {
            self.inner
                .chunks
                .touch(zone, hashes.to_vec(), now_secs())
                .await?
        } else {
            self.inner.chunks.missing(zone, hashes)?
        };
        let mut holders: std::collections::HashMap<Hash32, usize> =
            hashes.iter().map(|h| (*h, 0)).collect();
        let mut count = |missing: &[Hash32]| {
            let missing: BTreeSet<&Hash32> = missing.iter().collect();
            for (hash, n) in holders.iter_mut() {
                if !missing.contains(hash) {
                    *n += 1;
                }
            }
        };
        count(&local);
        while let Some(joined) = asks.join_next().await {
            match joined {
                Ok((_, Ok(missing))) => count(&missing),
                Ok((id, Err(e))) => {
                    unasked += 1;
                    peer_failed(id, &e, "could not ask a peer which chunks it holds");
                }
                Err(e) => {
                    unasked += 1;
                    tracing::warn!(error = %e, "chunk query task failed")
                }
            }
        }
        let short: Vec<Hash32> = hashes
            .iter()
            .filter(|h| holders[*h] < copies)
            .copied()
            .collect();
        if touch && unasked > 0 && short.iter().any(|h| holders[h] + unasked >= copies) {
            return Err(ChunkError::Unavailable(format!(
                "{unasked} storage members could not be asked whether they hold the referenced chunks"
            )));
        }
        Ok(short)
    }

    /// Which of `hashes` the member at `info` does not hold (with `verify`: does not hold
    /// intact, its copies read and hashed).
    pub async fn missing_remote(
        &self,
        info: &NodeInfo,
        zone: &ZoneId,
        hashes: &[Hash32],
        touch: bool,
        verify: bool,
    ) -> Result<Vec<Hash32>, ChunkError> {
        self.missing_remote_within(info, zone, hashes, touch, verify, CHUNK_RPC_TIMEOUT)
            .await
    }

    /// How long one peer may take on a client's write before it is passed over: a quarter of
    /// the write deadline, so the next node in rank order still fits in it.
    fn per_peer_deadline(&self) -> Duration {
        (self.inner.config.write_timeout / 4).max(Duration::from_millis(250))
    }

    async fn missing_remote_within(
        &self,
        info: &NodeInfo,
        zone: &ZoneId,
        hashes: &[Hash32],
        touch: bool,
        verify: bool,
        limit: Duration,
    ) -> Result<Vec<Hash32>, ChunkError> {
        let mut client = self.peer(info)?;
        let request = MissingChunksRequest {
            zone: zone.to_string(),
            hashes: hashes.iter().map(|h| h.0.to_vec()).collect(),
            touch,
            verify,
        };
        let reply = self
            .call_peer(info, limit, "chunk query", client.missing(request))
            .await?
            .map_err(unavailable)?;
        reply
            .missing
            .iter()
            .map(|h| {
                hash_from_bytes(h)
                    .ok_or_else(|| ChunkError::Internal("peer sent a malformed hash".into()))
            })
            .collect()
    }

    /// The ids of the nodes holding a copy of the chunk (asking every storage member).
    pub async fn replicas(&self, zone: &ZoneId, hash: &Hash32) -> Result<Vec<NodeId>, ChunkError> {
        let mut holders = Vec::new();
        for (id, info) in self.storage_members() {
            let held = if id == self.me() {
                self.inner.chunks.len(zone, hash)?.is_some()
            } else {
                match self
                    .missing_remote(&info, zone, &[*hash], false, false)
                    .await
                {
                    Ok(missing) => missing.is_empty(),
                    Err(e) => {
                        peer_failed(id, &e, "could not ask a peer for a chunk");
                        false
                    }
                }
            };
            if held {
                holders.push(id);
            }
        }
        Ok(holders)
    }
}

/// Logs a failed call to peer `node`: at debug when the peer could not be reached (the node
/// logs once that it is unreachable, and once that it is back), else as a warning.
pub(crate) fn peer_failed(node: NodeId, e: &ChunkError, what: &str) {
    match e {
        ChunkError::Unavailable(_) => tracing::debug!(node_id = node, error = %e, "{what}"),
        _ => tracing::warn!(node_id = node, error = %e, "{what}"),
    }
}

fn unavailable(s: impl std::fmt::Display) -> ChunkError {
    ChunkError::Unavailable(s.to_string())
}
