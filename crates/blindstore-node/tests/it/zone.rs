//! `blindstore zone ...` against a real node, as an operator runs it.

use std::path::Path;
use std::process::Command;

use blindstore_client::ChainWriter;
use blindstore_types::api::ErrorCode;
use blindstore_types::ZoneId;
use serde_json::Value;

use crate::process::NodeProcess;

/// Runs `blindstore zone <args>` against `url` with the admin token in `data_dir`.
pub(crate) fn zone_cli(url: &str, data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .arg("zone")
        .args(args)
        .args(["--url", url, "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_are_created_listed_shown_and_limited_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let cli = |args: &[&str]| zone_cli(&node.url, dir.path(), args);

    let (ok, out, err) = cli(&["create", "budget"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("created\n") && out.contains("zone            budget"),
        "{out}"
    );
    let (ok, out, _) = cli(&["create", "budget"]);
    assert!(ok && out.starts_with("exists\n"), "{out}");

    let (ok, out, _) = cli(&["list", "--json"]);
    assert!(ok);
    let zones: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = zones
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zone"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["budget", "demo"]);
    let (ok, out, _) = cli(&["list"]);
    assert!(
        ok && out.lines().count() == 3 && out.contains("budget"),
        "{out}"
    );

    let (ok, out, err) = cli(&[
        "set",
        "budget",
        "--max-chains",
        "1",
        "--max-chunk-bytes-per-node",
        "1048576",
        "--json",
    ]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["quota"]["max_chains"], 1);
    assert_eq!(shown["quota"]["max_chunk_bytes"], 1048576);
    // One meaning per flag name: `serve`'s --max-chunk-bytes (the largest chunk) is not a
    // zone quota.
    let (ok, _, err) = cli(&["set", "budget", "--max-chunk-bytes", "1048576"]);
    assert!(!ok && err.contains("--max-chunk-bytes-per-node"), "{err}");
    let (ok, out, _) = cli(&["show", "budget"]);
    assert!(ok && out.contains("chains          0 (at most 1)"), "{out}");
    assert!(out.contains("writes          open"), "{out}");

    // The write policy: anonymous writes refused, a session's account counted.
    let (ok, out, err) = cli(&[
        "set",
        "demo",
        "--writes",
        "accounts",
        "--account-max-chains",
        "5",
        "--json",
    ]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["settings"]["writes"], "accounts");
    assert_eq!(shown["settings"]["account_quota"]["max_chains"], 5);
    let demo = ZoneId::new("demo").unwrap();
    let refused = node
        .client()
        .put_chunk(&demo, b"anonymous".to_vec())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::InvalidSession));
    let (ok, _, _) = cli(&["set", "demo", "--writes", "open"]);
    assert!(ok);
    node.client()
        .put_chunk(&demo, b"anonymous".to_vec())
        .await
        .unwrap();

    // The quota holds for clients.
    let budget = ZoneId::new("budget").unwrap();
    let client = node.client();
    client
        .create_chain(&budget, ChainWriter::generate(budget.clone()).public_key())
        .await
        .unwrap();
    let refused = client
        .create_chain(&budget, ChainWriter::generate(budget.clone()).public_key())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::QuotaExceeded));

    // Mistakes are refused with a message and change nothing.
    for (args, says) in [
        (&["set", "budget"][..], "nothing to set"),
        (&["create", "Not A Zone"][..], "invalid zone id"),
        (&["show", "nowhere"][..], "unknown_zone"),
    ] {
        let (ok, _, err) = cli(args);
        assert!(!ok && err.contains(says), "{args:?}: {err}");
    }
    let (ok, _, err) = zone_cli(&node.url, Path::new("/nonexistent"), &["list"]);
    assert!(!ok && err.contains("admin-token"), "{err}");
}

