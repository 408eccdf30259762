//! Acknowledged writes survive kill -9; concurrent writers never fork a chain.

use blindstore_types::api::ErrorCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blindstore_client::{verify_entries, ChainWriter, Client};
use blindstore_types::{Hash32, ZoneId};

use crate::process::{eventually, NodeProcess};

/// Acknowledged appends of one writer: (index, entry hash, payload).
type AckLog = Arc<Mutex<Vec<(u64, Hash32, Vec<u8>)>>>;

fn demo() -> ZoneId {
    ZoneId::new("demo").unwrap()
}

/// Appends to `writer`'s chain one entry at a time until an error, `stop`, or the bounds;
/// records every acknowledged (index, entry hash, payload).
async fn append_until_error(
    client: Client,
    writer: ChainWriter,
    acked: AckLog,
    total: Arc<AtomicU64>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut prev = writer.genesis();
    for index in 0..20_000u64 {
        if Instant::now() > deadline {
            return;
        }
        let payload = format!("{}:{index}", writer.chain_id()).into_bytes();
        let (request, hash) = writer.sign(index, prev, &payload, vec![]);
        match client
            .append(writer.zone(), &writer.chain_id(), &request)
            .await
        {
            Ok(r) => {
                assert_eq!(r.entry_hash, hash);
                acked.lock().unwrap().push((index, hash, payload));
                total.fetch_add(1, Ordering::Relaxed);
                prev = hash;
            }
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let client = node.client();
    let writers: Vec<ChainWriter> = (0..4).map(|_| ChainWriter::generate(demo())).collect();
    for w in &writers {
        client.create_chain(&demo(), w.public_key()).await.unwrap();
    }
    let total = Arc::new(AtomicU64::new(0));
    let mut logs = Vec::new();
    let mut tasks = Vec::new();
    for w in &writers {
        let acked = Arc::new(Mutex::new(Vec::new()));
        logs.push(acked.clone());
        tasks.push(tokio::spawn(append_until_error(
            client.clone(),
            w.clone(),
            acked,
            total.clone(),
        )));
    }
    let counter = total.clone();
    eventually(Duration::from_secs(60), "200 acknowledged appends", || {
        let counter = counter.clone();
        async move { counter.load(Ordering::Relaxed) >= 200 }
    })
    .await;
    // Killed while the writers are mid-stream: some appends are in flight right now.
    node.kill_9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked_total = total.load(Ordering::Relaxed);

    let node = NodeProcess::start(dir.path(), &[]);
    let client = node.client();
    let mut present = 0;
    for (w, acked) in writers.iter().zip(&logs) {
        let entries = client.all_entries(&demo(), &w.chain_id()).await.unwrap();
        verify_entries(&demo(), w.public_key(), w.genesis(), &entries)
            .expect("chain verifies end to end");
        let acked = acked.lock().unwrap();
        assert!(
            entries.len() >= acked.len(),
            "chain shorter than its acknowledged appends"
        );
        for (index, hash, payload) in acked.iter() {
            let e = &entries[*index as usize];
            assert_eq!(
                e.entry_hash, *hash,
                "acknowledged entry {index} lost or replaced"
            );
            assert_eq!(blindstore_client_decode(&e.payload), *payload);
            present += 1;
        }
    }
    assert_eq!(present, acked_total);
}

fn blindstore_client_decode(b64: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_racing_for_the_same_indexes_never_fork() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let client = node.client();
    let w = ChainWriter::generate(demo());
    client.create_chain(&demo(), w.public_key()).await.unwrap();
    let id = w.chain_id();

    let mut wins = [0u32; 2];
    let mut conflicts = [0u32; 2];
    let mut rounds = 0;
    let mut contested = 0;
    while wins[0] < 50 || wins[1] < 50 {
        rounds += 1;
        assert!(rounds < 1000, "bounded");
        let chain = client.chain(&demo(), &id).await.unwrap();
        let racing: Vec<usize> = (0..2).filter(|k| wins[*k] < 50).collect();
        if racing.len() == 2 {
            contested += 1;
        }
        // Each racing writer signs its own payload for the same index and prev; both requests
        // are in flight together.
        let attempts = racing.iter().map(|&k| {
            let (request, hash) = w.sign(
                chain.length,
                chain.head,
                format!("writer {k} entry {}", wins[k]).as_bytes(),
                vec![],
            );
            let client = client.clone();
            async move { (k, hash, client.append(&demo(), &id, &request).await) }
        });
        let results = futures::future::join_all(attempts).await;
        let mut won = 0;
        for (k, hash, result) in results {
            match result {
                Ok(r) => {
                    assert_eq!((r.index, r.entry_hash), (chain.length, hash));
                    wins[k] += 1;
                    won += 1;
                }
                Err(e) => {
                    assert_eq!(
                        e.code(),
                        Some(ErrorCode::IndexConflict),
                        "the loser is told 409: {e}"
                    );
                    let (length, _) = e.conflict().expect("409 carries length and head");
                    assert_eq!(length, chain.length + 1);
                    conflicts[k] += 1;
                }
            }
        }
        assert_eq!(won, 1, "exactly one writer wins each index");
    }
    let entries = client.all_entries(&demo(), &id).await.unwrap();
    assert_eq!(entries.len(), 100);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.index, i as u64, "no gaps, no duplicates");
    }
    verify_entries(&demo(), w.public_key(), w.genesis(), &entries).expect("one hash-linked chain");
    let from_writer = |k: usize| {
        entries
            .iter()
            .filter(|e| {
                blindstore_client_decode(&e.payload).starts_with(format!("writer {k} ").as_bytes())
            })
            .count()
    };
    assert_eq!((from_writer(0), from_writer(1)), (50, 50));
    assert_eq!(
        conflicts[0] + conflicts[1],
        contested,
        "every contested index had exactly one loser"
    );
    assert!(contested >= 50);
}

