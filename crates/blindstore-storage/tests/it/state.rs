//! The state machine's command semantics: the compare-and-set, rejections that change nothing,
//! and state that survives reopening and snapshot transfer.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use blindstore_storage::StateMachineStore;
use blindstore_types::command::{accounts, Command, CommandResponse, Rejection};
use blindstore_types::entry::{chain_id, genesis, UnsignedEntry};
use blindstore_types::{PublicKey, ZoneId};
use ed25519_dalek::SigningKey;

/// A fresh state in `dir` that installed a snapshot of `sm`.
fn copied_by_snapshot(sm: &StateMachineStore, dir: &std::path::Path) -> StateMachineStore {
    let ((), path) = sm.build_snapshot(|_, _| Ok(())).unwrap();
    let other = StateMachineStore::open(dir, 1 << 26).unwrap();
    let file = std::fs::File::open(path).unwrap();
    other.install_snapshot(file, |()| Ok(()), vec![]).unwrap();
    other
}

/// Applies `commands` as one batch of log entries, as the Raft core hands them over.
fn apply(sm: &StateMachineStore, commands: Vec<Command>) -> Vec<CommandResponse> {
    sm.apply_batch(commands.into_iter().map(Some).collect(), vec![])
        .unwrap()
}

#[test]
fn a_batch_applies_each_command_on_its_own_and_inline_payloads_are_kept_with_entries() {
    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    let zone = ZoneId::new("demo").unwrap();
    let sk = SigningKey::from_bytes(&[6; 32]);
    let pk = PublicKey(sk.verifying_key().to_bytes());
    let id = chain_id(&pk);
    let signed = |index, prev, payload: &[u8]| {
        UnsignedEntry::new(zone.clone(), id, index, prev, payload, vec![])
            .sign(&sk)
            .header()
    };
    // Entry 0 as earlier builds stored it (payload a chunk), then inline ones: the upgrade.
    let e0 = signed(0, genesis(&id), b"chunk");
    let e1 = signed(1, e0.entry_hash, b"inline one");
    let e2 = signed(2, e1.entry_hash, b"inline two");
    let stale = signed(1, genesis(&id), b"stale");
    let inline = |header, payload: &[u8]| Command::AppendWithPayload {
        zone: zone.clone(),
        chain_id: id,
        header,
        payload: payload.to_vec(),
    };
    let batch = Command::Batch(vec![
        inline(e1.clone(), b"inline one"),
        inline(stale, b"stale"),
        inline(e2.clone(), b"not the signed payload"),
        Command::Batch(vec![]),
        inline(e2.clone(), b"inline two"),
    ]);
    let responses = apply(
        &sm,
        vec![
            Command::CreateZone {
                zone: zone.clone(),
                created_at_ms: 1,
            },
            Command::CreateChain {
                zone: zone.clone(),
                public_key: pk,
            },
            Command::Append {
                zone: zone.clone(),
                chain_id: id,
                header: e0.clone(),
            },
            batch,
        ],
    );
    let CommandResponse::Batch(answers) = &responses[3] else {
        panic!("a batch answers a batch: {:?}", responses[3]);
    };
    assert!(matches!(
        answers[0],
        CommandResponse::Appended {
            index: 1,
            length: 2,
            ..
        }
    ));
    assert_eq!(
        answers[1],
        CommandResponse::Rejected(Rejection::IndexConflict {
            length: 2,
            head: e1.entry_hash
        }),
        "the compare-and-set sees the batch's earlier commands"
    );
    assert_eq!(
        answers[2],
        CommandResponse::Rejected(Rejection::BadSignature),
        "a payload that does not hash to the signed one"
    );
    assert_eq!(
        answers[3],
        CommandResponse::Rejected(Rejection::NestedBatch)
    );
    assert!(matches!(
        answers[4],
        CommandResponse::Appended {
            index: 2,
            length: 3,
            ..
        }
    ));
    assert_eq!(answers.len(), 5);

    let expected = vec![
        (e0.clone(), None),
        (e1.clone(), Some(b"inline one".to_vec())),
        (e2.clone(), Some(b"inline two".to_vec())),
    ];
    assert_eq!(
        sm.entries(&zone, &id, Some(0), 10).unwrap().unwrap().1,
        expected
    );
    assert!(sm.is_referenced(&zone, &e0.payload_hash).unwrap());
    assert!(
        !sm.is_referenced(&zone, &e1.payload_hash).unwrap(),
        "an inline payload is no chunk"
    );
    let zone_record = sm.zone(&zone).unwrap().unwrap();
    assert_eq!((zone_record.entries, zone_record.payload_bytes), (3, 25));

    let other = copied_by_snapshot(&sm, &dir.path().join("b"));
    assert_eq!(
        other.entries(&zone, &id, Some(0), 10).unwrap().unwrap().1,
        expected,
        "inline payloads travel in snapshots"
    );
}

