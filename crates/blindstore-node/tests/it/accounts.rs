//! Accounts against real processes: the browser's OPAQUE library (`@serenity-kit/opaque`,
//! run by Node from `sdk/interop`) and the Rust client register and log in to each other's
//! accounts; in a three-node cluster a login started on one node finishes on another, and
//! sessions survive restarts and revocations reach every node at once.

use std::path::PathBuf;
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_client::Client;
use blindstore_types::account::AccountId;
use blindstore_types::ZoneId;
use serde_json::Value;

use crate::process::NodeProcess;

fn demo() -> ZoneId {
    ZoneId::new("demo").unwrap()
}

fn account(id: &str) -> AccountId {
    AccountId::new(id).unwrap()
}

/// Runs `sdk/interop/opaque.mjs`: its exit code and the JSON line it printed.
fn npm_opaque(command: &str, url: &str, account: &str, password: &str) -> (i32, Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sdk/interop");
    assert!(
        dir.join("node_modules/@serenity-kit/opaque").exists(),
        "sdk/interop has no node_modules: run `npm ci --prefix sdk/interop` (scripts/test.sh does)"
    );
    let out = Command::new("node")
        .current_dir(&dir)
        .args(["opaque.mjs", command, url, "demo", account, password])
        .output()
        .expect("run node (Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() != Some(1),
        "opaque.mjs {command} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_library_and_the_rust_client_use_each_others_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let client = node.client();

    // Registered by the npm library, logged into with the Rust client.
    let (code, registered) = npm_opaque("register", &node.url, "from-npm", "npm password");
    assert_eq!(code, 0, "{registered}");
    let session = client
        .login(&demo(), &account("from-npm"), b"npm password", "rust")
        .await
        .unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(&session.export_key),
        registered["export_key"].as_str().unwrap(),
        "both implementations derive the same export key"
    );
    assert_eq!(client.sessions(&session).await.unwrap().sessions.len(), 1);
    assert!(client
        .login(&demo(), &account("from-npm"), b"wrong", "rust")
        .await
        .is_err());

    // Registered by the Rust client, logged into with the npm library.
    let export_key = client
        .register(&demo(), &account("from-rust"), b"rust password")
        .await
        .unwrap();
    let (code, logged_in) = npm_opaque("login", &node.url, "from-rust", "rust password");
    assert_eq!(code, 0, "{logged_in}");
    assert_eq!(
        logged_in["export_key"].as_str().unwrap(),
        URL_SAFE_NO_PAD.encode(&export_key)
    );
    // The npm side's session is a session like any other.
    let npm_session = blindstore_types::api::NewSession {
        token: logged_in["token"].as_str().unwrap().to_owned(),
        session_id: String::new(),
        account: account("from-rust"),
        expires_at_ms: 0,
        step_up: String::new(),
        step_up_expires_at_ms: 0,
        device_token: String::new(),
    };
    let npm_session = blindstore_client::Session::new(demo(), npm_session, export_key);
    let list = client.sessions(&npm_session).await.unwrap();
    assert_eq!(list.sessions[0].label, "node interop");
    // A wrong password fails in the npm library too.
    let (code, _) = npm_opaque("login", &node.url, "from-rust", "wrong password");
    assert_eq!(code, 2);
    let (code, _) = npm_opaque("login", &node.url, "nobody", "any password");
    assert_eq!(code, 2);
    let _: &Client = &client;
}

/// Every way a secret could appear in a log line: hex, base64 (both alphabets, padded or
/// not), and Rust's `Debug` of a byte list.
fn spellings(secret: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let debug = format!("{:?}", &secret[..16]);
    vec![
        hex::encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        debug.trim_end_matches(']').to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_hold_no_password_export_key_or_zone_secret() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let data = dir.path().join("data");
    let node = NodeProcess::start_logging(&data, &[], &log);
    let client = node.client();
    let password = b"a password that must never be logged";
    let export_key = client
        .register(&demo(), &account("alice"), password)
        .await
        .unwrap();
    let session = client
        .login(&demo(), &account("alice"), password, "laptop")
        .await
        .unwrap();
    client
        .put_envelope(&session, "password", b"sealed keys", 0)
        .await
        .unwrap();
    assert!(client
        .login(&demo(), &account("alice"), b"wrong", "")
        .await
        .is_err());
    assert!(client
        .login(&demo(), &account("nobody"), b"wrong", "")
        .await
        .is_err());
    assert_eq!(node.terminate().code(), Some(0));

    let state = blindstore_storage::StateMachineStore::open(&data.join("state"), 1 << 30).unwrap();
    let auth = state
        .zone_auth(&demo())
        .unwrap()
        .expect("the zone's secrets");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.len() > 10_000, "the node logged at debug level");
    let mut secrets = vec![("password", password.to_vec())];
    secrets.push(("export key", export_key));
    secrets.push(("OPAQUE server setup", auth.opaque_setup.clone()));
    secrets.push((
        "OPAQUE server private key",
        auth.opaque_setup[64..96].to_vec(),
    ));
    secrets.push(("ticket key", auth.ticket_key.to_vec()));
    secrets.push(("session token", session.token.as_bytes().to_vec()));
    for (what, secret) in secrets {
        for spelling in spellings(&secret) {
            assert!(
                !log.contains(&spelling),
                "the log holds the {what} ({spelling})"
            );
        }
    }
    assert!(
        !log.contains(&session.token),
        "the log holds the session token"
    );
    assert!(
        !log.contains(std::str::from_utf8(password).unwrap()),
        "the log holds the password"
    );
}
