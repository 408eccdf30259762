//! TLS for node-to-node gRPC, chosen when a cluster is created (`serve --cluster-tls`).
//!
//! The first node makes a cluster CA (an ECDSA P-256 key and a self-signed certificate, kept in
//! its data dir). The CA's SHA-256 fingerprint travels in the join token, after the secret:
//! `<secret>@ca-sha256:<hex>`. A joining node reads the seed's certificate chain once without
//! trusting it, keeps the CA certificate only if its fingerprint is the one in the token, and
//! from then on talks to the cluster over TLS verified against that CA alone.
//!
//! The CA key stays with the member that made it (and any member an operator copies
//! [`CA_KEY_FILE`] to): other members never receive it. A joining node sends a certificate
//! request with its join; the leader reserves its id and has the request signed by a member
//! that holds the key. Each node certificate names its node id ([`node_dns_name`]) as well as
//! [`NODE_TLS_NAME`] (which clients verify, whatever address they dial), and is kept in the
//! node's data dir ([`NODE_CERT_FILE`], [`NODE_KEY_FILE`]).
//!
//! Members present their certificates as clients too (mutual TLS): a member-only call must
//! come with a node certificate from the cluster CA, and the node id it names is the caller's
//! identity (a removed node's certificate is refused by name). The cluster secret is checked
//! on every call as well, as without TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use blindstore_types::raft::NodeId;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::Digest;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::RpcError;

/// The name every node certificate carries and every node-to-node client verifies.
pub const NODE_TLS_NAME: &str = "node.blindstore.internal";

/// The cluster CA's certificate in a member's data dir.
pub const CA_CERT_FILE: &str = "cluster-ca.pem";
/// The cluster CA's private key, in the data dir of the members that sign node certificates
/// (mode 0600).
pub const CA_KEY_FILE: &str = "cluster-ca-key.pem";
/// A node's certificate (PEM: its own, then the CA's) in its data dir.
pub const NODE_CERT_FILE: &str = "node-cert.pem";
/// A node's private key in its data dir (mode 0600).
pub const NODE_KEY_FILE: &str = "node-key.pem";
/// How long a node certificate is valid.
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
/// A node asks for a new certificate at start when its own expires within this.
pub const NODE_CERT_RENEW_BEFORE: Duration = Duration::from_secs(180 * 24 * 3600);

/// The name a node certificate carries for its node id: `node-<id>.node.blindstore.internal`.
pub fn node_dns_name(id: NodeId) -> String {
    format!("node-{id}.{NODE_TLS_NAME}")
}

/// The node id a node certificate (DER) names, if it names exactly one.
pub fn node_id_of(der: &[u8]) -> Option<NodeId> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let suffix = format!(".{NODE_TLS_NAME}");
    let mut ids = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => dns
                .strip_prefix("node-")?
                .strip_suffix(suffix.as_str())?
                .parse::<NodeId>()
                .ok(),
            _ => None,
        });
    let id = ids.next()?;
    ids.next().is_none().then_some(id)
}

/// What separates the secret from the CA fingerprint in a token.
const FINGERPRINT_MARK: &str = "@ca-sha256:";

/// How long fetching a seed's certificate chain may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// SHA-256 of a certificate (DER).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Self {
        Self(sha2::Sha256::digest(der).into())
    }

    /// The fingerprint of a certificate in PEM (the first one).
    pub fn of_pem(pem: &str) -> Result<Self, TlsError> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| TlsError::Certificate(format!("the CA certificate: {e}")))?;
        Ok(Self::of(&der))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A join or gateway token as given: the secret the calls carry, and for a cluster that runs
/// its rpc over TLS, the fingerprint of its CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterToken {
    pub secret: String,
    pub ca: Option<Fingerprint>,
}

impl ClusterToken {
    /// Splits `<secret>[@ca-sha256:<64 hex>]`.
    pub fn parse(token: &str) -> Result<Self, String> {
        let Some((secret, hex_fp)) = token.split_once(FINGERPRINT_MARK) else {
            return Ok(Self {
                secret: token.to_owned(),
                ca: None,
            });
        };
        let mut fp = [0u8; 32];
        hex::decode_to_slice(hex_fp, &mut fp).map_err(|_| {
            format!("the CA fingerprint after {FINGERPRINT_MARK} must be 64 hex digits")
        })?;
        Ok(Self {
            secret: secret.to_owned(),
            ca: Some(Fingerprint(fp)),
        })
    }

    /// The same token with another secret.
    pub fn with_secret(&self, secret: String) -> Self {
        Self {
            secret,
            ca: self.ca,
        }
    }

    /// The gateway token that goes with this join token (naming the same CA).
    pub fn gateway(&self) -> Self {
        self.with_secret(crate::gateway_token(&self.secret))
    }
}

