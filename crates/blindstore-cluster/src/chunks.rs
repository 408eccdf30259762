//! Chunks as the API sees them: uploads under the zone's write policy and quotas, reads from
//! any holder, and the free-space reserve. Placement and copies are the replicator's.

use blindstore_replication::{Replicator, Writer};
use blindstore_types::account::WritePolicy;
use blindstore_types::{Hash32, ZoneId};

use crate::{Authenticated, NodeError};

facade!(
    /// Chunks: uploads under the write policy and quotas, reads from any holder, the free-space reserve.
    Chunks,
    chunks
);

impl Chunks<'_> {
    /// Chunk replication on this node: placement, repair, garbage collection, scrubbing.
    pub fn replicator(&self) -> &Replicator {
        &self.inner.replicator
    }

    /// The chunks this node holds and their bytes, all zones together.
    pub fn chunk_usage(&self) -> Result<blindstore_storage::Usage, NodeError> {
        Ok(self.inner.replicator.local().total_usage()?)
    }

    /// Stores a chunk durably. Returns whether it was new to the zone.
    #[tracing::instrument(skip_all, fields(zone = %zone, hash = %hash, len = bytes.len()), err(level = "debug"))]
    /// `who` is the request's session, if it has one: a zone whose writes need accounts
    /// refuses an upload without one and charges the chunk to the account.
    pub async fn put_chunk(
        &self,
        zone: &ZoneId,
        hash: Hash32,
        bytes: Vec<u8>,
        who: Option<&Authenticated>,
    ) -> Result<bool, NodeError> {
        self.zones().require_zone_fresh(zone).await?;
        let writer = self.writer(zone, who)?;
        if bytes.len() as u64 > self.inner.limits.max_chunk_bytes {
            return Err(NodeError::TooLarge {
                what: "chunk",
                limit: self.inner.limits.max_chunk_bytes,
            });
        }
        self.check_room()?;
        self.before_proposal(self.store_chunk(zone, hash, bytes, &writer))
            .await
    }

    /// Refuses a write `who` may not make in `zone` (see [`Node::put_chunk`]), before its
    /// body is read.
    pub async fn authorize_write(
        &self,
        zone: &ZoneId,
        who: Option<&Authenticated>,
    ) -> Result<(), NodeError> {
        self.zones().require_zone_fresh(zone).await?;
        self.writer(zone, who).map(|_| ())
    }

    /// Who writes, under the zone's write policy: anyone in an open zone; in a zone whose
    /// writes need accounts, only a session's account (`InvalidSession` without one).
    pub(crate) fn writer(
        &self,
        zone: &ZoneId,
        who: Option<&Authenticated>,
    ) -> Result<Writer, NodeError> {
        match (self.inner.state.zone_settings(zone)?.writes, who) {
            (WritePolicy::Open, _) => Ok(Writer::Client(None)),
            (WritePolicy::Accounts, Some(who)) => Ok(Writer::Client(Some(who.account.clone()))),
            (WritePolicy::Accounts, None) => Err(NodeError::InvalidSession),
        }
    }

    /// Stores a client's chunk on its owners (see [`Replicator::store`]).
    pub(crate) async fn store_chunk(
        &self,
        zone: &ZoneId,
        hash: Hash32,
        bytes: Vec<u8>,
        writer: &Writer,
    ) -> Result<bool, NodeError> {
        Ok(self
            .inner
            .replicator
            .store(zone, hash, bytes, writer)
            .await?)
    }

    /// A chunk's verified bytes from any holder (see [`Replicator::fetch`]).
    pub(crate) async fn fetch_chunk(
        &self,
        zone: &ZoneId,
        hash: &Hash32,
    ) -> Result<bytes::Bytes, NodeError> {
        Ok(self.inner.replicator.fetch(zone, hash).await?)
    }

    /// Which of `hashes` are not fully replicated (see [`Replicator::missing_anywhere`]).
    pub(crate) async fn missing_anywhere(
        &self,
        zone: &ZoneId,
        hashes: &[Hash32],
        touch: bool,
    ) -> Result<Vec<Hash32>, NodeError> {
        Ok(self
            .inner
            .replicator
            .missing_anywhere(zone, hashes, touch)
            .await?)
    }

    /// Refuses new data when this node is short of room: free disk below `min_free_bytes`, or
    /// the state store's map over 90% full (so Raft never meets a full map while applying).
    pub(crate) fn check_room(&self) -> Result<(), NodeError> {
        self.inner.replicator.disk_room()?;
        let (used, size) = self.inner.state.map_usage()?;
        if used > size / 10 * 9 {
            return Err(NodeError::InsufficientStorage(format!(
                "the state store uses {used} of its {size}-byte map; raise its map size"
            )));
        }
        Ok(())
    }

    /// A chunk's verified bytes, from this node or another holder.
    pub async fn get_chunk(&self, zone: &ZoneId, hash: &Hash32) -> Result<bytes::Bytes, NodeError> {
        self.zones().require_zone_fresh(zone).await?;
        self.fetch_chunk(zone, hash).await
    }

    /// A chunk's length, if it is stored anywhere.
    pub async fn chunk_len(&self, zone: &ZoneId, hash: &Hash32) -> Result<u64, NodeError> {
        self.zones().require_zone_fresh(zone).await?;
        match self.inner.replicator.local().len(zone, hash)? {
            Some(len) => Ok(len),
            None => Ok(self.fetch_chunk(zone, hash).await?.len() as u64),
        }
    }

    /// Which of `hashes` the zone does not hold anywhere in the cluster.
    pub async fn missing_chunks(
        &self,
        zone: &ZoneId,
        hashes: &[Hash32],
    ) -> Result<Vec<Hash32>, NodeError> {
        self.zones().require_zone_fresh(zone).await?;
        if hashes.len() > self.inner.limits.max_missing_query {
            return Err(NodeError::BadRequest(format!(
                "at most {} hashes per request",
                self.inner.limits.max_missing_query
            )));
        }
        self.missing_anywhere(zone, hashes, false).await
    }
}
