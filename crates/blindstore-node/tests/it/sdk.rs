//! Entries across implementations: a chain the Rust client writes verifies in the browser SDK
//! (`sdk/js`, run by Node through `sdk/interop/sdk-entries.mjs`), and a chain the SDK writes
//! (encrypted JSON entries) verifies in the Rust client.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use std::path::PathBuf;
use std::process::Command;

use blindstore_client::{verify_entries, ChainWriter};
use blindstore_types::{ChainId, Hash32, PublicKey, ZoneId};
use serde_json::Value;

use crate::process::NodeProcess;

const ENTRIES: u64 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_written_by_the_sdk_verify_in_rust_and_the_other_way_round() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("sdk/js/dist/index.js").exists(),
        "sdk/js is not built: run `npm ci --prefix sdk/js && npm run --prefix sdk/js build` (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let client = node.client();
    let zone = ZoneId::new("demo").unwrap();

    // Written by Rust, payloads of several sizes and one referenced chunk.
    let writer = ChainWriter::generate(zone.clone());
    client
        .create_chain(&zone, writer.public_key())
        .await
        .unwrap();
    let (chunk, _) = client
        .put_chunk(&zone, b"a chunk the entry references".to_vec())
        .await
        .unwrap();
    let mut head = writer.genesis();
    for i in 0..ENTRIES {
        let chunks = if i == 3 { vec![chunk] } else { vec![] };
        let payload = vec![i as u8; (i as usize) * 311];
        let (request, hash) = writer.sign(i, head, &payload, chunks);
        client
            .append(&zone, &writer.chain_id(), &request)
            .await
            .unwrap();
        head = hash;
    }

    let out = Command::new("node")
        .current_dir(root.join("sdk/interop"))
        .args([
            "sdk-entries.mjs",
            &node.url,
            "demo",
            &writer.chain_id().to_string(),
            &hex::encode(writer.public_key().0),
            &ENTRIES.to_string(),
        ])
        .output()
        .expect("run node (Node.js 20 or later)");
    assert!(
        out.status.success(),
        "sdk-entries.mjs failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["rust_head"],
        head.to_string(),
        "the SDK verified the Rust chain up to its head"
    );

    // Written by the SDK, verified by Rust: key against chain id, signatures, links.
    let sdk_chain: ChainId = report["sdk_chain"].as_str().unwrap().parse().unwrap();
    let key_bytes: [u8; 32] = hex::decode(report["sdk_public_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = PublicKey(key_bytes);
    let entries = client.all_entries(&zone, &sdk_chain).await.unwrap();
    assert_eq!(entries.len() as u64, ENTRIES);
    let genesis = blindstore_types::entry::genesis(&sdk_chain);
    let verified: Hash32 = verify_entries(&zone, &key, genesis, &entries).unwrap();
    assert_eq!(verified.to_string(), report["sdk_head"].as_str().unwrap());
}
