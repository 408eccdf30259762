//! Three replicators in one process, each with its own stores and its Chunks service on a
//! port-0 listener, seen through a fake [`ClusterView`]: the replication crate works with
//! nothing of the node but that interface.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use blindstore_replication::{
    ChunkError, ClusterView, ReplicationConfig, Replicator, Schedule, ScrubConfig, Writer,
};
use blindstore_rpc::{ClusterSecret, Peers};
use blindstore_storage::{ChunkStore, StateMachineStore};
use blindstore_types::raft::{NodeId, NodeInfo};
use blindstore_types::{Hash32, ZoneId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "replication-test-secret";

/// A fixed membership and a read barrier that can be made to fail.
struct FakeView {
    members: Vec<(NodeId, NodeInfo)>,
    barrier_ok: Arc<AtomicBool>,
}

impl ClusterView for FakeView {
    fn storage_members(&self) -> Vec<(NodeId, NodeInfo)> {
        self.members.clone()
    }

    fn read_barrier(&self) -> Pin<Box<dyn Future<Output = Result<(), ChunkError>> + Send + '_>> {
        let ok = self.barrier_ok.load(Ordering::SeqCst);
        Box::pin(async move {
            ok.then_some(())
                .ok_or_else(|| ChunkError::Unavailable("no leader".into()))
        })
    }
}

struct Trio {
    nodes: Vec<Replicator>,
    barrier_ok: Arc<AtomicBool>,
    shutdown: CancellationToken,
    _dirs: Vec<tempfile::TempDir>,
}

impl Drop for Trio {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn trio(staging_ttl: Duration) -> Trio {
    let secret = ClusterSecret::new(SECRET).unwrap();
    let mut listeners = Vec::new();
    let mut members = Vec::new();
    for id in 1..=3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let info = NodeInfo {
            rpc_addr: listener.local_addr().unwrap().to_string(),
            http_addr: String::new(),
        };
        members.push((id, info));
        listeners.push(listener);
    }
    let barrier_ok = Arc::new(AtomicBool::new(true));
    let shutdown = CancellationToken::new();
    let (mut nodes, mut dirs) = (Vec::new(), Vec::new());
    for (listener, (id, _)) in listeners.into_iter().zip(&members) {
        let dir = tempfile::tempdir().unwrap();
        let chunks = ChunkStore::open(&dir.path().join("chunks"), 64 << 20).unwrap();
        let state = StateMachineStore::open(&dir.path().join("state"), 64 << 20).unwrap();
        let config = ReplicationConfig {
            id: *id,
            replication: 2,
            down_after: Duration::from_secs(60),
            write_timeout: Duration::from_secs(5),
            staging_ttl,
            data_dir: dir.path().to_path_buf(),
            min_free_bytes: 0,
            cache_bytes: 0,
        };
        let view = FakeView {
            members: members.clone(),
            barrier_ok: barrier_ok.clone(),
        };
        let node = Replicator::new(
            config,
            chunks,
            state,
            Peers::new(secret.clone(), None),
            Box::new(view),
        );
        let service = tonic::service::interceptor::InterceptedService::new(
            node.rpc_service(),
            secret.checker(),
        );
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop.cancelled())
                .await
                .unwrap();
        });
        nodes.push(node);
        dirs.push(dir);
    }
    Trio {
        nodes,
        barrier_ok,
        shutdown,
        _dirs: dirs,
    }
}

fn zone() -> ZoneId {
    ZoneId::new("demo").unwrap()
}

/// Which of the three hold a local copy.
fn holders(trio: &Trio, hash: &Hash32) -> Vec<NodeId> {
    (1..=3u64)
        .zip(&trio.nodes)
        .filter(|(_, n)| n.local().len(&zone(), hash).unwrap().is_some())
        .map(|(id, _)| id)
        .collect()
}

#[tokio::test]
async fn a_chunk_lands_on_its_two_owners_and_is_readable_from_the_third() {
    let trio = trio(Duration::from_secs(3600)).await;
    for i in 0..20u32 {
        let bytes = format!("chunk {i}").into_bytes();
        let hash = Hash32::digest(&bytes);
        // Stored through whichever node: always on the owners, never elsewhere.
        let via = &trio.nodes[i as usize % 3];
        assert!(via
            .store(&zone(), hash, bytes.clone(), &Writer::Client(None))
            .await
            .unwrap());
        let mut owners = via.owners(&zone(), &hash);
        owners.sort();
        assert_eq!(holders(&trio, &hash), owners, "chunk {i}");
        assert_eq!(via.replicas(&zone(), &hash).await.unwrap(), owners);
        for node in &trio.nodes {
            assert_eq!(node.fetch(&zone(), &hash).await.unwrap(), bytes);
        }
    }
    let wrong = trio.nodes[0]
        .store(
            &zone(),
            Hash32::digest(b"other"),
            b"bytes".to_vec(),
            &Writer::Client(None),
        )
        .await;
    assert!(
        matches!(wrong, Err(ChunkError::HashMismatch { .. })),
        "{wrong:?}"
    );
}

