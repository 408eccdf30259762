//! The cluster's own settings in the replicated state: draining and removed nodes, and the
//! join secret's rotations.

use heed::{RwTxn, WithoutTls};

use blindstore_types::command::{CommandResponse, JoinSecret, Rejection};
use blindstore_types::raft::NodeId;
use blindstore_types::record::encode;

use crate::store::{StateMachineStore, Tables};
use crate::{decode, StorageError};

impl StateMachineStore {
    /// The nodes being drained.
    pub fn draining(&self) -> Result<std::collections::BTreeSet<NodeId>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        read_draining(&self.inner.tables, &rtxn)
    }

    /// The nodes removed from the cluster for good.
    /// The join secret the last rotation left, if the cluster's was ever rotated.
    pub fn join_secret(&self) -> Result<Option<JoinSecret>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .tables
            .cluster
            .get(&rtxn, JOIN_SECRET)?
            .map(|b| decode("join secret", b))
            .transpose()
    }

    pub fn removed_nodes(&self) -> Result<std::collections::BTreeSet<NodeId>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        read_node_set(&self.inner.tables, &rtxn, REMOVED)
    }
}

pub(crate) const DRAINING: &[u8] = b"draining";

/// Key of the nodes removed from the cluster for good, in the `cluster` table.
pub(crate) const REMOVED: &[u8] = b"removed";

/// Key of the join secret the last rotation left ([`JoinSecret`]), in the `cluster` table.
pub(crate) const JOIN_SECRET: &[u8] = b"join-secret";

pub(crate) fn read_draining(
    t: &Tables,
    txn: &heed::RoTxn<WithoutTls>,
) -> Result<std::collections::BTreeSet<NodeId>, StorageError> {
    read_node_set(t, txn, DRAINING)
}

/// A set of node ids kept in the cluster table (`draining`, `removed`).
pub(crate) fn read_node_set(
    t: &Tables,
    txn: &heed::RoTxn<WithoutTls>,
    key: &[u8],
) -> Result<std::collections::BTreeSet<NodeId>, StorageError> {
    match t.cluster.get(txn, key)? {
        Some(bytes) => decode("node id set", bytes),
        None => Ok(Default::default()),
    }
}

pub(crate) fn rotate_join_secret(
    t: &Tables,
    wtxn: &mut RwTxn,
    secret: String,
    previous: String,
    at_ms: u64,
    grace_ms: u64,
) -> Result<CommandResponse, StorageError> {
    let stored: Option<JoinSecret> = t
        .cluster
        .get(wtxn, JOIN_SECRET)?
        .map(|b| decode("join secret", b))
        .transpose()?;
    if stored.is_some_and(|s| s.current != previous) {
        return Ok(CommandResponse::Rejected(Rejection::JoinSecretChanged));
    }
    let record = JoinSecret {
        current: secret,
        previous,
        rotated_at_ms: at_ms,
        grace_ms,
    };
    t.cluster.put(wtxn, JOIN_SECRET, &encode(&record))?;
    Ok(CommandResponse::JoinSecretRotated)
}

pub(crate) fn mark_removed(
    t: &Tables,
    wtxn: &mut RwTxn,
    node: NodeId,
) -> Result<CommandResponse, StorageError> {
    let mut set = read_node_set(t, wtxn, REMOVED)?;
    set.insert(node);
    t.cluster.put(wtxn, REMOVED, &encode(&set))?;
    Ok(CommandResponse::RemovedMarked)
}

pub(crate) fn set_draining(
    t: &Tables,
    wtxn: &mut RwTxn,
    node: NodeId,
    draining: bool,
) -> Result<CommandResponse, StorageError> {
    let mut set = read_draining(t, wtxn)?;
    if draining {
        set.insert(node);
    } else {
        set.remove(&node);
    }
    t.cluster.put(wtxn, DRAINING, &encode(&set))?;
    Ok(CommandResponse::DrainingSet)
}
