//! Joining a cluster: the two calls a new node makes to any member (which forward to the
//! leader); its durable identity is `identity`'s. `Join` reserves a node id, then — once the new node
//! runs Raft and serves gRPC — `AddMember` adds it as a learner, waits until it has caught up,
//! and promotes it to voter while the cluster has fewer voters than it wants. A restarted
//! member announces new addresses the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use blindstore_rpc::tls::{NodeCert, CA_KEY_FILE};
use blindstore_rpc::v1::{AddMemberRequest, JoinRequest, SignNodeRequest};
use blindstore_types::raft::{NodeId, NodeInfo};
use openraft::ChangeMembers;

use crate::FORWARD_TIMEOUT;
use crate::{Core, CoreError};

/// How often a member asks another whether it was removed.
const REMOVAL_CHECK: Duration = Duration::from_secs(3);
/// How long a joining node keeps asking to be added (the leader may be changing meanwhile).
pub(crate) const JOIN_PATIENCE: Duration = Duration::from_secs(120);

impl Core {
    /// Leader: reserves an id for a joining node (`requested`, or the next free one) and, on a
    /// TLS cluster, has its certificate request signed for that id. The id and the
    /// certificate (PEM; empty without TLS).
    pub(crate) async fn join_node(
        &self,
        requested: NodeId,
        csr_pem: String,
        feature_level: u32,
    ) -> Result<(NodeId, String), CoreError> {
        if !self.is_leader() {
            let mut client = self.leader_client()?;
            let reply = client
                .join(JoinRequest {
                    node_id: requested,
                    csr_pem,
                    feature_level,
                })
                .await
                .map_err(|s| match s.code() {
                    tonic::Code::InvalidArgument | tonic::Code::PermissionDenied => {
                        CoreError::BadRequest(s.message().to_owned())
                    }
                    tonic::Code::FailedPrecondition => CoreError::TooOld(s.message().to_owned()),
                    _ => CoreError::Unavailable(s.message().to_owned()),
                })?
                .into_inner();
            return Ok((reply.node_id, reply.cert_pem));
        }
        self.check_joining_level(requested, feature_level)?;
        if self.inner.tls.is_some() && csr_pem.is_empty() {
            return Err(CoreError::BadRequest(
                "this cluster runs its rpc over TLS: a joining node must send a certificate request (is it an older version?)".into(),
            ));
        }
        let id = self.reserve_node_id(requested).await?;
        if self.inner.tls.is_none() {
            return Ok((id, String::new()));
        }
        match self.sign_node_cert(self.inner.id, id, &csr_pem).await {
            Ok(cert) => Ok((id, cert)),
            Err(e) => {
                self.inner.membership.lock().await.reserved.remove(&id);
                Err(e)
            }
        }
    }

    /// Leader: reserves an id for a joining node (`requested`, or the next free one).
    async fn reserve_node_id(&self, requested: NodeId) -> Result<NodeId, CoreError> {
        let mut reservations = self.inner.membership.lock().await;
        let members: BTreeSet<NodeId> = self.member_ids();
        let removed = self.removed_nodes();
        let id = if requested != 0 {
            if removed.contains(&requested) {
                return Err(CoreError::Removed(requested));
            }
            if members.contains(&requested) || reservations.reserved.contains(&requested) {
                return Err(CoreError::BadRequest(format!(
                    "node id {requested} is already in use"
                )));
            }
            requested
        } else {
            // Never an id a removed node had: its certificate, data dir or log could come back.
            members
                .iter()
                .chain(&reservations.reserved)
                .chain(&removed)
                .max()
                .copied()
                .unwrap_or(0)
                + 1
        };
        reservations.reserved.insert(id);
        tracing::info!(node_id = id, "reserved a node id for a joining node");
        Ok(id)
    }

