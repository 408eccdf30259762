//! Joining a cluster: a node's durable identity, and the two calls a new node makes to any
//! member (which forward to the leader). `Join` reserves a node id, then — once the new node
//! runs Raft and serves gRPC — `AddMember` adds it as a learner, waits until it has caught up,
//! and promotes it to voter while the cluster has fewer voters than it wants. A restarted
//! member announces new addresses the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::LogStore;
use blindstore_rpc::tls::{
    ClusterCa, ClusterToken, Fingerprint, NodeCert, CA_CERT_FILE, CA_KEY_FILE, NODE_CERT_FILE,
    NODE_CERT_RENEW_BEFORE,
};
use blindstore_rpc::v1::{AddMemberRequest, JoinRequest, SignNodeRequest};
use blindstore_rpc::{Peers, RpcError};
use blindstore_types::raft::{NodeId, NodeInfo};
use openraft::ChangeMembers;

use crate::forwarding::FORWARD_TIMEOUT;
use crate::{Core, CoreError};

const NODE_ID_FILE: &str = "node-id";
/// How often a member asks another whether it was removed.
const REMOVAL_CHECK: Duration = Duration::from_secs(3);
/// How long a joining node keeps asking to be added (the leader may be changing meanwhile).
pub(crate) const JOIN_PATIENCE: Duration = Duration::from_secs(120);

