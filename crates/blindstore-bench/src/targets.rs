//! What the clients do. Blindstore requests go through `blindstore-client`, each client with
//! its own HTTP client and so its own keep-alive connection, to the node `i % nodes` (as a
//! load balancer would spread them); etcd requests go through `etcd-client` (gRPC), each client
//! with its own connection to every member; chunk and nginx GETs are the same plain `reqwest`
//! code for both; the disk gets 1 MiB writes, each followed by `fdatasync`.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use blindstore_client::{ChainWriter, Client, ClientError};
use blindstore_types::{ChainId, Hash32, ZoneId};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::load::Worker;

/// Entry payloads and etcd values.
pub const VALUE_BYTES: usize = 1024;
/// Entries each read chain holds, and what `entries?last=` asks for.
pub const LAST: usize = 20;
/// Chains (and etcd keys) the read rows spread their clients over.
pub const READ_CHAINS: usize = 16;
/// A request not answered within this is an error (an unknown outcome, for a write).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Appends signed 1 KiB entries to a chain of its own, so appends never conflict.
pub struct Append {
    client: Client,
    writer: ChainWriter,
    index: u64,
    prev: Hash32,
    payload: Vec<u8>,
}

impl Append {
    /// A client of `url` with a new chain in `zone`.
    pub async fn new(url: &str, zone: &ZoneId) -> anyhow::Result<Self> {
        let client = Client::with_timeout(url, REQUEST_TIMEOUT);
        let writer = ChainWriter::generate(zone.clone());
        let chain = client
            .create_chain(zone, writer.public_key())
            .await
            .with_context(|| format!("creating a chain through {url}"))?;
        Ok(Self {
            client,
            index: chain.length,
            prev: chain.head,
            writer,
            payload: random_bytes(VALUE_BYTES),
        })
    }

    pub fn chain_id(&self) -> ChainId {
        self.writer.chain_id()
    }
}

impl Worker for Append {
    async fn op(&mut self) -> Result<(), String> {
        // Each entry's payload differs, as ciphertexts would.
        self.payload[..8].copy_from_slice(&self.index.to_be_bytes());
        let (request, entry_hash) = self
            .writer
            .sign(self.index, self.prev, &self.payload, vec![]);
        let (zone, chain) = (self.writer.zone(), self.writer.chain_id());
        match self.client.append(zone, &chain, &request).await {
            Ok(_) => {
                self.index += 1;
                self.prev = entry_hash;
                Ok(())
            }
            Err(e) => {
                // After an unknown outcome the entry may be in the chain: go on from where the
                // chain really stands.
                if let Ok(now) = self.client.chain(zone, &chain).await {
                    self.index = now.length;
                    self.prev = now.head;
                }
                Err(describe(&e))
            }
        }
    }
}

/// What a chain reader asks for, linearizably (the API's default).
#[derive(Clone, Copy)]
pub enum ChainReadKind {
    /// The chain's head: `GET .../chains/{id}`.
    Head,
    /// Its newest entries: `GET .../entries?last=20`.
    Last,
}

/// Reads one chain, over and over.
pub struct ChainRead {
    client: Client,
    zone: ZoneId,
    chain: ChainId,
    kind: ChainReadKind,
}

impl Worker for ChainRead {
    async fn op(&mut self) -> Result<(), String> {
        match self.kind {
            ChainReadKind::Head => match self.client.chain(&self.zone, &self.chain).await {
                Ok(chain) if chain.length >= LAST as u64 => Ok(()),
                Ok(chain) => Err(format!("chain has {} entries, not {LAST}", chain.length)),
                Err(e) => Err(describe(&e)),
            },
            ChainReadKind::Last => match self
                .client
                .last_entries(&self.zone, &self.chain, LAST)
                .await
            {
                Ok(entries) if entries.entries.len() == LAST => Ok(()),
                Ok(entries) => Err(format!("{} entries, not {LAST}", entries.entries.len())),
                Err(e) => Err(describe(&e)),
            },
        }
    }
}

/// Uploads chunks of one size, each with content no other request had.
pub struct ChunkPut {
    client: Client,
    zone: ZoneId,
    prefix: Arc<ChunkPrefix>,
}

/// All but the last 64 bytes of every uploaded chunk, and their hash state. Only the last
/// block differs between uploads, so a client finishes the hash from this state instead of
/// hashing the whole chunk: the clients share the machine with the servers.
pub struct ChunkPrefix {
    bytes: Vec<u8>,
    hashed: Sha256,
}

const UNIQUE_TAIL: usize = 64;

