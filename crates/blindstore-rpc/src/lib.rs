//! The node-to-node protocol: the services of `proto/blindstore/v1/cluster.proto` as tonic
//! code, and the cluster-secret check every call goes through.
//!
//! This crate knows the wire, not what the calls mean: the cluster crate implements the
//! services; [`Peers`] gives every node its clients, and [`discover`] lets a gateway find the
//! members.

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

mod peers;
pub mod reachability;
pub mod tls;

pub use peers::{
    discover, never_sent, peers_for_token, Authed, Discovered, Peers, MAX_MESSAGE_BYTES,
    MAX_RAFT_MESSAGE_BYTES,
};

/// Why a node-to-node call made by this crate's helpers failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The token given is not usable as a cluster secret.
    #[error("bad token: {0}")]
    BadToken(String),
    /// The member refused the token.
    #[error("refused: {0}")]
    Refused(String),
    /// The member could not be reached or did not answer.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Generated code for package `blindstore.v1`.
pub mod v1 {
    tonic::include_proto!("blindstore.v1");
}

/// The metadata entry that carries the cluster secret.
pub const SECRET_HEADER: &str = "x-blindstore-cluster-secret";

/// Who a call comes from, as its credential says. The server puts it in the request's
/// extensions for the services that accept both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Holds the join token: a member (or a node joining).
    Member,
    /// Holds only the gateway token: may look up the members, nothing else.
    Gateway,
}

/// Checks (server side) or adds (client side) the cluster secret. The join token is the
/// members' credential; the gateway token, derived from it, is a gateway's: it can find the
/// members (and a gateway forwards client requests over their public HTTP API), but it cannot
/// join, vote, send Raft messages, move chunks or change the membership.
///
/// The secret can be rotated while the cluster runs ([`ClusterSecret::rotate`]): for a grace
/// period after the rotation a member still sends the previous secret (members that have not
/// applied the rotation yet know only that one), and for twice as long it accepts both. Clones
/// share one secret, so a rotation reaches every client and server of the node at once.
#[derive(Clone)]
pub struct ClusterSecret {
    secrets: std::sync::Arc<std::sync::RwLock<Secrets>>,
}

struct Secrets {
    current: Pair,
    previous: Option<Previous>,
}

/// A join token's secret and the gateway token that goes with it.
#[derive(Clone)]
struct Pair {
    text: String,
    secret: MetadataValue<tonic::metadata::Ascii>,
    gateway: MetadataValue<tonic::metadata::Ascii>,
}

struct Previous {
    pair: Pair,
    /// Until then it is still sent.
    sent_until: std::time::SystemTime,
    /// Until then it is still accepted.
    accepted_until: std::time::SystemTime,
}

impl Pair {
    fn new(secret: &str) -> Result<Self, Status> {
        let ascii = |s: &str| {
            s.parse()
                .map_err(|_| Status::invalid_argument("the cluster secret must be printable ASCII"))
        };
        Ok(Self {
            text: secret.to_owned(),
            secret: ascii(secret)?,
            gateway: ascii(&gateway_token(secret))?,
        })
    }
}

impl ClusterSecret {
    /// From a join token (a member), or from a gateway token (a gateway: it only attaches it).
    /// `secret` must be printable ASCII (the node checks this at start-up).
    pub fn new(secret: &str) -> Result<Self, Status> {
        Ok(Self {
            secrets: std::sync::Arc::new(std::sync::RwLock::new(Secrets {
                current: Pair::new(secret)?,
                previous: None,
            })),
        })
    }

    /// The current secret (what the node keeps in its `join-token` file).
    pub fn current(&self) -> String {
        self.read().current.text.clone()
    }

    /// Switches to `secret`, rotated from `previous` at `rotated_at`: `previous` is still sent
    /// until `grace` after it, and accepted until twice that.
    pub fn rotate(
        &self,
        secret: &str,
        previous: &str,
        rotated_at: std::time::SystemTime,
        grace: std::time::Duration,
    ) -> Result<(), Status> {
        let current = Pair::new(secret)?;
        let previous = Pair::new(previous)?;
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        secrets.current = current;
        secrets.previous = Some(Previous {
            pair: previous,
            sent_until: rotated_at + grace,
            accepted_until: rotated_at + grace * 2,
        });
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Secrets> {
        self.secrets.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Server side: refuses calls without the join token, in constant time.
    pub fn verify<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        match self.caller(&request)? {
            Caller::Member => Ok(request),
            Caller::Gateway => Err(Status::permission_denied(
                "the gateway token does not allow this call",
            )),
        }
    }

    /// Server side: accepts the join token or the gateway token, and records which.
    pub fn verify_any<T>(&self, mut request: Request<T>) -> Result<Request<T>, Status> {
        let caller = self.caller(&request)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }

    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let presented = request
            .metadata()
            .get(SECRET_HEADER)
            .ok_or_else(|| Status::unauthenticated("missing cluster secret"))?;
        let secrets = self.read();
        let now = std::time::SystemTime::now();
        let previous = secrets
            .previous
            .as_ref()
            .filter(|p| now < p.accepted_until)
            .map(|p| &p.pair);
        let mut member = false;
        let mut gateway = false;
        for pair in std::iter::once(&secrets.current).chain(previous) {
            member |= bool::from(presented.as_bytes().ct_eq(pair.secret.as_bytes()));
            gateway |= bool::from(presented.as_bytes().ct_eq(pair.gateway.as_bytes()));
        }
        match (member, gateway) {
            (true, _) => Ok(Caller::Member),
            (false, true) => Ok(Caller::Gateway),
            (false, false) => Err(Status::unauthenticated("wrong cluster secret")),
        }
    }

