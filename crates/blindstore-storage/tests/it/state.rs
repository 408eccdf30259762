//! The state machine's command semantics: the compare-and-set, rejections that change nothing,
//! and state that survives reopening and snapshot transfer.

use blindstore_storage::StateMachineStore;
use blindstore_storage::TypeConfig;
use blindstore_types::command::{Command, CommandResponse, Rejection};
use blindstore_types::entry::{chain_id, genesis, UnsignedEntry};
use blindstore_types::{PublicKey, ZoneId};
use ed25519_dalek::SigningKey;
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};

fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(command),
    }
}

#[tokio::test]
async fn append_is_a_compare_and_set_and_survives_snapshot_install() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    let zone = ZoneId::new("demo").unwrap();
    let sk = SigningKey::from_bytes(&[5; 32]);
    let pk = PublicKey(sk.verifying_key().to_bytes());
    let id = chain_id(&pk);
    let e0 = UnsignedEntry::new(zone.clone(), id, 0, genesis(&id), b"p0", vec![])
        .sign(&sk)
        .header();
    let e1 = UnsignedEntry::new(zone.clone(), id, 1, e0.entry_hash, b"p1", vec![])
        .sign(&sk)
        .header();
    let stale = UnsignedEntry::new(zone.clone(), id, 1, genesis(&id), b"x", vec![])
        .sign(&sk)
        .header();

    let append = |header| Command::Append {
        zone: zone.clone(),
        chain_id: id,
        header,
    };
    let responses = sm
        .apply(vec![
            entry(
                1,
                Command::CreateChain {
                    zone: zone.clone(),
                    public_key: pk,
                },
            ),
            entry(
                2,
                Command::CreateZone {
                    zone: zone.clone(),
                    created_at_ms: 7,
                },
            ),
            entry(
                3,
                Command::CreateChain {
                    zone: zone.clone(),
                    public_key: pk,
                },
            ),
            entry(4, append(e0.clone())),
            entry(5, append(e0.clone())),
            entry(6, append(stale)),
            entry(7, append(e1.clone())),
        ])
        .await
        .unwrap();
    assert_eq!(
        responses[0],
        CommandResponse::Rejected(Rejection::UnknownZone)
    );
    assert_eq!(responses[1], CommandResponse::ZoneCreated { created: true });
    assert!(matches!(
        responses[2],
        CommandResponse::ChainCreated { created: true, .. }
    ));
    assert!(matches!(
        responses[3],
        CommandResponse::Appended {
            index: 0,
            length: 1,
            ..
        }
    ));
    let conflict = CommandResponse::Rejected(Rejection::IndexConflict {
        length: 1,
        head: e0.entry_hash,
    });
    assert_eq!(responses[4], conflict, "same index twice");
    assert_eq!(responses[5], conflict, "right index, wrong prev");
    assert!(matches!(
        responses[6],
        CommandResponse::Appended {
            index: 1,
            length: 2,
            ..
        }
    ));

    let (head, headers) = sm.entries(&zone, &id, Some(0), 10).unwrap().unwrap();
    assert_eq!((head.length, head.head), (2, e1.entry_hash));
    assert_eq!(headers, vec![e0.clone(), e1.clone()]);
    assert!(sm.is_referenced(&zone, &e0.payload_hash).unwrap());
    let zone_record = sm.zone(&zone).unwrap().unwrap();
    assert_eq!(
        (
            zone_record.chains,
            zone_record.entries,
            zone_record.payload_bytes
        ),
        (1, 2, 4)
    );

    // Snapshot, install on a fresh state machine, and compare.
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut other = StateMachineStore::open(&dir.path().join("b"), 1 << 26).unwrap();
    other
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(
        other.entries(&zone, &id, Some(0), 10).unwrap().unwrap().1,
        vec![e0, e1]
    );
    assert_eq!(other.zone(&zone).unwrap(), Some(zone_record));
    assert_eq!(other.last_applied().unwrap().map(|l| l.index), Some(7));
    drop(other);
    let reopened = StateMachineStore::open(&dir.path().join("b"), 1 << 26).unwrap();
    assert_eq!(
        reopened.chain(&zone, &id).unwrap().unwrap().length,
        2,
        "state survives reopening"
    );
}