/// Free-running writers: each retries from the head a 409 reports, until it has 50 entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn free_running_writers_each_land_all_their_entries_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let client = node.client();
    let w = ChainWriter::generate(demo());
    client.create_chain(&demo(), w.public_key()).await.unwrap();
    let tasks: Vec<_> = (0..2)
        .map(|k| {
            let (client, w) = (client.clone(), w.clone());
            tokio::spawn(async move {
                let chain = client.chain(&demo(), &w.chain_id()).await.unwrap();
                let (mut length, mut head) = (chain.length, chain.head);
                let mut mine = 0;
                for _ in 0..10_000 {
                    if mine == 50 {
                        return;
                    }
                    let (request, hash) = w.sign(
                        length,
                        head,
                        format!("writer {k} entry {mine}").as_bytes(),
                        vec![],
                    );
                    match client.append(&demo(), &w.chain_id(), &request).await {
                        Ok(r) => {
                            (length, head) = (r.length, hash);
                            mine += 1;
                        }
                        Err(e) => {
                            (length, head) = e.conflict().expect("only conflicts are expected")
                        }
                    }
                }
                panic!("writer {k} did not finish within its bound");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let entries = client.all_entries(&demo(), &w.chain_id()).await.unwrap();
    assert_eq!(entries.len(), 100);
    verify_entries(&demo(), w.public_key(), w.genesis(), &entries).unwrap();
    for k in 0..2 {
        for i in 0..50 {
            let want = format!("writer {k} entry {i}").into_bytes();
            let n = entries
                .iter()
                .filter(|e| blindstore_client_decode(&e.payload) == want)
                .count();
            assert_eq!(n, 1, "writer {k} entry {i} appears exactly once");
        }
    }
}

/// With a small snapshot threshold, the log is purged behind snapshots; after kill -9 the node
/// must rebuild from the snapshot plus the remaining log, and go on appending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_recovers_from_snapshot_and_purged_log_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &["--snapshot-logs", "40"]);
    let client = node.client();
    let w = ChainWriter::generate(demo());
    client.create_chain(&demo(), w.public_key()).await.unwrap();
    let mut prev = w.genesis();
    for i in 0..200u64 {
        let (request, hash) = w.sign(i, prev, format!("entry {i}").as_bytes(), vec![]);
        client
            .append(&demo(), &w.chain_id(), &request)
            .await
            .unwrap();
        prev = hash;
    }
    let probe = client.clone();
    eventually(
        Duration::from_secs(30),
        "a snapshot past index 150 and a purged log",
        || {
            let probe = probe.clone();
            async move {
                let h = probe.health().await.unwrap();
                h.snapshot.unwrap_or(0) >= 150 && h.purged.unwrap_or(0) >= 100
            }
        },
    )
    .await;
    assert!(dir.path().join("state/snapshots/current.snap").exists());
    node.kill_9();

    let node = NodeProcess::start(dir.path(), &["--snapshot-logs", "40"]);
    let client = node.client();
    let health = client.health().await.unwrap();
    assert!(
        health.purged.unwrap_or(0) >= 100,
        "the purged log stays purged: {health:?}"
    );
    let entries = client.all_entries(&demo(), &w.chain_id()).await.unwrap();
    assert_eq!(entries.len(), 200);
    assert_eq!(
        verify_entries(&demo(), w.public_key(), w.genesis(), &entries).unwrap(),
        prev
    );
    let (request, _) = w.sign(200, prev, b"after restart", vec![]);
    assert_eq!(
        client
            .append(&demo(), &w.chain_id(), &request)
            .await
            .unwrap()
            .length,
        201
    );
}

/// A data dir written by a node that kept every payload as a chunk (`--inline-payload-bytes 0`,
/// the layout of builds before inline payloads) opens in a node that keeps them in the Raft
/// entry: old and new entries read back and verify, and old payloads stay collected-proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_stored_before_inline_payloads_read_back_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let w = ChainWriter::generate(demo());
    let mut prev = w.genesis();
    let mut payloads = Vec::new();
    let mut append = |client: Client, index: u64, prev: Hash32| {
        let payload = format!("entry {index}").into_bytes();
        payloads.push(payload.clone());
        let (request, hash) = w.sign(index, prev, &payload, vec![]);
        let (zone, chain) = (w.zone().clone(), w.chain_id());
        async move {
            client.append(&zone, &chain, &request).await.unwrap();
            hash
        }
    };

    let old = NodeProcess::start(dir.path(), &["--inline-payload-bytes", "0"]);
    let client = old.client();
    client.create_chain(&demo(), w.public_key()).await.unwrap();
    for index in 0..5 {
        prev = append(client.clone(), index, prev).await;
    }
    let chunks_before = old.admin_client(dir.path()).zone(&demo()).await.unwrap();
    assert_eq!(chunks_before.usage.chunks, 5, "payloads stored as chunks");
    assert_eq!(old.terminate().code(), Some(0));

    let new = NodeProcess::start(dir.path(), &[]);
    let client = new.client();
    for index in 5..10 {
        prev = append(client.clone(), index, prev).await;
    }
    let zone = new.admin_client(dir.path()).zone(&demo()).await.unwrap();
    assert_eq!(
        zone.usage.chunks, 5,
        "new payloads travel in the log, not as chunks"
    );
    let entries = client.all_entries(&demo(), &w.chain_id()).await.unwrap();
    verify_entries(&demo(), w.public_key(), w.genesis(), &entries).expect("chain verifies");
    let read: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| blindstore_client_decode(&e.payload))
        .collect();
    assert_eq!(read, payloads);
    assert_eq!(entries.last().unwrap().entry_hash, prev);
}