impl std::fmt::Display for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.secret)?;
        if let Some(fp) = &self.ca {
            write!(f, "{FINGERPRINT_MARK}{fp}")?;
        }
        Ok(())
    }
}

/// Why setting up node-to-node TLS failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Certificate(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn cert_error(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |e| TlsError::Certificate(format!("{what}: {e}"))
}

/// The cluster CA: its certificate and key, PEM.
#[derive(Clone)]
pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
    fingerprint: Fingerprint,
}

/// The CA's certificate fields. They are the same every time, so a CA loaded from its PEM files
/// can sign again: a verifier matches a node certificate to the CA by this name and checks the
/// signature with the CA's key.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Blindstore");
    name.push(DnType::CommonName, "Blindstore cluster CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl ClusterCa {
    /// A new CA, for a new cluster.
    pub fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(cert_error("making the CA key"))?;
        let cert = ca_params()
            .self_signed(&key)
            .map_err(cert_error("making the CA certificate"))?;
        Self::from_pem(cert.pem(), key.serialize_pem())
    }

    /// From PEM, checking that the key is the certificate's.
    pub fn from_pem(cert_pem: String, key_pem: String) -> Result<Self, TlsError> {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::Certificate(format!("the CA certificate: {e}")))?;
        let key = KeyPair::from_pem(&key_pem).map_err(cert_error("the CA key"))?;
        // The certificate's subject public key info holds the raw public key verbatim.
        let public = key.public_key_raw();
        if !der.windows(public.len()).any(|w| w == public) {
            return Err(TlsError::Certificate(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        Ok(Self {
            fingerprint: Fingerprint::of(&der),
            cert_pem,
            key_pem,
        })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA with its key, if `dir` holds both (a member that signs node certificates). The
    /// key without the certificate is refused.
    pub fn load(dir: &Path) -> Result<Option<Self>, TlsError> {
        match (load_ca_cert(dir)?, read_optional(dir, CA_KEY_FILE)?) {
            (Some(cert), Some(key)) => Self::from_pem(cert, key).map(Some),
            (_, None) => Ok(None),
            (None, Some(_)) => Err(TlsError::Certificate(format!(
                "{} holds {CA_KEY_FILE} without {CA_CERT_FILE}; restore the certificate from another member",
                dir.display()
            ))),
        }
    }

    /// Stores the CA in `dir`: the key with mode 0600, each file written whole or not at all.
    pub fn store(&self, dir: &Path) -> Result<(), TlsError> {
        write_private(dir, CA_KEY_FILE, self.key_pem.as_bytes())?;
        write_private(dir, CA_CERT_FILE, self.cert_pem.as_bytes())
    }

    /// Signs the public key of `csr_pem` (a certificate request, whose signature must hold)
    /// into a certificate for node `id`: names, usages and validity are the CA's choice, never
    /// the request's. PEM: the node certificate, then the CA certificate.
    pub fn sign_node(&self, id: NodeId, csr_pem: &str) -> Result<String, TlsError> {
        let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(cert_error("the certificate request"))?;
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(cert_error("the CA key"))?;
        let issuer = ca_params()
            .self_signed(&ca_key)
            .map_err(cert_error("loading the CA"))?;
        let mut params = CertificateParams::new(vec![NODE_TLS_NAME.to_owned(), node_dns_name(id)])
            .map_err(cert_error("the node certificate's names"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Blindstore node {id}"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        // An hour of slack for members whose clocks run a little behind the signer's.
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + NODE_CERT_VALIDITY;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand_serial()));
        let cert = params
            .signed_by(&csr.public_key, &issuer, &ca_key)
            .map_err(cert_error("signing the node certificate"))?;
        Ok(format!("{}{}", cert.pem(), self.cert_pem))
    }
}

/// A serial number for a node certificate: 16 random bytes, the first below 0x80 (a positive
/// DER integer).
fn rand_serial() -> [u8; 16] {
    let mut serial = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut serial)
        .expect("the system's random source");
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    serial
}

/// A new key for a node and a certificate request for it (PEM each).
pub fn node_request() -> Result<(String, String), TlsError> {
    let key = KeyPair::generate().map_err(cert_error("making the node key"))?;
    let mut params = CertificateParams::new(vec![NODE_TLS_NAME.to_owned()])
        .map_err(cert_error("the certificate request's names"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, NODE_TLS_NAME);
    let csr = params
        .serialize_request(&key)
        .map_err(cert_error("making the certificate request"))?
        .pem()
        .map_err(cert_error("encoding the certificate request"))?;
    Ok((csr, key.serialize_pem()))
}

/// The CA certificate stored in `dir`, if any.
pub fn load_ca_cert(dir: &Path) -> Result<Option<String>, TlsError> {
    read_optional(dir, CA_CERT_FILE)
}

/// Stores the CA certificate (not its key) in `dir`.
pub fn store_ca_cert(dir: &Path, pem: &str) -> Result<(), TlsError> {
    write_private(dir, CA_CERT_FILE, pem.as_bytes())
}

fn read_optional(dir: &Path, name: &str) -> Result<Option<String>, TlsError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// A node's certificate, issued by the cluster CA for its node id, and its key.
#[derive(Clone)]
pub struct NodeCert {
    chain_pem: String,
    key_pem: String,
    node_id: NodeId,
    /// Seconds since the Unix epoch.
    not_after: i64,
}

impl NodeCert {
    /// Checks that `chain_pem` starts with a certificate signed by the CA of `ca_pem` that
    /// names one node id, and that `key_pem` is its key.
    pub fn new(chain_pem: String, key_pem: String, ca_pem: &str) -> Result<Self, TlsError> {
        let bad = |what: &str| TlsError::Certificate(format!("the node certificate {what}"));
        let leaf =
            CertificateDer::from_pem_slice(chain_pem.as_bytes()).map_err(|_| bad("is not PEM"))?;
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| TlsError::Certificate(format!("the CA certificate: {e}")))?;
        let (_, ca) = x509_parser::parse_x509_certificate(&ca)
            .map_err(|_| TlsError::Certificate("the CA certificate does not parse".into()))?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(&leaf).map_err(|_| bad("does not parse"))?;
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|_| bad("was not issued by this cluster's CA"))?;
        let node_id = node_id_of(&leaf).ok_or_else(|| bad("names no node id"))?;
        let key = KeyPair::from_pem(&key_pem).map_err(cert_error("the node key"))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(bad("does not go with the node key"));
        }
        Ok(Self {
            not_after: cert.validity().not_after.timestamp(),
            chain_pem,
            key_pem,
            node_id,
        })
    }

    /// The node certificate stored in `dir`, if any (both files, or neither).
    pub fn load(dir: &Path, ca_pem: &str) -> Result<Option<Self>, TlsError> {
        match (
            read_optional(dir, NODE_CERT_FILE)?,
            read_optional(dir, NODE_KEY_FILE)?,
        ) {
            (Some(cert), Some(key)) => Self::new(cert, key, ca_pem)
                .map(Some)
                .map_err(|e| TlsError::Certificate(format!("{}: {e}", dir.display()))),
            (None, None) => Ok(None),
            _ => Err(TlsError::Certificate(format!(
                "{} holds only one of {NODE_CERT_FILE} and {NODE_KEY_FILE}; remove the other to have a new certificate issued",
                dir.display()
            ))),
        }
    }

    /// Stores the certificate and key in `dir` (mode 0600, each file whole or not at all).
    pub fn store(&self, dir: &Path) -> Result<(), TlsError> {
        write_private(dir, NODE_KEY_FILE, self.key_pem.as_bytes())?;
        write_private(dir, NODE_CERT_FILE, self.chain_pem.as_bytes())
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Whether the certificate expires within `within` from now.
    pub fn expires_within(&self, within: Duration) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (now + within).as_secs() as i64 >= self.not_after
    }

    pub fn identity(&self) -> Identity {
        Identity::from_pem(&self.chain_pem, &self.key_pem)
    }
}