    /// Signs a certificate for node `id`, asked by node `caller`: with the CA key held here,
    /// else by the first member that holds it. A node may renew its own certificate; any other
    /// member may have one signed only for an id that is neither a member nor removed (a node
    /// joining). Never for a removed id.
    pub(crate) async fn sign_node_cert(
        &self,
        caller: NodeId,
        id: NodeId,
        csr_pem: &str,
    ) -> Result<String, CoreError> {
        let Some(tls) = &self.inner.tls else {
            return Err(CoreError::BadRequest(
                "this cluster runs plain rpc between nodes; it issues no certificates".into(),
            ));
        };
        if self.removed_nodes().contains(&id) {
            return Err(CoreError::Removed(id));
        }
        if caller != id {
            if self.member_ids().contains(&id) {
                return Err(CoreError::BadRequest(format!(
                    "node {id} is a member: only it can renew its certificate"
                )));
            }
            // A new node's certificate only for the leader, which reserved its id: no member
            // can hold a certificate for an id the cluster has not handed out yet.
            let leader = self.inner.raft.metrics().borrow().current_leader;
            if leader != Some(caller) {
                return Err(CoreError::Unavailable(format!(
                    "only the leader has certificates signed for joining nodes; node {caller} does not lead (as node {} sees it)",
                    self.inner.id
                )));
            }
        }
        if let Some(signer) = &tls.ca.signer {
            let cert = signer
                .sign_node(id, csr_pem)
                .map_err(|e| CoreError::BadRequest(e.to_string()))?;
            tracing::info!(node_id = id, asked_by = caller, "node certificate signed");
            return Ok(cert);
        }
        let holders: Vec<String> = self
            .membership()
            .nodes()
            .filter(|(m, info)| **m != self.inner.id && !info.rpc_addr.is_empty())
            .map(|(_, info)| info.rpc_addr.clone())
            .collect();
        let request = SignNodeRequest {
            node_id: id,
            csr_pem: csr_pem.to_owned(),
        };
        let mut refused = None;
        for addr in holders {
            let Ok(mut client) = self.inner.peers.cluster(&addr) else {
                continue;
            };
            match tokio::time::timeout(FORWARD_TIMEOUT, client.sign_node(request.clone())).await {
                Ok(Ok(reply)) => return Ok(reply.into_inner().cert_pem),
                Ok(Err(s)) if s.code() == tonic::Code::FailedPrecondition => {}
                Ok(Err(s)) if s.code() == tonic::Code::InvalidArgument => {
                    return Err(CoreError::BadRequest(s.message().to_owned()))
                }
                Ok(Err(s)) => {
                    tracing::debug!(addr, error = %s.message(), "asking a member to sign a node certificate");
                    if !blindstore_rpc::never_sent(&s) {
                        refused = Some(format!("{addr}: {}", s.message()));
                    }
                }
                Err(_) => tracing::debug!(addr, "a member did not answer a signing request"),
            }
        }
        Err(CoreError::Unavailable(match refused {
            Some(why) => format!("the member holding the cluster CA key did not sign: {why}"),
            None => format!(
                "no reachable member holds the cluster CA key ({CA_KEY_FILE}), so no node certificate can be issued: \
                 start the member that made the cluster, or copy {CA_KEY_FILE} from a backup into another member's data dir and restart it"
            ),
        }))
    }

