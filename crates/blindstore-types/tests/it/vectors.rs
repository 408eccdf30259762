//! `docs/test-vectors/entry-v1.json` pins the entry wire format (docs/entry-format.md). This test
//! rebuilds every vector from its inputs and checks each output field; run it with
//! `BLESS=1` to rewrite the file after a deliberate format change (a new format version).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_types::entry::{chain_id, genesis, UnsignedEntry};
use blindstore_types::{Hash32, PublicKey, ZoneId};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/test-vectors/entry-v1.json"
);

/// One entry's input: its payload and the contents of the chunks it references.
type EntryInput = (&'static [u8], Vec<&'static [u8]>);

/// The inputs: (seed byte, zone, entries).
fn inputs() -> Vec<(u8, &'static str, Vec<EntryInput>)> {
    vec![
        (
            1,
            "demo",
            vec![
                (b"" as &[u8], vec![]),
                (b"hello", vec![]),
                (
                    b"third entry with two chunks",
                    vec![b"chunk-a" as &[u8], b"chunk-b"],
                ),
                (&[0u8, 255, 1, 254, 2, 253], vec![b"chunk-a"]),
            ],
        ),
        (
            7,
            "budget-app-2",
            vec![
                (b"{\"expense\":12.5}", vec![]),
                (b"\xf0\x9f\x92\xb6 unicode payload", vec![b"attachment"]),
            ],
        ),
    ]
}

fn generate() -> Value {
    let chains: Vec<Value> = inputs()
        .into_iter()
        .map(|(seed, zone, entries)| {
            let seed_bytes = [seed; 32];
            let sk = SigningKey::from_bytes(&seed_bytes);
            let pk = PublicKey(sk.verifying_key().to_bytes());
            let id = chain_id(&pk);
            let zone = ZoneId::new(zone).unwrap();
            let mut prev = genesis(&id);
            let entries: Vec<Value> = entries
                .into_iter()
                .enumerate()
                .map(|(index, (payload, chunks))| {
                    let chunk_hashes: Vec<Hash32> = chunks.iter().map(|c| Hash32::digest(c)).collect();
                    let unsigned = UnsignedEntry::new(zone.clone(), id, index as u64, prev, payload, chunk_hashes.clone());
                    let message = unsigned.signing_message();
                    let signed = unsigned.sign(&sk);
                    let header = signed.verify(&pk).expect("fresh signature verifies");
                    prev = header.entry_hash;
                    json!({
                        "index": index,
                        "prev": header.prev.to_hex(),
                        "payload": URL_SAFE_NO_PAD.encode(payload),
                        "payload_hash": header.payload_hash.to_hex(),
                        "payload_len": header.payload_len,
                        "chunks": chunks.iter().map(|c| URL_SAFE_NO_PAD.encode(c)).collect::<Vec<_>>(),
                        "chunk_hashes": chunk_hashes.iter().map(Hash32::to_hex).collect::<Vec<_>>(),
                        "message": hex::encode(&message),
                        "signature": header.signature.to_b64(),
                        "entry_hash": header.entry_hash.to_hex(),
                    })
                })
                .collect();
            json!({
                "seed": hex::encode(seed_bytes),
                "public_key": pk.to_b64(),
                "zone": zone.as_str(),
                "chain_id": id.to_hex(),
                "genesis": genesis(&id).to_hex(),
                "entries": entries,
            })
        })
        .collect();
    json!({
        "format": "blindstore entry v1 (docs/entry-format.md)",
        "notes": "seed is the 32-byte Ed25519 private key seed; chunks are the referenced chunks' contents (base64url), chunk_hashes their SHA-256; message is the exact signed byte string",
        "chains": chains,
    })
}

#[test]
fn entry_v1_vectors_match_the_implementation() {
    let expected = generate();
    if std::env::var_os("BLESS").is_some() {
        let text = serde_json::to_string_pretty(&expected).unwrap() + "\n";
        std::fs::write(PATH, text).expect("write vectors");
    }
    let text = std::fs::read_to_string(PATH).expect("docs/test-vectors/entry-v1.json exists");
    let committed: Value = serde_json::from_str(&text).expect("vectors are JSON");
    let (exp_chains, got_chains) = (
        expected["chains"].as_array().unwrap(),
        committed["chains"].as_array().unwrap(),
    );
    assert_eq!(exp_chains.len(), got_chains.len(), "number of chains");
    let mut checked = 0;
    for (exp, got) in exp_chains.iter().zip(got_chains) {
        for field in ["seed", "public_key", "zone", "chain_id", "genesis"] {
            assert_eq!(exp[field], got[field], "chain field {field}");
        }
        let (exp_entries, got_entries) = (
            exp["entries"].as_array().unwrap(),
            got["entries"].as_array().unwrap(),
        );
        assert_eq!(exp_entries.len(), got_entries.len());
        for (e, g) in exp_entries.iter().zip(got_entries) {
            assert_eq!(e, g, "entry {} of chain {}", e["index"], exp["chain_id"]);
            checked += 1;
        }
    }
    assert!(checked >= 6, "the file holds several entries");
}
