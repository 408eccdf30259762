//! `blindstore serve` as a new user meets it: defaults, the admin token, restarts, shutdown,
//! and garbage collection of abandoned uploads.

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreferenced_chunks_are_collected_after_the_staging_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &["--staging-ttl", "1s", "--gc-interval", "200ms"],
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
                    .is_err_and(|e| e.code() == Some("unknown_chunk"))
            }
        },
    )
    .await;
    // Well past the TTL, referenced chunks and payloads are still there.
    tokio::time::sleep(Duration::from_millis(1500)).await;
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