#[test]
fn append_is_a_compare_and_set_and_survives_snapshot_install() {
    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
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
    let responses = apply(
        &sm,
        vec![
            Command::CreateChain {
                zone: zone.clone(),
                public_key: pk,
            },
            Command::CreateZone {
                zone: zone.clone(),
                created_at_ms: 7,
            },
            Command::CreateChain {
                zone: zone.clone(),
                public_key: pk,
            },
            append(e0.clone()),
            append(e0.clone()),
            (append(stale)),
            append(e1.clone()),
        ],
    );
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
    assert_eq!(headers, vec![(e0.clone(), None), (e1.clone(), None)]);
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
    let other = copied_by_snapshot(&sm, &dir.path().join("b"));
    assert_eq!(
        other.entries(&zone, &id, Some(0), 10).unwrap().unwrap().1,
        vec![(e0, None), (e1, None)]
    );
    assert_eq!(other.zone(&zone).unwrap(), Some(zone_record));
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
#[test]
fn the_write_policy_and_account_quotas_are_checked_on_apply_and_survive_snapshots() {
    use blindstore_types::account::{
        AccountId, AccountQuota, Acting, SessionRecord, WritePolicy, ZoneSettings,
    };
    use blindstore_types::command::TicketUse;
    use blindstore_types::Hash32;

    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
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
        passkeys: None,
        cors_origins: vec!["https://budget.example".into()],
        site_hosts: vec!["budget.example".into()],
        proxies: vec![],
    };
    let commands = vec![
        Command::CreateZone {
            zone: zone.clone(),
            created_at_ms: 1,
        },
        Command::SetZoneSettings {
            zone: zone.clone(),
            settings: settings.clone(),
        },
        Command::CreateChain {
            zone: zone.clone(),
            public_key: key(1),
        },
        Command::CreateAccount(accounts::CreateAccount {
            zone: zone.clone(),
            account: alice.clone(),
            registration: vec![9; 192],
            created_at_ms: 1_000,
        }),
        Command::CreateSession(accounts::CreateSession {
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
        }),
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
    let responses = apply(&sm, commands);
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
    let other = copied_by_snapshot(&sm, &dir.path().join("b"));
    assert_eq!(other.zone_settings(&zone).unwrap(), settings);
    assert_eq!(other.account(&zone, &alice).unwrap().unwrap().chains, 1);
    assert_eq!(
        other.session(&zone, &token).unwrap().unwrap().account,
        alice
    );
}

/// Passkeys where commands are applied: a credential id belongs to one account of the zone,
/// each registration and login ticket works once, a login with a passkey removed meanwhile
/// is refused, deleting the account frees its credentials, and a snapshot carries them.
#[test]
fn passkeys_are_unique_single_use_and_carried_by_snapshots() {
    use blindstore_types::account::{AccountId, Acting, PasskeyRecord, SessionRecord};
    use blindstore_types::command::TicketUse;
    use blindstore_types::Hash32;

    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    let zone = ZoneId::new("demo").unwrap();
    let (alice, bob) = (
        AccountId::new("alice").unwrap(),
        AccountId::new("bob").unwrap(),
    );
    let session = |account: &AccountId, at: u64| SessionRecord {
        account: account.clone(),
        created_at_ms: at,
        expires_at_ms: 1_000_000,
        label: String::new(),
    };
    let ticket = |id: u8| TicketUse {
        id: [id; 16],
        expires_at_ms: 300_000,
        now_ms: 2_000,
    };
    let (alice_token, bob_token) = (Hash32::digest(b"alice"), Hash32::digest(b"bob"));
    let acting = |token| Acting {
        session: token,
        now_ms: 2_000,
    };
    let record = |credential: &[u8]| PasskeyRecord {
        credential: credential.to_vec(),
        label: "laptop".into(),
        created_at_ms: 2_000,
        last_used_ms: 0,
    };
    let add = |account: &AccountId, token, id: &[u8], t: u8| {
        Command::AddPasskey(accounts::AddPasskey {
            zone: zone.clone(),
            account: account.clone(),
            acting: acting(token),
            id: id.to_vec(),
            passkey: record(b"v1"),
            ticket: ticket(t),
        })
    };
    let login = |id: &[u8], t: u8, token: &[u8]| {
        Command::CreatePasskeySession(accounts::CreatePasskeySession {
            zone: zone.clone(),
            token_hash: Hash32::digest(token),
            session: session(&alice, 3_000),
            passkey: id.to_vec(),
            credential: Some(b"v2".to_vec()),
            ticket: ticket(t),
        })
    };
    let mut commands = vec![Command::CreateZone {
        zone: zone.clone(),
        created_at_ms: 1,
    }];
    for (i, (account, token)) in [(&alice, alice_token), (&bob, bob_token)]
        .into_iter()
        .enumerate()
    {
        commands.push(Command::CreateAccount(accounts::CreateAccount {
            zone: zone.clone(),
            account: account.clone(),
            registration: vec![i as u8; 192],
            created_at_ms: 1_000,
        }));
        commands.push(Command::CreateSession(accounts::CreateSession {
            zone: zone.clone(),
            token_hash: token,
            session: session(account, 1_500),
            registration_hash: Hash32::digest(&[i as u8; 192]),
            ticket: ticket(100 + i as u8),
        }));
    }
    commands.extend([
        add(&alice, alice_token, b"key-1", 1), // 5: added
        add(&bob, bob_token, b"key-1", 2),     // 6: another account's credential id
        add(&alice, alice_token, b"key-2", 1), // 7: the registration ticket again
        add(&alice, bob_token, b"key-3", 3),   // 8: bob's session acting for alice
        login(b"key-1", 4, b"s1"),             // 9: a session, the credential updated
        login(b"key-1", 4, b"s2"),             // 10: the login ticket again
        Command::RemovePasskey(accounts::RemovePasskey {
            zone: zone.clone(),
            account: alice.clone(),
            acting: acting(alice_token),
            id: b"key-1".to_vec(),
        }), // 11
        login(b"key-1", 5, b"s3"),             // 12: a login with the removed passkey
        add(&alice, alice_token, b"key-4", 6), // 13
        Command::DeleteAccount(accounts::DeleteAccount {
            zone: zone.clone(),
            account: alice.clone(),
            acting: None,
        }), // 14: frees key-4
        add(&bob, bob_token, b"key-4", 7),     // 15
    ]);
    let r = apply(&sm, commands);
    use CommandResponse::{AccountDeleted, PasskeyAdded, PasskeyRemoved, Rejected, SessionCreated};
    assert_eq!(r[5], PasskeyAdded);
    assert_eq!(r[6], Rejected(Rejection::PasskeyExists));
    assert_eq!(r[7], Rejected(Rejection::TicketUsed));
    assert_eq!(r[8], Rejected(Rejection::InvalidSession));
    assert_eq!(r[9], SessionCreated);
    assert_eq!(r[10], Rejected(Rejection::TicketUsed));
    assert_eq!(r[11], PasskeyRemoved);
    assert_eq!(r[12], Rejected(Rejection::UnknownPasskey));
    assert!(sm.session(&zone, &Hash32::digest(b"s3")).unwrap().is_none());
    assert_eq!(r[13], PasskeyAdded);
    assert_eq!(r[14], AccountDeleted);
    assert!(sm.passkeys(&zone, &alice).unwrap().is_empty());
    assert_eq!(
        r[15], PasskeyAdded,
        "a deleted account's credential ids are free"
    );

    let other = copied_by_snapshot(&sm, &dir.path().join("b"));
    let bobs = other.passkeys(&zone, &bob).unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].0, b"key-4");
    assert_eq!(bobs[0].1, record(b"v1"));
}

