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

    let (ok, out, err) = cli(&["set", "budget", "--max-chains", "1", "--json"]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["quota"]["max_chains"], 1);
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
