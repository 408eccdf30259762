//! openraft's network over node-to-node gRPC (channels and the cluster secret come from
//! `blindstore_rpc::Peers`), with append-entries batches cut by bytes.

use crate::TypeConfig;
use blindstore_rpc::v1::RaftMessage;
use blindstore_rpc::{never_sent, Peers};
use blindstore_types::raft::{NodeId, NodeInfo};
use blindstore_types::record::{decode, encode};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

/// Encoded log entries one append-entries message carries at most (a single larger entry
/// still goes alone). A batch above the current budget is refused locally with openraft's
/// payload-too-large hint, so openraft sends fewer entries instead of a message the peer would
/// refuse, or could not write and fsync within openraft's append-entries timeout (the
/// heartbeat interval). The budget halves, down to [`MIN_APPEND_BATCH_BYTES`], each time a
/// call to the peer does not finish in time (a loaded or slow follower), and doubles back
/// after each one that does — so a lagging follower always catches up.
pub(crate) const MAX_APPEND_BATCH_BYTES: usize = 1 << 20;
/// The smallest append-entries budget.
pub(crate) const MIN_APPEND_BATCH_BYTES: usize = 64 << 10;

/// openraft's network over gRPC.
pub(crate) struct GrpcNetwork {
    peers: Peers,
}

impl GrpcNetwork {
    pub(crate) fn new(peers: Peers) -> Self {
        Self { peers }
    }
}

pub(crate) struct PeerConnection {
    peers: Peers,
    target: NodeId,
    addr: String,
    /// Bytes of encoded entries the next append-entries message may carry.
    batch_budget: usize,
    /// An append-entries call was started and has not finished: openraft dropped it at its
    /// timeout.
    unfinished: bool,
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerConnection {
        PeerConnection {
            peers: self.peers.clone(),
            target,
            addr: node.rpc_addr.clone(),
            batch_budget: MAX_APPEND_BATCH_BYTES,
            unfinished: false,
        }
    }
}

impl PeerConnection {
    /// Sends one Raft message and decodes the peer's `Result<Resp, E>`.
    async fn call<Req, Resp, E>(
        &self,
        method: RaftMethod,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeInfo, E>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let unreachable = |why: &dyn std::fmt::Display| {
            let e = std::io::Error::other(format!("node {} at {}: {why}", self.target, self.addr));
            RPCError::Unreachable(Unreachable::new(&e))
        };
        if self.addr.is_empty() {
            return Err(unreachable(&"no rpc address known"));
        }
        let mut client = self.peers.raft(&self.addr).map_err(|s| unreachable(&s))?;
        let message = RaftMessage {
            record: encode(request),
        };
        let call = async {
            match method {
                RaftMethod::AppendEntries => client.append_entries(message).await,
                RaftMethod::Vote => client.vote(message).await,
                RaftMethod::InstallSnapshot => client.install_snapshot(message).await,
            }
        };
        let reachability = self.peers.reachability();
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Err(_) => {
                reachability.failed(self.target, &self.addr, &"raft rpc timed out");
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "raft rpc timed out");
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
            Ok(Err(status)) if never_sent(&status) => {
                reachability.failed(self.target, &self.addr, &status.message());
                return Err(unreachable(&status));
            }
            Ok(Err(status)) => {
                reachability.failed(self.target, &self.addr, &status.message());
                return Err(RPCError::Network(NetworkError::new(&status)));
            }
            Ok(Ok(reply)) => {
                reachability.answered(self.target, &self.addr);
                reply.into_inner()
            }
        };
        let result: Result<Resp, E> = decode("raft reply", &reply.record)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum RaftMethod {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        if self.unfinished {
            self.batch_budget = (self.batch_budget / 2).max(MIN_APPEND_BATCH_BYTES);
            tracing::debug!(
                target = self.target,
                budget = self.batch_budget,
                "append-entries call timed out; smaller batches"
            );
        }
        let sizes: Vec<usize> = rpc.entries.iter().map(|e| encode(e).len()).collect();
        let fit = entries_that_fit(sizes.iter().copied(), self.batch_budget);
        let carried: usize = sizes.iter().sum();
        if fit < rpc.entries.len() {
            tracing::debug!(
                entries = rpc.entries.len(),
                fit,
                budget = self.batch_budget,
                "append-entries batch above the byte budget; asking openraft for a smaller one"
            );
            self.unfinished = false;
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit as u64),
            ));
        }
        self.unfinished = true;
        let result = self.call(RaftMethod::AppendEntries, &rpc, &option).await;
        self.unfinished = false;
        match &result {
            Err(RPCError::Network(_)) => {
                self.batch_budget = (self.batch_budget / 2).max(MIN_APPEND_BATCH_BYTES)
            }
            // Only a call that carried a real batch shows the peer keeps up (heartbeats say
            // nothing about it).
            Ok(_) if carried * 2 >= self.batch_budget => {
                self.batch_budget = (self.batch_budget * 2).min(MAX_APPEND_BATCH_BYTES)
            }
            Ok(_) => {}
            Err(_) => {}
        }
        result
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(RaftMethod::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call(RaftMethod::Vote, &rpc, &option).await
    }
}

/// How many of the leading entries (by encoded size, in order) fit in `cap` bytes; at least
/// one, so a single large entry still travels.
pub(crate) fn entries_that_fit(sizes: impl Iterator<Item = usize>, cap: usize) -> usize {
    let mut total = 0;
    let mut fit = 0;
    for size in sizes {
        if fit > 0 && total + size > cap {
            break;
        }
        total += size;
        fit += 1;
    }
    fit
}

/// The record of a vote request from `candidate` in `term`, as the Raft service's `Vote` call
/// carries it: for tools and tests that speak to a node's Raft service as a peer would.
pub fn vote_request_record(term: u64, candidate: NodeId) -> Vec<u8> {
    encode(&openraft::raft::VoteRequest::new(
        openraft::Vote::new(term, candidate),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::entries_that_fit;

    #[test]
    fn batches_are_cut_by_bytes_and_never_empty() {
        let cases: &[(&[usize], usize, usize)] = &[
            (&[], 10, 0),
            (&[3, 3, 3], 10, 3),
            (&[4, 4, 4], 10, 2),
            (&[10, 1], 10, 1),
            (&[50, 1], 10, 1),
            (&[1, 50], 10, 1),
            (&[5, 5], 10, 2),
        ];
        for (sizes, cap, fit) in cases {
            assert_eq!(
                entries_that_fit(sizes.iter().copied(), *cap),
                *fit,
                "{sizes:?} in {cap}"
            );
        }
    }
}