/// An operator closes a zone's registration to strangers: `--registration invite`, then
/// `blindstore zone invite` prints one-time codes, each good for one account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_by_invite_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let cli = |args: &[&str]| zone_cli(&node.url, dir.path(), args);
    let (ok, out, err) = cli(&[
        "set",
        "demo",
        "--registration",
        "invite",
        "--max-accounts",
        "50",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("registration    invite"), "{out}");
    assert!(out.contains("accounts        0 (at most 50)"), "{out}");
    let (ok, out, err) = cli(&["invite", "demo", "--count", "2", "--ttl", "1h"]);
    assert!(ok, "{err}");
    let codes: Vec<&str> = out.lines().collect();
    assert_eq!(codes.len(), 2, "{out}");
    assert!(err.contains("not shown again"), "{err}");
    let (ok, _, err) = cli(&["set", "demo", "--registration", "sometimes"]);
    assert!(!ok && err.contains("invalid value"), "{err}");

    let client = node.client();
    let demo = ZoneId::new("demo").unwrap();
    let alice = blindstore_types::account::AccountId::new("alice").unwrap();
    let refused = client.register(&demo, &alice, b"pw").await.unwrap_err();
    assert_eq!(
        refused.code(),
        Some(blindstore_types::api::ErrorCode::InvalidInvite)
    );
    client
        .register_with_invite(&demo, &alice, b"pw", Some(codes[0]))
        .await
        .unwrap();
    let bob = blindstore_types::account::AccountId::new("bob").unwrap();
    let reused = client
        .register_with_invite(&demo, &bob, b"pw", Some(codes[0]))
        .await
        .unwrap_err();
    assert_eq!(
        reused.code(),
        Some(blindstore_types::api::ErrorCode::InvalidInvite)
    );
    let (ok, out, _) = cli(&["show", "demo"]);
    assert!(
        ok && out.contains("accounts        1 (at most 50)"),
        "{out}"
    );
}

#[test]
fn a_connection_error_is_said_once() {
    // Port 1 on loopback: nothing listens there.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(["zone", "list", "--url", "127.0.0.1:1", "--admin-token", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr.matches("error sending request").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_is_deleted_only_when_confirmed_and_then_everything_in_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let cli = |args: &[&str]| zone_cli(&node.url, dir.path(), args);
    let client = node.client();
    // A new single node serves its build's level from its first request: deleting a zone
    // (level 4) is not refused with "needs cluster version 4" for a second after the start.
    let health = client.health().await.unwrap();
    assert!(health.feature_level >= 4, "{health:?}");
    assert_eq!(health.cluster_version, health.feature_level, "{health:?}");
    let (ok, _, err) = cli(&["create", "doomed"]);
    assert!(ok, "{err}");
    let zone = ZoneId::new("doomed").unwrap();
    let w = ChainWriter::generate(zone.clone());
    client.create_chain(&zone, w.public_key()).await.unwrap();
    let (request, _) = w.sign(0, w.genesis(), b"kept until deleted", vec![]);
    client.append(&zone, &w.chain_id(), &request).await.unwrap();

    // Not from a terminal and without --yes: refused, nothing changed.
    let (ok, _, err) = cli(&["delete", "doomed"]);
    assert!(!ok && err.contains("needs --yes"), "{err}");
    assert!(client.all_entries(&zone, &w.chain_id()).await.is_ok());

    let (ok, out, err) = cli(&["delete", "doomed", "--yes", "--json"]);
    assert!(ok, "{err}");
    let removed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (removed["chains"].as_u64(), removed["entries"].as_u64()),
        (Some(1), Some(1))
    );
    let (ok, _, err) = cli(&["show", "doomed"]);
    assert!(!ok && err.contains("unknown_zone"), "{err}");
    let gone = client.all_entries(&zone, &w.chain_id()).await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::UnknownZone));
    let (ok, _, err) = cli(&["delete", "doomed", "--yes"]);
    assert!(
        !ok && err.contains("unknown_zone"),
        "a second delete: {err}"
    );
}
