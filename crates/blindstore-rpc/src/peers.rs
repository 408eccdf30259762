//! The client side of node-to-node gRPC: one cached channel per peer address, the cluster
//! secret on every call, message-size limits on every client, and discovery of a cluster's
//! members (how a gateway finds it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blindstore_types::api::{ClusterMembers, Member};
use blindstore_types::command::AdminCredentials;
use blindstore_types::Hash32;
use tonic::codegen::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::v1::chunks_client::ChunksClient;
use crate::v1::cluster_client::ClusterClient;
use crate::v1::raft_client::RaftClient;
use crate::{ClusterSecret, RpcError};

/// Largest chunk-transfer message: the largest allowed chunk (64 MiB) plus framing.
pub const MAX_MESSAGE_BYTES: usize = 65 << 20;

/// Largest Raft or cluster-call message, both ways. Append-entries batches are cut well
/// below it (by the cluster's transport); snapshots travel in 1 MiB pieces.
pub const MAX_RAFT_MESSAGE_BYTES: usize = 16 << 20;

/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Adds the cluster secret to an outgoing call.
type AttachSecret =
    Box<dyn Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync>;

/// A channel whose calls carry the cluster secret.
pub type Authed = InterceptedService<Channel, AttachSecret>;

/// Channels to peers, by address, shared by Raft replication and request forwarding.
#[derive(Clone)]
pub struct Peers {
    secret: ClusterSecret,
    /// For a cluster whose rpc runs over TLS: trusts its CA alone (`crate::tls`).
    tls: Option<ClientTlsConfig>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// What this node's calls through these clients found (shared by every clone).
    reachability: Arc<crate::reachability::Reachability>,
}

impl Peers {
    /// Which peers answer this node's calls (callers report each call's outcome).
    pub fn reachability(&self) -> &crate::reachability::Reachability {
        &self.reachability
    }

    /// Plain-text channels (`tls` none) or TLS ones verified against the cluster CA.
    pub fn new(secret: ClusterSecret, tls: Option<ClientTlsConfig>) -> Self {
        Self {
            secret,
            tls,
            channels: Arc::new(Mutex::new(HashMap::new())),
            reachability: Arc::default(),
        }
    }

    /// A channel to `addr` (`host:port`), created on first use; it connects lazily and
    /// reconnects by itself.
    fn channel(&self, addr: &str) -> Result<Channel, tonic::Status> {
        let mut channels = self
            .channels
            .lock()
            .expect("peer map lock is never poisoned");
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let bad = |e: tonic::transport::Error| {
            tonic::Status::invalid_argument(format!("bad peer address {addr}: {e}"))
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(bad)?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(bad)?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    fn authed(&self, addr: &str) -> Result<Authed, tonic::Status> {
        let secret = self.secret.clone();
        let attach: AttachSecret = Box::new(move |r| secret.attach(r));
        Ok(InterceptedService::new(self.channel(addr)?, attach))
    }

    pub fn raft(&self, addr: &str) -> Result<RaftClient<Authed>, tonic::Status> {
        Ok(RaftClient::new(self.authed(addr)?)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES))
    }

    pub fn cluster(&self, addr: &str) -> Result<ClusterClient<Authed>, tonic::Status> {
        Ok(ClusterClient::new(self.authed(addr)?)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES))
    }

    pub fn chunks(&self, addr: &str) -> Result<ChunksClient<Authed>, tonic::Status> {
        Ok(ChunksClient::new(self.authed(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// Whether a failed call certainly never reached the peer (nothing was sent).
pub fn never_sent(status: &tonic::Status) -> bool {
    use std::error::Error;
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    // tonic reports connection failures as Unavailable with a transport error source.
    let mut source = status.source();
    while let Some(e) = source {
        if let Some(t) = e.downcast_ref::<tonic::transport::Error>() {
            return t.to_string().contains("connect")
                || t.source()
                    .is_some_and(|s| s.to_string().contains("connect"));
        }
        source = e.source();
    }
    status.message().contains("connect")
}

/// How long discovery waits for a member's answer.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The channels a gateway (or any outsider holding a token) uses to reach a cluster: with the
/// token's secret, and for a TLS cluster its CA, fetched from the first of `seeds` that
/// presents the CA the token names.
pub async fn peers_for_token(token: &str, seeds: &[String]) -> Result<Peers, RpcError> {
    let token = crate::tls::ClusterToken::parse(token).map_err(RpcError::BadToken)?;
    let secret =
        ClusterSecret::new(&token.secret).map_err(|e| RpcError::BadToken(e.message().into()))?;
    let Some(fingerprint) = token.ca else {
        return Ok(Peers::new(secret, None));
    };
    let mut last_error = RpcError::Unavailable("no seed given".into());
    for seed in seeds {
        match crate::tls::fetch_ca_cert(seed, fingerprint).await {
            Ok(ca) => {
                return Ok(Peers::new(
                    secret,
                    Some(crate::tls::client_config(&ca, None)),
                ))
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// What a gateway learns from a member: the membership, leader first, and the cluster's admin
/// credentials once rotated.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub members: ClusterMembers,
    pub credentials: Option<AdminCredentials>,
}

/// The membership as the member at rpc address `seed` sees it, asked through `peers` (made with
/// the join token or the gateway token): how a gateway finds the cluster.
pub async fn discover(seed: &str, peers: &Peers) -> Result<Discovered, RpcError> {
    let mut client = peers
        .cluster(seed)
        .map_err(|s| RpcError::Unavailable(s.message().into()))?;
    let reply = tokio::time::timeout(
        DISCOVER_TIMEOUT,
        client.members(crate::v1::MembersRequest {}),
    )
    .await
    .map_err(|_| RpcError::Unavailable(format!("{seed} did not answer")))?
    .map_err(|s| match s.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            RpcError::Refused(format!("{seed}: {}", s.message()))
        }
        _ => RpcError::Unavailable(format!("{seed}: {}", s.message())),
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
    let hash = |bytes: &[u8]| <[u8; 32]>::try_from(bytes).ok().map(Hash32);
    let credentials = hash(&reply.admin_credential).map(|admin| AdminCredentials {
        admin,
        metrics: hash(&reply.metrics_credential),
        rotated_at_ms: 0,
    });
    Ok(Discovered {
        members: ClusterMembers {
            node_id: 0,
            leader,
            term: 0,
            leader_last_log_index: None,
            members,
            removed: Vec::new(),
        },
        credentials,
    })
}
