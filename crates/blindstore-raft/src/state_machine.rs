//! The state machine engine: openraft's `RaftStateMachine` over the replicated state
//! (`blindstore_storage::StateMachineStore`). It turns log entries into commands for the
//! state to apply, keeps its own marks with them in the same transaction (the last applied log
//! id, the membership) and gives snapshots their header (openraft's snapshot metadata). What
//! each command does is the rooms' business, in the storage crate.

use std::ops::Deref;
use std::path::Path;

use blindstore_storage::{blocking, Marks, StateMachineStore, StorageError};
use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::raft::{NodeId, NodeInfo};
use blindstore_types::record::encode;
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageIOError,
    StoredMembership,
};

use crate::TypeConfig;

type RaftStorageError = openraft::StorageError<NodeId>;
type Membership = StoredMembership<NodeId, NodeInfo>;
pub(crate) type Meta = SnapshotMeta<NodeId, NodeInfo>;

/// The mark of the last applied log id.
pub(crate) const LAST_APPLIED: &str = "last_applied";
/// The mark of the membership last applied.
pub(crate) const MEMBERSHIP: &str = "membership";

/// The state machine as openraft drives it. Cheap to clone: the node keeps the store for
/// reads while openraft owns the engine.
#[derive(Clone)]
pub struct StateMachine(StateMachineStore);

impl StateMachine {
    pub fn new(store: StateMachineStore) -> Self {
        Self(store)
    }

    /// The last log id applied, as stored.
    pub fn last_applied(&self) -> Result<Option<LogId<NodeId>>, StorageError> {
        self.0.mark(LAST_APPLIED)
    }
}

/// The engine is the store as openraft sees it: reads go to the store.
impl Deref for StateMachine {
    type Target = StateMachineStore;

    fn deref(&self) -> &StateMachineStore {
        &self.0
    }
}

/// The metadata of a snapshot of the state `marks` belong to; `suffix` makes its id unique.
fn snapshot_meta(marks: &Marks<'_>, suffix: &str) -> Result<Meta, StorageError> {
    let last_log_id: Option<LogId<NodeId>> = marks.get(LAST_APPLIED)?;
    let snapshot_id = match &last_log_id {
        Some(id) => format!(
            "{}-{}-{}-{suffix}",
            id.leader_id.term, id.leader_id.node_id, id.index
        ),
        None => format!("empty-{suffix}"),
    };
    Ok(Meta {
        last_log_id,
        last_membership: marks.get(MEMBERSHIP)?,
        snapshot_id,
    })
}

/// What a backup's copy of the state is: the log position it was applied up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportedState {
    /// The last log index applied (0 for an empty state).
    pub index: u64,
    /// The term of that entry.
    pub term: u64,
}

impl StateMachine {
    /// Writes the state as this node has applied it to `path`, in the snapshot format (header:
    /// the snapshot metadata), for a backup; the current snapshot is not touched.
    pub fn export(&self, path: &Path) -> Result<ExportedState, StorageError> {
        let meta = self
            .0
            .export_snapshot(path, |marks| snapshot_meta(marks, "backup"))?;
        Ok(ExportedState {
            index: meta.last_log_id.map_or(0, |l| l.index),
            term: meta.last_log_id.map_or(0, |l| l.leader_id.term),
        })
    }
}

impl StateMachine {
    /// Fills a state store that started empty after a machine crash ([`StateMachineStore::reset`])
    /// from the current snapshot, if there is one; the log replays what came after it. Returns
    /// the log id the state is now at.
    pub(crate) fn rebuild_from_current_snapshot(
        &self,
    ) -> Result<Option<LogId<NodeId>>, StorageError> {
        let Some((meta, file)) = self.0.current_snapshot::<Meta>()? else {
            return Ok(None);
        };
        self.0
            .install_snapshot(file, |_: &Meta| Ok(()), snapshot_marks(&meta))?;
        Ok(meta.last_log_id)
    }
}

/// The engine's marks for a state that is the snapshot `meta` describes.
fn snapshot_marks(meta: &Meta) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (LAST_APPLIED, encode(&meta.last_log_id)),
        (MEMBERSHIP, encode(&meta.last_membership)),
    ]
}

fn snapshot_err(e: StorageError) -> RaftStorageError {
    StorageIOError::read_snapshot(None, AnyError::new(&e)).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    #[tracing::instrument(level = "info", skip_all)]
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
        let started = std::time::Instant::now();
        let store = self.0.clone();
        let (meta, path) = blocking(move || {
            store.build_snapshot(|marks, seq| snapshot_meta(marks, &seq.to_string()))
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::new(&e)))?;
        let bytes = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            seconds = started.elapsed().as_secs_f64(),
            bytes,
            "snapshot built"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), RaftStorageError> {
        let read = || -> Result<_, StorageError> {
            Ok((self.0.mark(LAST_APPLIED)?, self.0.mark(MEMBERSHIP)?))
        };
        read().map_err(|e| StorageIOError::read_state_machine(AnyError::new(&e)).into())
    }

    /// The batch, and the last applied log id with it, is committed before returning, not
    /// synced: the store is synced in the background and the log replays what a crash took
    /// (see `StateMachineStore::sync`).
    #[tracing::instrument(level = "debug", skip_all)]
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut commands: Vec<Option<Command>> = Vec::new();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            last = Some(entry.log_id);
            commands.push(match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(command) => Some(command),
                EntryPayload::Membership(m) => {
                    membership = Some(Membership::new(Some(entry.log_id), m));
                    None
                }
            });
        }
        let mut marks = Vec::new();
        if let Some(membership) = membership {
            marks.push((MEMBERSHIP, encode(&membership)));
        }
        if let Some(last) = last {
            marks.push((LAST_APPLIED, encode(&Some(last))));
        }
        let store = self.0.clone();
        blocking(move || store.apply_batch(commands, marks))
            .await
            .map_err(|e| StorageIOError::write_state_machine(AnyError::new(&e)).into())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, RaftStorageError> {
        let path = self.0.incoming_snapshot_path();
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?;
        // The name is only needed while the file is open; unlinking now means an interrupted
        // transfer leaves nothing behind.
        let _ = tokio::fs::remove_file(&path).await;
        Ok(Box::new(file))
    }

    #[tracing::instrument(level = "info", skip_all, fields(snapshot_id = %meta.snapshot_id))]
    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), RaftStorageError> {
        let file = snapshot.into_std().await;
        let store = self.0.clone();
        let meta = meta.clone();
        blocking(move || {
            let marks = snapshot_marks(&meta);
            store.install_snapshot(
                file,
                |header: &Meta| {
                    if header.last_log_id == meta.last_log_id {
                        Ok(())
                    } else {
                        Err(format!(
                            "file is for {:?}, expected {:?}",
                            header.last_log_id, meta.last_log_id
                        ))
                    }
                },
                marks,
            )
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?;
        tracing::info!("snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, RaftStorageError> {
        let store = self.0.clone();
        let current = blocking(move || store.current_snapshot::<Meta>())
            .await
            .map_err(snapshot_err)?;
        Ok(current.map(|(meta, file)| Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}