    /// Client side: attaches the secret.
    pub fn attach<T>(&self, mut request: Request<T>) -> Result<Request<T>, Status> {
        let secrets = self.read();
        let now = std::time::SystemTime::now();
        let sent = match &secrets.previous {
            Some(p) if now < p.sent_until => &p.pair,
            _ => &secrets.current,
        };
        request
            .metadata_mut()
            .insert(SECRET_HEADER, sent.secret.clone());
        Ok(request)
    }

    /// An interceptor for servers that only members may call.
    pub fn checker(&self) -> impl Interceptor + Clone {
        let this = self.clone();
        move |request| this.verify(request)
    }

    /// An interceptor for servers that gateways may call too ([`Caller`] in the extensions).
    pub fn checker_allowing_gateways(&self) -> impl Interceptor + Clone {
        let this = self.clone();
        move |request| this.verify_any(request)
    }

    /// An interceptor for clients.
    pub fn attacher(&self) -> impl Interceptor + Clone {
        let this = self.clone();
        move |request| this.attach(request)
    }
}

/// The gateway token of a cluster: `hex(SHA-256("blindstore/gateway-token/v1\0" || join
/// token))`. Every member can compute it; nobody can get the join token back from it.
pub fn gateway_token(join_token: &str) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"blindstore/gateway-token/v1\0");
    hasher.update(join_token.as_bytes());
    hex::encode(hasher.finalize())
}

/// The node a call comes from, as the client certificate it presented names it: only on a
/// cluster that runs its rpc over TLS, where the server verified that certificate against the
/// cluster CA during the handshake. `None` for a caller without one (a gateway, a joining node).
pub fn peer_node<T>(request: &Request<T>) -> Option<blindstore_types::raft::NodeId> {
    let certs = request.peer_certs()?;
    tls::node_id_of(certs.first()?)
}

/// Whether the caller of a request (on a server using
/// [`ClusterSecret::checker_allowing_gateways`]) holds the join token.
pub fn require_member<T>(request: &Request<T>) -> Result<(), Status> {
    match request.extensions().get::<Caller>() {
        Some(Caller::Member) => Ok(()),
        _ => Err(Status::permission_denied(
            "the gateway token does not allow this call",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_rotated_secret_is_sent_after_the_grace_and_the_old_one_dies_after_twice_that() {
        let old = "old-join-token-0123456789";
        let new = "new-join-token-0123456789";
        let server = ClusterSecret::new(old).unwrap();
        let sent = |s: &ClusterSecret| {
            s.attach(Request::new(()))
                .unwrap()
                .metadata()
                .get(SECRET_HEADER)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        let grace = Duration::from_secs(60);
        // Just rotated: the old secret is still sent, both are accepted (and both gateway
        // tokens).
        server.rotate(new, old, SystemTime::now(), grace).unwrap();
        assert_eq!(server.current(), new);
        assert_eq!(sent(&server), old);
        for token in [old, new] {
            assert!(server.verify(call(token)).is_ok());
            let r = server.verify_any(call(&gateway_token(token))).unwrap();
            assert_eq!(r.extensions().get::<Caller>(), Some(&Caller::Gateway));
        }
        // Past the grace: the new one is sent, the old one still accepted.
        let clone = server.clone();
        server
            .rotate(
                new,
                old,
                SystemTime::now() - grace - Duration::from_secs(1),
                grace,
            )
            .unwrap();
        assert_eq!(sent(&clone), new, "clones share the rotation");
        assert!(server.verify(call(old)).is_ok());
        // Past twice the grace: the old one is refused.
        server
            .rotate(
                new,
                old,
                SystemTime::now() - grace * 2 - Duration::from_secs(1),
                grace,
            )
            .unwrap();
        assert_eq!(
            server.verify(call(old)).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(server.verify_any(call(&gateway_token(old))).is_err());
        assert!(server.verify(call(new)).is_ok());
    }

    fn call(token: &str) -> Request<()> {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert(SECRET_HEADER, token.parse().unwrap());
        r
    }

    #[test]
    fn the_gateway_token_only_passes_where_gateways_are_allowed() {
        let join = "join-token-0123456789abcdef";
        let server = ClusterSecret::new(join).unwrap();
        let gateway = gateway_token(join);
        assert_ne!(gateway, join);
        assert!(server.verify(call(join)).is_ok());
        assert_eq!(
            server.verify(call(&gateway)).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let r = server.verify_any(call(&gateway)).unwrap();
        assert_eq!(r.extensions().get::<Caller>(), Some(&Caller::Gateway));
        assert!(require_member(&r).is_err());
        let r = server.verify_any(call(join)).unwrap();
        assert!(require_member(&r).is_ok());
        for wrong in ["nope-nope-nope-nope", ""] {
            let r = Request::new(());
            let r = if wrong.is_empty() { r } else { call(wrong) };
            assert_eq!(
                server.verify_any(r).unwrap_err().code(),
                tonic::Code::Unauthenticated
            );
        }
    }
}
