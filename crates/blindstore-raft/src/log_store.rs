//! The Raft log, vote and committed log id in LMDB (`raft-log/`).
//!
//! Correctness condition kept by every write here: the LMDB transaction is committed — which
//! fsyncs — before the call returns or, for `append`, before openraft is told the entries are
//! flushed. So a vote or log entry openraft believes persisted survives a crash.
//!
//! The committed log id is the exception openraft allows: the state machine commits each applied
//! batch durably, so the committed id is only a hint for replaying after a restart. It is kept
//! in memory and written with the next log append, never with a sync of its own.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use crate::TypeConfig;
use blindstore_types::raft::NodeId;
use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U64};
use heed::{Database, Env, WithoutTls};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, StorageIOError, Vote};

use blindstore_storage::{blocking, commit, decode, open_env, StorageError};
use blindstore_types::record::encode;

type RaftStorageError = openraft::StorageError<NodeId>;

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";
/// This node's Raft id, stored with the Raft state it belongs to.
const NODE_ID: &str = "node_id";

/// The Raft log store. Cheap to clone; clones share the environment (the log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    env: Env<WithoutTls>,
    /// The node id to store with the first write (see [`LogStore::adopt_node_id`]), and
    /// whether it is stored already.
    node_id: std::sync::Mutex<(Option<NodeId>, bool)>,
    /// A committed log id (encoded) not written yet: it goes with the next append.
    committed: std::sync::Mutex<Option<Vec<u8>>>,
    /// Log index (big-endian, so LMDB order is index order) → encoded `Entry`.
    logs: Database<U64<BigEndian>, Bytes>,
    /// `vote`, `committed`, `last_purged` → encoded values.
    meta: Database<Str, Bytes>,
}

impl LogStore {
    /// Opens or creates the log store in `dir`.
    pub fn open(dir: &Path, map_size: usize) -> Result<Self, StorageError> {
        let env = open_env(dir, map_size, 4, blindstore_storage::Sync::Full)?;
        let mut wtxn = env.write_txn()?;
        let logs = env.create_database(&mut wtxn, Some("logs"))?;
        let meta = env.create_database(&mut wtxn, Some("meta"))?;
        commit(wtxn, "raft_log")?;
        Ok(Self {
            inner: Arc::new(Inner {
                env,
                node_id: std::sync::Mutex::new((None, false)),
                committed: std::sync::Mutex::new(None),
                logs,
                meta,
            }),
        })
    }

    /// True if nothing was ever written: no vote and no log. A node uses this to decide whether
    /// to bootstrap a new cluster.
    pub fn is_pristine(&self) -> Result<bool, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        Ok(self.inner.meta.get(&rtxn, VOTE)?.is_none()
            && self.inner.logs.first(&rtxn)?.is_none()
            && self.inner.meta.get(&rtxn, LAST_PURGED)?.is_none())
    }

    /// The node id stored with this Raft state, if any.
    pub fn stored_node_id(&self) -> Result<Option<NodeId>, StorageError> {
        self.read_meta(NODE_ID)
    }

    /// Makes `id` this Raft state's node id. On a log that already has state without an id
    /// (written by an older version), `id` is stored at once; on a pristine log it is stored
    /// in the same transaction as the first vote or log entry, so Raft state never exists
    /// without the id it was written under. Refuses an id other than the stored one.
    pub fn adopt_node_id(&self, id: NodeId) -> Result<(), StorageError> {
        if let Some(stored) = self.stored_node_id()? {
            if stored != id {
                return Err(StorageError::Damaged(format!(
                    "this Raft state belongs to node {stored}, not {id}"
                )));
            }
            *self.inner.node_id.lock().expect("never poisoned") = (Some(id), true);
            return Ok(());
        }
        *self.inner.node_id.lock().expect("never poisoned") = (Some(id), false);
        if !self.is_pristine()? {
            let mut wtxn = self.inner.env.write_txn()?;
            self.inner.store_node_id(&mut wtxn)?;
            commit(wtxn, "raft_log")?;
            self.inner.node_id_committed();
        }
        Ok(())
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .meta
            .get(&rtxn, key)?
            .map(|b| decode(key, b))
            .transpose()
    }

    async fn write_meta<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
    ) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        let bytes = encode(value);
        blocking(move || {
            let mut wtxn = inner.env.write_txn()?;
            inner.store_node_id(&mut wtxn)?;
            inner.meta.put(&mut wtxn, key, &bytes)?;
            commit(wtxn, "raft_log")?;
            inner.node_id_committed();
            Ok(())
        })
        .await
    }

    fn entries_in(
        &self,
        range: (Bound<u64>, Bound<u64>),
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.inner.logs.range(&rtxn, &range)? {
            let (_, bytes) = item?;
            out.push(decode("log entry", bytes)?);
        }
        Ok(out)
    }

    fn last_entry(&self) -> Result<Option<Entry<TypeConfig>>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .logs
            .last(&rtxn)?
            .map(|(_, b)| decode("log entry", b))
            .transpose()
    }
}