    /// A member whose certificate expires soon and who holds no CA key: asks the members for a
    /// new one until one signs it, and stores it for the next start. Ends when done or at
    /// shutdown.
    pub(crate) async fn renew_own_certificate(self, dir: std::path::PathBuf) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            match self.renew_once(&dir).await {
                Ok(()) => {
                    tracing::info!(
                        "a new node certificate was issued and stored; it is used from the next start"
                    );
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the node certificate; will retry"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    }

    async fn renew_once(&self, dir: &Path) -> Result<(), CoreError> {
        let Some(tls) = &self.inner.tls else {
            return Ok(());
        };
        let identity = |e: blindstore_rpc::tls::TlsError| CoreError::Identity(e.to_string());
        let (csr, key) = blindstore_rpc::tls::node_request().map_err(identity)?;
        let chain = self
            .sign_node_cert(self.inner.id, self.inner.id, &csr)
            .await?;
        let cert = NodeCert::new(chain, key, &tls.ca.cert_pem).map_err(identity)?;
        cert.store(dir).map_err(identity)
    }

    /// Leader: adds `id` as a learner, waits until it has caught up, and promotes it to voter
    /// if the cluster wants more voters. Returns whether it became a voter.
    pub(crate) async fn add_member(
        &self,
        id: NodeId,
        info: NodeInfo,
        feature_level: u32,
    ) -> Result<bool, CoreError> {
        if !self.is_leader() {
            let mut client = self.leader_client()?;
            let request = AddMemberRequest {
                node_id: id,
                rpc_addr: info.rpc_addr,
                http_addr: info.http_addr,
                feature_level,
            };
            let reply = client
                .add_member(request)
                .await
                .map_err(|s| match s.code() {
                    tonic::Code::FailedPrecondition => CoreError::TooOld(s.message().to_owned()),
                    _ => CoreError::Unavailable(s.message().to_owned()),
                })?;
            return Ok(reply.into_inner().voter);
        }
        let mut reservations = self.inner.membership.lock().await;
        if self.removed_nodes().contains(&id) {
            tracing::warn!(
                node_id = id,
                "a removed node asked to be added again; refused"
            );
            return Err(CoreError::Removed(id));
        }
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
                self.check_joining_level(id, feature_level)?;
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

    /// This node asking to be added (or to have its addresses updated).
    fn own_add_request(&self) -> AddMemberRequest {
        AddMemberRequest {
            node_id: self.inner.id,
            rpc_addr: self.inner.own_info.rpc_addr.clone(),
            http_addr: self.inner.own_info.http_addr.clone(),
            feature_level: self.inner.feature_level,
        }
    }

    /// A new node: asks the cluster (through `seed`) to add it, until it is added or patience
    /// runs out.
    pub(crate) async fn ask_to_be_added(&self, seed: &str) -> Result<(), CoreError> {
        let deadline = Instant::now() + JOIN_PATIENCE;
        let request = self.own_add_request();
        loop {
            let mut client = self
                .inner
                .peers
                .cluster(seed)
                .map_err(|s| CoreError::Unavailable(s.to_string()))?;
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
                Err(s) if s.code() == tonic::Code::PermissionDenied => {
                    self.learned_removed();
                    return Err(CoreError::Removed(self.inner.id));
                }
                Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                    return Err(CoreError::TooOld(format!(
                        "joining via {seed}: {}",
                        s.message()
                    )))
                }
                Err(s) if Instant::now() < deadline && s.code() != tonic::Code::Unauthenticated => {
                    tracing::info!(error = %s.message(), "not added yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(s) => {
                    return Err(CoreError::Unavailable(format!(
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
    async fn announce_once(&self) -> Result<bool, CoreError> {
        let membership = self.membership();
        let others: Vec<String> = membership
            .nodes()
            .filter(|(id, info)| **id != self.inner.id && !info.rpc_addr.is_empty())
            .map(|(_, info)| info.rpc_addr.clone())
            .collect();
        // The leader updates its own entry itself: asking a member to forward the update to
        // the leader would go nowhere while that member lacks the leader's address (a restored
        // node that others joined before it announced).
        if others.is_empty() || self.is_leader() {
            if membership.get_node(&self.inner.id) == Some(&self.inner.own_info) {
                return Ok(true);
            }
            if !self.is_leader() {
                return Ok(false);
            }
            tokio::time::timeout(FORWARD_TIMEOUT, self.set_own_address())
                .await
                .map_err(|_| CoreError::Unavailable("membership change timed out".into()))??;
            return Ok(true);
        }
        let request = self.own_add_request();
        let mut last = CoreError::Unavailable("no member answered".into());
        for addr in others {
            let Ok(mut client) = self.inner.peers.cluster(&addr) else {
                continue;
            };
            let view = tokio::time::timeout(
                FORWARD_TIMEOUT,
                client.members(blindstore_rpc::v1::MembersRequest {}),
            )
            .await;
            if let Ok(Ok(view)) = &view {
                if view.get_ref().removed.contains(&self.inner.id) {
                    self.learned_removed();
                    return Ok(true);
                }
            }
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
                Ok(Err(s)) if s.code() == tonic::Code::PermissionDenied => {
                    self.learned_removed();
                    return Ok(true);
                }
                Ok(Err(s)) => last = CoreError::Unavailable(s.message().to_owned()),
                Err(_) => last = CoreError::Unavailable(format!("{addr} did not answer")),
            }
        }
        Err(last)
    }

    /// From start until shutdown, every few seconds: whether this node was removed from the
    /// cluster — its own state says so (it applied the removal), or another member does (it
    /// was removed while it lagged, or was cut off before it applied it). Once it knows, it
    /// stops serving clients.
    pub(crate) async fn watch_for_removal(self) {
        let shutdown = self.inner.shutdown.clone();
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(REMOVAL_CHECK) => {}
                }
            }
            first = false;
            if self.is_removed() {
                return;
            }
            if self.removed_nodes().contains(&self.inner.id) {
                self.learned_removed();
                return;
            }
            if self.is_leader() {
                continue;
            }
            let others: Vec<String> = self
                .membership()
                .nodes()
                .filter(|(id, info)| **id != self.inner.id && !info.rpc_addr.is_empty())
                .map(|(_, info)| info.rpc_addr.clone())
                .collect();
            for addr in others {
                let Ok(mut client) = self.inner.peers.cluster(&addr) else {
                    continue;
                };
                let asked = client.members(blindstore_rpc::v1::MembersRequest {});
                if let Ok(Ok(view)) = tokio::time::timeout(FORWARD_TIMEOUT, asked).await {
                    if view.get_ref().removed.contains(&self.inner.id) {
                        self.learned_removed();
                        return;
                    }
                    break;
                }
            }
        }
    }

    /// Leader: makes the membership carry this node's current addresses.
    async fn set_own_address(&self) -> Result<(), CoreError> {
        let _guard = self.inner.membership.lock().await;
        let nodes = BTreeMap::from([(self.inner.id, self.inner.own_info.clone())]);
        let change = self
            .inner
            .raft
            .change_membership(ChangeMembers::SetNodes(nodes), true);
        self.change_bounded(self.inner.write_timeout, change).await
    }
}
