//! Append load against a running node: `writers` concurrent clients, each on its own chain in
//! zone `demo`, for `seconds`. Prints appends per second and latency percentiles.
//!
//! cargo run --release -p blindstore-client --example append_load -- http://127.0.0.1:8080 16 10

use std::time::{Duration, Instant};

use blindstore_client::{ChainWriter, Client};
use blindstore_types::ZoneId;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("http://127.0.0.1:8080");
    let writers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let payload_len: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(256);
    let zone = ZoneId::new("demo").expect("valid zone");
    let client = Client::new(url);
    let deadline = Instant::now() + Duration::from_secs(seconds);

    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (client, zone) = (client.clone(), zone.clone());
            tokio::spawn(async move {
                let writer = ChainWriter::generate(zone.clone());
                client
                    .create_chain(&zone, writer.public_key())
                    .await
                    .expect("create chain");
                let mut prev = writer.genesis();
                let mut latencies = Vec::new();
                let mut index = 0u64;
                while Instant::now() < deadline && index < 1_000_000 {
                    let payload = vec![(w + index as usize) as u8; payload_len];
                    let (request, hash) = writer.sign(index, prev, &payload, vec![]);
                    let start = Instant::now();
                    client
                        .append(&zone, &writer.chain_id(), &request)
                        .await
                        .expect("append");
                    latencies.push(start.elapsed());
                    prev = hash;
                    index += 1;
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "writers={writers} payload={payload_len}B appends={} rate={:.0}/s p50={:.1}ms p99={:.1}ms",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
}
