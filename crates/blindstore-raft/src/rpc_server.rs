//! The server side of node-to-node gRPC: Raft messages into openraft, the cluster calls
//! (join, forward, read index) into [`Core`]; the node above the core adds its own services
//! (chunk transfers: `blindstore_replication::ChunksRpc`) behind [`MembersOnly`]. Every call has passed the
//! cluster-secret check before it gets here (the interceptors are installed in `serve_rpc`);
//! the Cluster service also admits the gateway token, for `Members` only. On a cluster that
//! runs its rpc over TLS, member calls must also come with a node certificate from the cluster
//! CA, which names the caller ([`PeerCert`]); a removed node's certificate is refused.

use crate::TypeConfig;
use blindstore_rpc::v1::cluster_server::Cluster;
use blindstore_rpc::v1::cluster_server::ClusterServer;
use blindstore_rpc::v1::forward_error::Kind;
use blindstore_rpc::v1::forward_reply::Result as ForwardResult;
use blindstore_rpc::v1::raft_server::Raft as RaftService;
use blindstore_rpc::v1::raft_server::RaftServer;
use blindstore_rpc::v1::{
    AddMemberReply, AddMemberRequest, ForwardError, ForwardReply, ForwardRequest, HeldReply,
    HeldRequest, JoinReply, JoinRequest, MemberInfo, MembersReply, MembersRequest, RaftMessage,
    ReadIndexReply, ReadIndexRequest, SignNodeReply, SignNodeRequest, VersionReply, VersionRequest,
};
use blindstore_rpc::{require_member, ClusterSecret, MAX_RAFT_MESSAGE_BYTES};
use blindstore_types::command::Command;
use blindstore_types::raft::NodeId;
use blindstore_types::raft::NodeInfo;
use blindstore_types::record::{decode, encode};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::{Core, CoreError};

/// The node-to-node server being built.
pub type RpcRouter = tonic::transport::server::Router;

/// Serves node-to-node gRPC on `listener` until the node shuts down, over TLS with `tls`.
pub(crate) async fn serve_rpc(
    node: Core,
    listener: TcpListener,
    secret: ClusterSecret,
    tls: Option<tonic::transport::ServerTlsConfig>,
    services: Box<dyn FnOnce(RpcRouter, MembersOnly) -> RpcRouter + Send>,
) {
    let shutdown = node.inner.shutdown.clone();
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(addr = %addr, "rpc listening");
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(config) = tls {
        builder = match builder.tls_config(config) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "rpc TLS could not be set up; rpc not served");
                return;
            }
        };
    }
    let router = builder
        .add_service(tonic::service::interceptor::InterceptedService::new(
            RaftServer::new(RaftRpc(node.clone()))
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
            members_only(node.clone(), secret.clone()),
        ))
        // Gateways may look up the members here, and a joining node (holding the token but no
        // certificate yet) may join; every other call checks for a member.
        .add_service(tonic::service::interceptor::InterceptedService::new(
            ClusterServer::new(ClusterRpc(node.clone()))
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
            {
                let node = node.clone();
                let secret = secret.clone();
                move |mut request: Request<()>| {
                    // A member's certificate is its credential (it may hold a join token from
                    // before a rotation it has not applied yet); without one, the token.
                    if identify(&node, &mut request) {
                        request
                            .extensions_mut()
                            .insert(blindstore_rpc::Caller::Member);
                        return Ok(request);
                    }
                    secret.verify_any(request)
                }
            },
        ));
    // The node's own services (chunk transfers), behind the same check.
    let result = services(router, members_only(node.clone(), secret.clone()))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
        .await;
    match result {
        Ok(()) => tracing::info!("rpc stopped"),
        Err(e) => tracing::error!(error = %e, "rpc server failed"),
    }
}

/// Who a call comes from, by the node certificate it presented (TLS clusters only).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerCert {
    pub(crate) id: NodeId,
    pub(crate) removed: bool,
}

/// Records the node a verified client certificate names, if any; whether there was one.
fn identify<T>(node: &Core, request: &mut Request<T>) -> bool {
    if node.inner.tls.is_none() {
        return false;
    }
    let Some(id) = blindstore_rpc::peer_node(request) else {
        return false;
    };
    let removed = node.removed_nodes().contains(&id);
    request.extensions_mut().insert(PeerCert { id, removed });
    true
}

