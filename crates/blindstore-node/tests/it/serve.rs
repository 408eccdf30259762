//! `blindstore serve` as a new user meets it: defaults, the admin token, restarts, shutdown,
//! and garbage collection of abandoned uploads.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use blindstore_types::api::ErrorCode;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use blindstore_client::ChainWriter;
use blindstore_types::{Hash32, ZoneId};

use crate::process::{eventually, NodeProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_serve_uses_defaults_creates_demo_and_a_private_admin_token() {
    let cwd = tempfile::tempdir().unwrap();
    // No --data-dir: the default ./blindstore-data in the working directory.
    let node = NodeProcess::start_in(Some(cwd.path()), std::path::Path::new(""), &[]);
    let data_dir = cwd.path().join("blindstore-data");
    let token_file = data_dir.join("admin-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin token is private");
    let token = std::fs::read_to_string(&token_file).unwrap();

    let admin = node.admin_client(&data_dir);
    let zones = admin.zones().await.unwrap();
    assert_eq!(
        zones.iter().map(|z| z.zone.as_str()).collect::<Vec<_>>(),
        vec!["demo"]
    );
    let health = node.client().health().await.unwrap();
    assert_eq!(
        (health.role.as_str(), health.leader),
        ("voter", Some(health.node_id))
    );

    // SIGTERM stops it cleanly; a restart keeps the token and the data, and needs no setup.
    let status = node.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let node = NodeProcess::start_in(Some(cwd.path()), std::path::Path::new(""), &[]);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    assert_eq!(node.admin_client(&data_dir).zones().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("blindstore.toml");
    std::fs::write(&config, "max_chunk_bytes = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_chunk_bytes"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was created");

    // A staging TTL too short for an append to commit before its chunks could be collected.
    let stderr = refused(&dir.path().join("data"), &["--staging-ttl", "5s"]);
    assert!(stderr.contains("staging_ttl must be at least"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreferenced_chunks_are_collected_after_the_staging_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--staging-ttl",
            "3s",
            "--write-timeout",
            "500ms",
            "--gc-interval",
            "200ms",
            // Payloads stored as chunks (as larger payloads are), so the payload's chunk is
            // checked too.
            "--inline-payload-bytes",
            "0",
        ],
    );
    let client = node.client();
    let zone = ZoneId::new("demo").unwrap();
    let (abandoned, _) = client
        .put_chunk(&zone, b"abandoned upload".to_vec())
        .await
        .unwrap();
    let (attached, _) = client
        .put_chunk(&zone, b"attached to an entry".to_vec())
        .await
        .unwrap();
    let w = ChainWriter::generate(zone.clone());
    client.create_chain(&zone, w.public_key()).await.unwrap();
    let payload = b"entry payload".to_vec();
    let (request, _) = w.sign(0, w.genesis(), &payload, vec![attached]);
    client.append(&zone, &w.chain_id(), &request).await.unwrap();

    let probe = client.clone();
    let z = zone.clone();
    eventually(
        Duration::from_secs(30),
        "the abandoned chunk is collected",
        || {
            let (probe, z) = (probe.clone(), z.clone());
            async move {
                probe
                    .get_chunk(&z, &abandoned)
                    .await
                    .is_err_and(|e| e.code() == Some(ErrorCode::UnknownChunk))
            }
        },
    )
    .await;
    // Well past the TTL, referenced chunks and payloads are still there.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        client.get_chunk(&zone, &attached).await.unwrap(),
        b"attached to an entry"
    );
    assert_eq!(
        client
            .get_chunk(&zone, &Hash32::digest(&payload))
            .await
            .unwrap(),
        payload
    );
    let entries = client.all_entries(&zone, &w.chain_id()).await.unwrap();
    assert_eq!(entries.len(), 1);
}

#[test]
fn a_normal_build_refuses_to_run_a_negative_control() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BLINDSTORE_NEGATIVE_CONTROL", "skip-cas")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a normal build must not serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("this build has no negative controls"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before touching any state"
    );
}

