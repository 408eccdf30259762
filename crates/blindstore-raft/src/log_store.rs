//! The Raft log, vote and committed log id: openraft's view of [`RaftWal`] (`raft-wal/`).
//!
//! Correctness condition kept by every write here: the write is synced (one `fdatasync`) before
//! the call returns or, for `append`, before openraft is told the entries are flushed. So a
//! vote or log entry openraft believes persisted survives a crash.
//!
//! The committed log id is the exception openraft allows: the state machine commits each applied
//! batch, so the committed id is only a hint for replaying after a restart. It is kept in
//! memory and written with the next log write, never with a sync of its own.
//!
//! Values are records (`blindstore_types::record`): an entry is `encode(&Entry)`, the vote
//! `encode(&Vote)`, the committed id `encode(&Option<LogId>)`, the purged id `encode(&LogId)`.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;

use crate::TypeConfig;
use blindstore_types::raft::NodeId;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, StorageIOError, Vote};

use blindstore_storage::{blocking, decode, RaftWal, StorageError};
use blindstore_types::record::encode;

type RaftStorageError = openraft::StorageError<NodeId>;

/// The Raft log store. Cheap to clone; clones share the log (the log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    wal: RaftWal,
}

impl LogStore {
    /// Opens (creating if needed) the log in `data_dir/raft-wal`. A log an earlier build kept
    /// in LMDB (`data_dir/raft-log/`, opened with a map of `legacy_map_size` bytes) is moved
    /// first, and `raft-log` left as a file saying so, which those builds refuse to start on.
    pub fn open(data_dir: &Path, legacy_map_size: usize) -> Result<Self, StorageError> {
        crate::legacy_log::move_to_wal(data_dir, legacy_map_size)?;
        Ok(Self {
            wal: RaftWal::open(&data_dir.join("raft-wal"))?,
        })
    }

    /// True if nothing was ever written: no vote and no log. A node uses this to decide whether
    /// to bootstrap a new cluster.
    pub fn is_pristine(&self) -> Result<bool, StorageError> {
        Ok(self.wal.is_pristine())
    }

    /// The node id stored with this Raft state, if any.
    pub fn stored_node_id(&self) -> Result<Option<NodeId>, StorageError> {
        Ok(self.wal.meta().node_id)
    }

    /// Makes `id` this Raft state's node id. On a log that already has state without an id
    /// (written by an older version), `id` is stored at once; on a pristine log it is stored
    /// with the first vote or log entry, so Raft state never exists without the id it was
    /// written under. Refuses an id other than the stored one.
    pub fn adopt_node_id(&self, id: NodeId) -> Result<(), StorageError> {
        self.wal.adopt_node_id(id)
    }

    fn entries_in(
        &self,
        (start, end): (Bound<u64>, Bound<u64>),
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match start {
            Bound::Included(i) => i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match end {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => i,
            Bound::Unbounded => u64::MAX,
        };
        self.wal
            .entries(start, end)?
            .iter()
            .map(|bytes| decode("log entry", bytes))
            .collect()
    }

    async fn write(
        &self,
        write: impl FnOnce(&RaftWal) -> Result<(), StorageError> + Send + 'static,
    ) -> Result<(), StorageError> {
        let wal = self.wal.clone();
        blocking(move || write(&wal)).await
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
            let last_purged_log_id: Option<LogId<NodeId>> = self
                .wal
                .meta()
                .last_purged
                .map(|(_, id)| decode("last purged log id", &id))
                .transpose()?;
            let (first, next) = self.wal.bounds();
            let last_log_id = if next > first {
                let last = self.entries_in((Bound::Included(next - 1), Bound::Excluded(next)))?;
                last.last().map(|e| e.log_id)
            } else {
                last_purged_log_id
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

    /// The vote is synced before this returns (and with it everything written before it).
    #[tracing::instrument(level = "debug", skip_all, fields(vote = %vote))]
    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
        let vote = encode(vote);
        self.write(move |wal| wal.save_vote(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
        self.wal
            .meta()
            .vote
            .map(|v| decode("vote", &v))
            .transpose()
            .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), RaftStorageError> {
        if let Some(id) = committed {
            metrics::gauge!("blindstore_raft_commit_index").set(id.index as f64);
        }
        self.wal.set_committed(encode(&committed));
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, RaftStorageError> {
        self.wal
            .meta()
            .committed
            .map(|c| decode::<Option<LogId<NodeId>>>("committed log id", &c))
            .transpose()
            .map(Option::flatten)
            .map_err(|e| StorageIOError::read(AnyError::new(&e)).into())
    }

    /// Entries are written and synced (one `fdatasync` for the batch) before `callback`
    /// reports them flushed.
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
        match self.write(move |wal| wal.append(encoded)).await {
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
        self.write(move |wal| wal.truncate(log_id.index))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    /// Records `log_id` as purged (synced) and deletes entries up to it.
    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), RaftStorageError> {
        self.write(move |wal| wal.purge(log_id.index, encode(&log_id)))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}
