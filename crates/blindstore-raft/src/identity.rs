//! A node's durable identity at start-up: its id (kept with the Raft state, `<data_dir>/node-id`
//! while a join is under way), the cluster CA it trusts and its node certificate (fetched or
//! issued when it joins a cluster whose rpc runs over TLS).

use std::path::Path;

use crate::LogStore;
use blindstore_rpc::tls::{
    ClusterCa, ClusterToken, Fingerprint, NodeCert, CA_CERT_FILE, CA_KEY_FILE, NODE_CERT_FILE,
    NODE_CERT_RENEW_BEFORE,
};
use blindstore_rpc::v1::JoinRequest;
use blindstore_rpc::{Peers, RpcError};
use blindstore_types::raft::NodeId;

use crate::{CoreError, FORWARD_TIMEOUT};

const NODE_ID_FILE: &str = "node-id";

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
    feature_level: u32,
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
                    feature_level,
                };
                let reply = tokio::time::timeout(FORWARD_TIMEOUT, client.join(request))
                    .await
                    .map_err(|_| CoreError::Unavailable(format!("join via {seed}: no answer")))?
                    .map_err(|s| match s.code() {
                        tonic::Code::Unauthenticated => CoreError::BadRequest(format!(
                            "join refused by {seed}: it does not accept this join token ({}); check that it is this cluster's current token, whole and unchanged",
                            s.message()
                        )),
                        tonic::Code::PermissionDenied
                        | tonic::Code::InvalidArgument
                        | tonic::Code::FailedPrecondition => {
                            CoreError::BadRequest(format!("join refused: {}", s.message()))
                        }
                        _ if blindstore_rpc::never_sent(&s) => CoreError::Unavailable(format!(
                            "cannot reach {seed} (--join): {}; check the address and that the member is running",
                            s.message()
                        )),
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