impl ChunkPrefix {
    /// For chunks of `size` bytes (a multiple of 64, so the prefix is whole SHA-256 blocks).
    pub fn new(size: usize) -> Arc<Self> {
        assert!(
            size.is_multiple_of(64) && size >= UNIQUE_TAIL,
            "whole SHA-256 blocks"
        );
        let bytes = random_bytes(size - UNIQUE_TAIL);
        let hashed = Sha256::new_with_prefix(&bytes);
        Arc::new(Self { bytes, hashed })
    }
}

impl Worker for ChunkPut {
    async fn op(&mut self) -> Result<(), String> {
        let tail = random_bytes(UNIQUE_TAIL);
        let hash = Hash32(
            self.prefix
                .hashed
                .clone()
                .chain_update(&tail)
                .finalize()
                .into(),
        );
        let mut body = Vec::with_capacity(self.prefix.bytes.len() + UNIQUE_TAIL);
        body.extend_from_slice(&self.prefix.bytes);
        body.extend_from_slice(&tail);
        match self.client.put_chunk_as(&self.zone, &hash, body).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("chunk was already stored: the content is not unique".into()),
            Err(e) => Err(describe(&e)),
        }
    }
}

/// GETs one URL and checks the answer's size: a stored chunk, or nginx's copy of it.
pub struct HttpGet {
    http: reqwest::Client,
    url: String,
    size: usize,
}

impl Worker for HttpGet {
    async fn op(&mut self) -> Result<(), String> {
        let response = self.http.get(&self.url).send().await;
        let response = response.map_err(|e| format!("transport: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{status}"));
        }
        let body = response.bytes().await.map_err(|e| format!("body: {e}"))?;
        if body.len() != self.size {
            return Err(format!("{} bytes, not {}", body.len(), self.size));
        }
        Ok(())
    }
}

/// Puts 1 KiB values under a key of its own.
pub struct EtcdPut {
    kv: etcd_client::KvClient,
    key: String,
    value: Vec<u8>,
    count: u64,
}

impl Worker for EtcdPut {
    async fn op(&mut self) -> Result<(), String> {
        self.count += 1;
        self.value[..8].copy_from_slice(&self.count.to_be_bytes());
        let value = self.value.clone();
        match self.kv.put(self.key.as_str(), value, None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("etcd put: {e}")),
        }
    }
}

/// Gets a 1 KiB value, linearizable (etcd's default; not `serializable`).
pub struct EtcdGet {
    kv: etcd_client::KvClient,
    key: String,
}

impl Worker for EtcdGet {
    async fn op(&mut self) -> Result<(), String> {
        match self.kv.get(self.key.as_str(), None).await {
            Ok(answer) => match answer.kvs() {
                [kv] if kv.value().len() == VALUE_BYTES => Ok(()),
                other => Err(format!("etcd get: {} values", other.len())),
            },
            Err(e) => Err(format!("etcd get: {e}")),
        }
    }
}

/// Writes 1 MiB blocks to a file, each made durable with `fdatasync` before the next, like
/// `dd oflag=dsync bs=1M`.
pub struct DiskWrite {
    file: Option<File>,
    block: Arc<Vec<u8>>,
}

impl DiskWrite {
    pub fn create(path: &Path, block_size: usize) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            file: Some(file),
            block: Arc::new(random_bytes(block_size)),
        })
    }
}

