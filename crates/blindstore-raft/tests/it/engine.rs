//! The state machine engine keeps its marks with the state it applies: how far it got travels
//! with the state through a restart and a snapshot, and a snapshot whose file does not match
//! its metadata is refused.

use blindstore_raft::StateMachine;
use blindstore_storage::StateMachineStore;
use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::ZoneId;
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};

fn open(dir: &std::path::Path) -> StateMachine {
    StateMachine::new(StateMachineStore::open(dir, 1 << 26).unwrap())
}

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

#[tokio::test]
async fn the_last_applied_log_id_travels_with_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(&dir.path().join("a"));
    let zone = ZoneId::new("demo").unwrap();
    let responses = sm
        .apply(vec![
            Entry {
                log_id: log_id(1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(2),
                payload: EntryPayload::Normal(Command::CreateZone {
                    zone: zone.clone(),
                    created_at_ms: 1,
                }),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        responses[0],
        CommandResponse::None,
        "a blank entry answers nothing"
    );
    assert!(matches!(responses[1], CommandResponse::ZoneCreated { .. }));
    assert_eq!(sm.last_applied().unwrap(), Some(log_id(2)));
    drop(sm);
    let mut sm = open(&dir.path().join("a"));
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2)), "a restart keeps how far it got");

    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(2)));
    let mut other = open(&dir.path().join("b"));
    let mut wrong = snapshot.meta.clone();
    wrong.last_log_id = Some(log_id(9));
    let file = sm.get_current_snapshot().await.unwrap().unwrap().snapshot;
    assert!(
        other.install_snapshot(&wrong, file).await.is_err(),
        "a snapshot file for another log id is refused"
    );
    assert_eq!(other.last_applied().unwrap(), None, "and nothing changed");
    other
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(other.last_applied().unwrap(), Some(log_id(2)));
    assert!(other.zone(&zone).unwrap().is_some());
    let current = other.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(
        current.meta.last_log_id,
        Some(log_id(2)),
        "the installed snapshot is the current one"
    );
}
