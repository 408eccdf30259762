//! `/v1/metrics` as a Prometheus server scrapes it: admin only, and every documented series is
//! there and moves when the node works.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use std::collections::BTreeMap;

use blindstore_client::ChainWriter;
use blindstore_types::{Hash32, ZoneId};

use crate::process::NodeProcess;

/// The series docs/operations.md lists (histograms by their `_count`).
const DOCUMENTED: &[&str] = &[
    "blindstore_http_requests_total",
    "blindstore_http_request_duration_seconds_count",
    "blindstore_http_open_connections",
    "blindstore_raft_term",
    "blindstore_raft_leader",
    "blindstore_raft_is_leader",
    "blindstore_raft_last_log_index",
    "blindstore_raft_commit_index",
    "blindstore_raft_applied_index",
    "blindstore_raft_batch_commands_count",
    "blindstore_storage_commit_seconds_count",
    "blindstore_chunks_held",
    "blindstore_chunk_bytes_held",
    "blindstore_chunk_reads_total",
    "blindstore_repair_backlog_chunks",
    "blindstore_under_replicated_chunks",
    "blindstore_build_info",
    "blindstore_disk_free_bytes",
    "blindstore_disk_reserve_bytes",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_cpu_seconds_total",
    "blindstore_repair_passes_total",
    "blindstore_repair_copies_total",
    "blindstore_repair_handoffs_total",
    "blindstore_scrub_passes_total",
    "blindstore_scrub_chunks_checked_total",
    "blindstore_scrub_corrupt_total",
    "blindstore_gc_passes_total",
    "blindstore_gc_chunks_deleted_total",
    "blindstore_cache_requests_total",
    "blindstore_cache_bytes",
    "blindstore_cache_capacity_bytes",
];

/// Every sample of the exposition, by its full name with labels, e.g.
/// `blindstore_raft_term` or `blindstore_storage_commit_seconds_count{store="state"}`.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("name value");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// The sum of every sample of `series` (all label sets).
fn total(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples
        .iter()
        .filter(|(name, _)| *name == series || name.starts_with(&format!("{series}{{")))
        .map(|(_, v)| v)
        .sum()
}

pub(crate) async fn scrape(url: &str, token: &str) -> BTreeMap<String, f64> {
    let response = reqwest::Client::new()
        .get(format!("{url}/v1/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    parse(&response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_are_for_the_admin_and_the_documented_series_move() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let token = token.trim();

    let anonymous = reqwest::get(format!("{}/v1/metrics", node.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "metrics need the admin token");
    let wrong = reqwest::Client::new()
        .get(format!("{}/v1/metrics", node.url))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let client = node.client();
    let zone = ZoneId::new("demo").unwrap();
    let writer = ChainWriter::generate(zone.clone());
    client
        .create_chain(&zone, writer.public_key())
        .await
        .unwrap();
    let before = scrape(&node.url, token).await;
    for name in DOCUMENTED {
        assert!(
            before
                .keys()
                .any(|k| k == name || k.starts_with(&format!("{name}{{"))),
            "{name} is exposed:\n{before:#?}"
        );
    }
    assert_eq!(before["blindstore_raft_is_leader"], 1.0);
    assert_eq!(before["blindstore_raft_leader"], 1.0);
    assert!(before["blindstore_raft_term"] >= 1.0);

    // Work: appends (payloads inline) and a chunk written and read.
    let mut prev = writer.genesis();
    for index in 0..10u64 {
        let (request, hash) = writer.sign(index, prev, b"counted", vec![]);
        client
            .append(&zone, &writer.chain_id(), &request)
            .await
            .unwrap();
        prev = hash;
    }
    let blob = vec![7u8; 5000];
    let hash = Hash32::digest(&blob);
    let (stored, _) = client.put_chunk(&zone, blob.clone()).await.unwrap();
    assert_eq!(stored, hash);
    assert_eq!(client.get_chunk(&zone, &hash).await.unwrap(), blob);
    // Read again: from the node's memory cache.
    assert_eq!(client.get_chunk(&zone, &hash).await.unwrap(), blob);

    let after = scrape(&node.url, token).await;
    let from_cache = r#"blindstore_chunk_reads_total{source="cache"}"#;
    assert!(
        after[from_cache] - before.get(from_cache).copied().unwrap_or(0.0) >= 1.0,
        "the second read came from the cache:\n{after:#?}"
    );
    assert!(after[r#"blindstore_cache_requests_total{result="hit"}"#] >= 1.0);
    assert!(after[r#"blindstore_cache_bytes{tier="memory"}"#] >= 5000.0);
    let appends = r#"blindstore_http_requests_total{route="/v1/zones/{zone}/chains/{chain_id}/entries",method="POST",status="201"}"#;
    assert_eq!(
        after.get(appends).copied().unwrap_or(0.0) - before.get(appends).copied().unwrap_or(0.0),
        10.0,
        "ten appends counted by route and status:\n{after:#?}"
    );
    for (series, at_least) in [
        ("blindstore_raft_applied_index", 10.0),
        ("blindstore_raft_commit_index", 10.0),
        ("blindstore_raft_last_log_index", 10.0),
        ("blindstore_raft_batch_commands_count", 10.0),
        ("blindstore_http_request_duration_seconds_count", 12.0),
        ("blindstore_chunk_reads_total", 1.0),
    ] {
        let moved = total(&after, series) - total(&before, series);
        assert!(
            moved >= at_least,
            "{series} moved by {moved}, expected at least {at_least}"
        );
    }
    for store in ["raft_log", "state", "chunks"] {
        let series = format!("blindstore_storage_commit_seconds_count{{store=\"{store}\"}}");
        assert!(
            after[&series] > before.get(&series).copied().unwrap_or(0.0),
            "{series} moved"
        );
    }
    assert_eq!(
        after["blindstore_chunks_held"] - before["blindstore_chunks_held"],
        1.0
    );
    assert_eq!(
        after["blindstore_chunk_bytes_held"] - before["blindstore_chunk_bytes_held"],
        5000.0
    );
    assert!(
        after["blindstore_http_open_connections"] >= 1.0,
        "the scrape's own connection is open"
    );
}

#[tokio::test]
async fn the_build_is_named_alike_by_version_health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let health = node.client().health().await.unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(health.version, version);
    assert!(
        health.revision.len() == 12 || health.revision == "unknown",
        "{health:?}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "blindstore {version} (revision {}, feature level {})\n",
            health.revision,
            blindstore_types::command::FEATURE_LEVEL
        )
    );
    let samples = scrape(&node.url, token.trim()).await;
    let build = samples
        .iter()
        .find(|(k, _)| k.starts_with("blindstore_build_info{"))
        .expect("blindstore_build_info is exposed");
    for label in [
        format!("version=\"{version}\""),
        format!("revision=\"{}\"", health.revision),
        "role=\"member\"".to_owned(),
    ] {
        assert!(build.0.contains(&label), "{label} in {}", build.0);
    }
    assert_eq!(*build.1, 1.0);
}
