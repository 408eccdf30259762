//! Passkeys in a real browser: headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `sdk/interop/passkeys.mjs`) with a CDP virtual authenticator that
//! supports PRF registers a passkey for an account, seals a secret under the PRF output in an
//! envelope, logs in with the passkey on a fresh ceremony and opens the envelope again — while
//! the server stores the credential and never receives the PRF output.

use std::path::Path;

use blindstore_client::Session;
use blindstore_types::account::AccountId;
use blindstore_types::api::ErrorCode;
use blindstore_types::ZoneId;
use serde_json::Value;

use crate::process::NodeProcess;
use crate::web::{interop_script, screenshot_dir};
use crate::zone::zone_cli;

/// Runs `sdk/interop/passkeys.mjs`; the JSON line it printed.
fn chromium_passkeys(base: &str, session: &Session, shots: &Path) -> Value {
    let account = session.account.as_str();
    let (token, step_up) = (&session.token, &session.step_up);
    let browser = interop_script(
        "passkeys.mjs",
        &[
            base,
            "demo",
            account,
            token,
            step_up,
            shots.to_str().unwrap(),
        ],
    );
    let out = browser.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "passkeys.mjs failed: {stdout}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_register_and_log_in_in_chromium_and_the_prf_stays_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let data = dir.path().join("data");
    let node = NodeProcess::start_logging(&data, &[], &log);
    let client = node.client();
    let demo = ZoneId::new("demo").unwrap();
    let alice = AccountId::new("alice-hash").unwrap();
    client.register(&demo, &alice, b"pw").await.unwrap();
    let session = client.login(&demo, &alice, b"pw", "rust").await.unwrap();

    // Off until the zone names its relying party.
    let off = client.passkeys(&session).await.unwrap();
    assert!(off.is_empty());
    // The browser must use a domain origin: WebAuthn refuses IP addresses.
    let origin = node.url.replace("127.0.0.1", "localhost");
    let (ok, _, err) = zone_cli(
        &node.url,
        &data,
        &[
            "set",
            "demo",
            "--passkey-rp-id",
            "127.0.0.1",
            "--passkey-origin",
            &node.url,
        ],
    );
    assert!(!ok && err.contains("not a lowercase domain name"), "{err}");
    let (ok, out, err) = zone_cli(
        &node.url,
        &data,
        &[
            "set",
            "demo",
            "--passkey-rp-id",
            "localhost",
            "--passkey-origin",
            &origin,
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "passkeys        on: relying party localhost, origins {origin}"
        )),
        "{out}"
    );

    let shots = screenshot_dir();
    let result = chromium_passkeys(&origin, &session, &shots);
    let registered = &result["registered"];
    let logged_in = &result["logged_in"];
    assert_eq!(registered["bare_status"], 403, "{result}");
    assert_eq!(registered["bare_code"], "step_up_required", "{result}");
    assert_eq!(registered["status"], 201, "{result}");
    assert!(
        registered["replay_status"].as_u64().unwrap() >= 400,
        "{result}"
    );
    assert_eq!(registered["envelope_status"], 200, "{result}");
    assert_eq!(logged_in["unknown_status"], 401, "{result}");
    assert_eq!(logged_in["tampered_status"], 401, "{result}");
    assert_eq!(logged_in["status"], 200, "{result}");
    assert_eq!(logged_in["replay_status"], 401, "{result}");
    assert_eq!(logged_in["secret"], "the budget key", "{result}");
    assert_eq!(result["same_prf"], true, "the PRF unwraps what it wrapped");
    assert_eq!(
        result["prf_sent"], false,
        "the PRF output never left the page"
    );
    assert_eq!(result["page_errors"], Value::Array(vec![]), "{result}");

    // The passkey is listed, its login recorded; the passkey session is a real session.
    let passkeys = client.passkeys(&session).await.unwrap();
    assert_eq!(passkeys.len(), 1);
    assert_eq!(passkeys[0].passkey_id, registered["passkey"]["passkey_id"]);
    assert_eq!(passkeys[0].label, "Chromium");
    assert!(passkeys[0].last_used_ms > 0);
    let labels: Vec<String> = client
        .sessions(&session)
        .await
        .unwrap()
        .sessions
        .into_iter()
        .map(|s| s.label)
        .collect();
    assert_eq!(labels, ["rust", "Chromium passkey"]);

    // Removing a passkey cannot be done with a bare session (a stolen one, say).
    let passkey_id = passkeys[0].passkey_id.clone();
    let bare = Session {
        step_up: String::new(),
        ..session.clone()
    };
    let refused = client.remove_passkey(&bare, &passkey_id).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::StepUpRequired));
    let refused = client.logout_everywhere(&bare, &[]).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::StepUpRequired));

    // "Log out everywhere" with a step-up proved by the passkey, removing the passkey in the
    // same step; an unknown passkey among those named changes nothing.
    assert_eq!(result["step_up"]["status"], 200, "{result}");
    let stepped_up = Session {
        step_up: result["step_up"]["step_up"].as_str().unwrap().to_owned(),
        ..session.clone()
    };
    let unknown = client
        .logout_everywhere(&stepped_up, &[passkey_id.clone(), "AAAA".into()])
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::UnknownPasskey));
    assert_eq!(client.passkeys(&session).await.unwrap().len(), 1);
    assert_eq!(client.sessions(&session).await.unwrap().sessions.len(), 2);
    let done = client
        .logout_everywhere(&stepped_up, std::slice::from_ref(&passkey_id))
        .await
        .unwrap();
    assert_eq!(done.revoked, 2);
    assert!(done.passkeys.is_empty());
    let ended = client.sessions(&session).await.unwrap_err();
    assert_eq!(ended.code(), Some(ErrorCode::InvalidSession));

    // The passkey is gone; its envelope goes when the client deletes it.
    let session = client.login(&demo, &alice, b"pw", "rust").await.unwrap();
    assert!(client.passkeys(&session).await.unwrap().is_empty());
    let gone = client
        .remove_passkey(&session, &passkey_id)
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::UnknownPasskey));
    let (version, _) = client.envelope(&session, "passkey-1").await.unwrap();
    let stale = client
        .delete_envelope(&session, "passkey-1", version + 1)
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Some(ErrorCode::EnvelopeConflict));
    client
        .delete_envelope(&session, "passkey-1", version)
        .await
        .unwrap();
    assert!(client.envelopes(&session).await.unwrap().is_empty());

    // The server saw neither the PRF output nor a key derived from it.
    assert_eq!(node.terminate().code(), Some(0));
    let log = std::fs::read_to_string(&log).unwrap();
    for prf in [&registered["prf"], &logged_in["prf"]] {
        assert!(!log.contains(prf.as_str().unwrap()));
    }
}