/// The counter update a passkey login carries is stored, with the time of use.
#[test]
fn a_passkey_login_stores_the_updated_credential() {
    use blindstore_types::account::{AccountId, Acting, PasskeyRecord, SessionRecord};
    use blindstore_types::command::TicketUse;
    use blindstore_types::Hash32;

    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(dir.path(), 1 << 26).unwrap();
    let zone = ZoneId::new("demo").unwrap();
    let alice = AccountId::new("alice").unwrap();
    let token = Hash32::digest(b"t");
    let session = SessionRecord {
        account: alice.clone(),
        created_at_ms: 1_500,
        expires_at_ms: 1_000_000,
        label: String::new(),
    };
    let ticket = |id: u8| TicketUse {
        id: [id; 16],
        expires_at_ms: 300_000,
        now_ms: 2_000,
    };
    let commands = vec![
        Command::CreateZone {
            zone: zone.clone(),
            created_at_ms: 1,
        },
        Command::CreateAccount(accounts::CreateAccount {
            zone: zone.clone(),
            account: alice.clone(),
            registration: vec![1; 192],
            created_at_ms: 1_000,
        }),
        Command::CreateSession(accounts::CreateSession {
            zone: zone.clone(),
            token_hash: token,
            session: session.clone(),
            registration_hash: Hash32::digest(&[1; 192]),
            ticket: ticket(1),
        }),
        Command::AddPasskey(accounts::AddPasskey {
            zone: zone.clone(),
            account: alice.clone(),
            acting: Acting {
                session: token,
                now_ms: 2_000,
            },
            id: b"key".to_vec(),
            passkey: PasskeyRecord {
                credential: b"counter 1".to_vec(),
                label: String::new(),
                created_at_ms: 2_000,
                last_used_ms: 0,
            },
            ticket: ticket(2),
        }),
        Command::CreatePasskeySession(accounts::CreatePasskeySession {
            zone: zone.clone(),
            token_hash: Hash32::digest(b"t2"),
            session: SessionRecord {
                created_at_ms: 5_000,
                ..session
            },
            passkey: b"key".to_vec(),
            credential: Some(b"counter 2".to_vec()),
            ticket: ticket(3),
        }),
    ];
    let r = apply(&sm, commands);
    assert_eq!(r[4], CommandResponse::SessionCreated);
    let (_, stored) = sm.passkeys(&zone, &alice).unwrap().remove(0);
    assert_eq!(stored.credential, b"counter 2");
    assert_eq!(stored.last_used_ms, 5_000);
}

