//! The node id lives with the Raft state it was written under.

use blindstore_raft::LogStore;
use openraft::storage::RaftLogStorage;
use openraft::Vote;

#[tokio::test]
async fn the_node_id_is_stored_with_the_first_vote_and_cannot_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path(), 1 << 26).unwrap();
    log.adopt_node_id(4).unwrap();
    assert_eq!(
        log.stored_node_id().unwrap(),
        None,
        "a pristine log stores nothing until Raft writes"
    );
    log.save_vote(&Vote::new(1, 4)).await.unwrap();
    assert_eq!(log.stored_node_id().unwrap(), Some(4));
    assert!(log.adopt_node_id(5).is_err(), "another id is refused");
    log.adopt_node_id(4).unwrap();
}

#[tokio::test]
async fn raft_state_without_an_id_gets_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path(), 1 << 26).unwrap();
    // State written by a version that kept the id elsewhere.
    log.save_vote(&Vote::new(1, 2)).await.unwrap();
    assert_eq!(log.stored_node_id().unwrap(), None);
    log.adopt_node_id(2).unwrap();
    assert_eq!(log.stored_node_id().unwrap(), Some(2));
}

/// A log an earlier build kept in LMDB is moved once, whole, and the old place is left as a
/// file those builds cannot open as their log.
#[tokio::test]
async fn an_lmdb_log_is_moved_to_the_segmented_log_once() {
    use blindstore_raft::TypeConfig;
    use blindstore_types::record::encode;
    use heed::byteorder::BigEndian;
    use heed::types::{Bytes, Str, U64};
    use openraft::storage::RaftLogReader;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("raft-log");
    let id = |i| LogId::new(CommittedLeaderId::new(2, 1), i);
    {
        let env = blindstore_storage::open_env(&legacy, 1 << 26, 4, blindstore_storage::Sync::Full)
            .unwrap();
        let mut wtxn = env.write_txn().unwrap();
        let logs: heed::Database<U64<BigEndian>, Bytes> =
            env.create_database(&mut wtxn, Some("logs")).unwrap();
        let meta: heed::Database<Str, Bytes> =
            env.create_database(&mut wtxn, Some("meta")).unwrap();
        for i in 5..9u64 {
            let entry = Entry::<TypeConfig> {
                log_id: id(i),
                payload: EntryPayload::Blank,
            };
            logs.put(&mut wtxn, &i, &encode(&entry)).unwrap();
        }
        meta.put(&mut wtxn, "vote", &encode(&Vote::<u64>::new(2, 1)))
            .unwrap();
        meta.put(&mut wtxn, "committed", &encode(&Some(id(7))))
            .unwrap();
        meta.put(&mut wtxn, "last_purged", &encode(&id(4))).unwrap();
        meta.put(&mut wtxn, "node_id", &encode(&1u64)).unwrap();
        wtxn.commit().unwrap();
    }

    for start in 0..2 {
        let mut log = LogStore::open(dir.path(), 1 << 26).unwrap();
        assert_eq!(log.stored_node_id().unwrap(), Some(1), "start {start}");
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new(2, 1)),
            "start {start}"
        );
        assert_eq!(log.read_committed().await.unwrap(), Some(id(7)));
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(id(4)));
        assert_eq!(state.last_log_id, Some(id(8)));
        let entries = log.try_get_log_entries(0..100).await.unwrap();
        let ids: Vec<_> = entries.iter().map(|e| e.log_id).collect();
        assert_eq!(ids, (5..9).map(id).collect::<Vec<_>>());
        assert!(legacy.is_file(), "raft-log is now a file");
        assert!(
            std::fs::read_to_string(&legacy)
                .unwrap()
                .contains("raft-wal"),
            "it says where the log went"
        );
    }
    assert!(
        blindstore_storage::open_env(&legacy, 1 << 26, 4, blindstore_storage::Sync::Full).is_err(),
        "an earlier build cannot open it as an empty log"
    );
}
