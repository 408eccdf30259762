//! Forming and growing a cluster, and reaching its leader.
//!
//! Joining is two calls to any member (which forward to the leader): `Join` reserves a node id,
//! then — once the new node runs Raft and serves gRPC — `AddMember` adds it as a learner, waits
//! until it has caught up, and promotes it to voter while the cluster has fewer voters than it
//! wants. Writes received by a follower are forwarded to the leader; linearizable reads on a
//! follower ask the leader for its read index and wait until they have applied that far.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use blindstore_rpc::v1::chunks_server::ChunksServer;
use blindstore_rpc::v1::cluster_server::ClusterServer;
use blindstore_rpc::v1::forward_error::Kind;
use blindstore_rpc::v1::forward_reply::Result as ForwardResult;
use blindstore_rpc::v1::raft_server::RaftServer;
use blindstore_rpc::v1::{AddMemberRequest, ForwardRequest, JoinRequest, ReadIndexRequest};
use blindstore_rpc::ClusterSecret;
use blindstore_storage::LogStore;
use blindstore_types::api::{ClusterMembers, Member};
use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::raft::{NodeId, NodeInfo, TypeConfig};
use blindstore_types::record::{decode, encode};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft};
use tokio::net::TcpListener;

use crate::services::{ChunksRpc, ClusterRpc, RaftRpc};
use crate::transport::{never_sent, Peers, MAX_MESSAGE_BYTES, MAX_RAFT_MESSAGE_BYTES};
use crate::{Node, NodeError};

const NODE_ID_FILE: &str = "node-id";
/// How long a joining node keeps asking to be added (the leader may be changing meanwhile).
const JOIN_PATIENCE: Duration = Duration::from_secs(120);
/// How long a forwarded request may take before its outcome is unknown.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Node ids handed out by this node as leader but not yet in the membership.
#[derive(Default)]
pub(crate) struct Reservations {
    reserved: BTreeSet<NodeId>,
}