/// A published site's chunks are referenced (never collected), versions number up, a switch
/// to an unknown version changes nothing, and a snapshot carries the versions and which is
/// current.
#[test]
fn site_versions_reference_their_chunks_and_survive_snapshots() {
    use blindstore_types::site::{SiteBlob, SiteFile, SiteManifest};
    use blindstore_types::Hash32;

    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    let zone = ZoneId::new("demo").unwrap();
    let manifest = |n: u8| {
        let mut m = SiteManifest::default();
        m.files.insert(
            "index.html".into(),
            SiteFile {
                content_type: "text/html".into(),
                blob: SiteBlob {
                    chunks: vec![Hash32([n; 32])],
                    len: 1,
                    sha256: Hash32([n; 32]),
                },
                gzip: Some(SiteBlob {
                    chunks: vec![Hash32([n + 100; 32])],
                    len: 1,
                    sha256: Hash32([n + 100; 32]),
                }),
                br: None,
            },
        );
        m
    };
    let commands = vec![
        Command::CreateZone {
            zone: zone.clone(),
            created_at_ms: 1,
        },
        Command::PublishSite {
            zone: zone.clone(),
            manifest: manifest(1),
            created_at_ms: 10,
        },
        Command::PublishSite {
            zone: zone.clone(),
            manifest: manifest(2),
            created_at_ms: 20,
        },
        Command::SetSiteVersion {
            zone: zone.clone(),
            version: 7,
        },
        Command::SetSiteVersion {
            zone: zone.clone(),
            version: 1,
        },
    ];
    let r = apply(&sm, commands);
    assert_eq!(r[1], CommandResponse::SitePublished { version: 1 });
    assert_eq!(r[2], CommandResponse::SitePublished { version: 2 });
    assert_eq!(
        r[3],
        CommandResponse::Rejected(Rejection::UnknownSiteVersion)
    );
    assert_eq!(r[4], CommandResponse::SiteVersionSet);
    for n in [1u8, 101, 2, 102] {
        assert!(sm.is_referenced(&zone, &Hash32([n; 32])).unwrap(), "{n}");
    }
    let other = copied_by_snapshot(&sm, &dir.path().join("b"));
    let (version, record) = other.current_site(&zone).unwrap().unwrap();
    assert_eq!((version, record.manifest), (1, manifest(1)));
    assert_eq!(other.site_versions(&zone).unwrap().len(), 2);
    assert!(other.is_referenced(&zone, &Hash32([102; 32])).unwrap());
}

