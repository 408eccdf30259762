use std::time::{Duration, Instant};

use blindstore_client::ChainWriter;
use blindstore_cluster::{AppendInput, Consistency, Node, NodeConfig, ReadEntries};
use blindstore_types::command::FEATURE_LEVEL;
use blindstore_types::{Hash32, ZoneId};
use tokio::net::TcpListener;

const SECRET: &str = "in-process-cluster-secret-0123";

fn demo() -> ZoneId {
    ZoneId::new("demo").unwrap()
}

/// A node's configuration for these tests: fast repair, GC only when asked.
fn config(dir: &std::path::Path, rpc_addr: String, join: Option<String>) -> NodeConfig {
    NodeConfig {
        http_addr: "127.0.0.1:1".into(),
        rpc_addr,
        join,
        down_after: Duration::from_millis(500),
        repair_interval: Duration::from_millis(200),
        write_timeout: Duration::from_secs(5),
        ..NodeConfig::small(dir, SECRET)
    }
}

struct Cluster {
    nodes: Vec<Node>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// Three nodes: the first bootstraps, the others join through it.
    async fn start() -> Cluster {
        Self::start_with(|_| {}).await
    }

    /// Like [`Cluster::start`], each node's configuration changed by `tweak`.
    async fn start_with(tweak: impl Fn(&mut NodeConfig)) -> Cluster {
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        let mut seed = None;
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let mut config = config(dir.path(), addr.clone(), seed.clone());
            tweak(&mut config);
            let node = Node::start(config, Some(listener)).await.unwrap();
            if seed.is_none() {
                node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
                node.zones().create_zone(demo()).await.unwrap();
                seed = Some(addr);
            }
            nodes.push(node);
            dirs.push(dir);
        }
        Cluster { nodes, _dirs: dirs }
    }

    fn leader(&self) -> usize {
        let id = self.nodes[0].members().leader.expect("a leader");
        self.nodes
            .iter()
            .position(|n| n.health().node_id == id)
            .unwrap()
    }

    fn followers(&self) -> Vec<usize> {
        let leader = self.leader();
        (0..self.nodes.len()).filter(|i| *i != leader).collect()
    }
}

