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

/// A fresh state machine in `dir` that installed a snapshot of `sm`.
async fn copied_by_snapshot(
    sm: &mut StateMachineStore,
    dir: &std::path::Path,
) -> StateMachineStore {
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut other = StateMachineStore::open(dir, 1 << 26).unwrap();
    other
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    other
}

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
    let other = copied_by_snapshot(&mut sm, &dir.path().join("b")).await;
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

/// The write policy and the account quotas hold where commands are applied, whoever
/// proposed them: an anonymous `CreateChain` that a lagging node let through after the zone
/// switched to `accounts` is refused, and an account's chains are counted.
#[tokio::test]
async fn the_write_policy_and_account_quotas_are_checked_on_apply_and_survive_snapshots() {
    use blindstore_types::account::{
        AccountId, AccountQuota, Acting, SessionRecord, WritePolicy, ZoneSettings,
    };
    use blindstore_types::command::TicketUse;
    use blindstore_types::Hash32;

    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    let zone = ZoneId::new("demo").unwrap();
    let alice = AccountId::new("alice").unwrap();
    let key = |seed: u8| {
        PublicKey(
            SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        )
    };
    let token = Hash32::digest(b"alice's session token");
    let acting = Acting {
        session: token,
        now_ms: 2_000,
    };
    let settings = ZoneSettings {
        writes: WritePolicy::Accounts,
        account_quota: AccountQuota {
            max_chains: 1,
            ..AccountQuota::default()
        },
    };
    let commands = vec![
        Command::CreateZone {
            zone: zone.clone(),
            created_at_ms: 1,
        },
        Command::SetZoneSettings {
            zone: zone.clone(),
            settings,
        },
        Command::CreateChain {
            zone: zone.clone(),
            public_key: key(1),
        },
        Command::CreateAccount {
            zone: zone.clone(),
            account: alice.clone(),
            registration: vec![9; 192],
            created_at_ms: 1_000,
        },
        Command::CreateSession {
            zone: zone.clone(),
            token_hash: token,
            session: SessionRecord {
                account: alice.clone(),
                created_at_ms: 1_500,
                expires_at_ms: 1_000_000,
                label: String::new(),
            },
            registration_hash: Hash32::digest(&[9; 192]),
            ticket: TicketUse {
                id: [1; 16],
                expires_at_ms: 60_000,
                now_ms: 1_500,
            },
        },
        Command::CreateAccountChain {
            zone: zone.clone(),
            public_key: key(2),
            account: alice.clone(),
            acting,
        },
        Command::CreateAccountChain {
            zone: zone.clone(),
            public_key: key(3),
            account: alice.clone(),
            acting,
        },
    ];
    let entries: Vec<_> = commands
        .into_iter()
        .enumerate()
        .map(|(i, c)| entry(i as u64 + 1, c))
        .collect();
    let responses = sm.apply(entries).await.unwrap();
    assert_eq!(
        responses[2],
        CommandResponse::Rejected(Rejection::InvalidSession),
        "an anonymous chain in a zone whose writes need accounts"
    );
    assert_eq!(responses[4], CommandResponse::SessionCreated);
    assert!(matches!(
        responses[5],
        CommandResponse::ChainCreated { created: true, .. }
    ));
    assert!(matches!(
        responses[6],
        CommandResponse::Rejected(Rejection::AccountQuotaExceeded { limit: 1, .. })
    ));
    assert!(sm.chain(&zone, &chain_id(&key(1))).unwrap().is_none());
    assert_eq!(sm.account(&zone, &alice).unwrap().unwrap().chains, 1);

    // A snapshot carries the settings, the account and its session to another node.
    let other = copied_by_snapshot(&mut sm, &dir.path().join("b")).await;
    assert_eq!(other.zone_settings(&zone).unwrap(), settings);
    assert_eq!(other.account(&zone, &alice).unwrap().unwrap().chains, 1);
    assert_eq!(
        other.session(&zone, &token).unwrap().unwrap().account,
        alice
    );
}