/// A site host belongs to one zone: the settings change that would give it to a second zone is
/// rejected where it is applied (two proposers that both checked first cannot both win), a
/// zone that drops a host frees it, and the host → zone table survives reopening and snapshot
/// install.
#[test]
fn a_site_host_belongs_to_one_zone_checked_on_apply() {
    use blindstore_types::account::ZoneSettings;
    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    let (a, b) = (ZoneId::new("a").unwrap(), ZoneId::new("b").unwrap());
    let hosts = |zone: &ZoneId, hosts: &[&str]| Command::SetZoneSettings {
        zone: zone.clone(),
        settings: ZoneSettings {
            site_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..ZoneSettings::default()
        },
    };
    let create = |zone: &ZoneId| Command::CreateZone {
        zone: zone.clone(),
        created_at_ms: 1,
    };
    let r = apply(
        &sm,
        vec![
            create(&a),
            create(&b),
            hosts(&a, &["app.example", "www.example"]),
            hosts(&b, &["app.example"]),
        ],
    );
    assert_eq!(r[2], CommandResponse::ZoneSettingsSet);
    assert_eq!(
        r[3],
        CommandResponse::Rejected(Rejection::SiteHostTaken {
            host: "app.example".into(),
            zone: a.clone()
        })
    );
    assert!(sm.zone_settings(&b).unwrap().site_hosts.is_empty());
    assert_eq!(sm.zone_for_host("app.example").unwrap(), Some(a.clone()));

    // Zone a gives app.example up (and keeps www.example); then b may take it.
    let r = apply(
        &sm,
        vec![(hosts(&a, &["www.example"])), (hosts(&b, &["app.example"]))],
    );
    assert_eq!(r, vec![CommandResponse::ZoneSettingsSet; 2]);
    assert_eq!(sm.zone_for_host("app.example").unwrap(), Some(b.clone()));
    assert_eq!(sm.zone_for_host("www.example").unwrap(), Some(a.clone()));
    assert_eq!(sm.zone_for_host("nobody.example").unwrap(), None);

    let copy = copied_by_snapshot(&sm, &dir.path().join("b"));
    drop(sm);
    let reopened = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    for s in [&reopened, &copy] {
        assert_eq!(s.zone_for_host("app.example").unwrap(), Some(b.clone()));
        assert_eq!(s.zone_for_host("www.example").unwrap(), Some(a.clone()));
    }
    let r = apply(&copy, vec![hosts(&a, &["app.example"])]);
    assert!(matches!(
        &r[0],
        CommandResponse::Rejected(Rejection::SiteHostTaken { .. })
    ));
}