/// Core ids handed out by this node as leader but not yet in the membership.
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
    ca: Option<&CaMaterial>,
) -> Result<NodeId, CoreError> {
    let path = dir.join(NODE_ID_FILE);
    let io = |e: std::io::Error| CoreError::Storage(e.into());
    let from_file: Option<NodeId> = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text.trim().parse().ok().filter(|id| *id != 0).ok_or_else(|| {
            CoreError::Identity(format!(
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
        CoreError::Identity(format!(
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
            return Err(CoreError::Identity(format!(
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
                    .map_err(|s| CoreError::Unavailable(s.to_string()))?;
                // Over TLS the join asks for this node's certificate too; it is stored before
                // the id, so a data dir with an id from a join always has its certificate.
                let request_key = ca
                    .map(|_| blindstore_rpc::tls::node_request())
                    .transpose()
                    .map_err(|e| CoreError::Identity(e.to_string()))?;
                let request = JoinRequest {
                    node_id: configured.unwrap_or(0),
                    csr_pem: request_key
                        .as_ref()
                        .map(|(csr, _)| csr.clone())
                        .unwrap_or_default(),
                };
                let reply = tokio::time::timeout(FORWARD_TIMEOUT, client.join(request))
                    .await
                    .map_err(|_| CoreError::Unavailable(format!("join via {seed}: no answer")))?
                    .map_err(|s| match s.code() {
                        tonic::Code::Unauthenticated
                        | tonic::Code::PermissionDenied
                        | tonic::Code::InvalidArgument => {
                            CoreError::BadRequest(format!("join refused: {}", s.message()))
                        }
                        _ => CoreError::Unavailable(format!("join via {seed}: {}", s.message())),
                    })?
                    .into_inner();
                if let (Some(ca), Some((_, key))) = (ca, request_key) {
                    let cert = NodeCert::new(reply.cert_pem, key, &ca.cert_pem).map_err(|e| {
                        CoreError::Identity(format!(
                            "the cluster's answer to the join: {e} (is its leader an older version?)"
                        ))
                    })?;
                    if cert.node_id() != reply.node_id {
                        return Err(CoreError::Identity(format!(
                            "the cluster reserved node id {} but issued a certificate for node {}",
                            reply.node_id,
                            cert.node_id()
                        )));
                    }
                    cert.store(dir)
                        .map_err(|e| CoreError::Identity(e.to_string()))?;
                }
                reply.node_id
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

/// The cluster CA as this node has it, on a cluster whose rpc runs over TLS.
pub(crate) struct CaMaterial {
    pub(crate) cert_pem: String,
    /// The CA certificate's fingerprint, as the join token names it.
    pub(crate) fingerprint: Fingerprint,
    /// The CA with its key, on a member that signs node certificates.
    pub(crate) signer: Option<ClusterCa>,
}

/// This node's TLS: the CA and its own certificate.
pub(crate) struct NodeTls {
    pub(crate) ca: CaMaterial,
    pub(crate) cert: NodeCert,
}

/// The cluster CA, when the join token names one (the cluster's rpc runs over TLS): the
/// certificate stored in `dir`, which must be the one named (and its key, if this member signs
/// node certificates); else, on a node joining through `seed`, the certificate the seed
/// presents, accepted only with the named fingerprint and stored in `dir` for the next starts.
/// The key never travels.
pub(crate) async fn cluster_ca(
    dir: &Path,
    token: &ClusterToken,
    seed: Option<&str>,
) -> Result<Option<CaMaterial>, CoreError> {
    let identity = |e: blindstore_rpc::tls::TlsError| CoreError::Identity(e.to_string());
    let stored = blindstore_rpc::tls::load_ca_cert(dir).map_err(identity)?;
    let Some(expected) = token.ca else {
        if stored.is_some() {
            return Err(CoreError::Identity(format!(
                "{} holds a cluster CA ({CA_CERT_FILE}), but the join token names none: \
                 give the token this cluster printed (it ends in @ca-sha256:...)",
                dir.display()
            )));
        }
        return Ok(None);
    };
    if let Some(cert_pem) = stored {
        if Fingerprint::of_pem(&cert_pem).map_err(identity)? != expected {
            return Err(CoreError::Identity(format!(
                "the cluster CA in {} is not the one the join token names; this data dir belongs to another cluster",
                dir.display()
            )));
        }
        let signer = ClusterCa::load(dir).map_err(identity)?;
        return Ok(Some(CaMaterial {
            cert_pem,
            fingerprint: expected,
            signer,
        }));
    }
    let Some(seed) = seed else {
        return Err(CoreError::Identity(format!(
            "the join token names a cluster CA, but {} holds none ({CA_CERT_FILE}) and this start joins no cluster to fetch it from",
            dir.display()
        )));
    };
    let cert_pem = blindstore_rpc::tls::fetch_ca_cert(seed, expected)
        .await
        .map_err(|e| match e {
            RpcError::Refused(m) | RpcError::BadToken(m) => {
                CoreError::BadRequest(format!("join refused: {m}"))
            }
            RpcError::Unavailable(m) => CoreError::Unavailable(format!("join via {seed}: {m}")),
        })?;
    blindstore_rpc::tls::store_ca_cert(dir, &cert_pem).map_err(identity)?;
    tracing::info!(fingerprint = %expected, "cluster CA certificate fetched for TLS between nodes");
    Ok(Some(CaMaterial {
        cert_pem,
        fingerprint: expected,
        signer: None,
    }))
}

/// This node's certificate: the one in `dir` (it must name `id`); a new one signed here when
/// this member holds the CA key and has none or it expires soon; else the one it has.
pub(crate) fn node_cert(dir: &Path, id: NodeId, ca: &CaMaterial) -> Result<NodeCert, CoreError> {
    let identity = |e: blindstore_rpc::tls::TlsError| CoreError::Identity(e.to_string());
    let stored = NodeCert::load(dir, &ca.cert_pem).map_err(identity)?;
    if let Some(cert) = &stored {
        if cert.node_id() != id {
            return Err(CoreError::Identity(format!(
                "{} names node {}, but this data dir is node {id}'s; refusing to start",
                dir.join(NODE_CERT_FILE).display(),
                cert.node_id()
            )));
        }
    }
    match (stored, &ca.signer) {
        (Some(cert), _) if !cert.expires_within(NODE_CERT_RENEW_BEFORE) => Ok(cert),
        (_, Some(signer)) => {
            let (csr, key) = blindstore_rpc::tls::node_request().map_err(identity)?;
            let chain = signer.sign_node(id, &csr).map_err(identity)?;
            let cert = NodeCert::new(chain, key, &ca.cert_pem).map_err(identity)?;
            cert.store(dir).map_err(identity)?;
            tracing::info!(
                node_id = id,
                "node certificate signed with the cluster CA held here"
            );
            Ok(cert)
        }
        (Some(cert), None) => {
            tracing::warn!(
                node_id = id,
                "the node certificate expires within 180 days; a new one is asked for once the node runs"
            );
            Ok(cert)
        }
        (None, None) => Err(CoreError::Identity(format!(
            "{} holds no node certificate ({NODE_CERT_FILE}) and no CA key ({CA_KEY_FILE}): a node \
             gets its certificate when it joins. Restore {NODE_CERT_FILE} and node-key.pem from a \
             backup of this data dir, or copy {CA_KEY_FILE} here from the member that holds it",
            dir.display()
        ))),
    }
}

impl Core {
    /// Leader: reserves an id for a joining node (`requested`, or the next free one) and, on a
    /// TLS cluster, has its certificate request signed for that id. The id and the
    /// certificate (PEM; empty without TLS).
    pub(crate) async fn join_node(
        &self,
        requested: NodeId,
        csr_pem: String,
    ) -> Result<(NodeId, String), CoreError> {
        if !self.is_leader() {
            let mut client = self.leader_client()?;
            let reply = client
                .join(JoinRequest {
                    node_id: requested,
                    csr_pem,
                })
                .await
                .map_err(|s| match s.code() {
                    tonic::Code::InvalidArgument | tonic::Code::PermissionDenied => {
                        CoreError::BadRequest(s.message().to_owned())
                    }
                    _ => CoreError::Unavailable(s.message().to_owned()),
                })?
                .into_inner();
            return Ok((reply.node_id, reply.cert_pem));
        }
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
    pub(crate) async fn add_member(&self, id: NodeId, info: NodeInfo) -> Result<bool, CoreError> {
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
                .map_err(|s| CoreError::Unavailable(s.message().to_owned()))?;
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
    pub(crate) async fn ask_to_be_added(&self, seed: &str) -> Result<(), CoreError> {
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
        if others.is_empty() {
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
        let request = AddMemberRequest {
            node_id: self.inner.id,
            rpc_addr: self.inner.own_info.rpc_addr.clone(),
            http_addr: self.inner.own_info.http_addr.clone(),
        };
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
