//! TLS for the HTTP server (rustls): a certificate chain and private key from PEM files,
//! HTTP/2 or HTTP/1.1 by ALPN, and reloading the files without a restart (on SIGHUP): new
//! connections get the new certificate, open ones keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The server's TLS configuration, reloadable.
pub struct Tls {
    /// The certificate and key files, when loaded from files (what `reload` reads again).
    files: Option<(PathBuf, PathBuf)>,
    config: RwLock<Arc<rustls::ServerConfig>>,
}

impl Tls {
    /// Loads the certificate chain (`cert`, PEM, leaf first) and its private key (`key`, PEM:
    /// PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Tls>, String> {
        let config = server_config_from_files(cert, key)?;
        Ok(Arc::new(Tls {
            files: Some((cert.to_owned(), key.to_owned())),
            config: RwLock::new(Arc::new(config)),
        }))
    }

    /// A certificate chain and key held in memory (PEM), replaced with [`Tls::replace`].
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Arc<Tls>, String> {
        Ok(Arc::new(Tls {
            files: None,
            config: RwLock::new(Arc::new(server_config(chain, key)?)),
        }))
    }

    /// Serves `chain` and `key` (PEM) to new connections; on any error the current
    /// certificate stays in use.
    pub fn replace(&self, chain: &[u8], key: &[u8]) -> Result<(), String> {
        let config = server_config(chain, key)?;
        *self.config.write().expect("tls config") = Arc::new(config);
        Ok(())
    }

    /// Reads the files again; on any error the current certificate stays in use.
    pub fn reload(&self) -> Result<(), String> {
        let Some((cert, key)) = &self.files else {
            return Err("this certificate was not loaded from files".into());
        };
        let config = server_config_from_files(cert, key)?;
        *self.config.write().expect("tls config") = Arc::new(config);
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.read().expect("tls config").clone())
    }
}

fn server_config_from_files(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let chain = std::fs::read(cert)
        .map_err(|e| format!("reading the certificate {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key)
        .map_err(|e| format!("reading the private key {}: {e}", key.display()))?;
    server_config(&chain, &key_pem)
        .map_err(|e| format!("{e} ({} and {})", cert.display(), key.display()))
}

fn server_config(chain: &[u8], key: &[u8]) -> Result<rustls::ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading the certificate: {e}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no PEM certificate".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("reading the private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