#[test]
fn a_command_of_a_newer_level_waits_for_the_cluster_version_which_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    let (first, second) = ([1u8; 16], [2u8; 16]);
    let name = |id| Command::SetClusterId { id };
    assert_eq!(name(first).required_level(), 2);
    assert_eq!(
        sm.cluster_version().unwrap(),
        1,
        "a new state is at version 1"
    );

    // At version 1 (a member of an older build may be in the cluster) it is refused, alone or
    // inside a batch, where the others still apply.
    let zone = ZoneId::new("levels").unwrap();
    let responses = apply(
        &sm,
        vec![
            name(first),
            Command::Batch(vec![
                name(first),
                Command::CreateZone {
                    zone: zone.clone(),
                    created_at_ms: 1,
                },
            ]),
        ],
    );
    let refused = CommandResponse::Rejected(Rejection::NeedsClusterVersion {
        needed: 2,
        current: 1,
    });
    assert_eq!(responses[0], refused);
    assert_eq!(
        responses[1],
        CommandResponse::Batch(vec![
            refused.clone(),
            CommandResponse::ZoneCreated { created: true }
        ])
    );
    assert_eq!(sm.cluster_id().unwrap(), None);

    // The version moves up, never down; then the id is set once, the first one staying.
    let responses = apply(
        &sm,
        vec![
            Command::SetClusterVersion { level: 2 },
            Command::SetClusterVersion { level: 1 },
            name(first),
            name(second),
        ],
    );
    assert_eq!(
        responses,
        vec![
            CommandResponse::ClusterVersionSet { level: 2 },
            CommandResponse::ClusterVersionSet { level: 2 },
            CommandResponse::ClusterIdSet { id: first },
            CommandResponse::ClusterIdSet { id: first },
        ]
    );
    assert_eq!(sm.cluster_version().unwrap(), 2);

    // Both travel with snapshots, and a snapshot file says which cluster it is of.
    let copy = copied_by_snapshot(&sm, &dir.path().join("b"));
    assert_eq!(copy.cluster_version().unwrap(), 2);
    assert_eq!(copy.cluster_id().unwrap(), Some(first));
    let ((), path) = sm.build_snapshot(|_, _| Ok(())).unwrap();
    let (_, contents) = blindstore_storage::read_snapshot_file(&path).unwrap();
    assert_eq!(contents.cluster_id, Some(first));
}

#[test]
fn a_state_at_version_one_writes_nothing_an_older_build_does_not_know() {
    // Until the version moves, the cluster table holds only the keys builds older than levels
    // wrote: their snapshots stay readable by them.
    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    apply(
        &sm,
        vec![
            Command::SetClusterId { id: [3; 16] },
            Command::SetDraining {
                node: 2,
                draining: true,
            },
        ],
    );
    let ((), path) = sm.build_snapshot(|_, _| Ok(())).unwrap();
    let (_, contents) = blindstore_storage::read_snapshot_file(&path).unwrap();
    assert_eq!(contents.cluster_id, None);
    assert_eq!(contents.rows.get(&5), Some(&1), "only the draining set");
}

#[test]
fn deleting_a_zone_removes_everything_in_it_and_nothing_of_a_zone_whose_name_extends_it() {
    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    let sk = SigningKey::from_bytes(&[9; 32]);
    let pk = PublicKey(sk.verifying_key().to_bytes());
    let id = chain_id(&pk);
    // A zone with a chain of two inline entries, and one whose name starts with its name.
    let fill = |name: &str| {
        let zone = ZoneId::new(name).unwrap();
        let e0 = UnsignedEntry::new(zone.clone(), id, 0, genesis(&id), b"p0", vec![])
            .sign(&sk)
            .header();
        let e1 = UnsignedEntry::new(zone.clone(), id, 1, e0.entry_hash, b"p1", vec![])
            .sign(&sk)
            .header();
        let inline = |header, payload: &[u8]| Command::AppendWithPayload {
            zone: zone.clone(),
            chain_id: id,
            header,
            payload: payload.to_vec(),
        };
        vec![
            Command::CreateZone {
                zone: zone.clone(),
                created_at_ms: 1,
            },
            Command::CreateChain {
                zone: zone.clone(),
                public_key: pk,
            },
            inline(e0, b"p0"),
            inline(e1, b"p1"),
        ]
    };
    let mut setup = fill("z");
    setup.extend(fill("zz"));
    apply(&sm, setup);
    let z = ZoneId::new("z").unwrap();
    let delete = || Command::DeleteZone { zone: z.clone() };

    // Until every member runs a build that can apply it, it is refused.
    let responses = apply(&sm, vec![delete()]);
    assert_eq!(
        responses[0],
        CommandResponse::Rejected(Rejection::NeedsClusterVersion {
            needed: 4,
            current: 1
        })
    );
    let responses = apply(
        &sm,
        vec![Command::SetClusterVersion { level: 4 }, delete(), delete()],
    );
    let CommandResponse::ZoneDeleted(removed) = &responses[1] else {
        panic!("{:?}", responses[1]);
    };
    assert_eq!((removed.chains, removed.entries), (1, 2), "{removed:?}");
    assert_eq!(
        responses[2],
        CommandResponse::Rejected(Rejection::UnknownZone),
        "a second delete finds nothing"
    );
    assert!(sm.zone(&z).unwrap().is_none());
    let zz = ZoneId::new("zz").unwrap();
    assert_eq!(
        sm.zone(&zz).unwrap().unwrap().entries,
        2,
        "the other zone is whole"
    );
    assert_eq!(
        sm.chain(&zz, &id).unwrap().unwrap().length,
        2,
        "its chain is whole"
    );
    assert!(sm.chain(&z, &id).unwrap().is_none());
    // The name can be used again: an empty zone.
    let responses = apply(
        &sm,
        vec![Command::CreateZone {
            zone: z.clone(),
            created_at_ms: 2,
        }],
    );
    assert_eq!(responses[0], CommandResponse::ZoneCreated { created: true });
    assert_eq!(sm.zone(&z).unwrap().unwrap().entries, 0);
}

