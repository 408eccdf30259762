//! The HTTP server cannot be held open or flooded by one client: header and body deadlines,
//! a cap on connections and one on requests in flight, each answered with a JSON 503.

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
    let node = NodeProcess::start(dir.path(), &["--http-header-timeout", "2s"]);
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
