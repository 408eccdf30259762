//! Moving a Raft log that an earlier build kept in LMDB (`raft-log/`) to [`RaftWal`]
//! (`raft-wal/`), once, on the first start of this build.
//!
//! The new log is built aside and renamed, so a crash leaves either no `raft-wal/` (the move
//! runs again) or a whole one. Then `raft-log/` is replaced by a file saying where the log
//! went: an earlier build, which would create an empty `raft-log/` and take the node for a new
//! one, fails to open a file as its log directory and refuses to start instead.

use std::path::Path;

use blindstore_storage::{decode, open_env, write_atomically, RaftWal, StorageError, WalMeta};
use blindstore_types::raft::NodeId;
use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U64};
use heed::Database;
use openraft::LogId;

/// What `raft-log` says once the log moved.
const MOVED: &str = "The Raft log moved to raft-wal/ (segmented log, format 1). Builds that kept it here cannot open this node's data.\n";

/// Moves `data_dir/raft-log/` to `data_dir/raft-wal/` if it is an LMDB log; nothing to do
/// otherwise.
pub(crate) fn move_to_wal(data_dir: &Path, map_size: usize) -> Result<(), StorageError> {
    let legacy = data_dir.join("raft-log");
    let wal = data_dir.join("raft-wal");
    if !legacy.is_dir() {
        return Ok(());
    }
    if !wal.exists() && legacy.join("data.mdb").exists() {
        let env = open_env(&legacy, map_size, 4, blindstore_storage::Sync::Full)?;
        let rtxn = env.read_txn()?;
        let logs: Option<Database<U64<BigEndian>, Bytes>> =
            env.open_database(&rtxn, Some("logs"))?;
        let meta_db: Option<Database<Str, Bytes>> = env.open_database(&rtxn, Some("meta"))?;
        let mut meta = WalMeta::default();
        if let Some(db) = meta_db {
            meta.vote = db.get(&rtxn, "vote")?.map(<[u8]>::to_vec);
            meta.committed = db.get(&rtxn, "committed")?.map(<[u8]>::to_vec);
            meta.node_id = db
                .get(&rtxn, "node_id")?
                .map(|b| decode::<NodeId>("node id", b))
                .transpose()?;
            if let Some(bytes) = db.get(&rtxn, "last_purged")? {
                let id: LogId<NodeId> = decode("last purged log id", bytes)?;
                meta.last_purged = Some((id.index, bytes.to_vec()));
            }
        }
        let first = match &logs {
            Some(db) => db.first(&rtxn)?.map(|(i, _)| i),
            None => None,
        };
        let next_index = first.unwrap_or(match &meta.last_purged {
            Some((i, _)) => i + 1,
            None => 0,
        });
        let entries = logs
            .as_ref()
            .map(|db| db.iter(&rtxn))
            .transpose()?
            .into_iter()
            .flatten()
            .map(|item| item.map(|(i, b)| (i, b.to_vec())).map_err(Into::into));
        let held = RaftWal::create(&wal, meta, next_index, entries);
        drop(rtxn);
        drop(env);
        held?;
        tracing::info!(from = %legacy.display(), to = %wal.display(), "moved the Raft log to its segmented file");
    }
    if wal.exists() {
        std::fs::remove_dir_all(&legacy)?;
        write_atomically(data_dir, "raft-log", MOVED.as_bytes())?;
    }
    Ok(())
}
