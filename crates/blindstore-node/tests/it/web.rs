//! The web edge against real processes: a page in headless Chromium on another origin calls
//! the API (CORS) and follows a chain live with `EventSource`, while a page on an origin the
//! zone does not allow is refused; every answer carries the security headers.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use blindstore_client::ChainWriter;
use blindstore_types::{Hash32, ZoneId};
use ed25519_dalek::SigningKey;
use serde_json::Value;

use crate::process::NodeProcess;
use crate::zone::zone_cli;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Starts `sdk/interop/<script>` under Node with `args` (it drives Chromium); stdin and stdout
/// piped.
pub(crate) fn interop_script(script: &str, args: &[&str]) -> std::process::Child {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sdk/interop");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "sdk/interop has no node_modules: run `npm ci --prefix sdk/interop` (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "the browser tests need Chromium at {chromium} (apt-get install chromium; .ci/run does)"
    );
    Command::new("node")
        .current_dir(&dir)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node (Node.js 20 or later)")
}

/// Where the browser tests put their screenshots.
pub(crate) fn screenshot_dir() -> PathBuf {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_calls_the_api_and_follows_a_chain_live_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let client = node.client();
    let demo = ZoneId::new("demo").unwrap();
    let writer = ChainWriter::new(demo.clone(), SigningKey::from_bytes(&[3; 32]));
    client
        .create_chain(&demo, writer.public_key())
        .await
        .unwrap();
    let mut prev = writer.genesis();
    for i in 0..2u64 {
        let (request, hash) = writer.sign(i, prev, format!("entry {i}").as_bytes(), vec![]);
        client
            .append(&demo, &writer.chain_id(), &request)
            .await
            .unwrap();
        prev = hash;
    }

    let bytes = b"a chunk".to_vec();
    let hash = Hash32::digest(&bytes);
    client.put_chunk(&demo, bytes).await.unwrap();

    let shots = screenshot_dir();
    let chain = writer.chain_id().to_hex();
    let mut browser = interop_script(
        "live.mjs",
        &[
            &node.url,
            "demo",
            &chain,
            "2",
            "3",
            shots.to_str().unwrap(),
            &hash.to_hex(),
        ],
    );
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
    let origins: Value =
        serde_json::from_str(&lines.next().expect("live.mjs printed nothing").unwrap()).unwrap();
    // The page's origin may call the zone's API; the other origin may not.
    let origin = origins["origin"].as_str().unwrap();
    let (ok, out, err) = zone_cli(
        &node.url,
        dir.path(),
        &["set", "demo", "--cors-origin", origin],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&format!("cors            {origin}")), "{out}");
    writeln!(browser.stdin.take().unwrap(), "go").unwrap();
    let ready = lines.next().expect("live.mjs stopped").unwrap();
    assert_eq!(ready, r#"{"ready":true}"#);

    // Another client appends; the page must see it within a second.
    let (request, _) = writer.sign(2, prev, b"entry 2", vec![]);
    client
        .append(&demo, &writer.chain_id(), &request)
        .await
        .unwrap();
    let appended_at = now_ms();
    let report: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(browser.wait().unwrap().success());

    let allowed = &report["allowed"];
    assert_eq!(allowed["call"]["status"], 200, "{report}");
    assert_eq!(allowed["call"]["length"], 2, "{report}");
    assert_eq!(allowed["call"]["chunk_status"], 200, "{report}");
    assert_eq!(allowed["call"]["chunk_bytes"], 7, "{report}");
    assert_eq!(
        allowed["call"]["etag"],
        format!("\"{hash}\""),
        "the ETag is exposed to the page"
    );
    let entries = allowed["entries"].as_array().unwrap();
    let seen: Vec<(u64, &str)> = entries
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["payload"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [(0, "entry 0"), (1, "entry 1"), (2, "entry 2")]);
    let arrived = entries[2]["arrived"].as_u64().unwrap();
    println!(
        "entry 2 reached the page {} ms after its append was acknowledged",
        arrived as i64 - appended_at as i64
    );
    assert!(
        arrived.saturating_sub(appended_at) < 1_000,
        "entry 2 reached the page {} ms after the append",
        arrived.saturating_sub(appended_at)
    );

    // The origin the zone does not list is refused by the browser.
    let other = &report["other"];
    assert!(other["error"].is_string(), "{report}");
    assert_eq!(other["entries"], Value::Array(vec![]));
    assert_eq!(report["page_errors"], Value::Array(vec![]), "{report}");

    // Every answer says nosniff; a chunk never runs as a page and may be embedded by the
    // zone's allowed origins.
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/v1/health", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    let chunk = http
        .get(format!("{}/v1/zones/demo/chunks/{hash}", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(chunk.headers()["x-content-type-options"], "nosniff");
    assert_eq!(chunk.headers()["content-security-policy"], "sandbox");
    assert_eq!(
        chunk.headers()["cross-origin-resource-policy"],
        "cross-origin"
    );
}

/// A child process killed when dropped (a failing test leaves nothing behind).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over a bare TCP connection, the path sent exactly as given; the status line.
async fn raw_get(base: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

/// The reverse proxy against a real upstream process: a request goes through with the right
/// headers (no session, no cookies, `X-Forwarded-For` set) and comes back without the
/// upstream's cookies; a slow upstream is 504, an answer too large and an upstream that is
/// down are 502, a request body too large is 413 — all JSON errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reverse_proxy_relays_and_maps_upstream_failures() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/upstream.py");
    let mut upstream = Killed(
        Command::new("python3")
            .arg(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run python3"),
    );
    let port = BufReader::new(upstream.0.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &[]);
    let upstream_url = format!("http://127.0.0.1:{port}/api");
    let (ok, out, err) = zone_cli(
        &node.url,
        dir.path(),
        &[
            "set",
            "demo",
            "--proxy",
            &format!("up={upstream_url}"),
            "--proxy-timeout",
            "1s",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("proxy           up -> {upstream_url} (1000 ms)")),
        "{out}"
    );
    let (ok, _, err) = zone_cli(
        &node.url,
        dir.path(),
        &["set", "demo", "--proxy", "bad=ftp://x"],
    );
    assert!(!ok && err.contains("http:// or https://"), "{err}");

    let http = reqwest::Client::new();
    let base = format!("{}/v1/zones/demo/proxy/up", node.url);
    let r = http
        .post(format!("{base}/echo?x=1"))
        .header("authorization", "Bearer a-session-token")
        .header("cookie", "c=d")
        .header("x-custom", "kept")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Nothing the upstream sends acts as this origin: no cookies, no clearing of the app's
    // storage, no service worker scope, no redirect; its content runs sandboxed.
    for name in [
        "set-cookie",
        "clear-site-data",
        "service-worker-allowed",
        "refresh",
    ] {
        assert!(r.headers().get(name).is_none(), "{name} came through");
    }
    assert_eq!(r.headers()["content-security-policy"], "sandbox");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-upstream"], "yes");
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api/echo");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["body_len"], 5);
    let headers = &echo["headers"];
    assert!(headers.get("authorization").is_none(), "{headers}");
    assert!(headers.get("cookie").is_none(), "{headers}");
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["host"], format!("127.0.0.1:{port}"));

    let code = |r: Value| r["error"]["code"].as_str().unwrap().to_owned();
    let slow = http.get(format!("{base}/slow")).send().await.unwrap();
    assert_eq!(slow.status(), 504);
    assert_eq!(code(slow.json().await.unwrap()), "gateway_timeout");
    let big = http.get(format!("{base}/big")).send().await.unwrap();
    assert_eq!(big.status(), 502);
    assert_eq!(code(big.json().await.unwrap()), "bad_gateway");
    // On a connection of its own: the node answers 413 without reading the body, then closes
    // the connection, which a pooled client could otherwise pick for the next request.
    let oversized = reqwest::Client::new()
        .post(format!("{base}/echo"))
        .body(vec![0u8; 11 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    let unknown = http
        .get(format!("{}/v1/zones/demo/proxy/nope/x", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(code(unknown.json().await.unwrap()), "unknown_proxy");
    // Sent as is (an HTTP client library would resolve the dots itself): every way out of the
    // route's base is refused here and never reaches the upstream.
    for escape in [
        "/v1/zones/demo/proxy/up/a/%2e%2e/b",
        "/v1/zones/demo/proxy/up/..;/..;/admin",
        "/v1/zones/demo/proxy/up/a%2f..%2fadmin",
        "/v1/zones/demo/proxy/up/a%5c..%5cadmin",
        "/v1/zones/demo/proxy/up/a\\..\\admin",
        "/v1/zones/demo/proxy/up/a%252e%252e/admin",
    ] {
        let status = raw_get(&node.url, escape).await;
        assert!(status.starts_with("HTTP/1.1 400"), "{escape}: {status}");
    }
    let seen: Vec<String> = http
        .get(format!("{base}/seen"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        seen.iter()
            .all(|p| !p.contains("admin") && !p.contains("..")),
        "{seen:?}"
    );

    upstream.0.kill().unwrap();
    upstream.0.wait().unwrap();
    let down = http.get(format!("{base}/echo")).send().await.unwrap();
    assert_eq!(down.status(), 502);
    assert_eq!(code(down.json().await.unwrap()), "bad_gateway");
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM into `cert`/`key`;
/// the certificate PEM.
pub(crate) fn self_signed(cert: &Path, key: &Path) -> String {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(cert, made.cert.pem()).unwrap();
    std::fs::write(key, made.key_pair.serialize_pem()).unwrap();
    made.cert.pem()
}

fn trusting(pem: &str, http1_only: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false);
    let builder = if http1_only {
        builder.http1_only()
    } else {
        builder
    };
    builder.build().unwrap()
}

/// HTTPS with HTTP/2 by ALPN (HTTP/1.1 for clients that ask for it) against a self-signed
/// certificate made here; SIGHUP loads a new certificate without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_negotiates_http2_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = self_signed(&cert, &key);
    let node = NodeProcess::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(node.url.starts_with("https://"), "{}", node.url);
    let health = format!("{}/v1/health", node.url);

    let r = trusting(&first, false).get(&health).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let r = trusting(&first, true).get(&health).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    // The API works over it: a chunk goes in and out.
    let bytes = b"over tls".to_vec();
    let hash = Hash32::digest(&bytes);
    let put = trusting(&first, false)
        .put(format!("{}/v1/zones/demo/chunks/{hash}", node.url))
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());

    // A new certificate on disk, SIGHUP: new connections get it.
    let second = self_signed(&cert, &key);
    let status = Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    crate::process::eventually(
        std::time::Duration::from_secs(10),
        "the new certificate is served",
        || {
            let client = trusting(&second, false);
            let url = health.clone();
            async move { client.get(&url).send().await.is_ok() }
        },
    )
    .await;
    assert!(
        trusting(&first, false).get(&health).send().await.is_err(),
        "the old certificate is gone"
    );
    // A broken file on SIGHUP keeps the current certificate.
    std::fs::write(&cert, "not a certificate").unwrap();
    Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        trusting(&second, false)
            .get(&health)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(node.terminate().code(), Some(0));
}

/// `serve --site DIR` is the development mode: the folder is read at each request, so an edit
/// shows on the next reload with its new length and an ETag from its new content; added and
/// removed files come and go; a precompressed variant is picked up live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_site_reads_the_folder_live() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>one</h1>").unwrap();
    let node = NodeProcess::start(
        &dir.path().join("data"),
        &["--site", site.to_str().unwrap()],
    );
    let http = reqwest::Client::new();
    let get = |path: &str, etag: Option<&str>| {
        let mut request = http.get(format!("{}{path}", node.url));
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.send()
    };
    let etag_of = |bytes: &[u8]| format!("\"{}\"", Hash32::digest(bytes));

    let first = get("/", None).await.unwrap();
    assert_eq!(first.status(), 200);
    let first_etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(first_etag, etag_of(b"<h1>one</h1>"));
    assert_eq!(first.text().await.unwrap(), "<h1>one</h1>");
    assert_eq!(get("/", Some(&first_etag)).await.unwrap().status(), 304);

    // An edit (another length) shows at once, and the old ETag no longer matches.
    let edited = "<h1>the second version, longer</h1>";
    std::fs::write(site.join("index.html"), edited).unwrap();
    let second = get("/", Some(&first_etag)).await.unwrap();
    assert_eq!(second.status(), 200, "an edited file is not answered 304");
    assert_eq!(
        second.headers()["etag"].to_str().unwrap(),
        etag_of(edited.as_bytes())
    );
    assert_eq!(
        second.headers()["content-length"].to_str().unwrap(),
        edited.len().to_string()
    );
    assert_eq!(second.text().await.unwrap(), edited);

    // A file added after start is served; removed, it is gone.
    assert_eq!(get("/app.js", None).await.unwrap().status(), 404);
    std::fs::write(site.join("app.js"), "console.log(1)").unwrap();
    let added = get("/app.js", None).await.unwrap();
    assert_eq!(added.status(), 200);
    assert!(added.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    // A precompressed variant written beside it is picked up too.
    // (The bytes are not checked: a `.gz` beside a file is served as its gzip variant.)
    std::fs::write(site.join("app.js.gz"), b"\x1f\x8b precompressed").unwrap();
    let compressed = http
        .get(format!("{}/app.js", node.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()["content-encoding"], "gzip");
    std::fs::remove_file(site.join("app.js")).unwrap();
    std::fs::remove_file(site.join("app.js.gz")).unwrap();
    assert_eq!(get("/app.js", None).await.unwrap().status(), 404);
}