/// This node's id. With Raft state on disk, the id stored with it (`LogStore`'s meta table)
/// is the truth: `<data_dir>/node-id` and `--node-id` must agree with it, and Raft state
/// without any id refuses to start — never a default. On a pristine log: the id in
/// `<data_dir>/node-id` (reserved by an earlier, interrupted join), else `configured`, else one
/// reserved by the cluster being joined, else 1 for a new cluster. The file is written
/// atomically and the id adopted by the log store, which stores it with the first Raft write.
pub(crate) async fn node_id(
    dir: &Path,
    log: &LogStore,
    configured: Option<NodeId>,
    joining: Option<&str>,
    peers: &Peers,
) -> Result<NodeId, NodeError> {
    let path = dir.join(NODE_ID_FILE);
    let io = |e: std::io::Error| NodeError::Storage(e.into());
    let from_file: Option<NodeId> = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text.trim().parse().ok().filter(|id| *id != 0).ok_or_else(|| {
            NodeError::Identity(format!(
                "{} does not hold a node id ({:?}); restore it or remove it (the id stored with the Raft state is then used)",
                path.display(),
                text.trim()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let stored = log.stored_node_id()?;
    let pristine = log.is_pristine()?;
    let disagree = |what: String, id: NodeId| {
        NodeError::Identity(format!(
            "{what} differs from the id {id} this data dir's Raft state belongs to; refusing to start"
        ))
    };
    let id = match (stored, from_file) {
        (Some(id), file) => {
            if let Some(f) = file.filter(|f| *f != id) {
                return Err(disagree(format!("{} holds {f}, which", path.display()), id));
            }
            id
        }
        (None, Some(f)) if !pristine => f,
        (None, None) if !pristine => {
            return Err(NodeError::Identity(format!(
                "{} has Raft state but no node id (neither stored with the state nor in {}); refusing to start rather than guess one",
                dir.display(),
                path.display()
            )))
        }
        (None, Some(f)) => f,
        (None, None) => match joining {
            Some(seed) => {
                let mut client = peers
                    .cluster(seed)
                    .map_err(|s| NodeError::Unavailable(s.to_string()))?;
                let request = JoinRequest {
                    node_id: configured.unwrap_or(0),
                };
                let reply = tokio::time::timeout(FORWARD_TIMEOUT, client.join(request))
                    .await
                    .map_err(|_| NodeError::Unavailable(format!("join via {seed}: no answer")))?
                    .map_err(|s| match s.code() {
                        tonic::Code::Unauthenticated => {
                            NodeError::BadRequest(format!("join refused: {}", s.message()))
                        }
                        _ => NodeError::Unavailable(format!("join via {seed}: {}", s.message())),
                    })?;
                reply.into_inner().node_id
            }
            None => configured.unwrap_or(1),
        },
    };
    if let Some(c) = configured.filter(|c| *c != id) {
        return Err(disagree(format!("--node-id {c}"), id));
    }
    if from_file != Some(id) {
        blindstore_storage::write_atomically(dir, NODE_ID_FILE, format!("{id}\n").as_bytes())
            .map_err(io)?;
    }
    log.adopt_node_id(id)?;
    Ok(id)
}

/// The membership as the member at rpc address `seed` sees it, asked with the cluster secret:
/// how a gateway finds the cluster. Leader first.
pub async fn discover(seed: &str, secret: &str) -> Result<ClusterMembers, NodeError> {
    let secret =
        ClusterSecret::new(secret).map_err(|e| NodeError::BadRequest(e.message().to_owned()))?;
    let mut client = Peers::new(secret)
        .cluster(seed)
        .map_err(|s| NodeError::Unavailable(s.to_string()))?;
    let reply = tokio::time::timeout(
        FORWARD_TIMEOUT,
        client.members(blindstore_rpc::v1::MembersRequest {}),
    )
    .await
    .map_err(|_| NodeError::Unavailable(format!("{seed} did not answer")))?
    .map_err(|s| match s.code() {
        tonic::Code::Unauthenticated => {
            NodeError::BadRequest(format!("refused by {seed}: {}", s.message()))
        }
        _ => NodeError::Unavailable(format!("{seed}: {}", s.message())),
    })?
    .into_inner();
    let leader = (reply.leader != 0).then_some(reply.leader);
    let mut members: Vec<Member> = reply
        .members
        .into_iter()
        .map(|m| Member {
            node_id: m.node_id,
            role: if m.voter { "voter" } else { "learner" }.into(),
            rpc_addr: m.rpc_addr,
            http_addr: m.http_addr,
            matched: None,
            draining: false,
        })
        .collect();
    members.sort_by_key(|m| (Some(m.node_id) != leader, m.node_id));
    Ok(ClusterMembers {
        node_id: 0,
        leader,
        term: 0,
        leader_last_log_index: None,
        members,
    })
}

/// Serves node-to-node gRPC on `listener` until the node shuts down.
pub(crate) async fn serve_rpc(node: Node, listener: TcpListener, secret: ClusterSecret) {
    let shutdown = node.inner.shutdown.clone();
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(addr = %addr, "rpc listening");
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let result = tonic::transport::Server::builder()
        .add_service(tonic::service::interceptor::InterceptedService::new(
            RaftServer::new(RaftRpc(node.clone()))
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
            secret.checker(),
        ))
        // Gateways may look up the members here; every other call checks for a member.
        .add_service(tonic::service::interceptor::InterceptedService::new(
            ClusterServer::new(ClusterRpc(node.clone()))
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
            secret.checker_allowing_gateways(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            ChunksServer::new(ChunksRpc(node))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            secret.checker(),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
        .await;
    match result {
        Ok(()) => tracing::info!("rpc stopped"),
        Err(e) => tracing::error!(error = %e, "rpc server failed"),
    }
}

impl Node {
    /// Runs one membership change (or learner addition) on the leader within `limit`. A
    /// change that errs or times out may still commit: its outcome is unknown.
    async fn change_bounded<F>(&self, limit: Duration, change: F) -> Result<(), NodeError>
    where
        F: std::future::Future<
            Output = Result<
                openraft::raft::ClientWriteResponse<TypeConfig>,
                RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>,
            >,
        >,
    {
        match tokio::time::timeout(limit, change).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                // Refused before anything was proposed (e.g. another change in progress).
                Err(NodeError::Unavailable(e.to_string()))
            }
            Ok(Err(e)) => Err(crate::node::write_error(e)),
            Err(_) => Err(NodeError::OutcomeUnknown(format!(
                "membership change not committed within {limit:?}"
            ))),
        }
    }

    /// The membership as this node sees it.
    pub fn members(&self) -> ClusterMembers {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let matched = m.replication.clone().unwrap_or_default();
        let draining = self.inner.state.draining().unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(id, info)| Member {
                draining: draining.contains(id),
                node_id: *id,
                role: if voters.contains(id) {
                    "voter"
                } else {
                    "learner"
                }
                .into(),
                rpc_addr: info.rpc_addr.clone(),
                http_addr: info.http_addr.clone(),
                matched: matched.get(id).copied().flatten().map(|l| l.index),
            })
            .collect();
        ClusterMembers {
            node_id: self.inner.id,
            leader: m.current_leader,
            term: m.current_term,
            leader_last_log_index: (m.current_leader == Some(self.inner.id))
                .then_some(m.last_log_index)
                .flatten(),
            members,
        }
    }

    /// The latest membership this node knows (it may not be committed yet).
    pub(crate) fn membership(&self) -> openraft::Membership<NodeId, NodeInfo> {
        self.inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone()
    }

    pub(crate) fn raft(&self) -> &Raft<TypeConfig> {
        &self.inner.raft
    }

    /// The current leader and how to reach it, if known.
    pub(crate) fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        let leader = self.inner.raft.metrics().borrow().current_leader?;
        let info = self.membership().get_node(&leader).cloned()?;
        Some((leader, info))
    }

    /// Whether this node is leading now. (After a restart, `current_leader` can name this
    /// node from its saved vote before it has been elected again; the server state cannot.)
    pub(crate) fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics().borrow().clone();
        m.state == openraft::ServerState::Leader && m.current_leader == Some(self.inner.id)
    }

    /// The leader's rpc address, or why there is none to talk to.
    fn leader_rpc(&self) -> Result<String, NodeError> {
        match self.leader() {
            Some((_, info)) if !info.rpc_addr.is_empty() => Ok(info.rpc_addr),
            Some((id, _)) => Err(NodeError::Unavailable(format!(
                "leader {id} has no rpc address"
            ))),
            None => Err(NodeError::Unavailable("no leader is known".into())),
        }
    }

    /// Marks `node` as draining (or not). Its chunks then move to their other owners.
    pub async fn set_draining(&self, node: NodeId, draining: bool) -> Result<(), NodeError> {
        if !self.member_ids().contains(&node) {
            return Err(NodeError::BadRequest(format!(
                "node {node} is not a member"
            )));
        }
        match self
            .propose_command(Command::SetDraining { node, draining })
            .await?
        {
            CommandResponse::DrainingSet => Ok(()),
            other => Err(NodeError::Internal(format!("unexpected answer {other:?}"))),
        }
    }

    /// Leader: takes `node` out of the membership. Without `force` the node must be draining
    /// and hold no chunks (every chunk it held then has its full replication elsewhere); with
    /// `force` it goes at once and the repairers restore copies. If voters fall below the
    /// target, a storage node is promoted.
    pub async fn remove_member(&self, node: NodeId, force: bool) -> Result<(), NodeError> {
        if !self.is_leader() {
            let leader = self
                .leader()
                .map(|(id, info)| format!("node {id} at http://{}", info.http_addr))
                .unwrap_or_else(|| "unknown".into());
            return Err(NodeError::Unavailable(format!(
                "only the leader removes nodes; the leader is {leader}"
            )));
        }
        let members = self.member_ids();
        if !members.contains(&node) {
            return Err(NodeError::BadRequest(format!(
                "node {node} is not a member"
            )));
        }
        if members.len() == 1 {
            return Err(NodeError::BadRequest("cannot remove the last node".into()));
        }
        if !force {
            if !self.inner.state.draining()?.contains(&node) {
                return Err(NodeError::BadRequest(format!(
                    "node {node} is not draining: drain it first, or use force"
                )));
            }
            let held = self.held_by(node).await?;
            if held > 0 {
                return Err(NodeError::BadRequest(format!(
                    "node {node} still holds {held} chunks; wait for the drain to finish"
                )));
            }
        }
        let _guard = self.inner.membership.lock().await;
        let raft = &self.inner.raft;
        let limit = self.inner.write_timeout;
        let change = if self.voter_ids().contains(&node) {
            ChangeMembers::RemoveVoters(BTreeSet::from([node]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node]))
        };
        self.change_bounded(limit, raft.change_membership(change, false))
            .await?;
        tracing::info!(node_id = node, force, "removed from the cluster");
        let voters = self.voter_ids();
        if voters.len() < self.inner.voters {
            let learner = self
                .member_ids()
                .into_iter()
                .find(|id| !voters.contains(id));
            if let Some(learner) = learner {
                let promote = ChangeMembers::AddVoterIds(BTreeSet::from([learner]));
                self.change_bounded(limit, raft.change_membership(promote, false))
                    .await?;
                tracing::info!(node_id = learner, "promoted a storage node to voter");
            }
        }
        drop(_guard);
        // The node is gone; its draining mark goes too (set_draining only takes members).
        if self.inner.state.draining()?.contains(&node) {
            self.propose_command(Command::SetDraining {
                node,
                draining: false,
            })
            .await?;
        }
        Ok(())
    }

    /// How many chunks `node` holds, asked over rpc.
    async fn held_by(&self, node: NodeId) -> Result<u64, NodeError> {
        if node == self.inner.id {
            return Ok(self.inner.chunks.total_usage()?.chunks);
        }
        let info = self
            .membership()
            .get_node(&node)
            .cloned()
            .ok_or_else(|| NodeError::BadRequest(format!("node {node} is not a member")))?;
        let mut client = self
            .inner
            .peers
            .cluster(&info.rpc_addr)
            .map_err(|s| NodeError::Unavailable(s.to_string()))?;
        let reply = client
            .held(blindstore_rpc::v1::HeldRequest {})
            .await
            .map_err(|s| NodeError::Unavailable(format!("asking node {node}: {}", s.message())))?;
        Ok(reply.into_inner().chunks)
    }

    /// Leader: reserves an id for a joining node (`requested`, or the next free one).
    pub(crate) async fn reserve_node_id(&self, requested: NodeId) -> Result<NodeId, NodeError> {
        if !self.is_leader() {
            let mut client = self.leader_client()?;
            let reply = client
                .join(JoinRequest { node_id: requested })
                .await
                .map_err(|s| NodeError::Unavailable(s.message().to_owned()))?;
            return Ok(reply.into_inner().node_id);
        }
        let mut reservations = self.inner.membership.lock().await;
        let members: BTreeSet<NodeId> = self.member_ids();
        let id = if requested != 0 {
            if members.contains(&requested) || reservations.reserved.contains(&requested) {
                return Err(NodeError::BadRequest(format!(
                    "node id {requested} is already in use"
                )));
            }
            requested
        } else {
            members
                .iter()
                .chain(&reservations.reserved)
                .max()
                .copied()
                .unwrap_or(0)
                + 1
        };
        reservations.reserved.insert(id);
        tracing::info!(node_id = id, "reserved a node id for a joining node");
        Ok(id)
    }

    /// Leader: adds `id` as a learner, waits until it has caught up, and promotes it to voter
    /// if the cluster wants more voters. Returns whether it became a voter.
    pub(crate) async fn add_member(&self, id: NodeId, info: NodeInfo) -> Result<bool, NodeError> {
        if !self.is_leader() {
            let mut client = self.leader_client()?;
            let request = AddMemberRequest {
                node_id: id,
                rpc_addr: info.rpc_addr,
                http_addr: info.http_addr,
            };
            let reply = client
                .add_member(request)
                .await
                .map_err(|s| NodeError::Unavailable(s.message().to_owned()))?;
            return Ok(reply.into_inner().voter);
        }
        let mut reservations = self.inner.membership.lock().await;
        let raft = &self.inner.raft;
        let limit = self.inner.write_timeout;
        match self.membership().get_node(&id).cloned() {
            // A member announcing new addresses after a restart: update them in place.
            Some(known) if known != info => {
                tracing::info!(node_id = id, node = %info, "updating a member's addresses");
                let nodes = ChangeMembers::SetNodes(BTreeMap::from([(id, info)]));
                self.change_bounded(limit, raft.change_membership(nodes, true))
                    .await?;
            }
            Some(_) => {}
            None => {
                tracing::info!(node_id = id, node = %info, "adding a learner");
                // Waits for the learner to catch up (a snapshot may travel): a longer bound.
                self.change_bounded(JOIN_PATIENCE, raft.add_learner(id, info, true))
                    .await?;
            }
        }
        reservations.reserved.remove(&id);
        // Also when the node was added by an earlier attempt whose promotion did not happen.
        let voters = self.voter_ids();
        if voters.contains(&id) {
            return Ok(true);
        }
        if voters.len() < self.inner.voters {
            tracing::info!(node_id = id, "promoting to voter");
            let promote = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
            self.change_bounded(limit, raft.change_membership(promote, false))
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A new node: asks the cluster (through `seed`) to add it, until it is added or patience
    /// runs out.
    pub(crate) async fn ask_to_be_added(&self, seed: &str) -> Result<(), NodeError> {
        let deadline = Instant::now() + JOIN_PATIENCE;
        let request = AddMemberRequest {
            node_id: self.inner.id,
            rpc_addr: self.inner.own_info.rpc_addr.clone(),
            http_addr: self.inner.own_info.http_addr.clone(),
        };
        loop {
            let mut client = self
                .inner
                .peers
                .cluster(seed)
                .map_err(|s| NodeError::Unavailable(s.to_string()))?;
            match client.add_member(request.clone()).await {
                Ok(reply) => {
                    let role = if reply.into_inner().voter {
                        "voter"
                    } else {
                        "learner"
                    };
                    tracing::info!(node_id = self.inner.id, role, "joined the cluster");
                    return Ok(());
                }
                Err(s) if Instant::now() < deadline && s.code() != tonic::Code::Unauthenticated => {
                    tracing::info!(error = %s.message(), "not added yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(s) => {
                    return Err(NodeError::Unavailable(format!(
                        "joining via {seed}: {}",
                        s.message()
                    )))
                }
            }
        }
    }

    /// After a restart: if the cluster holds other addresses for this node than it now has
    /// (it was restarted with other flags, e.g. a new port), gets them updated. The other
    /// members' view is what counts — this node's own log may hold changes that never
    /// committed — so it asks them (they forward to the leader) until one has the right
    /// addresses; a node alone updates its own membership. Until then the others cannot reach
    /// this node. Ends when done or at shutdown.
    pub(crate) async fn announce_own_address(self) {
        let shutdown = self.inner.shutdown.clone();
        let mut delay = Duration::from_millis(200);
        loop {
            match self.announce_once().await {
                Ok(true) => {
                    tracing::info!(node = %self.inner.own_info, "the cluster has this node's current addresses");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "announcing this node's addresses; will retry")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// One attempt; `Ok(true)` once the cluster holds this node's current addresses.
    async fn announce_once(&self) -> Result<bool, NodeError> {
        let membership = self.membership();
        let others: Vec<String> = membership
            .nodes()
            .filter(|(id, info)| **id != self.inner.id && !info.rpc_addr.is_empty())
            .map(|(_, info)| info.rpc_addr.clone())
            .collect();
        if others.is_empty() {
            if membership.get_node(&self.inner.id) == Some(&self.inner.own_info) {
                return Ok(true);
            }
            if !self.is_leader() {
                return Ok(false);
            }
            tokio::time::timeout(FORWARD_TIMEOUT, self.set_own_address())
                .await
                .map_err(|_| NodeError::Unavailable("membership change timed out".into()))??;
            return Ok(true);
        }
        let request = AddMemberRequest {
            node_id: self.inner.id,
            rpc_addr: self.inner.own_info.rpc_addr.clone(),
            http_addr: self.inner.own_info.http_addr.clone(),
        };
        let mut last = NodeError::Unavailable("no member answered".into());
        for addr in others {
            let Ok(mut client) = self.inner.peers.cluster(&addr) else {
                continue;
            };
            let view = tokio::time::timeout(
                FORWARD_TIMEOUT,
                client.members(blindstore_rpc::v1::MembersRequest {}),
            )
            .await;
            if let Ok(Ok(view)) = view {
                let known = view
                    .into_inner()
                    .members
                    .into_iter()
                    .find(|m| m.node_id == self.inner.id);
                if known.is_some_and(|m| {
                    m.rpc_addr == request.rpc_addr && m.http_addr == request.http_addr
                }) {
                    return Ok(true);
                }
            }
            match tokio::time::timeout(FORWARD_TIMEOUT, client.add_member(request.clone())).await {
                Ok(Ok(_)) => return Ok(true),
                Ok(Err(s)) => last = NodeError::Unavailable(s.message().to_owned()),
                Err(_) => last = NodeError::Unavailable(format!("{addr} did not answer")),
            }
        }
        Err(last)
    }

    /// Leader: makes the membership carry this node's current addresses.
    async fn set_own_address(&self) -> Result<(), NodeError> {
        let _guard = self.inner.membership.lock().await;
        let nodes = BTreeMap::from([(self.inner.id, self.inner.own_info.clone())]);
        let change = self
            .inner
            .raft
            .change_membership(ChangeMembers::SetNodes(nodes), true);
        self.change_bounded(self.inner.write_timeout, change).await
    }

    /// Proposes on the leader, from a follower. A request that certainly did not reach it is
    /// `Unavailable`; one that may have is `OutcomeUnknown`.
    pub(crate) async fn forward(&self, command: &Command) -> Result<CommandResponse, NodeError> {
        let mut client = self.leader_client()?;
        let request = ForwardRequest {
            command_record: encode(command),
        };
        // The leader bounds its own proposal by the same deadline; a second more lets its
        // answer arrive.
        let limit = self.inner.write_timeout + Duration::from_secs(1);
        let reply = match tokio::time::timeout(limit, client.forward(request)).await {
            Err(_) => {
                return Err(NodeError::OutcomeUnknown(
                    "forwarded write timed out".into(),
                ))
            }
            Ok(Err(s)) if never_sent(&s) => {
                return Err(NodeError::Unavailable(format!(
                    "leader unreachable: {}",
                    s.message()
                )))
            }
            Ok(Err(s)) => {
                return Err(NodeError::OutcomeUnknown(format!(
                    "forwarded write failed: {}",
                    s.message()
                )))
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        match reply.result {
            Some(ForwardResult::ResponseRecord(record)) => decode("command response", &record)
                .map_err(|e| NodeError::OutcomeUnknown(e.to_string())),
            Some(ForwardResult::Error(e)) if e.kind == Kind::Unavailable as i32 => {
                Err(NodeError::Unavailable(e.message))
            }
            Some(ForwardResult::Error(e)) => Err(NodeError::OutcomeUnknown(e.message)),
            None => Err(NodeError::OutcomeUnknown("empty forward reply".into())),
        }
    }

    /// Leader: the index a linearizable read must see applied.
    pub(crate) async fn leader_read_index(&self) -> Result<u64, NodeError> {
        let log_id = self
            .inner
            .raft
            .ensure_linearizable()
            .await
            .map_err(|e| NodeError::Unavailable(format!("read index: {e}")))?;
        Ok(log_id.map(|l| l.index).unwrap_or(0))
    }

    /// Follower: waits until this node has applied the leader's read index.
    pub(crate) async fn follower_read_barrier(&self) -> Result<(), NodeError> {
        let mut client = self.leader_client()?;
        let index =
            match tokio::time::timeout(FORWARD_TIMEOUT, client.read_index(ReadIndexRequest {}))
                .await
            {
                Err(_) => return Err(NodeError::Unavailable("read index timed out".into())),
                Ok(Err(s)) => {
                    return Err(NodeError::Unavailable(format!(
                        "read index: {}",
                        s.message()
                    )))
                }
                Ok(Ok(reply)) => reply.into_inner().index,
            };
        self.inner
            .raft
            .wait(Some(FORWARD_TIMEOUT))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| NodeError::Unavailable(format!("catching up to the read index: {e}")))
    }

    fn leader_client(
        &self,
    ) -> Result<
        blindstore_rpc::v1::cluster_client::ClusterClient<crate::transport::Authed>,
        NodeError,
    > {
        let addr = self.leader_rpc()?;
        self.inner
            .peers
            .cluster(&addr)
            .map_err(|s| NodeError::Unavailable(s.to_string()))
    }

    fn member_ids(&self) -> BTreeSet<NodeId> {
        self.membership().nodes().map(|(id, _)| *id).collect()
    }

    fn voter_ids(&self) -> BTreeSet<NodeId> {
        self.membership().voter_ids().collect()
    }
}
