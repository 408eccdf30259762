//! The HTTP server cannot be held open or flooded by one client: header and body deadlines,
//! a cap on connections and one on requests in flight, each answered with a JSON 503.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use std::time::{Duration, Instant};

use blindstore_client::ChainWriter;
use blindstore_types::api::ErrorCode;
use blindstore_types::ZoneId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{eventually, NodeProcess};

fn demo() -> ZoneId {
    ZoneId::new("demo").unwrap()
}

fn addr(node: &NodeProcess) -> String {
    node.url.trim_start_matches("http://").to_owned()
}

/// Sends `head` one byte a second until the server closes the connection (or 15 s pass);
/// returns how long the connection stayed open.
async fn slow_headers(addr: String, head: &'static [u8]) -> Duration {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return Duration::ZERO;
    };
    for byte in head.iter().cycle() {
        if stream.write_all(&[*byte]).await.is_err() || started.elapsed() > Duration::from_secs(15)
        {
            break;
        }
        // A closed connection shows as EOF on read (or a 408 answer) within the second.
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_header_senders_are_cut_off_and_do_not_stop_appends() {
    let dir = tempfile::tempdir().unwrap();
    // All from one address: its share of the connections is raised for this test (the share
    // itself is tested below).
    let args = [
        "--http-header-timeout",
        "2s",
        "--http-max-connections-per-ip",
        "1000",
    ];
    let node = NodeProcess::start(dir.path(), &args);
    let slow: Vec<_> = (0..300)
        .map(|_| {
            tokio::spawn(slow_headers(
                addr(&node),
                b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa",
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Meanwhile another client appends as usual.
    let client = node.client();
    let w = ChainWriter::generate(demo());
    client.create_chain(&demo(), w.public_key()).await.unwrap();
    let mut head = w.genesis();
    for i in 0..20u64 {
        let started = Instant::now();
        let (request, hash) = w.sign(i, head, b"while others dawdle", vec![]);
        client
            .append(&demo(), &w.chain_id(), &request)
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "append {i} took {:?}",
            started.elapsed()
        );
        head = hash;
    }
    for task in slow {
        let held = task.await.unwrap();
        assert!(
            held < Duration::from_secs(5),
            "a connection sending headers a byte a second stayed open {held:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed_at_the_header_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &["--http-header-timeout", "1s"]);
    // One that never sends a byte, one that goes quiet after a first request.
    let mut silent = TcpStream::connect(addr(&node)).await.unwrap();
    let mut idle = TcpStream::connect(addr(&node)).await.unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    for (name, stream) in [("silent", &mut silent), ("idle", &mut idle)] {
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the {name} connection was held open");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_answered_503() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &["--http-max-connections", "20"]);
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(addr(&node)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = node.client().health().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unavailable), "{e}");
    drop(idle);
    let client = node.client();
    eventually(Duration::from_secs(10), "served again", || {
        let client = client.clone();
        async move { client.health().await.is_ok() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_cap_are_shed_and_a_stalled_body_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &["--http-max-requests", "1", "--http-body-timeout", "3s"],
    );
    // One upload whose body stalls holds the only request slot.
    let mut stalled = TcpStream::connect(addr(&node)).await.unwrap();
    let hash = "0".repeat(64);
    let head = format!(
        "PUT /v1/zones/demo/chunks/{hash} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    // Give the server time to take the upload up (it holds the slot until the body deadline,
    // 3 s); asking earlier could take the slot first and have the upload shed instead.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let e = node.client().health().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unavailable), "{e}");

    // The stalled body is given up on at the body deadline, with a JSON error.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), async {
        let mut buf = [0u8; 1024];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the stalled upload was never answered");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"bad_request\""), "{answer}");
    node.client().health().await.unwrap();
}

/// A TLS client that trusts `pem` and offers `alpn`.
fn tls_connector(pem: &str, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    roots.add(cert).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

/// Reads until the server closes the connection; how long that took (at most `limit`).
async fn closed_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A HEADERS frame (stream 1, END_STREAM | END_HEADERS) for `GET /v1/health`, HPACK without
/// Huffman coding.
fn h2_get_health() -> Vec<u8> {
    let mut block = vec![0x82, 0x87]; // :method GET, :scheme https (static table)
    block.extend([0x04, 10]); // :path, literal, not indexed
    block.extend(b"/v1/health");
    block.extend([0x01, 9]); // :authority, literal, not indexed
    block.extend(b"localhost");
    let len = block.len() as u32;
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend([0x01, 0x05, 0, 0, 0, 1]);
    frame.extend(block);
    frame
}

/// With TLS, connections that finish the handshake and then send nothing are closed at the
/// first-request deadline, over HTTP/1.1 and HTTP/2 alike, so a handful of them cannot hold
/// every slot (8 such connections once kept a node with 8 slots from answering anyone for 45 s
/// and more); an HTTP/2 connection idle after its requests is closed at the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_connections_are_closed_and_cannot_hold_every_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let pem = crate::web::self_signed(&cert, &key);
    let node = NodeProcess::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--http-max-connections",
            "8",
            "--http-header-timeout",
            "1s",
            "--http-idle-timeout",
            "2s",
        ],
    );
    let addr = node.url.trim_start_matches("https://").to_owned();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut silent = Vec::new();
    for i in 0..8 {
        let alpn: &[u8] = if i % 2 == 0 { b"h2" } else { b"http/1.1" };
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let mut tls = tls_connector(&pem, alpn)
            .connect(name.clone(), tcp)
            .await
            .unwrap();
        if i == 0 {
            // An HTTP/2 client that sends its preface and no request.
            tls.write_all(H2_PREFACE).await.unwrap();
        }
        silent.push(tls);
    }
    for (i, stream) in silent.iter_mut().enumerate() {
        let took = closed_within(stream, Duration::from_secs(5)).await;
        assert!(took.is_some(), "silent connection {i} was held open");
    }
    // Every slot is free again: a client is answered.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let health = format!(
        "https://localhost:{}/v1/health",
        addr.rsplit(':').next().unwrap()
    );
    let r = client.get(&health).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // HTTP/2: a request, its answer, then silence: closed at the idle timeout, not before.
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let mut h2 = tls_connector(&pem, b"h2").connect(name, tcp).await.unwrap();
    h2.write_all(H2_PREFACE).await.unwrap();
    h2.write_all(&h2_get_health()).await.unwrap();
    let took = closed_within(&mut h2, Duration::from_secs(8)).await;
    let took = took.expect("an idle HTTP/2 connection was held open");
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}");
}

/// One address may hold only its share of the connections (429 beyond, at once); others are
/// still served, and so is the address once it closes some. Trusted proxies are exempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &[
            "--http-max-connections-per-ip",
            "4",
            "--http-max-connections",
            "100",
        ],
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr(&node)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = node.client().health().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RateLimited), "{e}");
    // Another address (127.0.0.2 is loopback too) is served.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(addr(&node).parse().unwrap()).await.unwrap();
    other
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    held.pop();
    let client = node.client();
    eventually(Duration::from_secs(10), "served again", || {
        let client = client.clone();
        async move { client.health().await.is_ok() }
    })
    .await;
    drop(held);

    let dir = tempfile::tempdir().unwrap();
    let trusting = NodeProcess::start(
        dir.path(),
        &[
            "--http-max-connections-per-ip",
            "2",
            "--trusted-proxies",
            "127.0.0.1",
        ],
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr(&trusting)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    trusting.client().health().await.unwrap();
}
