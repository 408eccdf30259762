//! The node id lives with the Raft state it was written under.

use blindstore_raft::LogStore;
use openraft::storage::RaftLogStorage;
use openraft::Vote;

#[tokio::test]
async fn the_node_id_is_stored_with_the_first_vote_and_cannot_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft-log");
    let mut log = LogStore::open(&path, 1 << 26).unwrap();
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
    let path = dir.path().join("raft-log");
    let mut log = LogStore::open(&path, 1 << 26).unwrap();
    // State written by a version that kept the id elsewhere.
    log.save_vote(&Vote::new(1, 2)).await.unwrap();
    assert_eq!(log.stored_node_id().unwrap(), None);
    log.adopt_node_id(2).unwrap();
    assert_eq!(log.stored_node_id().unwrap(), Some(2));
}