/// The server side of a node: its certificate; callers may present a node certificate from the
/// cluster CA (members must, gateways and joining nodes need not: the services decide).
pub fn server_config(ca_pem: &str, node: &NodeCert) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(node.identity())
        .client_ca_root(Certificate::from_pem(ca_pem))
        .client_auth_optional(true)
}

/// The client side: trusts `ca_pem` alone and expects [`NODE_TLS_NAME`]; a member presents its
/// node certificate.
pub fn client_config(ca_pem: &str, node: Option<&NodeCert>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(NODE_TLS_NAME);
    match node {
        Some(node) => config.identity(node.identity()),
        None => config,
    }
}

fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let path = dir.join(name);
    let io = |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// The CA certificate of the cluster that `addr` (a member's rpc address) belongs to, accepted
/// only if its fingerprint is `expected`. The handshake that brings the chain trusts nothing: it
/// only reads what the server presents (and checks the server holds its leaf's key); the
/// fingerprint, which came with the token out of band, is what makes the result trustworthy.
pub async fn fetch_ca_cert(addr: &str, expected: Fingerprint) -> Result<String, RpcError> {
    let unavailable = |e: &dyn std::fmt::Display| RpcError::Unavailable(format!("{addr}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| unavailable(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadChainOnly(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(NODE_TLS_NAME).expect("a valid DNS name");
    let chain = tokio::time::timeout(FETCH_TIMEOUT, async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| unavailable(&e))?;
        let tls = connector.connect(name, tcp).await.map_err(|e| {
            unavailable(&format!(
                "no TLS handshake ({e}); does this cluster run its rpc over TLS?"
            ))
        })?;
        Ok::<_, RpcError>(tls.get_ref().1.peer_certificates().map(<[_]>::to_vec))
    })
    .await
    .map_err(|_| RpcError::Unavailable(format!("{addr} did not answer")))??
    .unwrap_or_default();
    let ca = chain
        .iter()
        .find(|c| Fingerprint::of(c) == expected)
        .ok_or_else(|| {
            RpcError::Refused(format!(
                "{addr} does not present the CA whose fingerprint the token names; \
                 is the token from this cluster?"
            ))
        })?;
    Ok(to_pem(ca))
}

