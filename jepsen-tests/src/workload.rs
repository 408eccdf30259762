//! The workloads: client processes doing chain and chunk operations against random nodes,
//! every operation recorded with its invocation and completion times.
//!
//! Client rules: no retries; an operation is `ok`, `fail` (certainly did not happen: an API
//! refusal, or a connection never established) or `info` (unknown); a process that saw `info`
//! is retired and its worker continues as a new process.

use blindstore_types::api::ErrorCode;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blindstore_client::{ChainWriter, Client, ClientError};
use blindstore_types::api::Entry;
use blindstore_types::{Hash32, ZoneId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Body, Op, Outcome};

/// The history being recorded, shared by all clients.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    next_id: Arc<AtomicU64>,
    next_process: Arc<AtomicU64>,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            next_id: Arc::new(AtomicU64::new(0)),
            next_process: Arc::new(AtomicU64::new(0)),
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn new_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a finished operation invoked at `invoke_ns`.
    pub fn record(
        &self,
        process: u64,
        node: u64,
        invoke_ns: u64,
        outcome: Outcome,
        body: Body,
        error: Option<String>,
    ) {
        let op = Op {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            process,
            node: Some(node),
            invoke_ns,
            complete_ns: Some(self.now_ns()),
            outcome,
            body,
            error,
        };
        self.ops.lock().expect("history lock").push(op);
    }

    /// The history so far, in completion order.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().expect("history lock").clone()
    }
}

/// How an error ends an operation.
pub fn outcome_of(e: &ClientError) -> Outcome {
    if e.is_definite() {
        Outcome::Fail
    } else {
        Outcome::Info
    }
}

/// The chains of the run and what clients last learned of each: the length and head they
/// append after. Shared by all clients on purpose, so that several of them race for one index.
pub struct Chains {
    pub zone: ZoneId,
    pub writers: Vec<ChainWriter>,
    known: Mutex<Vec<(u64, Hash32)>>,
    /// Chains longer than this are left alone, to keep whole-chain reads small.
    pub max_len: u64,
    /// How many chains are written at a time.
    pub active: usize,
}

impl Chains {
    pub fn new(zone: ZoneId, writers: Vec<ChainWriter>, max_len: u64, active: usize) -> Self {
        let known = writers.iter().map(|w| (0, w.genesis())).collect();
        Self {
            zone,
            writers,
            known: Mutex::new(known),
            max_len,
            active,
        }
    }

    /// A chain to work on: one of the first `active` that are not full.
    pub fn pick(&self, rng: &mut StdRng) -> usize {
        let known = self.known.lock().expect("chains lock");
        let open: Vec<usize> = (0..known.len())
            .filter(|&c| known[c].0 < self.max_len)
            .take(self.active)
            .collect();
        if open.is_empty() {
            rng.gen_range(0..known.len())
        } else {
            open[rng.gen_range(0..open.len())]
        }
    }

    fn known(&self, chain: usize) -> (u64, Hash32) {
        self.known.lock().expect("chains lock")[chain]
    }

    fn learn(&self, chain: usize, len: u64, head: Hash32) {
        let mut known = self.known.lock().expect("chains lock");
        if len >= known[chain].0 {
            known[chain] = (len, head);
        }
    }
}

/// Where clients send requests: the ids of the nodes currently in the cluster, and their
/// clients. Updated by the nemesis when nodes join or leave.
#[derive(Clone, Default)]
pub struct Targets {
    inner: Arc<Mutex<Vec<(u64, Client)>>>,
}

impl Targets {
    pub fn set(&self, targets: Vec<(u64, Client)>) {
        *self.inner.lock().expect("targets lock") = targets;
    }

    pub fn pick(&self, rng: &mut StdRng) -> Option<(u64, Client)> {
        let targets = self.inner.lock().expect("targets lock");
        if targets.is_empty() {
            return None;
        }
        Some(targets[rng.gen_range(0..targets.len())].clone())
    }

    pub fn all(&self) -> Vec<(u64, Client)> {
        self.inner.lock().expect("targets lock").clone()
    }
}

