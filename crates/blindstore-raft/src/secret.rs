//! The join token's secret over time: `blindstore cluster rotate-token` replaces it through
//! Raft ([`Command::RotateJoinSecret`]), and every member follows what its state says — it
//! switches its [`ClusterSecret`] (which keeps the previous secret alive for a grace period)
//! and rewrites its `join-token` and `gateway-token` files.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blindstore_rpc::tls::{ClusterToken, Fingerprint};
use blindstore_rpc::ClusterSecret;
use blindstore_storage::StateMachineStore;
use blindstore_types::command::{Command, CommandResponse, JoinSecret, Rejection};

use crate::{Core, CoreError};

/// The join token, in a member's data dir.
pub const JOIN_TOKEN_FILE: &str = "join-token";
/// The gateway token that goes with it, in a member's data dir.
pub const GATEWAY_TOKEN_FILE: &str = "gateway-token";
/// How long members keep sending the previous secret after a rotation, unless told otherwise.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(60);
/// The longest grace a rotation may have.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(3600);
/// How often a member looks for a rotation in its state.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// A rotated join token, as `cluster rotate-token` prints it.
#[derive(Debug, Clone)]
pub struct RotatedToken {
    pub join_token: String,
    pub gateway_token: String,
    pub grace: Duration,
}

/// Makes `secret` follow the rotation `state` holds, if it follows from the secret this node
/// has: the node's secret is the rotation's previous one (the node applied the rotation but had
/// not switched yet), or already its new one (a restart within the grace). A rotation from
/// another secret is not followed: the node was given a newer token by hand (it was down
/// through a rotation its state has not applied yet). Rewrites the token files when the secret
/// changes. Whether it changed.
pub(crate) fn follow(
    state: &StateMachineStore,
    secret: &ClusterSecret,
    ca: Option<Fingerprint>,
    dir: &Path,
) -> Result<bool, CoreError> {
    let Some(record) = state.join_secret()? else {
        return Ok(false);
    };
    let current = secret.current();
    let changed = record.previous == current && record.current != current;
    if !changed && record.current != current {
        return Ok(false);
    }
    let JoinSecret {
        current: new,
        previous,
        rotated_at_ms,
        grace_ms,
    } = record;
    let at = UNIX_EPOCH + Duration::from_millis(rotated_at_ms);
    secret
        .rotate(&new, &previous, at, Duration::from_millis(grace_ms))
        .map_err(|s| CoreError::Internal(format!("the rotated join secret: {}", s.message())))?;
    if changed {
        write_token_files(dir, &new, ca)?;
        tracing::info!(
            grace_ms,
            "the join token was rotated; the new one is in {JOIN_TOKEN_FILE} and the gateway token in {GATEWAY_TOKEN_FILE}"
        );
    }
    Ok(changed)
}

/// The join token and gateway token files for `secret`.
pub(crate) fn write_token_files(
    dir: &Path,
    secret: &str,
    ca: Option<Fingerprint>,
) -> Result<(), CoreError> {
    let join = ClusterToken {
        secret: secret.to_owned(),
        ca,
    };
    let gateway = join.gateway();
    for (name, token) in [(JOIN_TOKEN_FILE, join), (GATEWAY_TOKEN_FILE, gateway)] {
        blindstore_storage::write_atomically(dir, name, format!("{token}\n").as_bytes())
            .map_err(|e| CoreError::Storage(e.into()))?;
    }
    Ok(())
}

impl Core {
    /// Replaces the join token's secret with a new random one: members switch to it within
    /// `grace`, then the old token (and the gateway token made from it) is refused. The new
    /// tokens.
    pub async fn rotate_join_token(&self, grace: Duration) -> Result<RotatedToken, CoreError> {
        if grace > MAX_ROTATION_GRACE {
            return Err(CoreError::BadRequest(format!(
                "the grace may be at most {} s",
                MAX_ROTATION_GRACE.as_secs()
            )));
        }
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let command = Command::RotateJoinSecret {
            secret: secret.clone(),
            previous: self.inner.secret.current(),
            at_ms,
            grace_ms: grace.as_millis() as u64,
        };
        match self.propose(command).await? {
            CommandResponse::JoinSecretRotated => {}
            CommandResponse::Rejected(Rejection::JoinSecretChanged) => {
                return Err(CoreError::Unavailable(
                    "the join token was rotated meanwhile by another request; nothing changed"
                        .into(),
                ))
            }
            other => {
                return Err(CoreError::Internal(format!(
                    "unexpected answer to a rotation: {other:?}"
                )))
            }
        }
        // This node switches as soon as it has applied the rotation, like every member.
        self.follow_join_secret_once();
        let join = ClusterToken {
            secret,
            ca: self.ca_fingerprint(),
        };
        tracing::info!(grace_s = grace.as_secs(), "join token rotated");
        Ok(RotatedToken {
            join_token: join.to_string(),
            gateway_token: join.gateway().to_string(),
            grace,
        })
    }

    /// The fingerprint of the cluster CA, on a TLS cluster.
    pub(crate) fn ca_fingerprint(&self) -> Option<Fingerprint> {
        self.inner.tls.as_ref().map(|t| t.ca.fingerprint)
    }

    fn follow_join_secret_once(&self) {
        let followed = follow(
            &self.inner.state,
            &self.inner.secret,
            self.ca_fingerprint(),
            &self.inner.data_dir,
        );
        if let Err(e) = followed {
            tracing::warn!(error = %e, "following a join token rotation; will retry");
        }
    }

    /// Until shutdown: follows rotations of the join token as they are applied.
    pub(crate) async fn follow_join_secret(self) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
            self.follow_join_secret_once();
        }
    }
}
