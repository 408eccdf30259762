use blindstore_storage::{ChunkStore, StorageError};
use blindstore_types::{Hash32, ZoneId};

fn store() -> (tempfile::TempDir, ChunkStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(&dir.path().join("chunks"), 1 << 26).unwrap();
    (dir, store)
}

#[tokio::test]
async fn put_get_dedup_and_usage() {
    let (_dir, store) = store();
    let zone = ZoneId::new("a").unwrap();
    let other = ZoneId::new("b").unwrap();
    let bytes = b"hello chunk".to_vec();
    let hash = Hash32::digest(&bytes);
    assert!(store.put(&zone, hash, bytes.clone(), 10).await.unwrap());
    assert!(
        !store.put(&zone, hash, bytes.clone(), 11).await.unwrap(),
        "second put is a no-op"
    );
    assert_eq!(store.get(&zone, &hash).await.unwrap(), Some(bytes.clone()));
    assert_eq!(
        store.get(&other, &hash).await.unwrap(),
        None,
        "zones are isolated"
    );
    assert_eq!(store.len(&zone, &hash).unwrap(), Some(bytes.len() as u64));
    let usage = store.usage(&zone).unwrap();
    assert_eq!((usage.chunks, usage.bytes), (1, bytes.len() as u64));
    let absent = Hash32::digest(b"absent");
    assert_eq!(store.missing(&zone, &[hash, absent]).unwrap(), vec![absent]);
}

#[tokio::test]
async fn wrong_hash_is_refused_and_changes_nothing() {
    let (_dir, store) = store();
    let zone = ZoneId::new("a").unwrap();
    let claimed = Hash32::digest(b"something else");
    let err = store
        .put(&zone, claimed, b"bytes".to_vec(), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::HashMismatch { .. }), "{err}");
    assert_eq!(store.get(&zone, &claimed).await.unwrap(), None);
    assert_eq!(store.usage(&zone).unwrap().chunks, 0);
}