fn to_pem(der: &CertificateDer) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Accepts whatever chain a server presents, checking only that the server holds the key of its
/// leaf certificate. Used for [`fetch_ca_cert`] alone, whose caller pins the result by
/// fingerprint.
#[derive(Debug)]
struct ReadChainOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for ReadChainOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_ca_fingerprint_after_the_secret() {
        let plain = ClusterToken::parse("0123456789abcdef0123").unwrap();
        assert_eq!(plain.ca, None);
        assert_eq!(plain.to_string(), "0123456789abcdef0123");
        let ca = ClusterCa::generate().unwrap();
        let token = ClusterToken {
            secret: "0123456789abcdef0123".into(),
            ca: Some(ca.fingerprint()),
        };
        let text = token.to_string();
        assert!(
            text.starts_with("0123456789abcdef0123@ca-sha256:"),
            "{text}"
        );
        assert_eq!(ClusterToken::parse(&text).unwrap(), token);
        assert!(ClusterToken::parse("0123456789abcdef0123@ca-sha256:zz").is_err());
    }

    #[test]
    fn a_stored_ca_signs_again_and_refuses_a_foreign_key() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ClusterCa::load(dir.path()).unwrap().is_none());
        let ca = ClusterCa::generate().unwrap();
        ca.store(dir.path()).unwrap();
        let loaded = ClusterCa::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.fingerprint(), ca.fingerprint());
        let (csr, key) = node_request().unwrap();
        let chain = loaded.sign_node(2, &csr).unwrap();
        NodeCert::new(chain, key, ca.cert_pem()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = ClusterCa::generate().unwrap();
        assert!(ClusterCa::from_pem(ca.cert_pem.clone(), other.key_pem.clone()).is_err());
        // A member without the key keeps the certificate alone; a key alone is refused.
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        assert!(ClusterCa::load(dir.path()).unwrap().is_none());
        assert_eq!(
            load_ca_cert(dir.path()).unwrap().as_deref(),
            Some(ca.cert_pem())
        );
        std::fs::remove_file(dir.path().join(CA_CERT_FILE)).unwrap();
        write_private(dir.path(), CA_KEY_FILE, other.key_pem.as_bytes()).unwrap();
        assert!(ClusterCa::load(dir.path()).is_err());
    }

    #[test]
    fn a_node_certificate_names_the_id_the_ca_chose_and_nothing_the_request_asked() {
        let ca = ClusterCa::generate().unwrap();
        // The request asks for other names; the certificate carries the signer's choice.
        let key = KeyPair::generate().unwrap();
        let mut asked =
            CertificateParams::new(vec![node_dns_name(1), "evil.example".into()]).unwrap();
        asked.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let csr = asked.serialize_request(&key).unwrap().pem().unwrap();
        let chain = ca.sign_node(7, &csr).unwrap();
        let node = NodeCert::new(chain.clone(), key.serialize_pem(), ca.cert_pem()).unwrap();
        assert_eq!(node.node_id(), 7);
        let der = CertificateDer::from_pem_slice(chain.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            names,
            vec![
                format!("DNSName({NODE_TLS_NAME})"),
                format!("DNSName({})", node_dns_name(7))
            ]
        );
        assert!(!cert.is_ca());
        // Valid for two years from now, and not yet due for renewal.
        assert!(!node.expires_within(NODE_CERT_RENEW_BEFORE));
        assert!(node.expires_within(NODE_CERT_VALIDITY + Duration::from_secs(60)));

        // Another CA's certificate, the wrong key, or a garbled request are refused.
        let other = ClusterCa::generate().unwrap();
        let (csr, key) = node_request().unwrap();
        let foreign = other.sign_node(7, &csr).unwrap();
        assert!(NodeCert::new(foreign, key.clone(), ca.cert_pem()).is_err());
        let (_, wrong_key) = node_request().unwrap();
        let chain = ca.sign_node(7, &csr).unwrap();
        assert!(NodeCert::new(chain, wrong_key, ca.cert_pem()).is_err());
        assert!(ca.sign_node(7, "not a request").is_err());
        let mut tampered = csr.clone();
        tampered.replace_range(80..84, "AAAA");
        assert!(ca.sign_node(7, &tampered).is_err());
    }
}
