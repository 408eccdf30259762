//! The server side of `blindstore.v1.Chunks`: what peers ask of this node's own chunk store
//! (store a copy, read a copy, which of these do you lack). The caller has passed the cluster
//! secret check (the node installs the interceptor).

use blindstore_rpc::v1::chunks_server::{Chunks, ChunksServer};
use blindstore_rpc::v1::{
    GetChunkReply, GetChunkRequest, MissingChunksReply, MissingChunksRequest, PutChunkReply,
    PutChunkRequest,
};
use blindstore_rpc::MAX_MESSAGE_BYTES;
use blindstore_storage::StorageError;
use blindstore_types::{Hash32, ZoneId};
use tonic::{Request, Response, Status};

use crate::{hash_from_bytes, now_secs, ChunkError, Replicator, Writer};
use blindstore_types::account::AccountId;

/// Serves `blindstore.v1.Chunks` from a replicator's own chunk store.
pub struct ChunksRpc(Replicator);

impl Replicator {
    /// The `blindstore.v1.Chunks` service for this node, with the chunk message size limits.
    pub fn rpc_service(&self) -> ChunksServer<ChunksRpc> {
        ChunksServer::new(ChunksRpc(self.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn chunk_address(zone: &str, hash: &[u8]) -> Result<(ZoneId, Hash32), Status> {
    let zone = ZoneId::new(zone).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let hash = hash_from_bytes(hash)
        .ok_or_else(|| Status::invalid_argument("a chunk hash is 32 bytes"))?;
    Ok((zone, hash))
}

#[tonic::async_trait]
impl Chunks for ChunksRpc {
    async fn put(
        &self,
        request: Request<PutChunkRequest>,
    ) -> Result<Response<PutChunkReply>, Status> {
        let r = request.into_inner();
        let (zone, hash) = chunk_address(&r.zone, &r.hash)?;
        let writer = match (r.client_write, r.account.as_str()) {
            (false, _) => Writer::Repair,
            (true, "") => Writer::Client(None),
            (true, account) => Writer::Client(Some(
                AccountId::new(account).map_err(Status::invalid_argument)?,
            )),
        };
        let created = self
            .0
            .put_local(&zone, hash, r.data, &writer)
            .await
            .map_err(|e| match e {
                ChunkError::HashMismatch { .. } => Status::invalid_argument(e.to_string()),
                ChunkError::QuotaExceeded(m) => Status::failed_precondition(m),
                ChunkError::InsufficientStorage(m) => Status::resource_exhausted(m),
                other => Status::internal(other.to_string()),
            })?;
        Ok(Response::new(PutChunkReply { created }))
    }

    async fn get(
        &self,
        request: Request<GetChunkRequest>,
    ) -> Result<Response<GetChunkReply>, Status> {
        let r = request.into_inner();
        let (zone, hash) = chunk_address(&r.zone, &r.hash)?;
        // A corrupt local copy is reported as absent, so the caller tries another holder.
        let data = match self.0.local().get(&zone, &hash).await {
            Ok(data) => data,
            Err(e) => {
                tracing::error!(error = %e, "local chunk copy unusable");
                None
            }
        };
        Ok(Response::new(GetChunkReply {
            found: data.is_some(),
            data: data.unwrap_or_default(),
        }))
    }

    async fn missing(
        &self,
        request: Request<MissingChunksRequest>,
    ) -> Result<Response<MissingChunksReply>, Status> {
        let r = request.into_inner();
        let zone = ZoneId::new(&r.zone).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let hashes = r
            .hashes
            .iter()
            .map(|h| {
                hash_from_bytes(h)
                    .ok_or_else(|| Status::invalid_argument("a chunk hash is 32 bytes"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let chunks = self.0.local();
        let internal = |e: StorageError| Status::internal(e.to_string());
        let mut missing = if r.touch {
            chunks.touch(&zone, hashes, now_secs()).await
        } else {
            chunks.missing(&zone, &hashes)
        }
        .map_err(internal)?;
        if r.verify {
            // A held copy that fails its hash is no copy: never counted by whoever asks.
            let held: Vec<Hash32> = r
                .hashes
                .iter()
                .filter_map(|h| hash_from_bytes(h))
                .filter(|h| !missing.contains(h))
                .collect();
            for hash in held {
                match chunks.get(&zone, &hash).await {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(StorageError::CorruptChunk { .. }) => missing.push(hash),
                    Err(e) => return Err(internal(e)),
                }
            }
        }
        Ok(Response::new(MissingChunksReply {
            missing: missing.iter().map(|h| h.0.to_vec()).collect(),
        }))
    }
}