async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn append_input(
    w: &ChainWriter,
    index: u64,
    prev: Hash32,
    payload: &[u8],
) -> (AppendInput, Hash32) {
    let (request, hash) = w.sign(index, prev, payload, vec![]);
    let input = AppendInput {
        index,
        prev,
        payload: payload.to_vec(),
        chunks: request.chunks,
        signature: request.signature,
    };
    (input, hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_followers_are_forwarded_and_follower_reads_are_linearizable() {
    let cluster = Cluster::start().await;
    let followers = cluster.followers();
    let w = ChainWriter::generate(demo());
    let (created, _) = cluster.nodes[followers[0]]
        .chains()
        .create_chain(&demo(), *w.public_key(), None)
        .await
        .unwrap();
    assert!(
        created,
        "created through a follower (forwarded to the leader)"
    );
    let mut prev = w.genesis();
    for i in 0..10u64 {
        let via = &cluster.nodes[followers[(i % 2) as usize]];
        let (input, hash) = append_input(&w, i, prev, format!("entry {i}").as_bytes());
        via.chains()
            .append(&demo(), &w.chain_id(), input)
            .await
            .unwrap();
        prev = hash;
        // The other follower sees it at once: a linearizable read waits for the read index.
        let other = &cluster.nodes[followers[((i + 1) % 2) as usize]];
        let head = other
            .chains()
            .chain(&demo(), &w.chain_id(), Consistency::Linearizable)
            .await
            .unwrap();
        assert_eq!((head.length, head.head), (i + 1, hash));
    }
    let page = cluster.nodes[cluster.leader()]
        .chains()
        .entries(
            &demo(),
            &w.chain_id(),
            ReadEntries::Last(3),
            Consistency::Linearizable,
        )
        .await
        .unwrap();
    assert_eq!(
        page.entries
            .iter()
            .map(|(h, _)| h.index)
            .collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    for node in &cluster.nodes {
        node.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repair_restores_two_copies_after_a_node_stops() {
    let cluster = Cluster::start().await;
    let mut hashes = Vec::new();
    for i in 0..40u32 {
        let bytes = format!("in-process chunk {i}").into_bytes();
        let hash = Hash32::digest(&bytes);
        cluster.nodes[(i % 3) as usize]
            .chunks()
            .put_chunk(&demo(), hash, bytes, None)
            .await
            .unwrap();
        hashes.push(hash);
    }
    for hash in &hashes {
        assert_eq!(
            cluster.nodes[0]
                .chunks()
                .replicator()
                .replicas(&demo(), hash)
                .await
                .unwrap()
                .len(),
            2
        );
    }
    // A follower stops; after --down-after every chunk is on both live nodes.
    let gone = cluster.followers()[1];
    let gone_id = cluster.nodes[gone].health().node_id;
    cluster.nodes[gone].shutdown(Duration::from_secs(5)).await;
    let live: Vec<&Node> = (0..3)
        .filter(|i| *i != gone)
        .map(|i| &cluster.nodes[i])
        .collect();
    eventually(
        Duration::from_secs(30),
        "two live copies of every chunk",
        || async {
            for hash in &hashes {
                let holders = live[0]
                    .chunks()
                    .replicator()
                    .replicas(&demo(), hash)
                    .await
                    .unwrap();
                if holders.len() != 2 || holders.contains(&gone_id) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    for node in live {
        node.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_collection_removes_unreferenced_chunks_everywhere_and_keeps_referenced_ones() {
    // A 1 s staging TTL (the passes are run by hand below); repair runs every 200 ms and must
    // not bring back what a pass on one owner deleted while the other owner still has it.
    // Payloads stored as chunks (as larger payloads are), so the payload's chunk is checked too.
    let cluster = Cluster::start_with(|c| {
        c.staging_ttl = Duration::from_secs(1);
        c.limits.inline_payload_bytes = 0;
    })
    .await;
    let via = &cluster.nodes[cluster.leader()];
    let loose = b"never referenced".to_vec();
    let kept = b"referenced by an entry".to_vec();
    for bytes in [&loose, &kept] {
        via.chunks()
            .put_chunk(&demo(), Hash32::digest(bytes), bytes.clone(), None)
            .await
            .unwrap();
    }
    let w = ChainWriter::generate(demo());
    via.chains()
        .create_chain(&demo(), *w.public_key(), None)
        .await
        .unwrap();
    let (request, _) = w.sign(0, w.genesis(), b"payload", vec![Hash32::digest(&kept)]);
    let input = AppendInput {
        index: 0,
        prev: w.genesis(),
        payload: b"payload".to_vec(),
        chunks: request.chunks,
        signature: request.signature,
    };
    via.chains()
        .append(&demo(), &w.chain_id(), input)
        .await
        .unwrap();
    // Past a 1 s staging TTL, a pass on every node (each after its read barrier).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for node in &cluster.nodes {
        node.chunks()
            .replicator()
            .collect_garbage(Duration::from_secs(1))
            .await
            .unwrap();
    }
    assert!(via
        .chunks()
        .replicator()
        .replicas(&demo(), &Hash32::digest(&loose))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        via.chunks()
            .replicator()
            .replicas(&demo(), &Hash32::digest(&kept))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        via.chunks()
            .replicator()
            .replicas(&demo(), &Hash32::digest(b"payload"))
            .await
            .unwrap()
            .len(),
        2,
        "payloads are referenced too"
    );
    for node in &cluster.nodes {
        node.shutdown(Duration::from_secs(5)).await;
    }
}

/// Two admins at once, through two followers, give one site host to two zones: exactly one
/// wins each time (the host is checked where the change is applied, not only on the node that
/// proposes it), and every node then maps the host to the winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_zones_cannot_both_claim_a_site_host_through_two_nodes() {
    use blindstore_types::api::ZoneSettingsChange;
    let cluster = Cluster::start().await;
    let (a, b) = (ZoneId::new("a").unwrap(), ZoneId::new("b").unwrap());
    cluster.nodes[0]
        .zones()
        .create_zone(a.clone())
        .await
        .unwrap();
    cluster.nodes[0]
        .zones()
        .create_zone(b.clone())
        .await
        .unwrap();
    let claim = |hosts: Vec<String>| ZoneSettingsChange {
        site_hosts: Some(hosts),
        ..Default::default()
    };
    for round in 0..20 {
        let host = format!("race{round}.example.com");
        let (na, nb) = (cluster.nodes[1].clone(), cluster.nodes[2].clone());
        let (ca, cb) = (claim(vec![host.clone()]), claim(vec![host.clone()]));
        let (za, zb) = (a.clone(), b.clone());
        let first = tokio::spawn(async move { na.zones().set_zone_settings(&za, &ca).await });
        let second = tokio::spawn(async move { nb.zones().set_zone_settings(&zb, &cb).await });
        let (ra, rb) = (first.await.unwrap(), second.await.unwrap());
        assert!(
            ra.is_ok() != rb.is_ok(),
            "round {round}: exactly one must win: {ra:?} {rb:?}"
        );
        let winner = if ra.is_ok() { &a } else { &b };
        let loser = ra.err().or(rb.err()).unwrap();
        assert!(
            loser
                .to_string()
                .contains(&format!("belongs to zone {winner}")),
            "{loser}"
        );
        for node in &cluster.nodes {
            eventually(Duration::from_secs(5), "every node maps the host", || {
                let found = node.zones().zone_for_host(&host).unwrap();
                async move { found.as_ref() == Some(winner) }
            })
            .await;
        }
        for zone in [&a, &b] {
            cluster.nodes[0]
                .zones()
                .set_zone_settings(zone, &claim(vec![]))
                .await
                .unwrap();
        }
    }
}

/// Copies a stopped node's data dir.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), target).unwrap();
        }
    }
}

/// Stops node `i` and starts it again at feature `level`, on its data and address. Its files
/// move to a new folder first: in one process a stopped node's stores stay open as long as a
/// handle to them lives, and LMDB opens an environment once.
async fn restart(
    nodes: &mut [Node],
    dirs: &mut [tempfile::TempDir],
    addrs: &[String],
    i: usize,
    level: u32,
) {
    nodes[i].shutdown(Duration::from_secs(5)).await;
    let moved = tempfile::tempdir().unwrap();
    copy_dir(dirs[i].path(), moved.path());
    dirs[i] = moved;
    let listener = TcpListener::bind(&addrs[i]).await.unwrap();
    let config = NodeConfig {
        feature_level: level,
        ..config(dirs[i].path(), addrs[i].clone(), None)
    };
    nodes[i] = Node::start(config, Some(listener)).await.unwrap();
}

/// The position of the node every node names as leader, once they agree.
async fn leader_index(nodes: &[Node]) -> usize {
    let mut found = None;
    eventually(Duration::from_secs(20), "one leader known to all", || {
        let leaders: Vec<Option<u64>> = nodes.iter().map(|n| n.members().leader).collect();
        found = leaders[0]
            .filter(|l| leaders.iter().all(|x| *x == Some(*l)))
            .and_then(|l| nodes.iter().position(|n| n.health().node_id == l));
        std::future::ready(found.is_some())
    })
    .await;
    found.unwrap()
}

/// A rolling upgrade in one process: nodes that play an older build (feature level 1) are
/// restarted one at a time as the current build. The cluster's version stays at 1 while any
/// member is older, then moves, and the cluster gets its id; afterwards an older build can
/// neither join nor start on a member's data dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_version_moves_only_once_every_member_runs_the_newer_build() {
    let old = |dir: &std::path::Path, addr: &str, seed: Option<String>| NodeConfig {
        feature_level: 1,
        ..config(dir, addr.to_owned(), seed)
    };
    let mut dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut addrs = Vec::new();
    let mut nodes = Vec::new();
    for dir in &dirs {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let node = Node::start(
            old(dir.path(), &addr, addrs.first().cloned()),
            Some(listener),
        )
        .await
        .unwrap();
        if addrs.is_empty() {
            node.wait_for_leader(Duration::from_secs(10)).await.unwrap();
            node.zones().create_zone(demo()).await.unwrap();
        }
        addrs.push(addr);
        nodes.push(node);
    }
    let w = ChainWriter::generate(demo());
    nodes[0]
        .chains()
        .create_chain(&demo(), *w.public_key(), None)
        .await
        .unwrap();
    let mut prev = w.genesis();
    let mut length = 0u64;
    // One append through each node: the cluster writes at every step of the upgrade.
    let mut append_everywhere = async |nodes: &[Node]| {
        for node in nodes {
            let (input, hash) = append_input(&w, length, prev, b"during the upgrade");
            node.chains()
                .append(&demo(), &w.chain_id(), input)
                .await
                .unwrap();
            (length, prev) = (length + 1, hash);
        }
    };
    append_everywhere(&nodes).await;
    let versions = |nodes: &[Node]| -> Vec<(u32, Option<String>)> {
        nodes
            .iter()
            .map(|n| (n.health().cluster_version, n.health().cluster_id))
            .collect()
    };
    assert_eq!(versions(&nodes), vec![(1, None); 3]);

    // Replaced one at a time: stopped, then started as the current build on the same data and
    // address. The leader goes first while it runs the older build: a leader change each time.
    for step in 0..3 {
        let leader = leader_index(&nodes).await;
        let i = if nodes[leader].health().feature_level == 1 {
            leader
        } else {
            (0..3)
                .find(|i| nodes[*i].health().feature_level == 1)
                .unwrap()
        };
        restart(&mut nodes, &mut dirs, &addrs, i, FEATURE_LEVEL).await;
        assert_eq!(nodes[i].health().feature_level, FEATURE_LEVEL);
        append_everywhere(&nodes).await;
        if step == 1 {
            // The check means something only with a newer build leading: if the one older
            // member leads, it restarts (still older) and a newer one takes over.
            let leader = leader_index(&nodes).await;
            if nodes[leader].health().feature_level == 1 {
                restart(&mut nodes, &mut dirs, &addrs, leader, 1).await;
            }
            let leader = leader_index(&nodes).await;
            assert_eq!(nodes[leader].health().feature_level, FEATURE_LEVEL);
            // Several of the leader's checks pass; a member still runs the older build.
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(
                versions(&nodes),
                vec![(1, None); 3],
                "the version waits for the last older member"
            );
            append_everywhere(&nodes).await;
        }
    }
    eventually(
        Duration::from_secs(20),
        "every node at the build's version with one cluster id",
        || async {
            let v = versions(&nodes);
            v[0].0 == FEATURE_LEVEL && v[0].1.is_some() && v.iter().all(|x| *x == v[0])
        },
    )
    .await;
    append_everywhere(&nodes).await;

    // An older build is refused a join, saying why, and leaves no member behind.
    let late = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let refused = Node::start(
        old(late.path(), &addr, Some(addrs[0].clone())),
        Some(listener),
    )
    .await
    .err()
    .expect("an older build's join is refused");
    let said = refused.to_string();
    assert!(
        said.contains("build of feature level 1")
            && said.contains(&format!("runs version {FEATURE_LEVEL}")),
        "{said}"
    );
    assert_eq!(nodes[0].members().members.len(), 3);

    // Nor does an older build start on a member's data dir.
    let last = 0;
    nodes[last].shutdown(Duration::from_secs(5)).await;
    let moved = tempfile::tempdir().unwrap();
    copy_dir(dirs[last].path(), moved.path());
    let listener = TcpListener::bind(&addrs[last]).await.unwrap();
    let refused = Node::start(old(moved.path(), &addrs[last], None), Some(listener))
        .await
        .err()
        .expect("an older build refuses a data dir of a newer cluster");
    assert!(
        refused
            .to_string()
            .contains(&format!("a cluster at version {FEATURE_LEVEL}")),
        "{refused}"
    );
    for node in nodes {
        node.shutdown(Duration::from_secs(5)).await;
    }
}