#[test]
fn an_admin_credential_rotation_that_raced_another_changes_nothing() {
    use blindstore_types::command::AdminCredentials;
    use blindstore_types::Hash32;
    let dir = tempfile::tempdir().unwrap();
    let sm = StateMachineStore::open(&dir.path().join("a"), 1 << 26).unwrap();
    let credentials = |admin: &[u8]| AdminCredentials {
        admin: Hash32::digest(admin),
        metrics: None,
        rotated_at_ms: 1,
    };
    let rotate = |admin: &[u8], previous: Option<&[u8]>| Command::SetAdminCredentials {
        credentials: credentials(admin),
        previous: previous.map(Hash32::digest),
    };
    let responses = apply(
        &sm,
        vec![
            Command::SetClusterVersion { level: 3 },
            rotate(b"first", None),
            // A second first rotation, made from the same view: it lost the race.
            rotate(b"second", None),
            rotate(b"third", Some(b"first")),
        ],
    );
    assert_eq!(responses[1], CommandResponse::AdminCredentialsSet);
    assert_eq!(
        responses[2],
        CommandResponse::Rejected(Rejection::AdminCredentialsChanged)
    );
    assert_eq!(responses[3], CommandResponse::AdminCredentialsSet);
    assert_eq!(sm.admin_credentials().unwrap(), Some(credentials(b"third")));
}

/// The state store's commits are synced in the background, so what opens after a stop depends
/// on how it stopped: a clean close or a process crash (same boot) keeps everything; a store a
/// machine crash left open is set aside and starts empty, for the node to rebuild.
#[test]
fn the_state_is_kept_after_a_close_or_a_process_crash_and_set_aside_after_a_machine_crash() {
    use blindstore_types::record::encode;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let probe = |sm: &StateMachineStore| sm.mark::<u64>("probe").unwrap();

    let sm = StateMachineStore::open(&path, 1 << 26).unwrap();
    assert_eq!(sm.reset(), None);
    sm.apply_batch(vec![], vec![("probe", encode(&7u64))])
        .unwrap();
    sm.sync().unwrap();
    sm.apply_batch(vec![], vec![("probe", encode(&8u64))])
        .unwrap();
    drop(sm); // a process crash: nothing synced the last commit, the page cache has it

    let sm = StateMachineStore::open(&path, 1 << 26).unwrap();
    assert_eq!(sm.reset(), None, "a process crash on this boot is trusted");
    assert_eq!(probe(&sm), 8);
    sm.close().unwrap();
    drop(sm);
    let marker = std::fs::read_to_string(path.join("durability")).unwrap();
    assert!(marker.ends_with("clean\n"), "{marker}");

    let sm = StateMachineStore::open(&path, 1 << 26).unwrap();
    assert_eq!(sm.reset(), None);
    assert_eq!(probe(&sm), 8);
    drop(sm);

    blindstore_storage::emulate_machine_crash(&path).unwrap();
    let sm = StateMachineStore::open(&path, 1 << 26).unwrap();
    let why = sm
        .reset()
        .expect("a store another boot left open is not trusted");
    assert!(why.contains("boot"), "{why}");
    assert_eq!(probe(&sm), 0, "it starts empty");
    assert!(
        path.join("data.mdb.unclean").exists(),
        "the old file is kept aside"
    );
}
