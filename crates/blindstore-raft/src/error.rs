//! Why an operation of the Raft core did not succeed. The node above it maps these onto its
//! own errors one to one.

use blindstore_storage::StorageError;
use blindstore_types::raft::{NodeId, NodeInfo};
use openraft::error::{ClientWriteError, RaftError};

/// Why a Raft core operation did not succeed. Keeps "certainly did not happen"
/// ([`CoreError::Unavailable`]) apart from "may have happened" ([`CoreError::OutcomeUnknown`]).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The request is malformed or names what does not exist.
    #[error("{0}")]
    BadRequest(String),
    /// A command above the largest a log entry takes.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: &'static str, limit: u64 },
    /// The operation certainly did not take effect: no leader, no quorum, shutting down.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Only the leader does this, and this node does not lead: the message names the leader
    /// (for admin calls, whose caller should go there). Nothing was changed.
    #[error("{0}")]
    NotLeader(String),
    /// A node removed from the cluster for good: this one, or one that asked to be added
    /// again.
    #[error("node {0} was removed from the cluster for good; it is never added again (start a new node with a fresh data dir)")]
    Removed(u64),
    /// The operation was proposed but its fate is unknown (leader lost, node stopping).
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A node's build is older than the cluster's version (a join refused).
    #[error("{0}")]
    TooOld(String),
    /// The node's identity on disk is missing or contradicts itself (start-up only).
    #[error("node identity: {0}")]
    Identity(String),
    /// A broken internal invariant.
    #[error("internal: {0}")]
    Internal(String),
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(StorageError),
}

impl From<StorageError> for CoreError {
    fn from(e: StorageError) -> Self {
        CoreError::Storage(e)
    }
}

/// What a failed `client_write` means for the client. `ForwardToLeader` comes both from a
/// node that never led and from a leader that stepped down with the entry in its log, which
/// may still commit: it is an unknown outcome.
pub(crate) fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> CoreError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            CoreError::OutcomeUnknown(format!(
                "leadership changed during the write (leader now: {:?})",
                f.leader_id
            ))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            CoreError::Unavailable(e.to_string())
        }
        // Raft stopped while the command may have been in the log.
        RaftError::Fatal(e) => CoreError::OutcomeUnknown(e.to_string()),
    }
}
