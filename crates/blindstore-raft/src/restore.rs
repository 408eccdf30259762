//! Restoring a backup: a data dir whose Raft state is a backed-up state, as a new cluster of
//! one voter (node 1). It looks like a node that installed a snapshot and purged its log up to
//! it — so every node that joins later gets the whole state as a snapshot — with a fresh
//! membership and none of the old cluster's own records (draining and removed nodes, the join
//! secret). Its addresses, join token and certificates come at its first start, as for any new
//! cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use blindstore_storage::{blocking, StateMachineStore, StorageError};
use blindstore_types::raft::{NodeId, NodeInfo};
use blindstore_types::record::encode;
use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder};
use openraft::{CommittedLeaderId, LogId, Membership, StoredMembership, Vote};

use crate::state_machine::{Meta, LAST_APPLIED, MEMBERSHIP};
use crate::{CoreError, LogStore, StateMachine};

/// The node id of a restored cluster's first node.
pub const RESTORED_NODE_ID: NodeId = 1;

/// What a restore made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// The log index the backed-up state was applied up to, where the new cluster's log
    /// starts.
    pub index: u64,
}

/// Makes `data_dir` — absent or empty — the data dir of a new one-voter cluster whose state is
/// the backed-up state in `state_file` (a snapshot file, as `StateMachine::export` writes
/// them; verify it first, as `blindstore restore` does). A data dir that holds anything is
/// refused.
pub async fn restore_state(
    data_dir: &Path,
    state_file: &Path,
    raft_log_map: usize,
    state_map: usize,
) -> Result<Restored, CoreError> {
    let io = |e: std::io::Error| CoreError::Storage(e.into());
    if let Ok(mut items) = std::fs::read_dir(data_dir) {
        if items.next().is_some() {
            return Err(CoreError::BadRequest(format!(
                "{} is not empty: a restore makes a new data dir, it never writes over one",
                data_dir.display()
            )));
        }
    }
    let file = state_file.to_owned();
    // The file was read through and checked by whoever made the backup usable (`backup
    // verify`); installing it checks its framing again. Only its header is needed here.
    let header = blocking(move || blindstore_storage::read_snapshot_file_header(&file)).await?;
    let meta: Meta = blindstore_types::record::decode("snapshot meta", &header)
        .map_err(|e| CoreError::Storage(e.into()))?;
    let index = meta.last_log_id.map_or(0, |l| l.index);
    std::fs::create_dir_all(data_dir).map_err(io)?;

    // The new cluster's log starts where the backup's state ends, in a first term led by node
    // 1, whose membership is node 1 alone (its addresses come when it starts).
    let log_id = LogId::new(CommittedLeaderId::new(1, RESTORED_NODE_ID), index);
    let membership = StoredMembership::new(
        Some(log_id),
        Membership::new(
            vec![BTreeSet::from([RESTORED_NODE_ID])],
            BTreeMap::from([(RESTORED_NODE_ID, NodeInfo::default())]),
        ),
    );
    let state = StateMachineStore::open(&data_dir.join("state"), state_map)?;
    {
        let state = state.clone();
        let file = std::fs::File::open(state_file).map_err(io)?;
        let marks = vec![
            (LAST_APPLIED, encode(&Some(log_id))),
            (MEMBERSHIP, encode(&membership)),
        ];
        blocking(move || {
            state.install_snapshot(file, |_: &Meta| Ok(()), marks)?;
            state.forget_cluster_state()
        })
        .await?;
    }
    // The current snapshot is the restored state with its new membership: what joining nodes
    // are sent, since the log before it is gone.
    StateMachine::new(state.clone())
        .build_snapshot()
        .await
        .map_err(|e| CoreError::Storage(StorageError::BadSnapshot(e.to_string())))?;
    blocking(move || state.close()).await?;

    let mut log = LogStore::open(data_dir, raft_log_map)?;
    log.adopt_node_id(RESTORED_NODE_ID)?;
    let raft = |e: openraft::StorageError<NodeId>| {
        CoreError::Storage(StorageError::Damaged(format!("writing the Raft log: {e}")))
    };
    log.save_vote(&Vote::new_committed(1, RESTORED_NODE_ID))
        .await
        .map_err(raft)?;
    // No committed log id is saved: there is no entry to commit, and at start openraft takes
    // the applied log id (the state's mark) as committed.
    log.purge(log_id).await.map_err(raft)?;
    tracing::info!(index, data_dir = %data_dir.display(), "backup restored as a new cluster");
    Ok(Restored { index })
}
