//! The cluster's admin credentials: one admin token every node and gateway accepts, and a
//! read-only one for metrics scrapers, kept as hashes in the replicated state. Until the first
//! rotation each node accepts its own `--admin-token`; from it on, only these.

use blindstore_types::command::{AdminCredentials, Command, CommandResponse};
use blindstore_types::Hash32;

use crate::NodeError;

facade!(
    /// The cluster's admin credentials.
    Credentials,
    credentials
);

/// Which credential a rotation replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Admin,
    Metrics,
}

impl Credentials<'_> {
    /// The credentials as this node has applied them (read on every admin request; a rotation
    /// reaches a member within a heartbeat).
    pub fn current(&self) -> Option<AdminCredentials> {
        match self.0.inner.state.admin_credentials() {
            Ok(credentials) => credentials,
            Err(e) => {
                tracing::error!(error = %e, "reading the admin credentials");
                None
            }
        }
    }

    /// Replaces one credential with a new random token and returns the token (shown once: only
    /// its hash is kept). The first rotation of either also makes the admin credential, which
    /// replaces every node's own token — so its answer carries the admin token too.
    pub async fn rotate(&self, kind: CredentialKind) -> Result<Rotated, NodeError> {
        let current = self.current();
        let new_token = || hex::encode(rand::random::<[u8; 32]>());
        let (admin, admin_hash) = match (kind, &current) {
            (CredentialKind::Metrics, Some(c)) => (None, c.admin),
            _ => {
                let token = new_token();
                let hash = Hash32::digest(token.as_bytes());
                (Some(token), hash)
            }
        };
        let (metrics, metrics_hash) = match (kind, &current) {
            (CredentialKind::Metrics, _) => {
                let token = new_token();
                let hash = Hash32::digest(token.as_bytes());
                (Some(token), Some(hash))
            }
            (CredentialKind::Admin, c) => (None, c.as_ref().and_then(|c| c.metrics)),
        };
        let command = Command::SetAdminCredentials {
            credentials: AdminCredentials {
                admin: admin_hash,
                metrics: metrics_hash,
                rotated_at_ms: crate::now_ms(),
            },
            previous: current.map(|c| c.admin),
        };
        let response = self.0.propose(command).await?;
        answer!(response, CommandResponse::AdminCredentialsSet => Rotated { admin, metrics })
    }
}

/// The tokens a rotation made (each shown once).
#[derive(Debug, Clone)]
pub struct Rotated {
    pub admin: Option<String>,
    pub metrics: Option<String>,
}