/// The member a call comes from: on a TLS cluster, the node its certificate names, which must
/// not have been removed; `None` on a plain cluster (the token is all there is).
fn member<T>(node: &Core, request: &Request<T>) -> Result<Option<NodeId>, Status> {
    if node.inner.tls.is_none() {
        return Ok(None);
    }
    match request.extensions().get::<PeerCert>() {
        Some(PeerCert { id, removed: true }) => Err(status_of(CoreError::Removed(*id))),
        Some(PeerCert { id, .. }) => Ok(Some(*id)),
        None => Err(Status::unauthenticated(
            "this cluster runs mutual TLS between nodes: a member's call must come with its node certificate",
        )),
    }
}

/// The interceptor of the services only members call: on a TLS cluster a node certificate
/// naming a node that was not removed (the member's credential, whatever token it holds); on a
/// plain one the join token.
fn members_only(node: Core, secret: ClusterSecret) -> MembersOnly {
    MembersOnly { node, secret }
}

/// The check in front of the services only members call (see [`members_only`]).
#[derive(Clone)]
pub struct MembersOnly {
    node: Core,
    secret: ClusterSecret,
}

impl tonic::service::Interceptor for MembersOnly {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if !identify(&self.node, &mut request) {
            request = self.secret.verify(request)?;
        }
        member(&self.node, &request)?;
        Ok(request)
    }
}

/// Serves `blindstore.v1.Raft` for a node.
pub(crate) struct RaftRpc(pub(crate) Core);

/// Serves `blindstore.v1.Cluster` for a node.
pub(crate) struct ClusterRpc(pub(crate) Core);

fn bad_record(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("undecodable record: {e}"))
}