/// Tells client workers to finish their current operation and stop.
#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// One chain client worker: until stopped, a mix of compare-and-set appends at the last known
/// index, read-then-append, linearizable reads and stale reads.
pub async fn chain_worker(
    worker: usize,
    seed: u64,
    stop: Stop,
    chains: Arc<Chains>,
    targets: Targets,
    recorder: Recorder,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut process = recorder.new_process();
    let mut seq = 0u64;
    while !stop.stopped() {
        let Some((node, client)) = targets.pick(&mut rng) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let chain = chains.pick(&mut rng);
        let roll: f64 = rng.gen();
        let outcome = if roll < 0.45 {
            let (index, prev) = chains.known(chain);
            seq += 1;
            let value = format!("w{worker}-p{process}-{seq}");
            append(
                &client, node, &chains, chain, index, prev, value, process, &recorder,
            )
            .await
        } else if roll < 0.65 {
            match read(
                &client, node, &chains, chain, false, false, process, &recorder,
            )
            .await
            {
                (Outcome::Ok, Some((index, prev))) => {
                    seq += 1;
                    let value = format!("w{worker}-p{process}-{seq}");
                    append(
                        &client, node, &chains, chain, index, prev, value, process, &recorder,
                    )
                    .await
                }
                (outcome, _) => outcome,
            }
        } else {
            let stale = roll > 0.9;
            read(
                &client, node, &chains, chain, stale, false, process, &recorder,
            )
            .await
            .0
        };
        if outcome == Outcome::Info {
            process = recorder.new_process();
        }
        if outcome != Outcome::Ok {
            // Do not spin against a node that refuses connections.
            tokio::time::sleep(Duration::from_millis(rng.gen_range(10..50))).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn append(
    client: &Client,
    node: u64,
    chains: &Chains,
    chain: usize,
    index: u64,
    prev: Hash32,
    value: String,
    process: u64,
    recorder: &Recorder,
) -> Outcome {
    let writer = &chains.writers[chain];
    let (request, entry_hash) = writer.sign(index, prev, value.as_bytes(), Vec::new());
    let invoke = recorder.now_ns();
    let result = client
        .append(&chains.zone, &writer.chain_id(), &request)
        .await;
    let (outcome, acked_index, conflict, error) = match result {
        Ok(response) => {
            chains.learn(chain, response.index + 1, entry_hash);
            (Outcome::Ok, Some(response.index), false, None)
        }
        Err(e) => {
            if let Some((len, head)) = e.conflict() {
                chains.learn(chain, len, head);
            }
            let conflict = e.code() == Some(ErrorCode::IndexConflict);
            (outcome_of(&e), None, conflict, Some(e.to_string()))
        }
    };
    recorder.record(
        process,
        node,
        invoke,
        outcome,
        Body::Append {
            chain: chain as u32,
            value,
            expected_index: index,
            acked_index,
            conflict,
        },
        error,
    );
    outcome
}

/// Reads a whole chain (following pages); returns the outcome and, when it succeeded, the
/// length and head it saw.
#[allow(clippy::too_many_arguments)]
pub async fn read(
    client: &Client,
    node: u64,
    chains: &Chains,
    chain: usize,
    stale: bool,
    final_read: bool,
    process: u64,
    recorder: &Recorder,
) -> (Outcome, Option<(u64, Hash32)>) {
    let writer = &chains.writers[chain];
    let invoke = recorder.now_ns();
    let result = client
        .all_entries_as(&chains.zone, &writer.chain_id(), stale)
        .await;
    let (outcome, values, seen, error) = match result {
        Ok(entries) => {
            let head = entries
                .last()
                .map(|e| e.entry_hash)
                .unwrap_or_else(|| writer.genesis());
            let len = entries.len() as u64;
            if !stale {
                chains.learn(chain, len, head);
            }
            let values = entries.iter().map(payload_text).collect::<Vec<String>>();
            (Outcome::Ok, Some(values), Some((len, head)), None)
        }
        Err(e) => (outcome_of(&e), None, None, Some(e.to_string())),
    };
    recorder.record(
        process,
        node,
        invoke,
        outcome,
        Body::Read {
            chain: chain as u32,
            values,
            stale,
            final_read,
        },
        error,
    );
    (outcome, seen)
}

fn payload_text(entry: &Entry) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&entry.payload)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|_| format!("<undecodable payload at {}>", entry.index))
}

/// Chunks acknowledged so far, and the bytes of the latest few (for the disk nemesis, which
/// looks for them in a node's data file).
#[derive(Default)]
pub struct ChunkLedger {
    pub acked: Vec<Hash32>,
    pub recent: VecDeque<(Hash32, Vec<u8>)>,
}

/// One chunk client worker: uploads random chunks and reads back acknowledged ones.
pub async fn chunk_worker(
    seed: u64,
    stop: Stop,
    pause: Duration,
    zone: ZoneId,
    ledger: Arc<Mutex<ChunkLedger>>,
    targets: Targets,
    recorder: Recorder,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut process = recorder.new_process();
    while !stop.stopped() {
        let Some((node, client)) = targets.pick(&mut rng) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let known = {
            let ledger = ledger.lock().expect("ledger lock");
            (!ledger.acked.is_empty() && rng.gen_bool(0.4))
                .then(|| ledger.acked[rng.gen_range(0..ledger.acked.len())])
        };
        let outcome = match known {
            Some(hash) => {
                let invoke = recorder.now_ns();
                let (outcome, intact, error) = match client.get_chunk(&zone, &hash).await {
                    Ok(bytes) => (Outcome::Ok, Some(Hash32::digest(&bytes) == hash), None),
                    Err(e) => (outcome_of(&e), None, Some(e.to_string())),
                };
                let body = Body::ChunkGet {
                    hash: hash.to_string(),
                    intact,
                };
                recorder.record(process, node, invoke, outcome, body, error);
                outcome
            }
            None => {
                let len = rng.gen_range(4096..16384);
                let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                let hash = Hash32::digest(&bytes);
                let invoke = recorder.now_ns();
                let result = client.put_chunk_as(&zone, &hash, bytes.clone()).await;
                let (outcome, error) = match &result {
                    Ok(_) => (Outcome::Ok, None),
                    Err(e) => (outcome_of(e), Some(e.to_string())),
                };
                if outcome == Outcome::Ok {
                    let mut ledger = ledger.lock().expect("ledger lock");
                    ledger.acked.push(hash);
                    ledger.recent.push_back((hash, bytes));
                    if ledger.recent.len() > 200 {
                        ledger.recent.pop_front();
                    }
                }
                let body = Body::ChunkPut {
                    hash: hash.to_string(),
                };
                recorder.record(process, node, invoke, outcome, body, error);
                outcome
            }
        };
        if outcome == Outcome::Info {
            process = recorder.new_process();
        }
        if outcome != Outcome::Ok {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(10..50))).await;
        }
        tokio::time::sleep(pause).await;
    }
}
