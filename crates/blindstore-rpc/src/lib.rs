//! The node-to-node protocol: the services of `proto/blindstore/v1/cluster.proto` as tonic
//! code, and the cluster-secret check every call goes through.
//!
//! This crate knows the wire, not what the calls mean: the cluster crate implements the
//! services and uses the clients.

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Generated code for package `blindstore.v1`.
pub mod v1 {
    tonic::include_proto!("blindstore.v1");
}

/// The metadata entry that carries the cluster secret.
pub const SECRET_HEADER: &str = "x-blindstore-cluster-secret";

/// Checks (server side) or adds (client side) the cluster secret.
#[derive(Clone)]
pub struct ClusterSecret {
    secret: MetadataValue<tonic::metadata::Ascii>,
}

impl ClusterSecret {
    /// `secret` must be printable ASCII (the node checks this at start-up).
    pub fn new(secret: &str) -> Result<Self, Status> {
        let secret = secret
            .parse()
            .map_err(|_| Status::invalid_argument("the cluster secret must be printable ASCII"))?;
        Ok(Self { secret })
    }

    /// Server side: refuses calls without the right secret, in constant time.
    pub fn verify<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let presented = request
            .metadata()
            .get(SECRET_HEADER)
            .ok_or_else(|| Status::unauthenticated("missing cluster secret"))?;
        if bool::from(presented.as_bytes().ct_eq(self.secret.as_bytes())) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("wrong cluster secret"))
        }
    }

    /// Client side: attaches the secret.
    pub fn attach<T>(&self, mut request: Request<T>) -> Result<Request<T>, Status> {
        request
            .metadata_mut()
            .insert(SECRET_HEADER, self.secret.clone());
        Ok(request)
    }

    /// An interceptor for servers.
    pub fn checker(&self) -> impl Interceptor + Clone {
        let this = self.clone();
        move |request| this.verify(request)
    }

    /// An interceptor for clients.
    pub fn attacher(&self) -> impl Interceptor + Clone {
        let this = self.clone();
        move |request| this.attach(request)
    }
}