impl Inner {
    /// Puts the adopted node id into `wtxn` if it is not stored yet.
    fn store_node_id(&self, wtxn: &mut heed::RwTxn) -> Result<(), StorageError> {
        let (id, stored) = *self.node_id.lock().expect("never poisoned");
        if let (Some(id), false) = (id, stored) {
            self.meta.put(wtxn, NODE_ID, &encode(&id))?;
        }
        Ok(())
    }

    /// After the transaction that stored the id committed.
    fn node_id_committed(&self) {
        let mut slot = self.node_id.lock().expect("never poisoned");
        if slot.0.is_some() {
            slot.1 = true;
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, RaftStorageError> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        self.entries_in(bounds)
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let read = || -> Result<LogState<TypeConfig>, StorageError> {
            let last_purged_log_id: Option<LogId<NodeId>> = self.read_meta(LAST_PURGED)?;
            let last_log_id = match self.last_entry()? {
                Some(entry) => Some(entry.log_id),
                None => last_purged_log_id,
            };
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        };
        read().map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// The vote is fsynced before this returns.
    #[tracing::instrument(level = "debug", skip_all, fields(vote = %vote))]
    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
        self.write_meta(VOTE, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
        self.read_meta(VOTE)
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), RaftStorageError> {
        if let Some(id) = committed {
            metrics::gauge!("blindstore_raft_commit_index").set(id.index as f64);
        }
        *self.inner.committed.lock().expect("never poisoned") = Some(encode(&committed));
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, RaftStorageError> {
        if let Some(pending) = &*self.inner.committed.lock().expect("never poisoned") {
            return decode(COMMITTED, pending)
                .map_err(|e| StorageIOError::read(AnyError::new(&e)).into());
        }
        self.read_meta::<Option<LogId<NodeId>>>(COMMITTED)
            .map(Option::flatten)
            .map_err(|e| StorageIOError::read(AnyError::new(&e)).into())
    }

    /// Entries are written and fsynced in one transaction before `callback` reports them
    /// flushed.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.log_id.index, encode(&e)))
            .collect();
        let inner = self.inner.clone();
        let committed = inner.committed.lock().expect("never poisoned").take();
        let result = blocking(move || {
            let mut wtxn = inner.env.write_txn()?;
            inner.store_node_id(&mut wtxn)?;
            for (index, bytes) in &encoded {
                inner.logs.put(&mut wtxn, index, bytes)?;
            }
            if let Some(committed) = &committed {
                inner.meta.put(&mut wtxn, COMMITTED, committed)?;
            }
            commit(wtxn, "raft_log")?;
            inner.node_id_committed();
            Ok(())
        })
        .await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(AnyError::new(&e)).into())
            }
        }
    }

    /// Deletes entries at and after `log_id.index` (conflicting entries from an old leader).
    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), RaftStorageError> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut wtxn = inner.env.write_txn()?;
            inner.logs.delete_range(&mut wtxn, &(log_id.index..))?;
            commit(wtxn, "raft_log")?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    /// Records `log_id` as purged and deletes entries up to it, in one transaction.
    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), RaftStorageError> {
        let inner = self.inner.clone();
        let purged = encode(&log_id);
        blocking(move || {
            let mut wtxn = inner.env.write_txn()?;
            inner.meta.put(&mut wtxn, LAST_PURGED, &purged)?;
            inner.logs.delete_range(&mut wtxn, &(..=log_id.index))?;
            commit(wtxn, "raft_log")?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}
