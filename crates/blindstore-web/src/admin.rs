//! Who may make admin calls, on a node and on a gateway: the cluster's admin credentials once
//! they were rotated (the same everywhere, kept hashed in the replicated state), until then
//! the node's or gateway's own `--admin-token`.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use blindstore_types::command::AdminCredentials;
use blindstore_types::Hash32;
use subtle::ConstantTimeEq;

/// What a credential is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any admin call.
    Admin,
    /// Reading metrics: the admin credential or the metrics one.
    Metrics,
}

/// The bearer token a request carries, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether `presented` grants `access`: checked against the cluster's credentials when it has
/// them (the node's own token then no longer counts), else against `own`.
pub fn admits(
    cluster: Option<&AdminCredentials>,
    own: &str,
    presented: &str,
    access: Access,
) -> bool {
    match cluster {
        Some(credentials) => {
            let hash = Hash32::digest(presented.as_bytes());
            hash == credentials.admin
                || (access == Access::Metrics && credentials.metrics == Some(hash))
        }
        None => !own.is_empty() && bool::from(presented.as_bytes().ct_eq(own.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_credentials_replace_the_own_token_once_set() {
        assert!(admits(None, "own", "own", Access::Admin));
        assert!(!admits(None, "own", "other", Access::Admin));
        assert!(!admits(None, "", "", Access::Admin), "no token, no access");
        let cluster = AdminCredentials {
            admin: Hash32::digest(b"cluster admin"),
            metrics: Some(Hash32::digest(b"scraper")),
            rotated_at_ms: 1,
        };
        let c = Some(&cluster);
        assert!(admits(c, "own", "cluster admin", Access::Admin));
        assert!(admits(c, "own", "cluster admin", Access::Metrics));
        assert!(
            !admits(c, "own", "own", Access::Admin),
            "the own token is retired"
        );
        assert!(admits(c, "own", "scraper", Access::Metrics));
        assert!(!admits(c, "own", "scraper", Access::Admin), "metrics only");
    }
}