impl RaftRpc {
    /// Refuses a Raft message from a node removed from the cluster for good (a removed node
    /// left running, or restarted on its old data dir, must not lead or start elections), and
    /// on a TLS cluster one whose sender is not the node its certificate names.
    fn refuse_removed(&self, sender: Option<NodeId>, caller: Option<NodeId>) -> Result<(), Status> {
        if let Some(caller) = caller {
            // The certificate's node was checked against the removed ones already (`member`).
            return match sender {
                Some(sender) if sender != caller => Err(Status::permission_denied(format!(
                    "the message says it comes from node {sender}, but the certificate names node {caller}"
                ))),
                _ => Ok(()),
            };
        }
        match sender {
            Some(id) if self.0.removed_nodes().contains(&id) => {
                Err(status_of(CoreError::Removed(id)))
            }
            _ => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl RaftService for RaftRpc {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let caller = member(&self.0, &request)?;
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> =
            decode("append entries request", &request.into_inner().record).map_err(bad_record)?;
        self.refuse_removed(rpc.vote.leader_id().voted_for(), caller)?;
        let result = self.0.raft().append_entries(rpc).await;
        Ok(Response::new(RaftMessage {
            record: encode(&result),
        }))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = member(&self.0, &request)?;
        let rpc: openraft::raft::VoteRequest<NodeId> =
            decode("vote request", &request.into_inner().record).map_err(bad_record)?;
        self.refuse_removed(rpc.vote.leader_id().voted_for(), caller)?;
        let result = self.0.raft().vote(rpc).await;
        Ok(Response::new(RaftMessage {
            record: encode(&result),
        }))
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let caller = member(&self.0, &request)?;
        let rpc: openraft::raft::InstallSnapshotRequest<TypeConfig> =
            decode("install snapshot request", &request.into_inner().record).map_err(bad_record)?;
        self.refuse_removed(rpc.vote.leader_id().voted_for(), caller)?;
        let result = self.0.raft().install_snapshot(rpc).await;
        Ok(Response::new(RaftMessage {
            record: encode(&result),
        }))
    }
}

fn status_of(e: CoreError) -> Status {
    match e {
        CoreError::Removed(_) => Status::permission_denied(e.to_string()),
        CoreError::Unavailable(m) | CoreError::NotLeader(m) => Status::unavailable(m),
        CoreError::BadRequest(m) => Status::invalid_argument(m),
        CoreError::TooOld(m) => Status::failed_precondition(m),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl Cluster for ClusterRpc {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        // The token is enough: a joining node has no certificate yet (this call gets it one).
        require_member(&request)?;
        if let Some(PeerCert { id, removed: true }) = request.extensions().get::<PeerCert>() {
            return Err(status_of(CoreError::Removed(*id)));
        }
        let r = request.into_inner();
        let (node_id, cert_pem) = self
            .0
            .join_node(r.node_id, r.csr_pem, r.feature_level)
            .await
            .map_err(status_of)?;
        Ok(Response::new(JoinReply { node_id, cert_pem }))
    }

    async fn add_member(
        &self,
        request: Request<AddMemberRequest>,
    ) -> Result<Response<AddMemberReply>, Status> {
        require_member(&request)?;
        let caller = member(&self.0, &request)?;
        let r = request.into_inner();
        // A node adds itself; a member other than it only forwards (to the leader).
        if caller.is_some_and(|c| c != r.node_id && !self.0.member_ids().contains(&c)) {
            return Err(Status::permission_denied(format!(
                "the certificate names node {}, which may not add node {}",
                caller.unwrap_or_default(),
                r.node_id
            )));
        }
        let info = NodeInfo {
            rpc_addr: r.rpc_addr,
            http_addr: r.http_addr,
        };
        let voter = self
            .0
            .add_member(r.node_id, info, r.feature_level)
            .await
            .map_err(status_of)?;
        Ok(Response::new(AddMemberReply { voter }))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        require_member(&request)?;
        member(&self.0, &request)?;
        let command: Command =
            decode("command", &request.into_inner().command_record).map_err(bad_record)?;
        // Not leading: certainly not proposed here; the follower may try again.
        let proposed = if self.0.is_leader() {
            self.0.propose_here(command).await
        } else {
            Err(CoreError::Unavailable("this node does not lead".into()))
        };
        let result = match proposed {
            Ok(response) => ForwardResult::ResponseRecord(encode(&response)),
            Err(e) => {
                let kind = match e {
                    CoreError::OutcomeUnknown(_) => Kind::OutcomeUnknown,
                    _ => Kind::Unavailable,
                };
                ForwardResult::Error(ForwardError {
                    kind: kind as i32,
                    message: e.to_string(),
                })
            }
        };
        Ok(Response::new(ForwardReply {
            result: Some(result),
        }))
    }

    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        let view = self.0.members();
        let members = view
            .members
            .into_iter()
            .map(|m| MemberInfo {
                node_id: m.node_id,
                rpc_addr: m.rpc_addr,
                http_addr: m.http_addr,
                voter: m.role == "voter",
            })
            .collect();
        let credentials = self.0.inner.state.admin_credentials().unwrap_or_default();
        Ok(Response::new(MembersReply {
            leader: view.leader.unwrap_or(0),
            members,
            removed: self.0.removed_nodes().into_iter().collect(),
            admin_credential: credentials
                .as_ref()
                .map(|c| c.admin.0.to_vec())
                .unwrap_or_default(),
            metrics_credential: credentials
                .and_then(|c| c.metrics)
                .map(|h| h.0.to_vec())
                .unwrap_or_default(),
        }))
    }

    async fn sign_node(
        &self,
        request: Request<SignNodeRequest>,
    ) -> Result<Response<SignNodeReply>, Status> {
        require_member(&request)?;
        let Some(caller) = member(&self.0, &request)? else {
            return Err(Status::failed_precondition(
                "this cluster runs plain rpc between nodes; it issues no certificates",
            ));
        };
        let has_key = self
            .0
            .inner
            .tls
            .as_ref()
            .is_some_and(|t| t.ca.signer.is_some());
        if !has_key {
            return Err(Status::failed_precondition(
                "this member holds no cluster CA key",
            ));
        }
        let r = request.into_inner();
        let cert_pem = self
            .0
            .sign_node_cert(caller, r.node_id, &r.csr_pem)
            .await
            .map_err(status_of)?;
        Ok(Response::new(SignNodeReply { cert_pem }))
    }

    async fn held(&self, request: Request<HeldRequest>) -> Result<Response<HeldReply>, Status> {
        require_member(&request)?;
        member(&self.0, &request)?;
        let held = self
            .0
            .inner
            .held
            .get()
            .ok_or_else(|| Status::unavailable("the node is starting"))?;
        let chunks = held().map_err(Status::internal)?;
        Ok(Response::new(HeldReply { chunks }))
    }

    async fn version(
        &self,
        request: Request<VersionRequest>,
    ) -> Result<Response<VersionReply>, Status> {
        require_member(&request)?;
        member(&self.0, &request)?;
        Ok(Response::new(VersionReply {
            feature_level: self.0.feature_level(),
            build: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        require_member(&request)?;
        member(&self.0, &request)?;
        let index = self.0.leader_read_index().await.map_err(status_of)?;
        Ok(Response::new(ReadIndexReply { index }))
    }
}
