//! Real three-node clusters: forming, serving through any node, chunk placement, losing the
//! leader, and refusing strangers.
//!
//! Tests here spell out their set-up and requests on purpose, even where neighbours repeat
//! them: each test reads, and fails, on its own.

use blindstore_types::api::ErrorCode;
use std::time::{Duration, Instant};

use blindstore_client::{verify_entries, ChainWriter, Client};
use blindstore_types::{Hash32, ZoneId};
use serde_json::Value;

use crate::process::{eventually, NodeProcess};

pub(crate) const ADMIN: &str = "cluster-test-admin-token-0123";

pub(crate) fn demo() -> ZoneId {
    ZoneId::new("demo").unwrap()
}

pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Option<NodeProcess>>,
    /// Flags every node gets.
    pub(crate) extra: Vec<String>,
    pub(crate) dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a first node, then joins two more through it, as the README says.
    pub(crate) fn start(extra: &[&str]) -> Cluster {
        let mut cluster = Cluster::first(extra, extra);
        cluster.join_node();
        cluster.join_node();
        cluster
    }

    /// Starts the first node only, with `first_only` flags; nodes joined later get `extra`.
    fn first(first_only: &[&str], extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Clusters get no `demo` zone unless asked; these tests use it.
        let mut args = vec![
            "--rpc-addr",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN,
            "--demo-zone",
            "true",
        ];
        args.extend_from_slice(first_only);
        let first = NodeProcess::start(&dir.path().join("n1"), &args);
        Cluster {
            nodes: vec![Some(first)],
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir,
        }
    }

    /// Starts one more node that joins through node 1.
    pub(crate) fn join_node(&mut self) {
        let seed = self.nodes[0]
            .as_ref()
            .unwrap()
            .rpc
            .clone()
            .expect("node 1 prints its rpc address");
        let token = std::fs::read_to_string(self.dir.path().join("n1/join-token")).unwrap();
        let data = self.dir.path().join(format!("n{}", self.nodes.len() + 1));
        let mut args = vec![
            "--rpc-addr",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN,
            "--join",
            &seed,
            "--join-token",
            token.trim(),
        ];
        args.extend(self.extra.iter().map(String::as_str));
        self.nodes.push(Some(NodeProcess::start(&data, &args)));
    }

    pub(crate) fn clients(&self) -> Vec<Client> {
        self.nodes
            .iter()
            .flatten()
            .map(NodeProcess::client)
            .collect()
    }

    /// `blindstore cluster status --json`, as an operator would run it.
    fn status(&self, via: &NodeProcess) -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
            .args([
                "cluster",
                "status",
                "--json",
                "--url",
                &via.url,
                "--admin-token",
                ADMIN,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Cluster {
    /// Starts a gateway for the cluster, with `extra` flags. It has only the gateway token
    /// (every member keeps it beside its join token).
    pub(crate) fn start_gateway(&self, extra: &[&str]) -> NodeProcess {
        let seed = self.nodes[0].as_ref().unwrap().rpc.clone().unwrap();
        let token = std::fs::read_to_string(self.dir.path().join("n2/gateway-token")).unwrap();
        let mut args = vec![
            "--role",
            "gateway",
            "--join",
            &seed,
            "--gateway-token",
            token.trim(),
            "--admin-token",
            ADMIN,
        ];
        args.extend_from_slice(extra);
        NodeProcess::start(&self.dir.path().join("gw"), &args)
    }

    /// The index in `nodes` of the node with id `id`, as `status` names it.
    fn index_of(&self, status: &Value, id: u64) -> usize {
        let http = status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == id)
            .unwrap()["http_addr"]
            .as_str()
            .unwrap()
            .to_owned();
        self.nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.url.ends_with(&http)))
            .unwrap()
    }

    /// The leader's index in `nodes` and the followers' indexes.
    fn leader_and_followers(&self) -> (usize, Vec<usize>) {
        let status = self.status(self.nodes.iter().flatten().next().unwrap());
        let leader = self.index_of(&status, status["leader"].as_u64().unwrap());
        let followers = (0..self.nodes.len())
            .filter(|i| *i != leader && self.nodes[*i].is_some())
            .collect();
        (leader, followers)
    }
}

/// Uploads `count` chunks `"{prefix} {i}"`, spread over `clients` in turn; returns each hash
/// with its bytes.
pub(crate) async fn put_chunks(
    clients: &[Client],
    prefix: &str,
    count: u32,
) -> Vec<(Hash32, Vec<u8>)> {
    let mut chunks = Vec::new();
    for i in 0..count {
        let bytes = format!("{prefix} {i}").into_bytes();
        let (hash, _) = clients[i as usize % clients.len()]
            .put_chunk(&demo(), bytes.clone())
            .await
            .unwrap();
        chunks.push((hash, bytes));
    }
    chunks
}