/// Runs `blindstore serve` on `data_dir` expecting it to refuse to start; returns its stderr.
fn refused(data_dir: &std::path::Path, extra: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("BLINDSTORE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success(), "it must refuse to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The node id lives with the Raft state: a lost id file is recovered from it, a contradicting
/// one stops the node with a clear message, and no data dir ever falls back to id 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_id_is_durable_and_never_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rpc = ["--rpc-addr", "127.0.0.1:0"];
    let node = NodeProcess::start(&data, &[&rpc[..], &["--node-id", "7"]].concat());
    assert_eq!(node.client().health().await.unwrap().node_id, 7);
    assert!(node.terminate().success());

    // The id file lost: the id stored with the Raft state is used (not 1), and the file is back.
    std::fs::remove_file(data.join("node-id")).unwrap();
    let node = NodeProcess::start(&data, &rpc);
    assert_eq!(node.client().health().await.unwrap().node_id, 7);
    assert!(node.terminate().success());
    assert_eq!(
        std::fs::read_to_string(data.join("node-id"))
            .unwrap()
            .trim(),
        "7"
    );

    // An id file that contradicts the Raft state, or a flag that does, is refused.
    std::fs::write(data.join("node-id"), "1\n").unwrap();
    let stderr = refused(&data, &rpc);
    assert!(stderr.contains("belongs to"), "{stderr}");
    std::fs::write(data.join("node-id"), "7\n").unwrap();
    let stderr = refused(&data, &[&rpc[..], &["--node-id", "3"]].concat());
    assert!(stderr.contains("--node-id 3"), "{stderr}");
    // An empty (truncated) id file is refused too, never read as a default.
    std::fs::write(data.join("node-id"), "").unwrap();
    let stderr = refused(&data, &rpc);
    assert!(stderr.contains("does not hold a node id"), "{stderr}");
}

/// An empty or truncated token file is refused, never taken as an empty secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_truncated_token_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = NodeProcess::start(&data, &["--rpc-addr", "127.0.0.1:0"]);
    assert!(node.terminate().success());
    for file in ["admin-token", "join-token"] {
        let good = std::fs::read_to_string(data.join(file)).unwrap();
        for bad in ["", "\n", &good[..8]] {
            std::fs::write(data.join(file), bad).unwrap();
            let stderr = refused(&data, &["--rpc-addr", "127.0.0.1:0"]);
            assert!(
                stderr.contains(file) && stderr.contains("does not hold a usable token"),
                "{file} = {bad:?}: {stderr}"
            );
        }
        std::fs::write(data.join(file), good).unwrap();
    }
    let node = NodeProcess::start(&data, &["--rpc-addr", "127.0.0.1:0"]);
    assert!(node.terminate().success());
}

/// Below the free-space reserve a node refuses new data with 507 and keeps serving reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_free_space_reserve_new_data_is_refused_with_507() {
    let dir = tempfile::tempdir().unwrap();
    let zone = ZoneId::new("demo").unwrap();
    // First with room: a chain and a chunk.
    let node = NodeProcess::start(dir.path(), &[]);
    let client = node.client();
    let w = ChainWriter::generate(zone.clone());
    client.create_chain(&zone, w.public_key()).await.unwrap();
    let (hash, _) = client
        .put_chunk(&zone, b"stored with room".to_vec())
        .await
        .unwrap();
    assert!(node.terminate().success());

    // Then with a reserve no disk can meet.
    let node = NodeProcess::start(dir.path(), &["--min-free-bytes", &u64::MAX.to_string()]);
    let client = node.client();
    let e = client
        .put_chunk(&zone, b"no room".to_vec())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InsufficientStorage), "{e}");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(507));
    let e = client
        .create_chain(&zone, ChainWriter::generate(zone.clone()).public_key())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InsufficientStorage), "{e}");
    let (request, _) = w.sign(0, w.genesis(), b"no room either", vec![]);
    let e = client
        .append(&zone, &w.chain_id(), &request)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InsufficientStorage), "{e}");
    // Reads go on.
    assert_eq!(
        client.get_chunk(&zone, &hash).await.unwrap(),
        b"stored with room"
    );
    assert_eq!(client.chain(&zone, &w.chain_id()).await.unwrap().length, 0);
}
