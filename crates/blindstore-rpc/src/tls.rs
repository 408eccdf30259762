//! TLS for node-to-node gRPC, chosen when a cluster is created (`serve --cluster-tls`).
//!
//! The first node makes a cluster CA (an ECDSA P-256 key and a self-signed certificate, kept in
//! its data dir). The CA's SHA-256 fingerprint travels in the join token, after the secret:
//! `<secret>@ca-sha256:<hex>`. A joining node reads the seed's certificate chain once without
//! trusting it, keeps the CA certificate only if its fingerprint is the one in the token, and
//! from then on talks to the cluster over TLS verified against that CA alone. Its first call
//! fetches the CA's key (members only, over that verified connection), with which it issues
//! its own certificate at every start. Every node certificate names [`NODE_TLS_NAME`] (clients
//! verify that name, whatever address they dial) and the node's advertised rpc host.
//!
//! TLS authenticates the server to the caller and keeps the traffic private; callers are still
//! authenticated by the cluster secret (or the gateway token) on every call, as without TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
/// The cluster CA's private key in a member's data dir (mode 0600).
pub const CA_KEY_FILE: &str = "cluster-ca-key.pem";

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

    /// The same token with another secret (the gateway token that goes with a join token).
    pub fn with_secret(&self, secret: String) -> Self {
        Self {
            secret,
            ca: self.ca,
        }
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

    /// The CA stored in `dir`, if any (both files, or neither).
    pub fn load(dir: &Path) -> Result<Option<Self>, TlsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(TlsError::Io {
                    path: path.display().to_string(),
                    source,
                }),
            }
        };
        match (read(CA_CERT_FILE)?, read(CA_KEY_FILE)?) {
            (Some(cert), Some(key)) => Self::from_pem(cert, key).map(Some),
            (None, None) => Ok(None),
            _ => Err(TlsError::Certificate(format!(
                "{} holds only one of {CA_CERT_FILE} and {CA_KEY_FILE}; restore the other from another member",
                dir.display()
            ))),
        }
    }

    /// Stores the CA in `dir`: the key with mode 0600, each file written whole or not at all.
    pub fn store(&self, dir: &Path) -> Result<(), TlsError> {
        write_private(dir, CA_KEY_FILE, self.key_pem.as_bytes())?;
        write_private(dir, CA_CERT_FILE, self.cert_pem.as_bytes())
    }

    /// A fresh certificate for this node, naming [`NODE_TLS_NAME`] and `host` (its advertised
    /// rpc host), with the CA certificate after it in the chain.
    pub fn node_identity(&self, host: &str) -> Result<Identity, TlsError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(cert_error("the CA key"))?;
        let issuer = ca_params()
            .self_signed(&ca_key)
            .map_err(cert_error("loading the CA"))?;
        let mut names = vec![NODE_TLS_NAME.to_owned()];
        if !host.is_empty() && host != NODE_TLS_NAME {
            names.push(host.to_owned());
        }
        let mut params =
            CertificateParams::new(names).map_err(cert_error("the node certificate's names"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, NODE_TLS_NAME);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(cert_error("making the node key"))?;
        let cert = params
            .signed_by(&key, &issuer, &ca_key)
            .map_err(cert_error("signing the node certificate"))?;
        let chain = format!("{}{}", cert.pem(), self.cert_pem);
        Ok(Identity::from_pem(chain, key.serialize_pem()))
    }

    /// The server side of a node: its certificate, made now.
    pub fn server_config(&self, host: &str) -> Result<ServerTlsConfig, TlsError> {
        Ok(ServerTlsConfig::new().identity(self.node_identity(host)?))
    }
}

/// The client side: trusts `ca_pem` alone and expects [`NODE_TLS_NAME`].
pub fn client_config(ca_pem: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(NODE_TLS_NAME)
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
        loaded.node_identity("127.0.0.1").unwrap();
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
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        assert!(ClusterCa::load(dir.path()).is_err());
    }
}