/// Sends `sig` (e.g. `-STOP`) to a node's process.
fn signal(node: &NodeProcess, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn voters_and_leaders(status: &Value) -> (usize, usize, usize) {
    let nodes = status["nodes"].as_array().unwrap();
    let voters = nodes.iter().filter(|n| n["role"] == "voter").count();
    let leaders = nodes.iter().filter(|n| n["leader"] == true).count();
    let reachable = nodes.iter().filter(|n| n["reachable"] == true).count();
    (voters, leaders, reachable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_serve_reads_and_writes_through_any_node_and_survive_losing_the_leader() {
    let mut cluster = Cluster::start(&[]);
    let status = cluster.status(cluster.nodes[2].as_ref().unwrap());
    assert_eq!(voters_and_leaders(&status), (3, 1, 3), "{status:#}");

    // Chains written through every node, read back through every node.
    let clients = cluster.clients();
    let writers: Vec<ChainWriter> = (0..3).map(|_| ChainWriter::generate(demo())).collect();
    for (k, w) in writers.iter().enumerate() {
        clients[k]
            .create_chain(&demo(), w.public_key())
            .await
            .unwrap();
    }
    let mut heads: Vec<Hash32> = writers.iter().map(ChainWriter::genesis).collect();
    for i in 0..12u64 {
        for (k, w) in writers.iter().enumerate() {
            let via = &clients[(i as usize + k) % 3];
            let (request, hash) = w.sign(
                i,
                heads[k],
                format!("chain {k} entry {i}").as_bytes(),
                vec![],
            );
            via.append(&demo(), &w.chain_id(), &request).await.unwrap();
            heads[k] = hash;
        }
    }
    for (k, w) in writers.iter().enumerate() {
        for c in &clients {
            let entries = c.all_entries(&demo(), &w.chain_id()).await.unwrap();
            assert_eq!(entries.len(), 12);
            assert_eq!(
                verify_entries(&demo(), w.public_key(), w.genesis(), &entries).unwrap(),
                heads[k]
            );
        }
    }

    // Chunks through any node land on exactly two nodes and are readable from all.
    let admin = clients[0].clone().with_admin_token(ADMIN);
    let mut chunks = Vec::new();
    for i in 0..30u32 {
        let (hash, _) = clients[i as usize % 3]
            .put_chunk(&demo(), format!("chunk {i}").into_bytes())
            .await
            .unwrap();
        chunks.push((hash, format!("chunk {i}").into_bytes()));
    }
    let mut per_node = [0usize; 4];
    for (hash, bytes) in &chunks {
        let replicas = admin.replicas(&demo(), hash).await.unwrap().node_ids;
        assert_eq!(replicas.len(), 2, "chunk {hash} on {replicas:?}");
        for r in replicas {
            per_node[r as usize] += 1;
        }
        for c in &clients {
            assert_eq!(&c.get_chunk(&demo(), hash).await.unwrap(), bytes);
        }
    }
    assert!(
        per_node[1..].iter().all(|n| *n > 0),
        "every node holds some chunks: {per_node:?}"
    );

    // kill -9 the leader; writes succeed again through the others within seconds.
    let leader_id = status["leader"].as_u64().unwrap();
    let leader_index = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n["node_id"].as_u64() == Some(leader_id))
        .unwrap();
    let leader_url = cluster.nodes[leader_index].as_ref().unwrap().url.clone();
    cluster.nodes[leader_index].take().unwrap().kill_9();
    let survivors: Vec<Client> = cluster.clients();
    assert!(survivors.iter().all(|c| c.base() != leader_url));
    let w = &writers[0];
    let killed_at = Instant::now();
    let mut appended = false;
    while killed_at.elapsed() < Duration::from_secs(30) {
        let (request, hash) = w.sign(12, heads[0], b"after the leader died", vec![]);
        match survivors[0].append(&demo(), &w.chain_id(), &request).await {
            Ok(_) => {
                heads[0] = hash;
                appended = true;
                break;
            }
            Err(e) => {
                assert!(e.code() != Some(ErrorCode::IndexConflict), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(
        appended,
        "no write succeeded within 30 s of losing the leader"
    );
    println!(
        "writes resumed {:?} after the leader was killed",
        killed_at.elapsed()
    );
    for c in &survivors {
        let entries = c.all_entries(&demo(), &w.chain_id()).await.unwrap();
        assert_eq!(
            verify_entries(&demo(), w.public_key(), w.genesis(), &entries).unwrap(),
            heads[0]
        );
        for (hash, bytes) in &chunks {
            assert_eq!(
                &c.get_chunk(&demo(), hash).await.unwrap(),
                bytes,
                "chunk readable with a node down"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_join_or_talk_to_members() {
    let dir = tempfile::tempdir().unwrap();
    let first = NodeProcess::start(
        &dir.path().join("n1"),
        &[
            "--rpc-addr",
            "127.0.0.1:0",
            "--advertise-http-addr",
            "node1.example:8080",
        ],
    );
    let seed = first.rpc.clone().unwrap();

    // Joining with a wrong token fails, and the cluster is unchanged.
    let stderr = join_fails(
        &dir.path().join("stranger"),
        &seed,
        "0000000000000000000000000000000000000000",
    );
    assert!(stderr.contains("join refused"), "{stderr}");
    let admin = first.admin_client(&dir.path().join("n1"));
    let members = admin.cluster().await.unwrap().members;
    assert_eq!(members.len(), 1);
    assert_eq!(
        members[0].http_addr, "node1.example:8080",
        "the advertised address is recorded"
    );

    // Raw gRPC without the secret, or with a wrong one: refused before any service runs.
    use blindstore_rpc::v1::{
        chunks_client::ChunksClient, raft_client::RaftClient, GetChunkRequest, RaftMessage,
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{seed}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let vote = RaftClient::new(channel.clone())
        .vote(RaftMessage { record: vec![1] })
        .await
        .unwrap_err();
    assert_eq!(vote.code(), tonic::Code::Unauthenticated);
    let zone = "demo".to_string();
    let get = ChunksClient::new(channel.clone())
        .get(GetChunkRequest {
            zone,
            hash: vec![0; 32],
        })
        .await
        .unwrap_err();
    assert_eq!(get.code(), tonic::Code::Unauthenticated);
    let wrong = blindstore_rpc::ClusterSecret::new("not-the-secret-at-all").unwrap();
    let mut raft = RaftClient::with_interceptor(channel, wrong.attacher());
    let append = raft
        .append_entries(RaftMessage { record: vec![1] })
        .await
        .unwrap_err();
    assert_eq!(append.code(), tonic::Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_copies_are_restored_and_a_new_node_takes_its_share_without_dropping_copies() {
    let mut cluster = Cluster::start(&["--down-after", "2s", "--repair-interval", "300ms"]);
    let clients = cluster.clients();
    let count: u32 = std::env::var("BLINDSTORE_CHUNKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let chunks = put_chunks(&clients, "repair chunk", count).await;
    // Kill a follower; everything stays readable.
    let status = cluster.status(cluster.nodes[0].as_ref().unwrap());
    let leader = status["leader"].as_u64().unwrap();
    let victim = (0..3)
        .find(|i| status["nodes"][*i]["node_id"].as_u64() != Some(leader))
        .unwrap();
    let victim_id = status["nodes"][victim]["node_id"].as_u64().unwrap();
    let victim_url = cluster
        .nodes
        .iter()
        .flatten()
        .find(|n| {
            n.url
                .ends_with(status["nodes"][victim]["http_addr"].as_str().unwrap())
        })
        .unwrap()
        .url
        .clone();
    let index = cluster
        .nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.url == victim_url))
        .unwrap();
    cluster.nodes[index].take().unwrap().kill_9();
    let survivors = cluster.clients();
    for (hash, bytes) in &chunks {
        assert_eq!(&survivors[0].get_chunk(&demo(), hash).await.unwrap(), bytes);
    }
    let admin = survivors[0].clone().with_admin_token(ADMIN);

    // After down_after, every chunk is back to two live copies.
    let started = std::time::Instant::now();
    let (a, c) = (admin.clone(), chunks.clone());
    eventually(
        Duration::from_secs(90),
        "every chunk has two live copies again",
        || {
            let (a, c) = (a.clone(), c.clone());
            async move {
                for (hash, _) in &c {
                    let r = a.replicas(&demo(), hash).await.unwrap();
                    if r.node_ids.len() < 2 || r.node_ids.contains(&victim_id) {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    println!(
        "replication restored {:?} after the kill",
        started.elapsed()
    );

    // A fourth node joins: chunks move to their new owners, never below two copies.
    cluster.join_node();
    let new_id = admin
        .cluster()
        .await
        .unwrap()
        .members
        .iter()
        .map(|m| m.node_id)
        .max()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut settled = true;
        for (hash, _) in &chunks {
            let r = admin.replicas(&demo(), hash).await.unwrap();
            assert!(
                r.node_ids.len() >= 2,
                "chunk {hash} fell to {:?} during the move",
                r.node_ids
            );
            let (mut held, mut owners) = (r.node_ids.clone(), r.owners.clone());
            held.sort();
            owners.sort();
            settled &= held == owners;
        }
        if settled {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "chunks did not settle on their owners"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let on_new = {
        let mut n = 0;
        for (hash, _) in &chunks {
            n += admin
                .replicas(&demo(), hash)
                .await
                .unwrap()
                .node_ids
                .contains(&new_id) as usize;
        }
        n
    };
    assert!(
        on_new > 20,
        "the new node took its share: {on_new} of {}",
        chunks.len()
    );
    for c in cluster.clients() {
        for (hash, bytes) in chunks.iter().step_by(10) {
            assert_eq!(&c.get_chunk(&demo(), hash).await.unwrap(), bytes);
        }
    }
}

/// Runs `blindstore cluster <args>` against `via`, as an operator would.
fn cli(via: &NodeProcess, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .arg("cluster")
        .args(args)
        .args(["--url", &via.url, "--admin-token", ADMIN])
        .output()
        .unwrap()
}

async fn assert_two_live_copies(admin: &Client, chunks: &[(Hash32, Vec<u8>)], gone: &[u64]) {
    let (a, c, gone) = (admin.clone(), chunks.to_vec(), gone.to_vec());
    eventually(
        Duration::from_secs(90),
        "every chunk on two live nodes",
        || {
            let (a, c, gone) = (a.clone(), c.clone(), gone.clone());
            async move {
                for (hash, _) in &c {
                    let r = a.replicas(&demo(), hash).await.unwrap();
                    if r.node_ids.len() != 2 || r.node_ids.iter().any(|n| gone.contains(n)) {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    for (hash, bytes) in chunks {
        assert_eq!(&admin.get_chunk(&demo(), hash).await.unwrap(), bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn draining_and_force_removing_nodes_loses_nothing() {
    let mut cluster = Cluster::start(&["--down-after", "60s", "--repair-interval", "300ms"]);
    cluster.join_node();
    let clients = cluster.clients();
    let chunks = put_chunks(&clients, "drain chunk", 120).await;
    let via = cluster.nodes[0].as_ref().unwrap();
    let admin = via.client().with_admin_token(ADMIN);

    // A drain given up (here at once) leaves node 2 draining, with its progress as JSON
    // lines; `drain cancel` makes it an owner again.
    let out = cli(via, &["remove", "2", "--timeout", "0s", "--json"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("drain cancel 2"), "{stderr}");
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["node"], 2);
    assert!(first["total"].as_u64().unwrap() > 0, "{first}");
    let draining = |members: &[blindstore_types::api::Member]| {
        members.iter().any(|m| m.node_id == 2 && m.draining)
    };
    assert!(draining(&admin.cluster().await.unwrap().members));
    let out = cli(via, &["drain", "cancel", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!draining(&admin.cluster().await.unwrap().members));

    // Drain and remove node 2 (a voter): progress is shown, nothing is lost, and the storage
    // node is promoted so the cluster keeps three voters.
    let out = cli(via, &["remove", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("chunks moved"), "progress shown: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("drained and removed"));
    let members = admin.cluster().await.unwrap().members;
    assert_eq!(
        members.iter().map(|m| m.node_id).collect::<Vec<_>>(),
        vec![1, 3, 4]
    );
    assert!(members.iter().all(|m| m.role == "voter"), "{members:?}");
    assert_two_live_copies(&admin, &chunks, &[2]).await;

    // Kill node 3 and force-remove it: repair brings every chunk back to two live copies.
    let index = cluster
        .nodes
        .iter()
        .position(|n| {
            n.as_ref()
                .is_some_and(|n| n.url.ends_with(&members[1].http_addr))
        })
        .unwrap();
    cluster.nodes[index].take().unwrap().kill_9();
    let via = cluster.nodes[0].as_ref().unwrap();
    let out = cli(via, &["remove", "3", "--force", "--below-three-voters"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_two_live_copies(&admin, &chunks, &[2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_serves_the_api_and_repeated_chunk_reads_from_its_cache() {
    // Chunks up to the largest allowed size, for the gateway's memory check below.
    let mut cluster = Cluster::start(&["--max-chunk-bytes", "33554432"]);
    let gateway = cluster.start_gateway(&["--cache-disk-bytes", "1000000"]);
    let gw = gateway.client();
    assert_eq!(gw.health().await.unwrap().role, "gateway");

    // The whole API works through the gateway.
    let w = ChainWriter::generate(demo());
    gw.create_chain(&demo(), w.public_key()).await.unwrap();
    let mut prev = w.genesis();
    for i in 0..5u64 {
        let (request, hash) = w.sign(i, prev, format!("via gateway {i}").as_bytes(), vec![]);
        gw.append(&demo(), &w.chain_id(), &request).await.unwrap();
        prev = hash;
    }
    let entries = gw.all_entries(&demo(), &w.chain_id()).await.unwrap();
    assert_eq!(
        verify_entries(&demo(), w.public_key(), w.genesis(), &entries).unwrap(),
        prev
    );
    // Live streams are relayed.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let relayed = tokio::time::timeout(
        Duration::from_secs(20),
        follow_with_failover(
            vec![gateway.url.clone()],
            w.chain_id().to_hex(),
            seen.clone(),
            std::sync::Arc::new(5.into()),
        ),
    )
    .await
    .expect("the gateway relays the stream");
    assert_eq!(relayed, 0, "one stream, never broken");
    let indexes: Vec<u64> = seen.lock().unwrap().iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4]);
    let (stale, _) = w.sign(0, w.genesis(), b"x", vec![]);
    let conflict = gw.append(&demo(), &w.chain_id(), &stale).await.unwrap_err();
    assert_eq!(
        conflict.code(),
        Some(ErrorCode::IndexConflict),
        "errors pass through unchanged"
    );

    // A large upload streams through the gateway to a member.
    let big: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    let (big_hash, _) = gw.put_chunk(&demo(), big.clone()).await.unwrap();
    assert_eq!(
        cluster.clients()[0]
            .get_chunk(&demo(), &big_hash)
            .await
            .unwrap(),
        big
    );

    // Streaming bounds the gateway's memory: four 24 MiB uploads at once raise its peak
    // resident memory by far less than the 96 MiB a buffering gateway would hold.
    let before = peak_rss_bytes(gateway.pid());
    let uploads: Vec<_> = (0..4u8)
        .map(|n| {
            let gw = gw.clone();
            tokio::spawn(async move {
                let body: Vec<u8> = (0..(24u32 << 20)).map(|i| (i % 241) as u8 ^ n).collect();
                gw.put_chunk(&demo(), body).await.unwrap();
            })
        })
        .collect();
    for upload in uploads {
        upload.await.unwrap();
    }
    let grown = peak_rss_bytes(gateway.pid()).saturating_sub(before);
    assert!(
        grown < 48 << 20,
        "the gateway's peak RSS grew by {grown} bytes for 96 MiB of concurrent uploads"
    );

    // Chunk reads: the first misses, the rest hit.
    let bytes = b"a popular chunk".to_vec();
    let (hash, _) = gw.put_chunk(&demo(), bytes.clone()).await.unwrap();
    for _ in 0..3 {
        assert_eq!(gw.get_chunk(&demo(), &hash).await.unwrap(), bytes);
    }
    let stats = cache_stats(&gateway).await;
    assert_eq!(
        (stats["misses"].as_u64(), stats["hits"].as_u64()),
        (Some(1), Some(2)),
        "{stats}"
    );
    assert_eq!(stats["most_requested"][0]["hash"], hash.to_hex());
    assert_eq!(stats["most_requested"][0]["requests"], 3);
    // The same counts for Prometheus, behind the admin token.
    let metrics = crate::metrics::scrape(&gateway.url, ADMIN).await;
    assert_eq!(
        (
            metrics[r#"blindstore_cache_requests_total{result="miss"}"#],
            metrics[r#"blindstore_cache_requests_total{result="hit"}"#]
        ),
        (1.0, 2.0)
    );
    assert!(metrics[r#"blindstore_cache_bytes{tier="memory"}"#] >= bytes.len() as f64);
    let anonymous = reqwest::get(format!("{}/v1/metrics", gateway.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // A cached answer carries the zone's browser-access headers as a member gave them.
    let cached = reqwest::get(format!("{}/v1/zones/demo/chunks/{hash}", gateway.url))
        .await
        .unwrap();
    let h = cached.headers();
    assert_eq!(
        (
            &h["x-content-type-options"],
            &h["content-security-policy"],
            &h["cross-origin-resource-policy"]
        ),
        (
            &"nosniff".parse().unwrap(),
            &"sandbox".parse().unwrap(),
            &"same-origin".parse().unwrap()
        )
    );

    // With every member gone, the cached chunk is still served: members see no requests for it.
    for node in cluster.nodes.iter_mut() {
        node.take().unwrap().kill_9();
    }
    assert_eq!(gw.get_chunk(&demo(), &hash).await.unwrap(), bytes);
    assert_eq!(cache_stats(&gateway).await["hits"], 4);
    let other = gw
        .get_chunk(&demo(), &Hash32::digest(b"never stored"))
        .await
        .unwrap_err();
    assert_eq!(
        other.code(),
        Some(ErrorCode::Unavailable),
        "uncached reads need a member: {other}"
    );
}

/// A process's peak resident memory (`VmHWM`), in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib * 1024
}

async fn cache_stats(gateway: &NodeProcess) -> Value {
    admin_json(&gateway.url, "/v1/admin/cache").await
}

/// An admin GET's JSON answer.
pub(crate) async fn admin_json(url: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Acknowledged appends of one writer: (index, entry hash).
pub(crate) type Acks = std::sync::Arc<std::sync::Mutex<Vec<(u64, Hash32)>>>;

/// One writer: appends to its own chain through `clients` in turn until `stop`; retries after
/// conflicts and unknown outcomes by re-reading the head. Records every acknowledged append.
pub(crate) async fn keep_appending(
    clients: Vec<Client>,
    w: ChainWriter,
    acks: Acks,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut turn = 0usize;
    let (mut length, mut head) = (0u64, w.genesis());
    for _ in 0..1_000_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        turn += 1;
        let via = &clients[turn % clients.len()];
        let payload = format!("{} {length}", w.chain_id());
        let (request, hash) = w.sign(length, head, payload.as_bytes(), vec![]);
        match via.append(&demo(), &w.chain_id(), &request).await {
            Ok(r) => {
                acks.lock().unwrap().push((r.index, hash));
                (length, head) = (r.length, hash);
            }
            Err(e) => {
                if let Some((l, h)) = e.conflict() {
                    (length, head) = (l, h);
                } else {
                    // Unknown outcome or a dead node: learn the head again through another node.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Ok(chain) = clients[(turn + 1) % clients.len()]
                        .chain(&demo(), &w.chain_id())
                        .await
                    {
                        (length, head) = (chain.length, chain.head);
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_through_every_node_survive_killing_the_leader() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let seconds: u64 = std::env::var("BLINDSTORE_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut cluster = Cluster::start(&["--snapshot-logs", "300"]);
    let clients = cluster.clients();
    let writers: Vec<ChainWriter> = (0..64).map(|_| ChainWriter::generate(demo())).collect();
    for (k, w) in writers.iter().enumerate() {
        clients[k % 3]
            .create_chain(&demo(), w.public_key())
            .await
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Vec<Acks> = writers
        .iter()
        .map(|_| Arc::new(Mutex::new(Vec::new())))
        .collect();
    let tasks: Vec<_> = writers
        .iter()
        .zip(&acks)
        .map(|(w, a)| {
            tokio::spawn(keep_appending(
                clients.clone(),
                w.clone(),
                a.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let total = |acks: &[Acks]| acks.iter().map(|a| a.lock().unwrap().len()).sum::<usize>();

    // Half-way, kill -9 the leader; writes must resume through the others.
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    let status = cluster.status(cluster.nodes[0].as_ref().unwrap());
    let leader_http = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["leader"] == true)
        .unwrap()["http_addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let index = cluster
        .nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.url.ends_with(&leader_http)))
        .unwrap();
    let leader_dir = cluster.dir.path().join(format!("n{}", index + 1));
    cluster.nodes[index].take().unwrap().kill_9();
    let before = total(&acks);
    let killed = Instant::now();
    while total(&acks) <= before + 64 {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "writes did not resume within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "writes resumed {:?} after the leader was killed",
        killed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(seconds - seconds / 2)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "{} appends acknowledged in {seconds} s by 64 writers through 3 nodes",
        total(&acks)
    );

    // The killed node restarts (no --join needed) and catches up.
    let mut args = vec![
        "--rpc-addr".to_string(),
        "127.0.0.1:0".into(),
        "--admin-token".into(),
        ADMIN.into(),
    ];
    args.extend(["--snapshot-logs".to_string(), "300".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cluster.nodes[index] = Some(NodeProcess::start(&leader_dir, &args));
    let all = cluster.clients();
    let probe = all.clone();
    eventually(
        Duration::from_secs(60),
        "the restarted node has caught up",
        || {
            let probe = probe.clone();
            async move {
                let mut applied = Vec::new();
                for c in &probe {
                    applied.push(c.health().await.ok().and_then(|h| h.last_applied));
                }
                applied.iter().all(|a| a.is_some() && *a == applied[0])
            }
        },
    )
    .await;

    // Every acknowledged append is there, each chain is one verified line, all nodes agree.
    for (w, acks) in writers.iter().zip(&acks) {
        let mut reads = Vec::new();
        for c in &all {
            let entries = c.all_entries(&demo(), &w.chain_id()).await.unwrap();
            verify_entries(&demo(), w.public_key(), w.genesis(), &entries)
                .expect("one hash-linked line");
            reads.push(entries);
        }
        assert!(
            reads.iter().all(|r| *r == reads[0]),
            "every node returns the same chain"
        );
        for (index, hash) in acks.lock().unwrap().iter() {
            assert_eq!(
                reads[0][*index as usize].entry_hash, *hash,
                "acknowledged append {index} lost"
            );
        }
    }
}

/// Flips one byte of every occurrence of `needle` in a node's chunk store file, in place (the
/// file keeps its length, so a running node's memory map stays valid and sees the change).
fn corrupt_on_disk(data_dir: &std::path::Path, needle: &[u8]) -> usize {
    use std::os::unix::fs::FileExt;
    let path = data_dir.join("chunks/data.mdb");
    let bytes = std::fs::read(&path).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut hits = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        let flip = at + pos + needle.len() / 2;
        file.write_all_at(&[bytes[flip] ^ 0xff], flip as u64)
            .unwrap();
        hits += 1;
        at += pos + needle.len();
    }
    file.sync_all().unwrap();
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_copy_is_never_served_and_is_replaced_from_a_replica() {
    // No read cache: every read here must reach the copies on disk.
    let mut cluster = Cluster::start(&["--cache-memory-bytes", "0"]);
    let bytes = format!("corrupt-me-{}", "x".repeat(200)).into_bytes();
    let (hash, _) = cluster.clients()[0]
        .put_chunk(&demo(), bytes.clone())
        .await
        .unwrap();
    let admin = cluster.clients()[0].clone().with_admin_token(ADMIN);
    let holders = admin.replicas(&demo(), &hash).await.unwrap().node_ids;
    let status = cluster.status(cluster.nodes[0].as_ref().unwrap());
    let (a, b) = (
        cluster.index_of(&status, holders[0]),
        cluster.index_of(&status, holders[1]),
    );

    // Damage A's copy while it runs (damage found at start-up is covered by the storage tests
    // and the fault-injection runs).
    let a_dir = cluster.dir.path().join(format!("n{}", a + 1));
    assert!(
        corrupt_on_disk(&a_dir, &bytes[..40]) > 0,
        "the chunk's bytes are in the file"
    );
    let via_a = cluster.nodes[a].as_ref().unwrap().client();

    // With B paused, A has only its damaged copy, and must not serve it.
    signal(cluster.nodes[b].as_ref().unwrap(), "-STOP");
    let impatient = Client::with_timeout(via_a.base(), Duration::from_secs(3));
    let answer = impatient.get_chunk(&demo(), &hash).await;
    signal(cluster.nodes[b].as_ref().unwrap(), "-CONT");
    assert!(
        answer.is_err(),
        "the damaged copy was served: {:?}",
        answer.map(|b| b.len())
    );

    // Read through A: the corrupt copy is not served; the intact one from B is, and replaces it.
    assert_eq!(via_a.get_chunk(&demo(), &hash).await.unwrap(), bytes);
    // With B gone, A's own (repaired) copy is all there is.
    cluster.nodes[b].take().unwrap().kill_9();
    assert_eq!(via_a.get_chunk(&demo(), &hash).await.unwrap(), bytes);
}

/// A process holding the join token (and so able to call `Forward`) still cannot append an
/// entry the chain's key did not sign, nor create a chain under a weak key: the state machine
/// checks both itself when it applies the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machine_rechecks_signatures_and_keys_of_forwarded_commands() {
    use blindstore_rpc::v1::forward_reply::Result as ForwardResult;
    use blindstore_rpc::v1::{cluster_client::ClusterClient, ForwardRequest};
    use blindstore_types::command::{Command, CommandResponse, Rejection};
    use blindstore_types::entry::UnsignedEntry;
    use blindstore_types::record::{decode, encode};
    use blindstore_types::PublicKey;

    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        &dir.path().join("n1"),
        &["--rpc-addr", "127.0.0.1:0", "--demo-zone", "true"],
    );
    let token = std::fs::read_to_string(dir.path().join("n1/join-token")).unwrap();
    let secret = blindstore_rpc::ClusterSecret::new(token.trim()).unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", node.rpc.clone().unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let rpc = ClusterClient::with_interceptor(channel, secret.attacher());
    let forward = |command: Command| {
        let request = ForwardRequest {
            command_record: encode(&command),
        };
        let mut rpc = rpc.clone();
        async move {
            match rpc.forward(request).await.unwrap().into_inner().result {
                Some(ForwardResult::ResponseRecord(r)) => {
                    decode::<CommandResponse>("response", &r).unwrap()
                }
                other => panic!("forward failed: {other:?}"),
            }
        }
    };

    // The identity point: a small-order key anyone can "sign" for.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let response = forward(Command::CreateChain {
        zone: demo(),
        public_key: PublicKey(weak),
    })
    .await;
    assert_eq!(response, CommandResponse::Rejected(Rejection::BadPublicKey));

    let owner_key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let owner = ChainWriter::new(demo(), owner_key.clone());
    let client = node.client();
    client
        .create_chain(&demo(), owner.public_key())
        .await
        .unwrap();
    let entry = |key: &ed25519_dalek::SigningKey| {
        UnsignedEntry::new(demo(), owner.chain_id(), 0, owner.genesis(), b"p", vec![])
            .sign(key)
            .header()
    };
    let append = |header| Command::Append {
        zone: demo(),
        chain_id: owner.chain_id(),
        header,
    };
    // Signed by another key.
    let forged = entry(&ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
    assert_eq!(
        forward(append(forged)).await,
        CommandResponse::Rejected(Rejection::BadSignature)
    );
    // Signed by the owner, but carrying another entry hash than the one it implies.
    let mut tampered = entry(&owner_key);
    tampered.entry_hash = Hash32::digest(b"something else");
    assert_eq!(
        forward(append(tampered)).await,
        CommandResponse::Rejected(Rejection::BadSignature)
    );
    drop(rpc);
    let chain = client.chain(&demo(), &owner.chain_id()).await.unwrap();
    assert_eq!(chain.length, 0, "nothing was appended");
}

/// With both followers paused, the leader cannot commit: writes answer 503 within the write
/// deadline instead of hanging, the cluster serves again once they resume, and SIGTERM stops a
/// leader that cannot reach anyone within a bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_have_a_deadline_and_shutdown_is_bounded_without_a_quorum() {
    let mut cluster = Cluster::start(&["--write-timeout", "2s"]);
    let (leader, followers) = cluster.leader_and_followers();
    let via = cluster.nodes[leader].as_ref().unwrap().client();
    let w = ChainWriter::generate(demo());
    via.create_chain(&demo(), w.public_key()).await.unwrap();

    for f in &followers {
        signal(cluster.nodes[*f].as_ref().unwrap(), "-STOP");
    }
    // A proposal that cannot commit: its outcome is unknown at the deadline.
    let started = Instant::now();
    let other = ChainWriter::generate(demo());
    let e = via
        .create_chain(&demo(), other.public_key())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::OutcomeUnknown), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // An append whose payload cannot get its copies: certainly not appended, at the deadline.
    let (request, _) = w.sign(0, w.genesis(), b"no quorum", vec![]);
    let started = Instant::now();
    let e = via
        .append(&demo(), &w.chain_id(), &request)
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let body = e.to_string();
    assert!(
        !body.contains("127.0.0.1"),
        "503s carry no internal addresses: {body}"
    );

    for f in &followers {
        signal(cluster.nodes[*f].as_ref().unwrap(), "-CONT");
    }
    let mut appended = false;
    let resumed = Instant::now();
    while resumed.elapsed() < Duration::from_secs(30) && !appended {
        // Any node may lead now; a 409 means an earlier attempt went through.
        for c in cluster.clients() {
            match c.append(&demo(), &w.chain_id(), &request).await {
                Ok(_) => appended = true,
                Err(e) if e.code() == Some(ErrorCode::IndexConflict) => appended = true,
                Err(_) => {}
            }
            if appended {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        appended,
        "the cluster serves again after the followers resume"
    );

    // SIGTERM while no peer answers: stopped within the two shutdown phases' deadlines.
    let (leader, followers) = cluster.leader_and_followers();
    for f in &followers {
        signal(cluster.nodes[*f].as_ref().unwrap(), "-STOP");
    }
    let leader = cluster.nodes[leader].take().unwrap();
    let stuck = leader.client();
    let pending = tokio::spawn(async move {
        let third = ChainWriter::generate(demo());
        stuck.create_chain(&demo(), third.public_key()).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || leader.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert!(pending.await.unwrap().is_err());
    for f in &followers {
        signal(cluster.nodes[*f].as_ref().unwrap(), "-CONT");
    }
}

/// Waits (up to 60 s) until the node behind `probe` has applied the log up to `target`.
async fn applied_at_least(probe: &Client, target: u64) {
    eventually(Duration::from_secs(60), "the node catches up", || {
        let probe = probe.clone();
        async move {
            probe
                .health()
                .await
                .is_ok_and(|h| h.last_applied.is_some_and(|a| a >= target))
        }
    })
    .await;
}

/// Appends `request` once the chunks it references are fully replicated again (repair after a
/// node loss), within 60 s of `started`.
async fn append_once_replicated(
    via: &Client,
    w: &ChainWriter,
    request: &blindstore_types::api::AppendRequest,
    started: Instant,
) {
    loop {
        match via.append(&demo(), &w.chain_id(), request).await {
            Ok(_) => return,
            Err(e)
                if matches!(
                    e.code(),
                    Some(ErrorCode::MissingChunk | ErrorCode::Unavailable)
                ) =>
            {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "never repaired"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// A follower that missed hundreds of entries, each referencing the most chunks an entry may
/// (about 34 KB each, several MB in all: more than one gRPC message may carry), catches up:
/// batches are cut by bytes, not sent whole and refused forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_follower_catches_up_on_batches_larger_than_a_message() {
    const ENTRIES: u64 = 200;
    let mut cluster = Cluster::start(&["--down-after", "1s", "--repair-interval", "300ms"]);
    let (leader, followers) = cluster.leader_and_followers();
    let via = cluster.nodes[leader].as_ref().unwrap().client();
    use futures::StreamExt;
    let chunks: Vec<Hash32> = futures::stream::iter(0..1024u32)
        .map(|i| {
            let via = via.clone();
            async move {
                via.put_chunk(&demo(), format!("referenced {i}").into_bytes())
                    .await
                    .unwrap()
                    .0
            }
        })
        .buffered(32)
        .collect()
        .await;
    let w = ChainWriter::generate(demo());
    via.create_chain(&demo(), w.public_key()).await.unwrap();

    // The follower is away while the entries are appended.
    let lagging = followers[0];
    cluster.nodes[lagging].take().unwrap().kill_9();
    // Until repair has put a second copy of the chunks it held on the other live node, they
    // are not fully replicated and cannot be referenced.
    let started = Instant::now();
    let mut head = w.genesis();
    for i in 0..ENTRIES {
        let (request, hash) = w.sign(i, head, format!("e{i}").as_bytes(), chunks.clone());
        append_once_replicated(&via, &w, &request, started).await;
        head = hash;
    }
    let target = via.health().await.unwrap().last_log_index.unwrap();

    // Back (a restarted member needs no --join): it catches up with the leader's log.
    let data = cluster.dir.path().join(format!("n{}", lagging + 1));
    let mut args = vec!["--rpc-addr", "127.0.0.1:0", "--admin-token", ADMIN];
    args.extend(cluster.extra.iter().map(String::as_str));
    let back = NodeProcess::start(&data, &args);
    let probe = back.client();
    applied_at_least(&probe, target).await;
    let chain = probe.chain(&demo(), &w.chain_id()).await.unwrap();
    assert_eq!((chain.length, chain.head), (ENTRIES, head));
    cluster.nodes[lagging] = Some(back);
}

/// Chunks count only when fully replicated: an append may not reference a chunk with one
/// reachable copy (until repair makes a second), and with one node left a chunk PUT is
/// refused rather than acknowledged with a single copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunks_count_only_when_fully_replicated() {
    let mut cluster = Cluster::start(&["--down-after", "5s", "--repair-interval", "300ms"]);
    let (leader, followers) = cluster.leader_and_followers();
    let via = cluster.nodes[leader].as_ref().unwrap().client();
    let admin = via.clone().with_admin_token(ADMIN);
    let status = cluster.status(cluster.nodes[leader].as_ref().unwrap());
    let victim = followers[0];
    let victim_id = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_u64().unwrap())
        .find(|id| cluster.index_of(&status, *id) == victim)
        .unwrap();
    // A chunk one of whose two copies is on the victim.
    let mut chunk = None;
    for i in 0..50u32 {
        let bytes = format!("replicated {i}").into_bytes();
        let (hash, _) = via.put_chunk(&demo(), bytes).await.unwrap();
        if admin
            .replicas(&demo(), &hash)
            .await
            .unwrap()
            .node_ids
            .contains(&victim_id)
        {
            chunk = Some(hash);
            break;
        }
    }
    let chunk = chunk.expect("some chunk lands on the victim");
    let w = ChainWriter::generate(demo());
    via.create_chain(&demo(), w.public_key()).await.unwrap();
    cluster.nodes[victim].take().unwrap().kill_9();

    let (request, _) = w.sign(0, w.genesis(), b"refers to the chunk", vec![chunk]);
    let refused = via
        .append(&demo(), &w.chain_id(), &request)
        .await
        .unwrap_err();
    // One copy answers; the other holder cannot be asked: not known to be fully replicated.
    assert_eq!(refused.code(), Some(ErrorCode::Unavailable), "{refused}");
    // Once the victim is down past --down-after, repair makes a second copy elsewhere.
    let started = Instant::now();
    append_once_replicated(&via, &w, &request, started).await;

    // One node left: no second copy is possible, so nothing is acknowledged.
    let second = followers[1];
    cluster.nodes[second].take().unwrap().kill_9();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let put = via
        .put_chunk(&demo(), b"only one node could hold this".to_vec())
        .await
        .unwrap_err();
    assert_eq!(put.code(), Some(ErrorCode::Unavailable), "{put}");
}

/// A holder that was away while an append referenced its chunk (its copy long past the
/// staging TTL) does not collect the chunk when it comes back: garbage collection waits for a
/// read barrier, so the holder knows the reference first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_away_during_an_append_does_not_collect_the_chunk_afterwards() {
    let flags = [
        "--staging-ttl",
        "3s",
        "--write-timeout",
        "500ms",
        "--gc-interval",
        "200ms",
        // No repair: a copy collected by mistake would stay gone, so the test sees it.
        "--repair-interval",
        "1h",
    ];
    let mut cluster = Cluster::start(&flags);
    let (leader, followers) = cluster.leader_and_followers();
    let via = cluster.nodes[leader].as_ref().unwrap().client();
    let admin = via.clone().with_admin_token(ADMIN);
    let status = cluster.status(cluster.nodes[leader].as_ref().unwrap());
    let id_of = |index: usize| {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node_id"].as_u64().unwrap())
            .find(|id| cluster.index_of(&status, *id) == index)
            .unwrap()
    };
    let (away, away_id) = (followers[0], id_of(followers[0]));
    let mut chunk = None;
    for i in 0..50u32 {
        let bytes = format!("kept by the reference {i}").into_bytes();
        let (hash, _) = via.put_chunk(&demo(), bytes.clone()).await.unwrap();
        if admin
            .replicas(&demo(), &hash)
            .await
            .unwrap()
            .node_ids
            .contains(&away_id)
        {
            chunk = Some((hash, bytes));
            break;
        }
    }
    let (hash, bytes) = chunk.expect("some chunk lands on the follower");
    cluster.nodes[away].take().unwrap().kill_9();

    // Past the TTL, the chunk is uploaded again (to the live nodes) and referenced. The first
    // try may meet the 500 ms write deadline while the dead owner is being passed over on a
    // loaded machine: 503, nothing changed, retry (as a client does).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut tries = 0;
    while let Err(e) = via.put_chunk(&demo(), bytes.clone()).await {
        tries += 1;
        assert!(tries < 10, "the upload keeps failing: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let w = ChainWriter::generate(demo());
    via.create_chain(&demo(), w.public_key()).await.unwrap();
    let (request, _) = w.sign(0, w.genesis(), b"references the chunk", vec![hash]);
    via.append(&demo(), &w.chain_id(), &request).await.unwrap();
    let target = via.health().await.unwrap().last_log_index.unwrap();

    // Back, with a copy older than the TTL and a state that lags behind the append — and
    // with the leader paused, so catching up takes an election (many GC intervals).
    // (Same rpc address: without a leader the others could not learn a new one.)
    let away_rpc = cluster.status(cluster.nodes[leader].as_ref().unwrap())["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == away_id)
        .unwrap()["rpc_addr"]
        .as_str()
        .unwrap()
        .to_owned();
    signal(cluster.nodes[leader].as_ref().unwrap(), "-STOP");
    let data = cluster.dir.path().join(format!("n{}", away + 1));
    let mut args = vec!["--rpc-addr", &away_rpc, "--admin-token", ADMIN];
    args.extend(flags);
    let back = NodeProcess::start(&data, &args);
    let probe = back.client();
    applied_at_least(&probe, target).await;
    // Many GC passes later its copy is still there.
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(cluster.nodes[leader].as_ref().unwrap(), "-CONT");
    let held = back
        .client()
        .with_admin_token(ADMIN)
        .zone(&demo())
        .await
        .unwrap()
        .usage
        .chunks;
    let holders = admin.replicas(&demo(), &hash).await.unwrap().node_ids;
    assert!(
        holders.contains(&away_id),
        "the returning holder collected a referenced chunk: holders {holders:?}, it holds {held}"
    );
    cluster.nodes[away] = Some(back);
}

/// The leader dies and the operator force-removes it at once, through another node: the
/// command waits (saying for what) until a new leader answers, and every chunk is back on two
/// live nodes afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_leader_can_be_force_removed_at_once() {
    let mut cluster = Cluster::start(&["--repair-interval", "300ms"]);
    let clients = cluster.clients();
    let chunks = put_chunks(&clients, "outlives the leader", 60).await;
    let status = cluster.status(cluster.nodes[0].as_ref().unwrap());
    let leader_id = status["leader"].as_u64().unwrap();
    let (leader, followers) = cluster.leader_and_followers();
    // The server itself refuses a removal below three voters unless told (the CLI's check is
    // only a courtesy): over HTTP, to the leader, with the reason, and nothing changes.
    let admin = cluster.nodes[leader]
        .as_ref()
        .unwrap()
        .client()
        .with_admin_token(ADMIN);
    let follower_id = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_u64().unwrap())
        .find(|id| *id != leader_id)
        .unwrap();
    let refused = admin
        .remove_node(follower_id, true, false)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("would leave 2 member(s) able to vote"),
        "{refused}"
    );
    assert_eq!(admin.cluster().await.unwrap().members.len(), 3);
    cluster.nodes[leader].take().unwrap().kill_9();

    let via = cluster.nodes[followers[0]].as_ref().unwrap();
    // Two voters would be left: refused unless the operator says so, with the reason.
    let out = cli(via, &["remove", &leader_id.to_string(), "--force"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("would leave 2 member(s) able to vote")
            && stderr.contains("--below-three-voters"),
        "{stderr}"
    );
    let out = cli(
        via,
        &[
            "remove",
            &leader_id.to_string(),
            "--force",
            "--below-three-voters",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed (forced)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("transport"),
        "no raw transport errors: {stderr}"
    );
    let admin = via.client().with_admin_token(ADMIN);
    let members = admin.cluster().await.unwrap().members;
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.iter().all(|m| m.node_id != leader_id));
    assert_two_live_copies(&admin, &chunks, &[leader_id]).await;
}

/// The gateway token finds the members and nothing else: it cannot join, vote, send Raft
/// messages, forward commands, move chunks or change the membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_token_cannot_act_as_a_member() {
    use blindstore_rpc::v1::{
        chunks_client::ChunksClient, cluster_client::ClusterClient, raft_client::RaftClient,
        AddMemberRequest, ForwardRequest, GetChunkRequest, JoinRequest, MembersRequest,
        PutChunkRequest, RaftMessage,
    };
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("n1"), &["--rpc-addr", "127.0.0.1:0"]);
    let seed = node.rpc.clone().unwrap();
    let token = std::fs::read_to_string(dir.path().join("n1/gateway-token")).unwrap();
    let join = std::fs::read_to_string(dir.path().join("n1/join-token")).unwrap();
    assert_ne!(token.trim(), join.trim());
    assert_eq!(token.trim(), blindstore_rpc::gateway_token(join.trim()));
    let secret = blindstore_rpc::ClusterSecret::new(token.trim()).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{seed}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut cluster = ClusterClient::with_interceptor(channel.clone(), secret.attacher());
    let members = cluster
        .members(MembersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members.len(), 1, "looking up members is allowed");

    let denied = |status: tonic::Status| {
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    };
    denied(
        cluster
            .join(JoinRequest {
                node_id: 0,
                csr_pem: String::new(),
                feature_level: 0,
            })
            .await
            .unwrap_err(),
    );
    denied(
        cluster
            .add_member(AddMemberRequest {
                node_id: 9,
                rpc_addr: "127.0.0.1:1".into(),
                http_addr: "127.0.0.1:1".into(),
                feature_level: 0,
            })
            .await
            .unwrap_err(),
    );
    denied(
        cluster
            .version(blindstore_rpc::v1::VersionRequest {})
            .await
            .unwrap_err(),
    );
    denied(
        cluster
            .forward(ForwardRequest {
                command_record: vec![1],
            })
            .await
            .unwrap_err(),
    );
    let mut raft = RaftClient::with_interceptor(channel.clone(), secret.attacher());
    denied(
        raft.vote(RaftMessage { record: vec![1] })
            .await
            .unwrap_err(),
    );
    denied(
        raft.append_entries(RaftMessage { record: vec![1] })
            .await
            .unwrap_err(),
    );
    let mut chunks = ChunksClient::with_interceptor(channel, secret.attacher());
    denied(
        chunks
            .put(PutChunkRequest {
                zone: "demo".into(),
                hash: vec![0; 32],
                data: vec![],
                client_write: false,
                account: String::new(),
            })
            .await
            .unwrap_err(),
    );
    denied(
        chunks
            .get(GetChunkRequest {
                zone: "demo".into(),
                hash: vec![0; 32],
            })
            .await
            .unwrap_err(),
    );

    // Nor can a node join with it.
    join_fails(&dir.path().join("n2"), &seed, token.trim());
    let admin = node.admin_client(&dir.path().join("n1"));
    assert_eq!(admin.cluster().await.unwrap().members.len(), 1);
}

/// A chunk owner that is paused (alive but silent) does not hold up uploads: it is passed
/// over for the next node in rank order well within the write deadline, and the chunk still
/// gets its two copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_does_not_hold_up_uploads() {
    let mut cluster = Cluster::start(&[]);
    let (leader, followers) = cluster.leader_and_followers();
    let via = cluster.nodes[leader].as_ref().unwrap().client();
    let admin = via.clone().with_admin_token(ADMIN);
    let paused = cluster.nodes[followers[0]].as_ref().unwrap();
    signal(paused, "-STOP");
    let mut slowest = Duration::ZERO;
    let mut hashes = Vec::new();
    for i in 0..12u32 {
        let started = Instant::now();
        let (hash, _) = via
            .put_chunk(&demo(), format!("while an owner sleeps {i}").into_bytes())
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        hashes.push(hash);
    }
    assert!(
        slowest < Duration::from_secs(5),
        "slowest upload {slowest:?}"
    );
    signal(cluster.nodes[followers[0]].as_ref().unwrap(), "-CONT");
    for hash in &hashes {
        assert!(admin.replicas(&demo(), hash).await.unwrap().node_ids.len() >= 2);
    }
    cluster.nodes[leader].take();
}

/// A session built from what `login/finish` returned.
pub(crate) fn session_of(new: blindstore_types::api::NewSession) -> blindstore_client::Session {
    blindstore_client::Session::new(demo(), new, Vec::new())
}

/// Logs in with the login started on `start` and finished on `finish`.
pub(crate) async fn login_across(
    start: &Client,
    finish: &Client,
    account: &blindstore_types::account::AccountId,
    password: &[u8],
) -> blindstore_client::Result<blindstore_client::Session> {
    let (state, request) = blindstore_auth::client::start_login(password)?;
    let started = start.login_start(&demo(), account, &request, None).await?;
    let done = state.finish(password, &started.login_response)?;
    let new = finish
        .login_finish(&demo(), &started.login_ticket, &done.message, "across")
        .await?;
    Ok(session_of(new))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_work_across_nodes_through_a_leader_loss_and_restarts() {
    let mut cluster = Cluster::start(&[]);
    let clients = cluster.clients();
    let alice = blindstore_types::account::AccountId::new("alice").unwrap();
    clients[0]
        .register(&demo(), &alice, b"alice's password")
        .await
        .unwrap();
    // A login started on one node finishes on another.
    let before = login_across(&clients[0], &clients[1], &alice, b"alice's password")
        .await
        .unwrap();
    assert_eq!(
        clients[2].sessions(&before).await.unwrap().sessions.len(),
        1
    );

    // The leader dies between registration and the next login.
    let (leader, followers) = cluster.leader_and_followers();
    let leader_dir = cluster.dir.path().join(format!("n{}", leader + 1));
    cluster.nodes[leader].take().unwrap().kill_9();
    let (a, b) = (
        cluster.nodes[followers[0]].as_ref().unwrap().client(),
        cluster.nodes[followers[1]].as_ref().unwrap().client(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        match login_across(&a, &b, &alice, b"alice's password").await {
            Ok(session) => break session,
            Err(e) if Instant::now() < deadline && e.code() != Some(ErrorCode::InvalidLogin) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("no login within 30 s of losing the leader: {e}"),
        }
    };
    // A revoked session is refused on every node as soon as the revocation returns.
    assert_eq!(a.logout(&after).await.unwrap(), 1);
    for client in [&a, &b] {
        let refused = client.sessions(&after).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::InvalidSession));
    }
    assert!(b.sessions(&before).await.is_ok(), "only that session ended");

    // The dead node comes back (no --join needed) and knows the sessions made before and
    // during its absence.
    let args = ["--rpc-addr", "127.0.0.1:0", "--admin-token", ADMIN];
    cluster.nodes[leader] = Some(NodeProcess::start(&leader_dir, &args));
    let back = cluster.nodes[leader].as_ref().unwrap().client();
    eventually(
        Duration::from_secs(30),
        "the restarted node serves sessions",
        || {
            let (back, before) = (back.clone(), before.clone());
            async move { back.sessions(&before).await.is_ok() }
        },
    )
    .await;
    let refused = back.sessions(&after).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::InvalidSession));
}

/// Follows a chain's server-sent events on each of `urls` in turn, resuming on the next with
/// `Last-Event-ID` when a stream breaks; records every entry's (index, hash) until `target`
/// (0: not known yet) entries have arrived.
async fn follow_with_failover(
    urls: Vec<String>,
    chain: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(u64, String)>>>,
    target: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> usize {
    use futures::StreamExt;
    use std::sync::atomic::Ordering;
    let http = reqwest::Client::new();
    let mut reconnects = 0;
    // Like a browser's EventSource: reconnect a moment after a stream breaks or is refused
    // (no leader yet: 503), to the next node.
    for url in urls.iter().cycle().take(150) {
        if reconnects > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let last = seen.lock().unwrap().last().map(|(i, _)| i.to_string());
        let mut request = http.get(format!("{url}/v1/zones/demo/chains/{chain}/events"));
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let response = match request.send().await {
            Ok(response) if response.status().is_success() => response,
            _ => {
                reconnects += 1;
                continue;
            }
        };
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(bytes)) = body.next().await {
            buffer.push_str(std::str::from_utf8(&bytes).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                if !block.contains("event: entry") {
                    continue;
                }
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                let entry: Value = serde_json::from_str(data).unwrap();
                let index = entry["index"].as_u64().unwrap();
                let hash = entry["entry_hash"].as_str().unwrap().to_owned();
                seen.lock().unwrap().push((index, hash));
            }
            let target = target.load(Ordering::Relaxed);
            if target > 0 && seen.lock().unwrap().len() as u64 >= target {
                return reconnects;
            }
        }
        reconnects += 1;
    }
    reconnects
}

/// A client follows a chain through node A while a writer appends through the others; A is
/// killed; the client resumes on node B with `Last-Event-ID` and gets every entry exactly
/// once, in order, with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_stream_resumes_on_another_node_after_a_failover_with_nothing_lost_or_repeated() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let mut cluster = Cluster::start(&[]);
    let (leader, followers) = cluster.leader_and_followers();
    // Follow through the leader (the harshest loss), write through the followers.
    let urls = vec![
        cluster.nodes[leader].as_ref().unwrap().url.clone(),
        cluster.nodes[followers[0]].as_ref().unwrap().url.clone(),
    ];
    let writers_via: Vec<Client> = followers
        .iter()
        .map(|i| cluster.nodes[*i].as_ref().unwrap().client())
        .collect();
    let w = ChainWriter::generate(demo());
    writers_via[0]
        .create_chain(&demo(), w.public_key())
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let target = Arc::new(AtomicU64::new(0));
    let follower = tokio::spawn(follow_with_failover(
        urls,
        w.chain_id().to_hex(),
        seen.clone(),
        target.clone(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Acks = Arc::new(Mutex::new(Vec::new()));
    let writer = tokio::spawn(keep_appending(
        writers_via.clone(),
        w.clone(),
        acks.clone(),
        stop.clone(),
    ));

    eventually(Duration::from_secs(20), "the stream delivers", || async {
        seen.lock().unwrap().len() >= 20
    })
    .await;
    cluster.nodes[leader].take().unwrap().kill_9();
    let killed_at = seen.lock().unwrap().len();
    // Writes resume under a new leader, and the follower must see them through node B.
    eventually(
        Duration::from_secs(30),
        "entries after the failover",
        || async { seen.lock().unwrap().len() >= killed_at + 20 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let chain = writers_via[0].chain(&demo(), &w.chain_id()).await.unwrap();
    target.store(chain.length, Ordering::Relaxed);
    let reconnects = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .expect("the follower caught up with the chain")
        .unwrap();
    assert!(reconnects >= 1, "the stream broke when node A died");
    let entries = writers_via[0]
        .all_entries(&demo(), &w.chain_id())
        .await
        .unwrap();
    let expected: Vec<(u64, String)> = entries
        .iter()
        .map(|e| (e.index, e.entry_hash.to_hex()))
        .collect();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        expected.len(),
        "every entry exactly once ({} acknowledged appends)",
        acks.lock().unwrap().len()
    );
    assert_eq!(seen, expected, "in order, with no gap, matching the chain");
    for (index, hash) in acks.lock().unwrap().iter() {
        assert_eq!(
            seen[*index as usize].1,
            hash.to_hex(),
            "acknowledged entry {index}"
        );
    }
}

/// Writes a site of `files` files (and a `.gz` variant of one) into `dir`, marked `version`
/// in `index.html` and `version.txt`; returns each path with its expected type.
fn write_site(dir: &std::path::Path, files: usize, version: &str) -> Vec<(String, &'static str)> {
    let kinds = [
        ("js", "text/javascript; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("svg", "image/svg+xml; charset=utf-8"),
        ("json", "application/json; charset=utf-8"),
        ("png", "image/png"),
        ("txt", "text/plain; charset=utf-8"),
    ];
    let mut out = Vec::new();
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    for i in 0..files - 2 {
        let (ext, content_type) = kinds[i % kinds.len()];
        let path = format!("assets/file-{i}.a1b2c3d{i}.{ext}");
        std::fs::write(dir.join(&path), format!("file {i} of the site\n")).unwrap();
        out.push((path, content_type));
    }
    std::fs::write(
        dir.join("index.html"),
        format!("<!doctype html><title>{version}</title>"),
    )
    .unwrap();
    out.push(("index.html".into(), "text/html; charset=utf-8"));
    std::fs::write(dir.join("version.txt"), version).unwrap();
    out.push(("version.txt".into(), "text/plain; charset=utf-8"));
    std::fs::write(
        dir.join("assets/file-0.a1b2c3d0.js.gz"),
        b"\x1f\x8b fake gzip",
    )
    .unwrap();
    out
}

fn site_cli(via: &NodeProcess, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .arg("site")
        .args(args)
        .args(["--url", &via.url, "--admin-token", ADMIN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "site {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `site deploy` of 500 files to a three-node cluster: every node and a gateway serve every
/// file with its type and an ETag that is the hash of what they send; switching versions is
/// atomic — readers during the switches only ever see one whole version per answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployed_site_is_served_everywhere_and_switches_versions_atomically() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let cluster = Cluster::start(&[]);
    let gateway = cluster.start_gateway(&[]);
    let site = cluster.dir.path().join("dist");
    let files = write_site(&site, 500, "v1");
    let first = cluster.nodes[0].as_ref().unwrap();
    let out = site_cli(first, &["deploy", site.to_str().unwrap(), "--zone", "demo"]);
    assert!(out.contains("500 files"), "{out}");
    assert!(out.contains("published site version 1"), "{out}");

    let http = reqwest::Client::new();
    let mut servers: Vec<String> = cluster
        .nodes
        .iter()
        .flatten()
        .map(|n| n.url.clone())
        .collect();
    servers.push(gateway.url.clone());
    for base in &servers {
        for (path, content_type) in &files {
            let r = http
                .get(format!("{base}/sites/demo/{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{base} {path}");
            assert_eq!(r.headers()["content-type"], *content_type, "{base} {path}");
            let etag = r.headers()["etag"].to_str().unwrap().to_owned();
            let body = r.bytes().await.unwrap();
            assert_eq!(
                etag,
                format!("\"{}\"", Hash32::digest(&body)),
                "{base} {path}"
            );
            assert_eq!(
                body,
                std::fs::read(site.join(path)).unwrap(),
                "{base} {path}"
            );
        }
        let gz = http
            .get(format!("{base}/sites/demo/assets/file-0.a1b2c3d0.js"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        assert_eq!(gz.bytes().await.unwrap().as_ref(), b"\x1f\x8b fake gzip");
    }

    // Version 2 changes two files; the other 498 are not uploaded again.
    write_site(&site, 500, "v2");
    let out = site_cli(first, &["deploy", site.to_str().unwrap(), "--zone", "demo"]);
    assert!(out.contains("published site version 2"), "{out}");
    assert!(out.contains("uploaded 2 new chunks"), "{out}");

    // Readers on every server while the version switches back and forth.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = servers
        .iter()
        .map(|base| {
            let (http, stop) = (http.clone(), stop.clone());
            let url = format!("{base}/sites/demo/version.txt");
            tokio::spawn(async move {
                let mut seen = std::collections::BTreeSet::new();
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = http.get(&url).send().await.unwrap();
                    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
                    let body = r.bytes().await.unwrap();
                    assert_eq!(
                        etag,
                        format!("\"{}\"", Hash32::digest(&body)),
                        "one version per answer"
                    );
                    let body = String::from_utf8(body.to_vec()).unwrap();
                    assert!(body == "v1" || body == "v2", "{body}");
                    seen.insert(body);
                }
                seen
            })
        })
        .collect();
    for to in ["1", "2", "1"] {
        let out = site_cli(first, &["rollback", "--zone", "demo", "--to", to]);
        assert!(
            out.contains(&format!("site version {to} is current")),
            "{out}"
        );
        // Every server serves the switched-to version within moments.
        for base in &servers {
            let url = format!("{base}/sites/demo/version.txt");
            eventually(Duration::from_secs(5), "every server switched", || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    http.get(&url).send().await.unwrap().text().await.unwrap() == format!("v{to}")
                }
            })
            .await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let seen = reader.await.unwrap();
        assert!(!seen.is_empty());
    }
    let list = site_cli(first, &["list", "--zone", "demo"]);
    assert!(
        list.contains("*     1") && list.contains("      2"),
        "{list}"
    );
}

/// Tries `blindstore serve --join seed` with `token` on a fresh data dir; it must fail. Its
/// standard error.
fn join_fails(dir: &std::path::Path, seed: &str, token: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--rpc-addr",
            "127.0.0.1:0",
        ])
        .args(["--join", seed, "--join-token", token])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A cluster made with `--cluster-tls` runs its rpc over mutual TLS: the CA key stays with the
/// first node; joining nodes get a certificate the cluster signs for their node id; member
/// calls need such a certificate, and a message's sender must be the node it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_created_with_tls_runs_mutual_tls_with_certificates_it_issues() {
    use blindstore_rpc::tls::{client_config, ClusterCa, ClusterToken, NodeCert};
    use blindstore_rpc::v1::{HeldRequest, MembersRequest};

    // Only the first node is told; the CA's fingerprint travels in the join token.
    let mut cluster = Cluster::first(&["--cluster-tls"], &[]);
    let n1 = cluster.dir.path().join("n1");
    let token = std::fs::read_to_string(n1.join("join-token")).unwrap();
    let parsed = ClusterToken::parse(token.trim()).unwrap();
    let ca_pem = std::fs::read_to_string(n1.join("cluster-ca.pem")).unwrap();
    let key_pem = std::fs::read_to_string(n1.join("cluster-ca-key.pem")).unwrap();
    let ca = ClusterCa::from_pem(ca_pem.clone(), key_pem).unwrap();
    assert_eq!(parsed.ca, Some(ca.fingerprint()), "{token}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(n1.join("cluster-ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let seed = cluster.nodes[0].as_ref().unwrap().rpc.clone().unwrap();

    // A token naming another CA is refused before the secret is sent anywhere, and so is the
    // right secret without the fingerprint (plain gRPC to a TLS port).
    let other = ClusterCa::generate().unwrap();
    let forged = parsed.clone();
    let forged = ClusterToken {
        ca: Some(other.fingerprint()),
        ..forged
    };
    let stderr = join_fails(
        &cluster.dir.path().join("forged"),
        &seed,
        &forged.to_string(),
    );
    assert!(stderr.contains("does not present the CA"), "{stderr}");
    let stderr = join_fails(&cluster.dir.path().join("plain"), &seed, &parsed.secret);
    assert!(!stderr.contains("join refused"), "{stderr}");

    cluster.join_node();
    cluster.join_node();
    let mut certs = Vec::new();
    for (i, n) in ["n1", "n2", "n3"].iter().enumerate() {
        let dir = cluster.dir.path().join(n);
        assert_eq!(
            std::fs::read_to_string(dir.join("cluster-ca.pem")).unwrap(),
            ca_pem,
            "{n} keeps the cluster's CA certificate"
        );
        assert_eq!(
            dir.join("cluster-ca-key.pem").exists(),
            i == 0,
            "only the first node holds the CA key"
        );
        let cert = NodeCert::load(&dir, &ca_pem).unwrap().unwrap();
        assert_eq!(
            cert.node_id(),
            i as u64 + 1,
            "{n}'s certificate names its id"
        );
        certs.push(cert);
    }
    let status = cluster.status(cluster.nodes[2].as_ref().unwrap());
    assert_eq!(voters_and_leaders(&status), (3, 1, 3), "{status:#}");

    // Raft, forwarding and chunk replication all cross the TLS links.
    let clients = cluster.clients();
    let writer = ChainWriter::generate(demo());
    clients[1]
        .create_chain(&demo(), writer.public_key())
        .await
        .unwrap();
    let mut head = writer.genesis();
    for i in 0..9u64 {
        let (request, hash) = writer.sign(i, head, format!("tls {i}").as_bytes(), vec![]);
        clients[i as usize % 3]
            .append(&demo(), &writer.chain_id(), &request)
            .await
            .unwrap();
        head = hash;
    }
    for c in &clients {
        let entries = c.all_entries(&demo(), &writer.chain_id()).await.unwrap();
        assert_eq!(
            verify_entries(&demo(), writer.public_key(), writer.genesis(), &entries).unwrap(),
            head
        );
    }
    let chunks = put_chunks(&clients, "tls chunk", 12).await;
    let admin = clients[0].clone().with_admin_token(ADMIN);
    assert_two_live_copies(&admin, &chunks, &[]).await;

    // Every rpc port speaks TLS with a certificate from the cluster CA, and nothing in clear.
    // Member calls need a node certificate: the token alone is not enough.
    let secret = || blindstore_rpc::ClusterSecret::new(&parsed.secret).unwrap();
    for node in cluster.nodes.iter().flatten() {
        let rpc = node.rpc.clone().unwrap();
        let peers = blindstore_rpc::Peers::new(secret(), Some(client_config(&ca_pem, None)));
        let refused = peers
            .cluster(&rpc)
            .unwrap()
            .held(HeldRequest {})
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
        let member =
            blindstore_rpc::Peers::new(secret(), Some(client_config(&ca_pem, Some(&certs[1]))));
        member
            .cluster(&rpc)
            .unwrap()
            .held(HeldRequest {})
            .await
            .unwrap();
        let members = peers
            .cluster(&rpc)
            .unwrap()
            .members(MembersRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(members.members.len(), 3);
        let plain = blindstore_rpc::Peers::new(
            blindstore_rpc::ClusterSecret::new(&parsed.secret).unwrap(),
            None,
        );
        let refused = plain
            .cluster(&rpc)
            .unwrap()
            .members(MembersRequest {})
            .await
            .unwrap_err();
        // Cut off at the transport (the server wanted a TLS handshake), not by a service.
        let transport =
            std::error::Error::source(&refused).is_some_and(|e| e.is::<tonic::transport::Error>());
        assert!(transport, "{refused:?}");
        let strange =
            blindstore_rpc::Peers::new(secret(), Some(client_config(other.cert_pem(), None)));
        let untrusted = strange
            .cluster(&rpc)
            .unwrap()
            .members(MembersRequest {})
            .await
            .unwrap_err();
        let transport = std::error::Error::source(&untrusted)
            .is_some_and(|e| e.is::<tonic::transport::Error>());
        assert!(transport, "{untrusted:?}");
        // A certificate from another CA is refused in the handshake.
        let (csr, key) = blindstore_rpc::tls::node_request().unwrap();
        let forged =
            NodeCert::new(other.sign_node(2, &csr).unwrap(), key, other.cert_pem()).unwrap();
        let forger =
            blindstore_rpc::Peers::new(secret(), Some(client_config(&ca_pem, Some(&forged))));
        let refused = forger
            .cluster(&rpc)
            .unwrap()
            .held(HeldRequest {})
            .await
            .unwrap_err();
        assert_ne!(refused.code(), tonic::Code::Ok, "{refused:?}");
    }
    // Node 2's certificate cannot speak for node 1.
    let n1_rpc = cluster.nodes[0].as_ref().unwrap().rpc.clone().unwrap();
    let as_node2 = Some(client_config(&ca_pem, Some(&certs[1])));
    assert_eq!(
        vote_from(&n1_rpc, token.trim(), 2, as_node2.clone()).await,
        tonic::Code::Ok
    );
    assert_eq!(
        vote_from(&n1_rpc, token.trim(), 3, as_node2).await,
        tonic::Code::PermissionDenied
    );

    // A gateway with the gateway token (which names the CA too) finds the members over TLS.
    let gateway_token =
        std::fs::read_to_string(cluster.dir.path().join("n2/gateway-token")).unwrap();
    assert!(
        gateway_token
            .trim()
            .ends_with(&format!("@ca-sha256:{}", ca.fingerprint())),
        "{gateway_token}"
    );
    let gateway = cluster.start_gateway(&[]);
    let entries = gateway
        .client()
        .all_entries(&demo(), &writer.chain_id())
        .await
        .unwrap();
    assert_eq!(entries.len(), 9);

    // A member restarted on its data dir rejoins over TLS with the CA it kept.
    let (leader, followers) = cluster.leader_and_followers();
    let restarted = followers[0];
    cluster.nodes[restarted].take().unwrap().kill_9();
    let data = cluster.dir.path().join(format!("n{}", restarted + 1));
    let args = ["--rpc-addr", "127.0.0.1:0", "--admin-token", ADMIN];
    cluster.nodes[restarted] = Some(NodeProcess::start(&data, &args));
    let (request, _) = writer.sign(9, head, b"after the restart", vec![]);
    cluster.nodes[leader]
        .as_ref()
        .unwrap()
        .client()
        .append(&demo(), &writer.chain_id(), &request)
        .await
        .unwrap();
    let back = cluster.nodes[restarted].as_ref().unwrap().client();
    eventually(
        Duration::from_secs(20),
        "the restarted member serves the new entry",
        || {
            let back = back.clone();
            let chain = writer.chain_id();
            async move {
                back.all_entries(&demo(), &chain)
                    .await
                    .is_ok_and(|e| e.len() == 10)
            }
        },
    )
    .await;

    // The key holder signs for a member only its own renewal, and for a new id only when the
    // leader asks; never for another member's id.
    {
        use blindstore_rpc::v1::SignNodeRequest;
        // A member that neither holds the key nor leads asks.
        let (_, followers) = cluster.leader_and_followers();
        let asker = *followers.iter().find(|i| **i != 0).unwrap();
        let asker_id = asker as u64 + 1;
        let n2 =
            blindstore_rpc::Peers::new(secret(), Some(client_config(&ca_pem, Some(&certs[asker]))));
        let (csr, key) = blindstore_rpc::tls::node_request().unwrap();
        let sign = |node_id: u64| {
            let mut client = n2.cluster(&n1_rpc).unwrap();
            let csr_pem = csr.clone();
            async move { client.sign_node(SignNodeRequest { node_id, csr_pem }).await }
        };
        let renewed = sign(asker_id).await.unwrap().into_inner().cert_pem;
        assert_eq!(
            NodeCert::new(renewed, key, &ca_pem).unwrap().node_id(),
            asker_id
        );
        let other = sign(1).await.unwrap_err();
        assert_eq!(other.code(), tonic::Code::InvalidArgument, "{other:?}");
        let fresh = sign(99).await.unwrap_err();
        assert!(fresh.message().contains("only the leader"), "{fresh:?}");
    }

    // With another member leading, a joining node's certificate is still signed: the leader
    // has the member that holds the CA key sign it.
    let holder = cluster.nodes[0].as_ref().unwrap();
    signal(holder, "-STOP");
    let n2 = cluster.nodes[1]
        .as_ref()
        .unwrap()
        .client()
        .with_admin_token(ADMIN);
    eventually(Duration::from_secs(20), "another member leads", || {
        let n2 = n2.clone();
        async move {
            n2.cluster()
                .await
                .is_ok_and(|c| c.leader.is_some_and(|l| l != 1))
        }
    })
    .await;
    signal(cluster.nodes[0].as_ref().unwrap(), "-CONT");
    cluster.join_node();
    let dir4 = cluster.dir.path().join("n4");
    let cert = NodeCert::load(&dir4, &ca_pem).unwrap().unwrap();
    assert_eq!(cert.node_id(), 4);
    assert!(!dir4.join("cluster-ca-key.pem").exists());

    // With the key holder down, a join is refused with what to do, and nothing is reserved.
    cluster.nodes[0].take().unwrap().kill_9();
    eventually(
        Duration::from_secs(20),
        "a member other than the key holder leads",
        || {
            let n2 = n2.clone();
            async move {
                n2.cluster()
                    .await
                    .is_ok_and(|c| c.leader.is_some_and(|l| l != 1))
            }
        },
    )
    .await;
    let seed2 = cluster.nodes[1].as_ref().unwrap().rpc.clone().unwrap();
    let stderr = join_fails(&cluster.dir.path().join("orphan"), &seed2, token.trim());
    assert!(
        stderr.contains("no reachable member holds the cluster CA key"),
        "{stderr}"
    );
}

/// Raft entries are bounded by encoded bytes: 60 concurrent settings writes of ~600 KB each (an
/// entry of all of them would be more than a follower can receive) and 64 KiB envelope writes
/// of an account, all at once on a 3-node cluster, are each answered without a 5xx, and
/// writes go on at once afterwards. (A command too large for any entry is refused with 413
/// before it is proposed: `batcher::tests`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_writes_at_once_never_make_an_entry_followers_cannot_receive() {
    use blindstore_types::api::ZoneSettingsChange;
    let cluster = Cluster::start(&[]);
    let clients = cluster.clients();
    let alice = blindstore_types::account::AccountId::new("alice").unwrap();
    clients[0].register(&demo(), &alice, b"pw").await.unwrap();
    let session = clients[1].login(&demo(), &alice, b"pw", "").await.unwrap();

    let origins = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("https://app{i}.example.com"))
            .collect()
    };
    let change = |n: usize| ZoneSettingsChange {
        cors_origins: Some(origins(n)),
        ..Default::default()
    };
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..60 {
        let client = clients[i % 3].clone().with_admin_token(ADMIN);
        let change = change(22_000 + i);
        writes.spawn(async move {
            match client.set_zone_settings(&demo(), &change).await {
                Ok(_) => None,
                Err(e) => Some(format!("settings: {e}")),
            }
        });
    }
    for i in 0..16 {
        let client = clients[i % 3].clone();
        let session = session.clone();
        writes.spawn(async move {
            let name = format!("e{i}");
            match client
                .put_envelope(&session, &name, &[i as u8; 65_536], 0)
                .await
            {
                Ok(_) => None,
                Err(e) => Some(format!("envelope: {e}")),
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = writes.join_next().await {
        failures.extend(done.unwrap());
    }
    assert!(failures.is_empty(), "{failures:?}");

    // Writes go on at once.
    let w = ChainWriter::generate(demo());
    let started = Instant::now();
    clients[2]
        .create_chain(&demo(), w.public_key())
        .await
        .unwrap();
    let (request, _) = w.sign(0, w.genesis(), b"right after", vec![]);
    clients[1]
        .append(&demo(), &w.chain_id(), &request)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Every node applied the last settings write of the 60.
    for client in &clients {
        let client = client.clone().with_admin_token(ADMIN);
        let settings = client.zone(&demo()).await.unwrap().settings;
        assert!(settings.cors_origins.len() >= 22_000);
    }
}

/// A vote request from `candidate` to the member at `rpc`, with the cluster's secret; the
/// member's gRPC answer code. Term 0: an answer, never a change of the member's vote.
async fn vote_from(
    rpc: &str,
    token: &str,
    candidate: u64,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> tonic::Code {
    use blindstore_rpc::v1::{raft_client::RaftClient, RaftMessage};
    let token = blindstore_rpc::tls::ClusterToken::parse(token).unwrap();
    let secret = blindstore_rpc::ClusterSecret::new(&token.secret).unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(format!("{scheme}://{rpc}")).unwrap();
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let channel = endpoint.connect().await.unwrap();
    let record = blindstore_raft::vote_request_record(0, candidate);
    match RaftClient::with_interceptor(channel, secret.attacher())
        .vote(RaftMessage { record })
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

/// A removed node is out for good: left running it learns it was removed and refuses client
/// requests (503 `node_removed`, stated in its health); restarted on its data dir without
/// `--join` it is not added back; members refuse its Raft messages; its id is never reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_node_is_out_for_good() {
    removed_node_is_out_for_good(false).await;
}

/// The same on a cluster that runs mutual TLS: the removed node keeps its certificate (and the
/// token), and members refuse it by the node id the certificate names.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_node_is_out_for_good_with_its_certificate() {
    removed_node_is_out_for_good(true).await;
}

async fn removed_node_is_out_for_good(tls: bool) {
    let mut cluster = Cluster::first(
        if tls {
            &["--cluster-tls", "--name", "first-host"]
        } else {
            &["--name", "first-host"]
        },
        &[],
    );
    for _ in 0..3 {
        cluster.join_node();
    }
    let via = cluster.nodes[0].as_ref().unwrap();
    // Status says which process is which, and whether node-to-node calls run over TLS.
    let status = cluster.status(via);
    assert_eq!(status["rpc_tls"], tls, "{status}");
    let names: Vec<&str> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first-host", "-", "-", "-"], "{status}");
    let admin = via.client().with_admin_token(ADMIN);
    let token = std::fs::read_to_string(cluster.dir.path().join("n1/join-token")).unwrap();
    let member_rpc = via.rpc.clone().unwrap();
    // Node 4's own credentials, as its data dir holds them.
    let dir4 = cluster.dir.path().join("n4");
    let as_node4 = tls.then(|| {
        let ca = std::fs::read_to_string(dir4.join("cluster-ca.pem")).unwrap();
        let cert = blindstore_rpc::tls::NodeCert::load(&dir4, &ca)
            .unwrap()
            .unwrap();
        assert_eq!(cert.node_id(), 4);
        blindstore_rpc::tls::client_config(&ca, Some(&cert))
    });
    assert_eq!(
        vote_from(&member_rpc, token.trim(), 4, as_node4.clone()).await,
        tonic::Code::Ok
    );

    // Paused while it is removed, it cannot apply the removal: it learns it from a member.
    signal(cluster.nodes[3].as_ref().unwrap(), "-STOP");
    let out = cli(via, &["remove", "4", "--force"]);
    signal(cluster.nodes[3].as_ref().unwrap(), "-CONT");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let removed = cluster.nodes[3].as_ref().unwrap();
    let client = removed.client();
    eventually(
        Duration::from_secs(20),
        "node 4 knows it was removed",
        || {
            let client = client.clone();
            async move { client.health().await.is_ok_and(|h| h.removed) }
        },
    )
    .await;
    let bytes = b"sent to a removed node".to_vec();
    let refused = client.put_chunk(&demo(), bytes.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NodeRemoved), "{refused}");
    assert_eq!(client.health().await.unwrap().chunks_held, 0);
    // Its Raft messages are refused by the members.
    assert_eq!(
        vote_from(&member_rpc, token.trim(), 4, as_node4.clone()).await,
        tonic::Code::PermissionDenied
    );
    if tls {
        // Its certificate cannot speak for another node either.
        assert_eq!(
            vote_from(&member_rpc, token.trim(), 2, as_node4.clone()).await,
            tonic::Code::PermissionDenied
        );
    }

    // Restarted on its data dir (no --join): never added back, still refusing clients.
    cluster.nodes[3].take().unwrap().terminate();
    let args = ["--rpc-addr", "127.0.0.1:0", "--admin-token", ADMIN];
    let again = NodeProcess::start(&dir4, &args);
    let client = again.client();
    eventually(
        Duration::from_secs(20),
        "the restarted node knows it was removed",
        || {
            let client = client.clone();
            async move { client.health().await.is_ok_and(|h| h.removed) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        member_ids(&admin).await,
        vec![1, 2, 3],
        "node 4 was added back"
    );
    // The operator sees it in the status.
    let status = cluster.status(cluster.nodes[0].as_ref().unwrap());
    assert_eq!(status["removed"], serde_json::json!([4]), "{status}");
    let refused = client.put_chunk(&demo(), bytes.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NodeRemoved), "{refused}");
    assert_eq!(client.health().await.unwrap().chunks_held, 0);
    assert_eq!(
        vote_from(&member_rpc, token.trim(), 4, as_node4).await,
        tonic::Code::PermissionDenied
    );

    // A new node gets a new id, never 4.
    drop(again);
    cluster.join_node();
    assert_eq!(member_ids(&admin).await, vec![1, 2, 3, 5]);
}

async fn member_ids(admin: &Client) -> Vec<u64> {
    let members = admin.cluster().await.unwrap().members;
    members.iter().map(|m| m.node_id).collect()
}

/// A machine crash can lose a node's unsynced state commits and tear its state file (the state
/// store syncs in the background). Emulated on a follower: its state is marked as left open by
/// another boot and a page of it overwritten. It restarts while the other members are paused,
/// so it cannot learn the commit index: it sets the torn file aside, rebuilds from its current
/// snapshot and its log, and serves nothing it cannot vouch for — a read is refused or the
/// whole chain, never less — then the whole chain once current.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_state_a_machine_crash_tore_rebuilds_it_and_serves_nothing_stale() {
    let mut cluster = Cluster::start(&["--snapshot-logs", "8"]);
    let clients = cluster.clients();
    let w = ChainWriter::generate(demo());
    clients[0]
        .create_chain(&demo(), w.public_key())
        .await
        .unwrap();
    let mut head = w.genesis();
    for i in 0..20u64 {
        let (request, hash) = w.sign(i, head, b"before the power loss", vec![]);
        clients[0]
            .append(&demo(), &w.chain_id(), &request)
            .await
            .unwrap();
        head = hash;
    }
    let (leader, followers) = cluster.leader_and_followers();
    let f = followers[0];
    let target = clients[leader]
        .health()
        .await
        .unwrap()
        .last_applied
        .unwrap();
    applied_at_least(&clients[f], target).await;

    let dir = cluster.dir.path().join(format!("n{}", f + 1));
    cluster.nodes[f].take().unwrap().kill_9();
    assert!(
        dir.join("state/snapshots/current.snap").exists(),
        "the follower has a snapshot to rebuild from"
    );
    blindstore_storage::emulate_machine_crash(&dir.join("state")).unwrap();
    let others: Vec<usize> = (0..3).filter(|i| *i != f).collect();
    for i in &others {
        signal(cluster.nodes[*i].as_ref().unwrap(), "-STOP");
    }
    let args = ["--rpc-addr", "127.0.0.1:0", "--admin-token", ADMIN];
    cluster.nodes[f] = Some(NodeProcess::start(&dir, &args));
    let client = cluster.nodes[f].as_ref().unwrap().client();
    assert!(
        dir.join("state/data.mdb.unclean").exists(),
        "the torn state file was set aside"
    );
    for _ in 0..10 {
        match client.entries(&demo(), &w.chain_id(), 0, 100, true).await {
            Ok(page) => assert_eq!(page.entries.len(), 20, "only the whole chain"),
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::Unavailable), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in &others {
        signal(cluster.nodes[*i].as_ref().unwrap(), "-CONT");
    }
    eventually(Duration::from_secs(30), "the node is current again", || {
        let client = client.clone();
        let chain = w.chain_id();
        async move {
            client
                .entries(&demo(), &chain, 0, 100, true)
                .await
                .is_ok_and(|page| page.entries.len() == 20)
        }
    })
    .await;
}

/// `cluster rotate-token` on a plain cluster: members switch to the new token by themselves and
/// writes go on; past twice the grace the old token is refused (a join with it fails) and a new
/// node joins with the new one. A member down through the rotation is given the new token by
/// hand, as docs/operations.md says, and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_join_token() {
    join_token_rotation(false).await;
}

/// The same on a TLS cluster, where a member down through the rotation comes back by itself:
/// its certificate, not its old token, is what members check.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_join_token_with_tls() {
    join_token_rotation(true).await;
}

async fn join_token_rotation(tls: bool) {
    let mut cluster = Cluster::first(if tls { &["--cluster-tls"] } else { &[] }, &[]);
    cluster.join_node();
    cluster.join_node();
    let file = |n: usize, name: &str| {
        std::fs::read_to_string(cluster.dir.path().join(format!("n{n}/{name}")))
            .unwrap()
            .trim()
            .to_owned()
    };
    let old = file(1, "join-token");
    let old_gateway = file(1, "gateway-token");
    let writer = ChainWriter::generate(demo());
    let clients = cluster.clients();
    clients[0]
        .create_chain(&demo(), writer.public_key())
        .await
        .unwrap();
    let mut head = writer.genesis();
    let mut appended = 0u64;

    // Node 3 is down through the rotation.
    cluster.nodes[2].take().unwrap().terminate();
    let via = cluster.nodes[0].as_ref().unwrap();
    let out = cli(via, &["rotate-token", "--grace", "1s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let printed = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {stdout}"))
            .trim()
            .to_owned()
    };
    let new = printed("join token:");
    let new_gateway = printed("gateway token:");
    assert_ne!(new, old);
    assert_ne!(new_gateway, old_gateway);
    if tls {
        let suffix = old.split_once('@').unwrap().1;
        assert!(
            new.ends_with(suffix),
            "the new token names the same CA: {new}"
        );
    }
    // Members rewrite their token files.
    for n in [1, 2] {
        let dir = cluster.dir.path().join(format!("n{n}"));
        let (new, new_gateway) = (new.clone(), new_gateway.clone());
        eventually(
            Duration::from_secs(10),
            "a member rewrites its token files",
            move || {
                let dir = dir.clone();
                let (new, new_gateway) = (new.clone(), new_gateway.clone());
                async move {
                    let read = |name: &str| {
                        std::fs::read_to_string(dir.join(name))
                            .map(|t| t.trim().to_owned())
                            .unwrap_or_default()
                    };
                    read("join-token") == new && read("gateway-token") == new_gateway
                }
            },
        )
        .await;
    }
    // Writes go on during the grace and after the old token died (through node 2: forwarded).
    for _ in 0..2 {
        let (request, hash) = writer.sign(appended, head, b"around a rotation", vec![]);
        clients[1]
            .append(&demo(), &writer.chain_id(), &request)
            .await
            .unwrap();
        head = hash;
        appended += 1;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }

    // The old token no longer joins anything; the new one does.
    let seed = via.rpc.clone().unwrap();
    let stderr = join_fails(&cluster.dir.path().join("stale"), &seed, &old);
    assert!(stderr.contains("wrong cluster secret"), "{stderr}");
    if !tls {
        let rpc = via.rpc.clone().unwrap();
        assert_eq!(
            vote_from(&rpc, &old, 2, None).await,
            tonic::Code::Unauthenticated
        );
        assert_eq!(vote_from(&rpc, &new, 2, None).await, tonic::Code::Ok);
    }

    // The member that was down: on a TLS cluster it comes back as it is; on a plain one it is
    // given the new token by hand (its old join-token file removed).
    let dir3 = cluster.dir.path().join("n3");
    let mut args = vec!["--rpc-addr", "127.0.0.1:0", "--admin-token", ADMIN];
    if !tls {
        std::fs::remove_file(dir3.join("join-token")).unwrap();
        args.extend(["--join-token", new.as_str()]);
    }
    cluster.nodes[2] = Some(NodeProcess::start(&dir3, &args));
    let back = cluster.nodes[2].as_ref().unwrap().client();
    eventually(
        Duration::from_secs(30),
        "the member down through the rotation serves the new entries",
        || {
            let back = back.clone();
            let chain = writer.chain_id();
            async move {
                back.all_entries(&demo(), &chain)
                    .await
                    .is_ok_and(|e| e.len() as u64 == appended)
            }
        },
    )
    .await;
    eventually(Duration::from_secs(10), "it keeps the new token", || {
        let path = dir3.join("join-token");
        let new = new.clone();
        async move { std::fs::read_to_string(path).is_ok_and(|t| t.trim() == new) }
    })
    .await;
    cluster.join_node();
    let admin = cluster.nodes[0]
        .as_ref()
        .unwrap()
        .client()
        .with_admin_token(ADMIN);
    assert_eq!(member_ids(&admin).await, vec![1, 2, 3, 4]);
}

/// A join that fails (here: a truncated token) says why and leaves the empty data dir empty,
/// so the same command with the right token then works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_join_names_the_cause_and_leaves_the_data_dir_as_it_was() {
    let cluster = Cluster::first(&[], &[]);
    let seed = cluster.nodes[0].as_ref().unwrap().rpc.clone().unwrap();
    let token = std::fs::read_to_string(cluster.dir.path().join("n1/join-token")).unwrap();
    let token = token.trim();
    let data = cluster.dir.path().join("n2");
    let join = |token: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
            .args([
                "serve",
                "--http-addr",
                "127.0.0.1:0",
                "--rpc-addr",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data)
            .args(["--join", &seed, "--join-token", token])
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    };
    let out = join(&token[..40]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("does not accept this join token") && stderr.contains("empty again"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0, "nothing kept");

    let node = NodeProcess::start(
        &data,
        &[
            "--rpc-addr",
            "127.0.0.1:0",
            "--join",
            &seed,
            "--join-token",
            token,
        ],
    );
    let admin = cluster.nodes[0]
        .as_ref()
        .unwrap()
        .client()
        .with_admin_token(ADMIN);
    eventually(Duration::from_secs(30), "two members", || {
        let admin = admin.clone();
        async move { admin.cluster().await.is_ok_and(|m| m.members.len() == 2) }
    })
    .await;
    drop(node);
}