impl Worker for DiskWrite {
    async fn op(&mut self) -> Result<(), String> {
        let mut file = self
            .file
            .take()
            .ok_or("the file was lost by an earlier write")?;
        let block = self.block.clone();
        let written = tokio::task::spawn_blocking(move || {
            file.write_all(&block)?;
            file.sync_data()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| format!("write task: {e}"))?;
        self.file = Some(written.map_err(|e| format!("write: {e}"))?);
        Ok(())
    }
}

/// `n` appenders, each with a new chain, spread over `urls`.
pub async fn appenders(urls: &[String], zone: &ZoneId, n: usize) -> anyhow::Result<Vec<Append>> {
    let mut creating = JoinSet::new();
    for i in 0..n {
        let (url, zone) = (urls[i % urls.len()].clone(), zone.clone());
        creating.spawn(async move { Append::new(&url, &zone).await });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(append) = creating.join_next().await {
        out.push(append??);
    }
    Ok(out)
}

/// Chains for the read rows: [`READ_CHAINS`] chains of [`LAST`] entries each.
pub async fn read_chains(urls: &[String], zone: &ZoneId) -> anyhow::Result<Vec<ChainId>> {
    let mut filling = JoinSet::new();
    for mut append in appenders(urls, zone, READ_CHAINS).await? {
        filling.spawn(async move {
            for _ in 0..LAST {
                append.op().await.map_err(anyhow::Error::msg)?;
            }
            anyhow::Ok(append.chain_id())
        });
    }
    let mut chains = Vec::with_capacity(READ_CHAINS);
    while let Some(chain) = filling.join_next().await {
        chains.push(chain?.context("filling a read chain")?);
    }
    Ok(chains)
}

/// `n` chain readers: client `i` asks node `i % nodes` about chain `i % chains`.
pub fn chain_readers(
    urls: &[String],
    zone: &ZoneId,
    chains: &[ChainId],
    n: usize,
    kind: ChainReadKind,
) -> Vec<ChainRead> {
    (0..n)
        .map(|i| ChainRead {
            client: Client::with_timeout(&urls[i % urls.len()], REQUEST_TIMEOUT),
            zone: zone.clone(),
            chain: chains[i % chains.len()],
            kind,
        })
        .collect()
}

/// `n` uploaders of `size`-byte chunks, spread over `urls`.
pub fn chunk_putters(urls: &[String], zone: &ZoneId, size: usize, n: usize) -> Vec<ChunkPut> {
    let prefix = ChunkPrefix::new(size);
    (0..n)
        .map(|i| ChunkPut {
            client: Client::with_timeout(&urls[i % urls.len()], REQUEST_TIMEOUT),
            zone: zone.clone(),
            prefix: prefix.clone(),
        })
        .collect()
}

/// Stores `bytes` as a chunk through `url`; its hash.
pub async fn store_chunk(url: &str, zone: &ZoneId, bytes: Vec<u8>) -> anyhow::Result<Hash32> {
    let client = Client::with_timeout(url, REQUEST_TIMEOUT);
    let (hash, _) = client
        .put_chunk(zone, bytes)
        .await
        .with_context(|| format!("storing a chunk through {url}"))?;
    Ok(hash)
}

/// `n` clients GETting `path` of `size` bytes from `bases` in turn, each with its own
/// connection.
pub fn getters(bases: &[String], path: &str, size: usize, n: usize) -> Vec<HttpGet> {
    (0..n)
        .map(|i| HttpGet {
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(Duration::from_secs(2))
                .build()
                .expect("a plain-HTTP client builds"),
            url: format!("{}{path}", bases[i % bases.len()]),
            size,
        })
        .collect()
}

/// `n` etcd clients, each given every member (in a different order, for the first dial).
pub async fn etcd_clients(
    endpoints: &[String],
    n: usize,
) -> anyhow::Result<Vec<etcd_client::KvClient>> {
    let options = etcd_client::ConnectOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(2));
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut mine = endpoints.to_vec();
        mine.rotate_left(i % endpoints.len());
        let client = etcd_client::Client::connect(mine, Some(options.clone()))
            .await
            .context("connecting to etcd")?;
        out.push(client.kv_client());
    }
    Ok(out)
}

/// `n` etcd putters, each on a key of its own.
pub async fn etcd_putters(endpoints: &[String], n: usize) -> anyhow::Result<Vec<EtcdPut>> {
    let clients = etcd_clients(endpoints, n).await?;
    let run: u64 = rand::random();
    Ok(clients
        .into_iter()
        .enumerate()
        .map(|(i, kv)| EtcdPut {
            kv,
            key: format!("bench/put/{run:016x}/{i}"),
            value: random_bytes(VALUE_BYTES),
            count: 0,
        })
        .collect())
}

/// Keys for etcd's read rows: [`READ_CHAINS`] keys of 1 KiB values.
pub async fn read_keys(endpoints: &[String]) -> anyhow::Result<Vec<String>> {
    let mut kv = etcd_clients(endpoints, 1).await?.remove(0);
    let keys: Vec<String> = (0..READ_CHAINS)
        .map(|i| format!("bench/read/{i}"))
        .collect();
    for key in &keys {
        kv.put(key.as_str(), random_bytes(VALUE_BYTES), None)
            .await
            .context("etcd put of a read key")?;
    }
    Ok(keys)
}

/// `n` etcd getters: client `i` reads key `i % keys`.
pub async fn etcd_getters(
    endpoints: &[String],
    keys: &[String],
    n: usize,
) -> anyhow::Result<Vec<EtcdGet>> {
    let clients = etcd_clients(endpoints, n).await?;
    Ok(clients
        .into_iter()
        .enumerate()
        .map(|(i, kv)| EtcdGet {
            kv,
            key: keys[i % keys.len()].clone(),
        })
        .collect())
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes[..]);
    bytes
}

/// An error in one line: the API's status, code and message, or what failed on the way.
fn describe(e: &ClientError) -> String {
    e.to_string()
}
