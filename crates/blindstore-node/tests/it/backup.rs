//! Backup and restore as an operator runs them: a 3-node cluster backed up while it takes
//! appends, chunk uploads and logins; every data dir wiped; the backup verified and restored
//! as a new cluster that two fresh nodes join. Damaged backups are refused with a clear
//! message, and a restore never writes into a data dir that holds anything.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use blindstore_client::{verify_entries, ChainWriter};
use blindstore_types::account::AccountId;
use blindstore_types::api::ErrorCode;
use blindstore_types::Hash32;

use crate::cluster::{demo, keep_appending, login_across, Acks, Cluster, ADMIN};
use crate::process::{eventually, NodeProcess};

/// Runs `blindstore <args>`; its exit status and what it printed (stdout, stderr).
fn blindstore(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `blindstore backup` of the cluster `url` into `dir`, off the test's runtime threads.
async fn back_up(url: &str, dir: &Path) -> (bool, String, String) {
    let (url, dir) = (url.to_owned(), dir.to_str().unwrap().to_owned());
    tokio::task::spawn_blocking(move || {
        blindstore(&[
            "backup",
            "--url",
            &url,
            "--admin-token",
            ADMIN,
            "--out",
            &dir,
        ])
    })
    .await
    .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_backed_up_under_load_and_wiped_comes_back_from_its_backup() {
    let mut cluster = Cluster::start(&[]);
    let clients = cluster.clients();
    let url = cluster.nodes[0].as_ref().unwrap().url.clone();

    // An account, a chain whose entries reference chunks, a session.
    let alice = AccountId::new("alice").unwrap();
    clients[0]
        .register(&demo(), &alice, b"alice's password")
        .await
        .unwrap();
    let before = login_across(&clients[1], &clients[2], &alice, b"alice's password")
        .await
        .unwrap();
    let w = ChainWriter::generate(demo());
    clients[0]
        .create_chain(&demo(), w.public_key())
        .await
        .unwrap();
    let (mut length, mut head) = (0u64, w.genesis());
    let mut chunks = Vec::new();
    for i in 0..12u32 {
        let via = &clients[i as usize % 3];
        let bytes = format!("referenced chunk {i}").into_bytes();
        let (hash, _) = via.put_chunk(&demo(), bytes.clone()).await.unwrap();
        chunks.push((hash, bytes));
        let (request, entry_hash) =
            w.sign(length, head, format!("entry {i}").as_bytes(), vec![hash]);
        let r = via.append(&demo(), &w.chain_id(), &request).await.unwrap();
        (length, head) = (r.length, entry_hash);
    }

    // The backup runs while another writer appends through every node.
    let busy = ChainWriter::generate(demo());
    clients[1]
        .create_chain(&demo(), busy.public_key())
        .await
        .unwrap();
    let acks: Acks = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(keep_appending(
        clients.clone(),
        busy.clone(),
        acks.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked_before: Vec<(u64, Hash32)> = acks.lock().unwrap().clone();
    assert!(!acked_before.is_empty(), "the load is running");
    // The cluster names itself once every member runs this build: backups record the name.
    let id_of = |client: blindstore_client::Client| async move {
        client.health().await.ok().and_then(|h| h.cluster_id)
    };
    eventually(Duration::from_secs(20), "the cluster has an id", || {
        let client = clients[0].clone();
        async move { id_of(client).await.is_some() }
    })
    .await;
    let cluster_id = id_of(clients[0].clone()).await.unwrap();
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b");
    let dir_s = dir.to_str().unwrap();
    let (ok, out, err) = back_up(&url, &dir).await;
    assert!(ok, "backup failed: {out}{err}");
    assert!(out.contains("12 chunks (12 copied"), "{out}");
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    // A second backup into the same directory copies no chunk again.
    let (ok, out, err) = back_up(&url, &dir).await;
    assert!(
        ok && out.contains("(0 copied, 12 already there)"),
        "{out}{err}"
    );

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["counts"]["accounts"], 1);
    assert_eq!(manifest["cluster_id"], cluster_id.as_str());
    assert_eq!(manifest["counts"]["chunks"], 12);

    // After the backup: a session and an entry the restored cluster must not have.
    let after = login_across(&clients[0], &clients[1], &alice, b"alice's password")
        .await
        .unwrap();
    let (request, _) = w.sign(length, head, b"after the backup", vec![]);
    clients[0]
        .append(&demo(), &w.chain_id(), &request)
        .await
        .unwrap();

    // Every node stops and every data dir is gone.
    for node in cluster.nodes.iter_mut() {
        node.take().unwrap().terminate();
    }
    drop(cluster);

    let (ok, out, err) = blindstore(&["backup", "verify", dir_s]);
    assert!(ok && out.contains("is whole"), "{out}{err}");

    // Damaged backups are refused, each with what is wrong.
    let tampered = backups.path().join("tampered");
    copy_dir(&dir, &tampered);
    let (first_hash, _) = &chunks[0];
    let chunk = tampered.join("chunks/demo").join(first_hash.to_hex());
    std::fs::write(&chunk, b"other bytes").unwrap();
    let (ok, _, err) = blindstore(&["backup", "verify", tampered.to_str().unwrap()]);
    assert!(!ok && err.contains("does not hash to its name"), "{err}");
    std::fs::remove_file(&chunk).unwrap();
    let (ok, _, err) = blindstore(&["backup", "verify", tampered.to_str().unwrap()]);
    assert!(
        !ok && err.contains("incomplete") && err.contains("is missing"),
        "{err}"
    );
    let state = tampered.join(manifest["state"]["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&state).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&state, bytes).unwrap();
    let (ok, _, err) = blindstore(&["backup", "verify", tampered.to_str().unwrap()]);
    assert!(!ok && err.contains("damaged or was changed"), "{err}");
    let (ok, _, err) = blindstore(&["backup", "verify", backups.path().to_str().unwrap()]);
    assert!(!ok && err.contains("not a Blindstore backup"), "{err}");
    let fresh = tempfile::tempdir().unwrap();
    let n1 = fresh.path().join("n1");
    let (ok, _, err) = blindstore(&[
        "restore",
        "--from",
        tampered.to_str().unwrap(),
        "--data-dir",
        n1.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("damaged"), "{err}");
    assert!(!n1.exists(), "a refused restore writes nothing");
    let busy_dir = fresh.path().join("busy");
    std::fs::create_dir_all(&busy_dir).unwrap();
    std::fs::write(busy_dir.join("something"), b"x").unwrap();
    let (ok, _, err) = blindstore(&[
        "restore",
        "--from",
        dir_s,
        "--data-dir",
        busy_dir.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("is not empty"), "{err}");

    // A restore that fails midway (here: a state store too small for the state) leaves
    // nothing a node could start on, not even its work folder.
    let (ok, _, err) = blindstore(&[
        "restore",
        "--from",
        dir_s,
        "--data-dir",
        n1.to_str().unwrap(),
        "--state-map-bytes",
        "65536",
    ]);
    assert!(!ok && err.contains("did not finish"), "{err}");
    assert!(!n1.exists());
    let leftovers: Vec<_> = std::fs::read_dir(fresh.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name.to_string_lossy().contains("restoring"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    // The restore makes a new cluster's first node; two fresh nodes join it.
    let (ok, out, err) = blindstore(&[
        "restore",
        "--from",
        dir_s,
        "--data-dir",
        n1.to_str().unwrap(),
    ]);
    assert!(ok, "restore failed: {out}{err}");
    let first = NodeProcess::start(&n1, &["--rpc-addr", "127.0.0.1:0", "--admin-token", ADMIN]);
    let mut restored = Cluster {
        nodes: vec![Some(first)],
        extra: Vec::new(),
        dir: fresh,
    };
    restored.join_node();
    restored.join_node();
    let clients = restored.clients();
    let admin = clients[0].clone().with_admin_token(ADMIN);
    eventually(Duration::from_secs(60), "three voters", || {
        let admin = admin.clone();
        async move {
            admin
                .cluster()
                .await
                .is_ok_and(|m| m.members.len() == 3 && m.members.iter().all(|m| m.role == "voter"))
        }
    })
    .await;

    // Every node answers linearizable reads once it has caught up with the leader (a read
    // that meets a membership change is answered 503, to be retried).
    eventually(Duration::from_secs(60), "every node serves reads", || {
        let (clients, chain) = (clients.clone(), w.chain_id());
        async move {
            for client in &clients {
                if client.all_entries(&demo(), &chain).await.is_err() {
                    return false;
                }
            }
            true
        }
    })
    .await;

    // Every node reads back the chain as it was at the backup: verified, nothing after it.
    for client in &clients {
        let entries = client.all_entries(&demo(), &w.chain_id()).await.unwrap();
        assert_eq!(entries.len(), 12, "entries up to the backup, none after");
        verify_entries(&demo(), w.public_key(), w.genesis(), &entries).unwrap();
        let busy_entries = client.all_entries(&demo(), &busy.chain_id()).await.unwrap();
        verify_entries(&demo(), busy.public_key(), busy.genesis(), &busy_entries).unwrap();
        for (index, hash) in &acked_before {
            assert_eq!(
                busy_entries[*index as usize].entry_hash, *hash,
                "append {index}, acknowledged before the backup started, is lost"
            );
        }
        // Every referenced chunk is there, and hash-checks.
        for (hash, bytes) in &chunks {
            let read = client.get_chunk(&demo(), hash).await.unwrap();
            assert_eq!(&read, bytes);
            assert_eq!(Hash32::digest(&read), *hash);
        }
    }
    // Each chunk gets its two copies back as the new nodes join.
    eventually(Duration::from_secs(60), "two copies of every chunk", || {
        let (admin, chunks) = (admin.clone(), chunks.clone());
        async move {
            for (hash, _) in &chunks {
                match admin.replicas(&demo(), hash).await {
                    Ok(r) if r.node_ids.len() >= 2 => {}
                    _ => return false,
                }
            }
            true
        }
    })
    .await;

    // Accounts log in; the session made before the backup lives, the one made after is gone.
    login_across(&clients[2], &clients[0], &alice, b"alice's password")
        .await
        .unwrap();
    assert!(clients[1].sessions(&before).await.is_ok());
    let gone = clients[1].sessions(&after).await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::InvalidSession));

    // The restored cluster is a new one, with its own id: backing it up into the first
    // cluster's backup directory is refused, and leaves it as it was.
    let restored_url = clients[0].base().to_owned();
    eventually(
        Duration::from_secs(20),
        "the restored cluster has an id",
        || {
            let client = clients[0].clone();
            async move { id_of(client).await.is_some() }
        },
    )
    .await;
    assert_ne!(id_of(clients[0].clone()).await.unwrap(), cluster_id);
    let manifest_before = std::fs::read(dir.join("manifest.json")).unwrap();
    let (ok, out, err) = back_up(&restored_url, &dir).await;
    assert!(
        !ok && err.contains(&format!("holds a backup of cluster {cluster_id}"))
            && err.contains("nothing was changed"),
        "{out}{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("manifest.json")).unwrap(),
        manifest_before
    );
    let (ok, _, err) = blindstore(&["backup", "verify", dir_s]);
    assert!(ok, "the refused backup left the directory whole: {err}");
}