#[tokio::test]
async fn garbage_collection_spares_young_and_referenced_chunks() {
    let (_dir, store) = store();
    let zone = ZoneId::new("a").unwrap();
    let old = b"old unreferenced".to_vec();
    let referenced = b"old referenced".to_vec();
    let young = b"young".to_vec();
    let touched = b"old but touched".to_vec();
    for (bytes, at) in [
        (&old, 100),
        (&referenced, 100),
        (&young, 1000),
        (&touched, 100),
    ] {
        store
            .put(&zone, Hash32::digest(bytes), bytes.clone(), at)
            .await
            .unwrap();
    }
    let missing = store
        .touch(
            &zone,
            vec![Hash32::digest(&touched), Hash32::digest(b"nope")],
            1000,
        )
        .await
        .unwrap();
    assert_eq!(missing, vec![Hash32::digest(b"nope")]);
    let referenced_hash = Hash32::digest(&referenced);
    let report = store
        .collect_garbage(500, 100, move |_, h| Ok(*h == referenced_hash))
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(report.bytes_freed, old.len() as u64);
    assert_eq!(store.get(&zone, &Hash32::digest(&old)).await.unwrap(), None);
    for kept in [&referenced, &young, &touched] {
        assert!(store
            .get(&zone, &Hash32::digest(kept))
            .await
            .unwrap()
            .is_some());
    }
    assert_eq!(store.usage(&zone).unwrap().chunks, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_are_all_stored_once() {
    let (_dir, store) = store();
    let zone = ZoneId::new("a").unwrap();
    // 200 distinct chunks, each put 3 times concurrently: 600 puts in flight.
    let puts: Vec<_> = (0..600u32)
        .map(|i| {
            let store = store.clone();
            let zone = zone.clone();
            tokio::spawn(async move {
                let bytes = format!("chunk {}", i % 200).into_bytes();
                store
                    .put(&zone, Hash32::digest(&bytes), bytes, 1)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for p in puts {
        created += p.await.unwrap() as u32;
    }
    assert_eq!(created, 200, "each chunk reported new exactly once");
    for i in 0..200 {
        let bytes = format!("chunk {i}").into_bytes();
        assert_eq!(
            store.get(&zone, &Hash32::digest(&bytes)).await.unwrap(),
            Some(bytes)
        );
    }
    let total: u64 = (0..200).map(|i| format!("chunk {i}").len() as u64).sum();
    let usage = store.usage(&zone).unwrap();
    assert_eq!((usage.chunks, usage.bytes), (200, total));
}

/// Three 20 KiB chunks of distinct bytes in a closed store; returns their contents.
async fn closed_store_with_chunks(dir: &std::path::Path, zone: &ZoneId) -> Vec<Vec<u8>> {
    let store = ChunkStore::open(dir, 1 << 26).unwrap();
    let mut chunks = Vec::new();
    for i in 0..3u8 {
        let bytes: Vec<u8> = (0..20_000u32).map(|j| (j as u8) ^ (i * 85 + 1)).collect();
        store
            .put(zone, Hash32::digest(&bytes), bytes.clone(), 1)
            .await
            .unwrap();
        chunks.push(bytes);
    }
    store.close();
    chunks
}

/// Flips one byte inside the stored bytes of `chunk` in the closed store at `dir`.
fn flip_a_byte_of(dir: &std::path::Path, chunk: &[u8]) {
    let path = dir.join("data.mdb");
    let mut file = std::fs::read(&path).unwrap();
    let at = file
        .windows(64)
        .position(|w| w == &chunk[1000..1064])
        .expect("the chunk's bytes are in the data file");
    file[at] ^= 0xff;
    std::fs::write(&path, file).unwrap();
}

#[tokio::test]
async fn a_copy_damaged_on_disk_is_never_served_and_the_scrubber_deletes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chunks");
    let zone = ZoneId::new("a").unwrap();
    let chunks = closed_store_with_chunks(&dir, &zone).await;
    flip_a_byte_of(&dir, &chunks[1]);

    // Opening reads no chunk bytes: the damage is found later, never served meanwhile.
    let (store, report) = ChunkStore::open_checked(&dir, 1 << 26).unwrap();
    assert!(report.quarantined.is_none());
    let hashes: Vec<Hash32> = chunks.iter().map(|c| Hash32::digest(c)).collect();
    assert!(matches!(
        store.get(&zone, &hashes[1]).await,
        Err(StorageError::CorruptChunk { .. })
    ));

    // The scrubber, two chunks per step: the first step checks two, the second finds it.
    let first = store.scrub_step(None, 2, u64::MAX).await.unwrap();
    assert_eq!(first.checked, 2);
    let second = store
        .scrub_step(first.next.clone(), 2, u64::MAX)
        .await
        .unwrap();
    let found: Vec<Hash32> = first
        .corrupt
        .iter()
        .chain(&second.corrupt)
        .map(|(_, h)| *h)
        .collect();
    assert_eq!(found, vec![hashes[1]]);
    assert_eq!(first.checked + second.checked, 3);
    assert_eq!(second.next, None, "the pass reached the end");
    assert_eq!(
        store.get(&zone, &hashes[1]).await.unwrap(),
        None,
        "the bad copy is gone"
    );
    assert_eq!(
        store.get(&zone, &hashes[0]).await.unwrap().as_ref(),
        Some(&chunks[0])
    );
    assert_eq!(store.usage(&zone).unwrap().chunks, 2);
    // The damaged copy can be stored again (as the repairer does).
    store
        .put(&zone, hashes[1], chunks[1].clone(), 2)
        .await
        .unwrap();
    assert_eq!(
        store.get(&zone, &hashes[1]).await.unwrap().as_ref(),
        Some(&chunks[1])
    );
}

#[tokio::test]
async fn putting_intact_bytes_over_a_corrupt_copy_rewrites_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chunks");
    let zone = ZoneId::new("a").unwrap();
    let chunks = closed_store_with_chunks(&dir, &zone).await;
    flip_a_byte_of(&dir, &chunks[2]);
    let store = ChunkStore::open(&dir, 1 << 26).unwrap();
    let hash = Hash32::digest(&chunks[2]);
    assert!(store.get(&zone, &hash).await.is_err());
    let created = store.put(&zone, hash, chunks[2].clone(), 5).await.unwrap();
    assert!(created, "a rewritten copy counts as newly stored");
    assert_eq!(
        store.get(&zone, &hash).await.unwrap().as_ref(),
        Some(&chunks[2])
    );
    let usage = store.usage(&zone).unwrap();
    assert_eq!(usage.chunks, 3, "usage counted once");
    assert_eq!(usage.bytes, 60_000);
}

#[tokio::test]
async fn a_truncated_store_is_moved_aside_and_replaced_by_an_empty_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chunks");
    let zone = ZoneId::new("a").unwrap();
    let chunks = closed_store_with_chunks(&dir, &zone).await;
    let path = dir.join("data.mdb");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let (store, report) = ChunkStore::open_checked(&dir, 1 << 26).unwrap();
    let aside = report.quarantined.expect("moved aside");
    assert!(
        aside.join("data.mdb").exists(),
        "the damaged files are kept"
    );
    assert_eq!(
        store.get(&zone, &Hash32::digest(&chunks[0])).await.unwrap(),
        None
    );
    assert_eq!(store.total_usage().unwrap().chunks, 0);
}

#[tokio::test]
async fn a_sound_store_opens_checked_and_a_scrub_pass_finds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chunks");
    let zone = ZoneId::new("a").unwrap();
    closed_store_with_chunks(&dir, &zone).await;
    let (store, report) = ChunkStore::open_checked(&dir, 1 << 26).unwrap();
    assert!(report.quarantined.is_none());
    let step = store.scrub_step(None, 100, u64::MAX).await.unwrap();
    assert_eq!((step.checked, step.corrupt.len(), step.next), (3, 0, None));
}

#[tokio::test]
async fn a_chunk_referenced_between_the_scan_and_the_delete_survives() {
    let (_dir, store) = store();
    let zone = ZoneId::new("a").unwrap();
    let bytes = b"referenced while the pass ran".to_vec();
    let hash = Hash32::digest(&bytes);
    store.put(&zone, hash, bytes, 1).await.unwrap();
    // Unreferenced when scanned, referenced by the time of the deleting transaction.
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let report = store
        .collect_garbage(500, 100, move |_, _| {
            Ok(counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0)
        })
        .await
        .unwrap();
    assert_eq!(report.deleted, 0);
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "asked again"
    );
    assert!(store.get(&zone, &hash).await.unwrap().is_some());
}

/// Concurrent writes share commits (group commit), and each still gets its own answer: a quota
/// counts every write of a group in order, the ones past it are refused, and nothing else is
/// lost or written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_share_commits_and_each_gets_its_own_answer() {
    let (_dir, store) = store();
    let zone = ZoneId::new("a").unwrap();
    let quota = blindstore_types::command::Quota {
        max_chunks: 40,
        ..Default::default()
    };
    let mut writes = Vec::new();
    for i in 0..64u32 {
        let store = store.clone();
        let zone = zone.clone();
        writes.push(tokio::spawn(async move {
            let bytes = format!("chunk {i}").into_bytes();
            let hash = Hash32::digest(&bytes);
            let client = blindstore_storage::ClientWrite {
                zone_quota: quota,
                account: None,
            };
            store.put_within(&zone, hash, bytes, 1, Some(client)).await
        }));
    }
    let mut stored = 0;
    let mut refused = 0;
    for write in writes {
        match write.await.unwrap() {
            Ok(true) => stored += 1,
            Err(StorageError::QuotaExceeded { .. }) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((stored, refused), (40, 24));
    assert_eq!(store.usage(&zone).unwrap().chunks, 40);
    let commits = store.put_commits();
    assert!(commits < 64, "64 concurrent writes took {commits} commits");
    // Each stored chunk reads back.
    let mut found = 0;
    for i in 0..64u32 {
        let bytes = format!("chunk {i}").into_bytes();
        if let Some(read) = store.get(&zone, &Hash32::digest(&bytes)).await.unwrap() {
            assert_eq!(read, bytes);
            found += 1;
        }
    }
    assert_eq!(found, 40);
}