#[tokio::test]
async fn repair_restores_a_lost_copy_from_the_co_owner() {
    let trio = trio(Duration::from_secs(3600)).await;
    let bytes = b"precious".to_vec();
    let hash = Hash32::digest(&bytes);
    trio.nodes[0]
        .store(&zone(), hash, bytes.clone(), &Writer::Client(None))
        .await
        .unwrap();
    let owners = trio.nodes[0].owners(&zone(), &hash);
    let (lost, keeper) = (owners[0], owners[1]);
    let node = |id: NodeId| &trio.nodes[id as usize - 1];
    // Repair would not copy garbage: mark the chunk as referenced by keeping it fresh (the
    // staging TTL is an hour), then lose one copy.
    assert!(node(lost).local().remove(&zone(), &hash).await.unwrap());
    assert_eq!(
        trio.nodes[0]
            .missing_anywhere(&zone(), &[hash], false)
            .await
            .unwrap(),
        vec![hash],
        "one copy of two is under-replicated"
    );
    let report = node(keeper).repair_pass().await.unwrap();
    assert_eq!(report.copied, 1, "{report:?}");
    assert_eq!(
        (report.under_replicated, report.backlog),
        (1, 1),
        "one copy reachable: under-replicated, and a copy owed"
    );
    let again = node(keeper).repair_pass().await.unwrap();
    assert_eq!((again.under_replicated, again.backlog), (0, 0), "{again:?}");
    assert_eq!(
        node(lost).local().get(&zone(), &hash).await.unwrap(),
        Some(bytes)
    );
    assert!(trio.nodes[0]
        .missing_anywhere(&zone(), &[hash], false)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn garbage_is_collected_only_after_a_read_barrier() {
    let trio = trio(Duration::from_secs(1)).await;
    let bytes = b"abandoned upload".to_vec();
    let hash = Hash32::digest(&bytes);
    trio.nodes[0]
        .store(&zone(), hash, bytes, &Writer::Client(None))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    trio.barrier_ok.store(false, Ordering::SeqCst);
    for node in &trio.nodes {
        assert!(node.collect_garbage(Duration::from_secs(1)).await.is_err());
    }
    assert_eq!(
        holders(&trio, &hash).len(),
        2,
        "nothing deleted without a barrier"
    );
    trio.barrier_ok.store(true, Ordering::SeqCst);
    for node in &trio.nodes {
        node.collect_garbage(Duration::from_secs(1)).await.unwrap();
    }
    assert!(
        holders(&trio, &hash).is_empty(),
        "unreferenced and stale: collected"
    );
}

#[tokio::test]
async fn background_tasks_stop_on_shutdown() {
    let trio = trio(Duration::from_secs(3600)).await;
    let stop = CancellationToken::new();
    let schedule = Schedule {
        gc_interval: Duration::from_millis(50),
        repair_interval: Duration::from_millis(50),
        scrub: ScrubConfig {
            interval: Duration::from_millis(50),
            bytes_per_sec: 1 << 20,
        },
    };
    let tasks = trio.nodes[0].spawn_background(schedule, &stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("a background task stops within 5 s of shutdown")
            .unwrap();
    }
}

#[tokio::test]
async fn a_chunk_in_the_wrong_place_is_owed_to_its_owner_but_not_under_replicated() {
    let trio = trio(Duration::from_secs(3600)).await;
    let bytes = b"moving house".to_vec();
    let hash = Hash32::digest(&bytes);
    trio.nodes[0]
        .store(&zone(), hash, bytes.clone(), &Writer::Client(None))
        .await
        .unwrap();
    let owners = trio.nodes[0].owners(&zone(), &hash);
    let other = (1..=3u64).find(|id| !owners.contains(id)).unwrap();
    let node = |id: NodeId| &trio.nodes[id as usize - 1];
    // As after a node joined: the non-owner holds a copy (fresh, so not garbage), one owner
    // does not yet.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    node(other)
        .local()
        .put(&zone(), hash, bytes.clone(), now)
        .await
        .unwrap();
    assert!(node(owners[1])
        .local()
        .remove(&zone(), &hash)
        .await
        .unwrap());
    let mut under = 0;
    let mut backlog = 0;
    for id in [owners[0], other] {
        let report = node(id).repair_pass().await.unwrap();
        under += report.under_replicated;
        backlog += report.backlog;
    }
    assert_eq!(
        under, 0,
        "two copies exist: rebalancing is not under-replication"
    );
    assert!(backlog >= 1, "the owner lacking it is owed a copy");
    // The copy reached the owner; the next pass hands the stray copy off.
    node(other).repair_pass().await.unwrap();
    let mut expected = owners.clone();
    expected.sort();
    assert_eq!(holders(&trio, &hash), expected);
}
