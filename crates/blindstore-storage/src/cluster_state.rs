//! The cluster's own settings in the replicated state: draining and removed nodes, the join
//! secret's rotations, and the cluster's version and id.

use heed::{RwTxn, WithoutTls};

use blindstore_types::command::{
    AdminCredentials, CommandResponse, JoinSecret, Rejection, FIRST_FEATURE_LEVEL,
};
use blindstore_types::raft::NodeId;
use blindstore_types::record::encode;
use blindstore_types::Hash32;

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

    /// The cluster's version: the feature level every member supports, as the leader last
    /// established it (1 until then, and in state written by builds older than levels).
    pub fn cluster_version(&self) -> Result<u32, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        read_version(&self.inner.tables, &rtxn)
    }

    /// The cluster's id, once the leader has set one (cluster version 2 and up).
    pub fn cluster_id(&self) -> Result<Option<[u8; 16]>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        read_id(&self.inner.tables, &rtxn)
    }

    /// The cluster's admin credentials, once rotated (cluster version 3 and up); until then
    /// each node accepts its own admin token.
    pub fn admin_credentials(&self) -> Result<Option<AdminCredentials>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        read_credentials(&self.inner.tables, &rtxn)
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

/// Key of the cluster's version (a `u32`; absent: 1), in the `cluster` table. Written only
/// when the version moves, so state (and snapshots) of a cluster at version 1 hold nothing a
/// build older than levels does not know.
pub(crate) const VERSION: &[u8] = b"version";

/// Key of the cluster's id (16 bytes), in the `cluster` table.
pub(crate) const ID: &[u8] = b"id";

/// Key of the cluster's admin credentials ([`AdminCredentials`]), in the `cluster` table.
pub(crate) const ADMIN_CREDENTIALS: &[u8] = b"admin-credentials";

fn read_credentials(
    t: &Tables,
    txn: &heed::RoTxn<WithoutTls>,
) -> Result<Option<AdminCredentials>, StorageError> {
    t.cluster
        .get(txn, ADMIN_CREDENTIALS)?
        .map(|b| decode("admin credentials", b))
        .transpose()
}

/// Replaces the admin credentials unless a rotation raced this one (`previous` is not the
/// stored admin credential).
pub(crate) fn set_admin_credentials(
    t: &Tables,
    wtxn: &mut RwTxn,
    credentials: AdminCredentials,
    previous: Option<Hash32>,
) -> Result<CommandResponse, StorageError> {
    let stored = read_credentials(t, wtxn)?.map(|c| c.admin);
    if stored != previous {
        return Ok(CommandResponse::Rejected(
            Rejection::AdminCredentialsChanged,
        ));
    }
    t.cluster
        .put(wtxn, ADMIN_CREDENTIALS, &encode(&credentials))?;
    Ok(CommandResponse::AdminCredentialsSet)
}

pub(crate) fn read_version(t: &Tables, txn: &heed::RoTxn<WithoutTls>) -> Result<u32, StorageError> {
    Ok(t.cluster
        .get(txn, VERSION)?
        .map(|b| decode("cluster version", b))
        .transpose()?
        .unwrap_or(FIRST_FEATURE_LEVEL))
}

fn read_id(t: &Tables, txn: &heed::RoTxn<WithoutTls>) -> Result<Option<[u8; 16]>, StorageError> {
    t.cluster
        .get(txn, ID)?
        .map(|b| decode("cluster id", b))
        .transpose()
}

/// Moves the cluster's version up to `level` (never down).
pub(crate) fn set_version(
    t: &Tables,
    wtxn: &mut RwTxn,
    level: u32,
) -> Result<CommandResponse, StorageError> {
    let current = read_version(t, wtxn)?;
    if level > current {
        t.cluster.put(wtxn, VERSION, &encode(&level))?;
    }
    Ok(CommandResponse::ClusterVersionSet {
        level: level.max(current),
    })
}

/// Sets the cluster's id unless it has one: the first stays.
pub(crate) fn set_id(
    t: &Tables,
    wtxn: &mut RwTxn,
    id: [u8; 16],
) -> Result<CommandResponse, StorageError> {
    let id = match read_id(t, wtxn)? {
        Some(kept) => kept,
        None => {
            t.cluster.put(wtxn, ID, &encode(&id))?;
            id
        }
    };
    Ok(CommandResponse::ClusterIdSet { id })
}

/// A command that needs a higher cluster version than the state's: rejected, changing nothing.
pub(crate) fn version_gate(
    t: &Tables,
    txn: &heed::RoTxn<WithoutTls>,
    needed: u32,
) -> Result<Option<CommandResponse>, StorageError> {
    if needed <= FIRST_FEATURE_LEVEL {
        return Ok(None);
    }
    let current = read_version(t, txn)?;
    Ok(
        (needed > current).then_some(CommandResponse::Rejected(Rejection::NeedsClusterVersion {
            needed,
            current,
        })),
    )
}

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
