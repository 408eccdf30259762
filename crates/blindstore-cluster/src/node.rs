//! A Blindstore node: its stores, its Raft instance and the operations the API offers.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use blindstore_raft::TypeConfig;
use blindstore_raft::{LogStore, StateMachine};
use blindstore_replication::{ChunkError, ClusterView, ReplicationConfig, Replicator, Schedule};
use blindstore_storage::negative_controls::{self, Control::StaleReads};
use blindstore_storage::{ChunkStore, MapSizes, StateMachineStore};
use blindstore_types::api::Health;
use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::raft::{NodeId, NodeInfo};
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::{Raft, ServerState};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::transport::GrpcNetwork;
use crate::NodeError;
use crate::{joining, rpc_server};
use blindstore_rpc::tls::ClusterToken;
use blindstore_rpc::ClusterSecret;
use blindstore_rpc::Peers;
use tokio::net::TcpListener;

/// Documented limits on what one request may carry.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest chunk accepted by `PUT .../chunks/{hash}`.
    pub max_chunk_bytes: u64,
    /// Largest entry payload.
    pub max_entry_payload_bytes: u64,
    /// Payloads of at most this many bytes travel in the Raft entry and are kept with it by
    /// every voter; larger ones are stored as chunks (0: every payload is a chunk, the layout
    /// of earlier builds).
    pub inline_payload_bytes: u64,
    /// Most extra chunks one entry may reference.
    pub max_entry_chunks: usize,
    /// Most hashes one `chunks/missing` request may ask about.
    pub max_missing_query: usize,
    /// Most entries one read returns.
    pub max_read_entries: usize,
    /// Most bytes one read answer carries, counted by [`entry_answer_bytes`] (payloads as
    /// base64, chunk lists and headers); at least one entry is always returned.
    pub max_read_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_chunk_bytes: 4 << 20,
            max_entry_payload_bytes: 64 << 10,
            inline_payload_bytes: 64 << 10,
            max_entry_chunks: 1024,
            max_missing_query: 10_000,
            max_read_entries: 1000,
            max_read_bytes: 8 << 20,
        }
    }
}

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// This node's HTTP address as clients should see it (kept in the Raft membership).
    pub http_addr: String,
    pub limits: Limits,
    /// Unreferenced chunks older than this are deleted.
    pub staging_ttl: Duration,
    /// How often garbage collection runs.
    pub gc_interval: Duration,
    pub map_sizes: MapSizes,
    /// This node's node-to-node address as peers should dial it; empty if it serves none.
    pub rpc_addr: String,
    /// The join token: the shared secret every node-to-node call carries, followed for a
    /// cluster whose rpc runs over TLS by its CA's fingerprint (`blindstore_rpc::tls`).
    pub cluster_secret: String,
    /// On a pristine data dir: the rpc address of a member of the cluster to join.
    pub join: Option<String>,
    /// Use this node id instead of an assigned one (first start only).
    pub node_id: Option<NodeId>,
    /// How many voters the cluster should have (3 or 5); joining nodes beyond it stay learners.
    pub voters: usize,
    /// Copies of each chunk (default 2; at most the number of storage members).
    pub replication: usize,
    /// A peer unreachable for longer than this no longer counts as a chunk owner: its chunks
    /// are copied to the next nodes in rank order.
    pub down_after: Duration,
    /// How often the repairer checks this node's chunks against their owners.
    pub repair_interval: Duration,
    /// How long a write may take: a proposal until it commits on the leader, a forward until
    /// the leader answers, a membership change. Past it the client gets `OutcomeUnknown` (if
    /// the write may have been proposed) or `Unavailable` (if it certainly was not).
    pub write_timeout: Duration,
    /// Free disk space (bytes) below which this node refuses new data — chunk uploads,
    /// appends, new chains — with `InsufficientStorage`, keeping room for Raft to commit what
    /// recovery needs.
    pub min_free_bytes: u64,
    /// The background scrubber's pace.
    pub scrub: crate::ScrubConfig,
    /// Build a Raft snapshot after this many applied log entries; the log before it is then
    /// purged, keeping a quarter of that many entries for followers that lag slightly.
    pub snapshot_logs: u64,
    /// Sessions and logins.
    pub accounts: AccountSettings,
}

impl NodeConfig {
    /// A node in `data_dir` with `cluster_secret`, every other setting at the default
    /// `blindstore serve` uses (its `Config` defaults take theirs from here): a single node
    /// without rpc until told otherwise. Tests and embedders change what they need with
    /// `NodeConfig { field: value, ..NodeConfig::new(dir, secret) }`.
    pub fn new(data_dir: impl Into<PathBuf>, cluster_secret: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            http_addr: String::new(),
            limits: Limits::default(),
            staging_ttl: Self::STAGING_TTL,
            gc_interval: Self::GC_INTERVAL,
            map_sizes: MapSizes::default(),
            rpc_addr: String::new(),
            cluster_secret: cluster_secret.into(),
            join: None,
            node_id: None,
            voters: Self::VOTERS,
            replication: Self::REPLICATION,
            down_after: Self::DOWN_AFTER,
            repair_interval: Self::REPAIR_INTERVAL,
            write_timeout: Self::WRITE_TIMEOUT,
            min_free_bytes: Self::MIN_FREE_BYTES,
            scrub: crate::ScrubConfig {
                interval: Self::SCRUB_INTERVAL,
                bytes_per_sec: Self::SCRUB_BYTES_PER_SEC,
            },
            snapshot_logs: Self::SNAPSHOT_LOGS,
            accounts: AccountSettings::default(),
        }
    }

    pub const STAGING_TTL: Duration = Duration::from_secs(24 * 3600);
    pub const GC_INTERVAL: Duration = Duration::from_secs(600);
    pub const VOTERS: usize = 3;
    pub const REPLICATION: usize = 2;
    pub const DOWN_AFTER: Duration = Duration::from_secs(60);
    pub const REPAIR_INTERVAL: Duration = Duration::from_secs(10);
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MIN_FREE_BYTES: u64 = 256 << 20;
    pub const SCRUB_INTERVAL: Duration = Duration::from_secs(24 * 3600);
    pub const SCRUB_BYTES_PER_SEC: u64 = 32 << 20;
    pub const SNAPSHOT_LOGS: u64 = 20_000;
}

/// How long sessions and logins last.
#[derive(Debug, Clone, Copy)]
pub struct AccountSettings {
    /// A session ends this long after the login that opened it (fixed, not sliding).
    pub session_ttl: Duration,
    /// A login must be finished this long after it started.
    pub login_ttl: Duration,
    /// A step-up (the proof of a login) lets its session do what cannot be undone for this
    /// long.
    pub step_up_ttl: Duration,
    /// A device token gives its client a login limit of its own for this long (renewed at
    /// every login).
    pub device_ttl: Duration,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            login_ttl: Duration::from_secs(60),
            step_up_ttl: Duration::from_secs(5 * 60),
            device_ttl: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (Raft read index).
    #[default]
    Linearizable,
    /// Whatever this node has applied; may lag behind the leader.
    Stale,
}

/// A running node. Cloning shares it.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) id: NodeId,
    pub(crate) data_dir: PathBuf,
    /// The join token's secret every node-to-node call carries (shared with `peers` and the
    /// rpc server; rotations switch it for all of them).
    pub(crate) secret: ClusterSecret,
    /// False after a restart until this node's state is known to be at least as new as what
    /// it served before (see `Node::start`).
    pub(crate) caught_up: std::sync::atomic::AtomicBool,
    /// Set once this node learns it was removed from the cluster.
    pub(crate) removed: std::sync::atomic::AtomicBool,
    /// Whether this start created a new cluster.
    pub(crate) bootstrapped: bool,
    /// This node's addresses as it advertises them.
    pub(crate) own_info: NodeInfo,
    /// How many voters the cluster should have; joining nodes beyond it stay learners.
    pub(crate) voters: usize,
    pub(crate) raft: Raft<TypeConfig>,
    /// Proposals made while this node leads, committed in shared log entries.
    pub(crate) batcher: crate::batcher::Batcher,
    /// Read-index rounds shared by the linearizable reads waiting at the same time: on the
    /// leader (its own reads and followers' read-index calls), and a follower's calls to it.
    pub(crate) leader_reads: crate::rounds::Rounds<LeaderRead>,
    pub(crate) follower_reads: crate::rounds::Rounds<Result<u64, String>>,
    pub(crate) state: StateMachineStore,
    /// Chunk placement, transfer, repair, GC and scrubbing, over this node's chunk store.
    pub(crate) replicator: Replicator,
    pub(crate) peers: Peers,
    pub(crate) limits: Limits,
    pub(crate) accounts: AccountSettings,
    pub(crate) write_timeout: Duration,
    /// Serialises membership changes made by this node as leader.
    pub(crate) membership: tokio::sync::Mutex<joining::Reservations>,
    /// The cluster CA and this node's certificate, when the cluster's rpc runs over TLS.
    pub(crate) tls: Option<joining::NodeTls>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Node {
    /// Opens the stores under `config.data_dir` and starts Raft. On a pristine data dir it
    /// either bootstraps a one-voter cluster or, with `config.join`, joins the cluster that
    /// address belongs to. State is recovered from LMDB on restart; a restarted member needs no
    /// `join`. With `rpc_listener`, the node serves node-to-node gRPC on it until shutdown.
    #[tracing::instrument(skip_all, fields(data_dir = %config.data_dir.display()), err)]
    pub async fn start(
        config: NodeConfig,
        rpc_listener: Option<TcpListener>,
    ) -> Result<Self, NodeError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| NodeError::Storage(e.into()))?;
        let log = LogStore::open(&dir.join("raft-log"), config.map_sizes.raft_log)?;
        let state = StateMachineStore::open(&dir.join("state"), config.map_sizes.state)?;
        let (chunks, opened) =
            ChunkStore::open_checked(&dir.join("chunks"), config.map_sizes.chunks)?;
        tracing::info!(quarantined = ?opened.quarantined, "chunk store opened");
        let pristine = log.is_pristine()?;
        let token = ClusterToken::parse(&config.cluster_secret)
            .map_err(|e| NodeError::BadRequest(format!("join token: {e}")))?;
        let secret = ClusterSecret::new(&token.secret)
            .map_err(|e| NodeError::BadRequest(format!("cluster secret: {}", e.message())))?;
        // A rotation this node applied before it stopped, but had not switched to.
        crate::secret::follow(&state, &secret, token.ca, dir)?;
        let joining = match (&config.join, pristine) {
            (Some(seed), true) => Some(seed.clone()),
            _ => None,
        };
        let ca = joining::cluster_ca(dir, &token, joining.as_deref()).await?;
        // Before it has its certificate, a joining node calls as a stranger holding the token.
        let stranger = Peers::new(
            secret.clone(),
            ca.as_ref()
                .map(|ca| blindstore_rpc::tls::client_config(&ca.cert_pem, None)),
        );
        let id = joining::node_id(
            dir,
            &log,
            config.node_id,
            joining.as_deref(),
            &stranger,
            ca.as_ref(),
        )
        .await?;
        let tls = ca
            .map(|ca| joining::node_cert(dir, id, &ca).map(|cert| joining::NodeTls { ca, cert }))
            .transpose()?;
        let peers = Peers::new(
            secret.clone(),
            tls.as_ref()
                .map(|t| blindstore_rpc::tls::client_config(&t.ca.cert_pem, Some(&t.cert))),
        );
        tracing::info!(
            node_id = id,
            pristine,
            joining = joining.is_some(),
            "stores opened"
        );

        let raft_config = openraft::Config {
            cluster_name: "blindstore".into(),
            heartbeat_interval: 250,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
            max_in_snapshot_log_to_keep: config.snapshot_logs / 4,
            // Snapshots travel in 1 MiB chunks; the last chunk's call also installs the whole
            // snapshot into LMDB, which takes far longer than openraft's 200 ms default.
            snapshot_max_chunk_size: 1 << 20,
            // Entries per append-entries message; the transport also cuts batches by bytes.
            max_payload_entries: 300,
            install_snapshot_timeout: 60_000,
            ..Default::default()
        };
        let raft_config = Arc::new(
            raft_config
                .validate()
                .map_err(|e| NodeError::Unavailable(format!("raft config: {e}")))?,
        );
        // The state store syncs data but not its meta page at each commit (`Sync::DataOnly`):
        // a power loss can roll it back one batch, behind what this node served before, while
        // the saved commit index trails. Until it has applied every entry its log held at
        // start, or a read barrier has shown it current, it serves nothing from its state.
        let mut log = log;
        let held_at_start = openraft::storage::RaftLogStorage::get_log_state(&mut log)
            .await
            .map_err(|e| NodeError::Unavailable(format!("reading the log: {e}")))?
            .last_log_id
            .map(|l| l.index);
        let applied_at_start = StateMachine::new(state.clone())
            .last_applied()?
            .map(|l| l.index);
        let caught_up = held_at_start.is_none_or(|held| applied_at_start >= Some(held));
        if !caught_up {
            tracing::info!(
                applied = ?applied_at_start,
                held = ?held_at_start,
                "catching up after a restart: serving nothing from local state until applied up to the log or confirmed by a read barrier"
            );
        }
        let raft = Raft::new(
            id,
            raft_config,
            GrpcNetwork::new(peers.clone()),
            log,
            StateMachine::new(state.clone()),
        )
        .await
        .map_err(|e| NodeError::Unavailable(format!("raft start: {e}")))?;
        let own_info = NodeInfo {
            rpc_addr: config.rpc_addr.clone(),
            http_addr: config.http_addr.clone(),
        };

        let bootstrapped = pristine && joining.is_none();
        if bootstrapped {
            let members = BTreeMap::from([(id, own_info.clone())]);
            raft.initialize(members)
                .await
                .map_err(|e| NodeError::Unavailable(format!("bootstrap: {e}")))?;
            tracing::info!(node_id = id, "bootstrapped a one-voter cluster");
        }

        let replication = ReplicationConfig {
            id,
            replication: config.replication,
            down_after: config.down_after,
            write_timeout: config.write_timeout,
            staging_ttl: config.staging_ttl,
            data_dir: config.data_dir.clone(),
            min_free_bytes: config.min_free_bytes,
        };
        let server_tls = tls
            .as_ref()
            .map(|t| blindstore_rpc::tls::server_config(&t.ca.cert_pem, &t.cert));
        let renew = tls.as_ref().is_some_and(|t| {
            t.ca.signer.is_none()
                && t.cert
                    .expires_within(blindstore_rpc::tls::NODE_CERT_RENEW_BEFORE)
        });
        let node = Node {
            // The replicator sees the node through a weak reference, so neither keeps the
            // other alive.
            inner: Arc::new_cyclic(|me: &Weak<Inner>| Inner {
                id,
                data_dir: config.data_dir.clone(),
                secret: secret.clone(),
                bootstrapped,
                own_info,
                voters: config.voters,
                batcher: crate::batcher::Batcher::start(raft.clone()),
                leader_reads: crate::rounds::Rounds::new(),
                removed: Default::default(),
                caught_up: std::sync::atomic::AtomicBool::new(caught_up),
                follower_reads: crate::rounds::Rounds::new(),
                raft,
                replicator: Replicator::new(
                    replication,
                    chunks,
                    state.clone(),
                    peers.clone(),
                    Box::new(MembershipView(me.clone())),
                ),
                state,
                peers,
                limits: config.limits.clone(),
                accounts: config.accounts,
                write_timeout: config.write_timeout,
                membership: tokio::sync::Mutex::new(joining::Reservations::default()),
                tls,
                shutdown: CancellationToken::new(),
                tasks: tokio::sync::Mutex::new(Vec::new()),
            }),
        };
        let schedule = Schedule {
            gc_interval: config.gc_interval,
            repair_interval: config.repair_interval,
            scrub: config.scrub,
        };
        let background = node
            .inner
            .replicator
            .spawn_background(schedule, &node.inner.shutdown);
        node.inner.tasks.lock().await.extend(background);
        let tidy = tokio::spawn(crate::membership::run_tidy(
            node.clone(),
            config.repair_interval,
            node.inner.shutdown.clone(),
        ));
        node.inner.tasks.lock().await.push(tidy);
        if let Some(listener) = rpc_listener {
            let rpc_task = tokio::spawn(rpc_server::serve_rpc(
                node.clone(),
                listener,
                secret,
                server_tls,
            ));
            node.inner.tasks.lock().await.push(rpc_task);
        }
        if !caught_up {
            let catching_up = tokio::spawn(node.clone().catch_up(held_at_start.unwrap_or(0)));
            node.inner.tasks.lock().await.push(catching_up);
        }
        let removal = tokio::spawn(node.clone().watch_for_removal());
        node.inner.tasks.lock().await.push(removal);
        let rotations = tokio::spawn(node.clone().follow_join_secret());
        node.inner.tasks.lock().await.push(rotations);
        if renew {
            let renewal = tokio::spawn(node.clone().renew_own_certificate(dir.clone()));
            node.inner.tasks.lock().await.push(renewal);
        }
        if let Some(seed) = joining {
            node.ask_to_be_added(&seed).await?;
        } else if !pristine {
            let refresh = tokio::spawn(node.clone().announce_own_address());
            node.inner.tasks.lock().await.push(refresh);
        }
        Ok(node)
    }

    /// Whether this start created a new one-voter cluster (a pristine data dir, no join).
    pub fn bootstrapped(&self) -> bool {
        self.inner.bootstrapped
    }

    /// Whether this node is the cluster's only voter (so it elects itself without help). Waits
    /// briefly for Raft to load the membership after start; `false` if it has none.
    pub async fn sole_voter(&self) -> bool {
        let loaded = self
            .inner
            .raft
            .wait(Some(Duration::from_secs(5)))
            .metrics(
                |m| {
                    m.membership_config
                        .membership()
                        .voter_ids()
                        .next()
                        .is_some()
                },
                "membership loaded",
            )
            .await;
        match loaded {
            Ok(m) => m
                .membership_config
                .membership()
                .voter_ids()
                .eq([self.inner.id]),
            Err(_) => false,
        }
    }

    /// Waits until this node knows a leader, up to `timeout`.
    /// Whether this node's state is known to be current enough to serve: false after a
    /// restart until it has applied every entry its log held at start, or a linearizable read
    /// barrier succeeded. Until then it refuses reads and every check on local state.
    pub fn is_caught_up(&self) -> bool {
        self.inner
            .caught_up
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits (at most `timeout`) until [`Node::is_caught_up`].
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), NodeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_caught_up() {
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::Unavailable(
                    "not caught up with the cluster after the restart".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// After a restart whose state trails the log: catches up, then lets the node serve.
    async fn catch_up(self, held: u64) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            let applied = self.inner.raft.metrics().borrow().last_applied;
            let current = applied.is_some_and(|a| a.index >= held)
                || self.read_barrier(Consistency::Linearizable).await.is_ok();
            if current {
                self.inner
                    .caught_up
                    .store(true, std::sync::atomic::Ordering::Release);
                tracing::info!("caught up after the restart: serving");
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, NodeError> {
        let metrics = self
            .inner
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|e| NodeError::Unavailable(format!("no leader: {e}")))?;
        Ok(metrics
            .current_leader
            .expect("the wait condition ensures a leader"))
    }

    /// Stops Raft, then the background tasks, within `deadline` in all: Raft first, so writes
    /// in flight end at once with `OutcomeUnknown` even when peers cannot be reached; tasks
    /// still running at the deadline (a transfer to an unreachable peer) are aborted.
    pub async fn shutdown(&self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        self.inner.shutdown.cancel();
        match tokio::time::timeout_at(until, self.inner.raft.shutdown()).await {
            Ok(Ok(())) => tracing::info!("raft stopped"),
            Ok(Err(e)) => tracing::warn!(error = %e, "raft shutdown"),
            Err(_) => tracing::warn!("raft did not stop within the shutdown deadline"),
        }
        for mut task in self.inner.tasks.lock().await.drain(..) {
            match tokio::time::timeout_at(until, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "background task ended abnormally"),
                Err(_) => {
                    tracing::warn!("a background task outlived the shutdown deadline; aborting it");
                    task.abort();
                }
            }
        }
        tracing::info!("node stopped");
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Sees a new value after every change this node applies (entries, snapshots): live
    /// readers wait on it, then read what is new.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.state.changes()
    }

    /// Completes when the node starts shutting down: live streams end on it.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.inner.shutdown.clone().cancelled_owned()
    }

    pub fn health(&self) -> Health {
        let m = self.inner.raft.metrics().borrow().clone();
        let voter = m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.inner.id);
        let role = match (m.state, voter) {
            (ServerState::Learner, _) | (_, false) => "learner",
            _ => "voter",
        };
        Health {
            node_id: self.inner.id,
            role: role.into(),
            leader: m.current_leader,
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index),
            last_log_index: m.last_log_index,
            snapshot: m.snapshot.map(|l| l.index),
            purged: m.purged.map(|l| l.index),
            under_replicated: self.inner.replicator.under_replicated(),
            chunks_held: match self.chunk_usage() {
                Ok(usage) => usage.chunks,
                Err(e) => {
                    tracing::error!(error = %e, "reading chunk usage");
                    0
                }
            },
            removed: self.is_removed(),
        }
    }

    /// Whether this node knows it was removed from the cluster for good (from its own state or
    /// from a member: `watch_for_removal`). A removed node serves no client requests. Read on
    /// every request: an atomic, no storage read.
    pub fn is_removed(&self) -> bool {
        self.inner
            .removed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records (once, loudly) that this node was removed from the cluster.
    pub(crate) fn learned_removed(&self) {
        use std::sync::atomic::Ordering;
        if !self.inner.removed.swap(true, Ordering::Relaxed) {
            tracing::error!(
                node_id = self.inner.id,
                "this node was removed from the cluster for good: it serves no clients and is never added again; stop it and wipe its data dir (a new node joins with a fresh one)"
            );
        }
    }

    /// Nodes removed from the cluster for good.
    pub(crate) fn removed_nodes(&self) -> BTreeSet<NodeId> {
        self.inner.state.removed_nodes().unwrap_or_default()
    }

    pub(crate) async fn read_barrier(&self, consistency: Consistency) -> Result<(), NodeError> {
        if consistency == Consistency::Stale || negative_controls::on(StaleReads) {
            return Ok(());
        }
        match self.leader_read().await {
            Err(timed_out) => Err(NodeError::Unavailable(format!(
                "linearizable read: no quorum confirmed the leader ({timed_out})"
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                self.follower_read_barrier().await
            }
            Ok(Err(e)) => Err(NodeError::Unavailable(format!("linearizable read: {e}"))),
        }
    }

    /// Leader: the read index (once applied here), from a heartbeat round shared with the
    /// other reads waiting at the same time, bounded by the write deadline; `ForwardToLeader`
    /// on a follower.
    pub(crate) async fn leader_read(&self) -> Result<LeaderRead, crate::rounds::RoundTimedOut> {
        self.inner
            .leader_reads
            .join(self.inner.write_timeout, || {
                self.inner.raft.ensure_linearizable()
            })
            .await
    }

    /// Proposes `command` through Raft, forwarding it to the leader if this node is not it.
    pub(crate) async fn propose_command(
        &self,
        command: Command,
    ) -> Result<CommandResponse, NodeError> {
        self.propose(command).await
    }

    /// A command goes to the leader: proposed here if this node leads, else forwarded. Once
    /// proposed here it is never forwarded as well — a leader that steps down answers
    /// `ForwardToLeader` for entries that may still commit, so that is an unknown outcome,
    /// not a reason to propose the command a second time.
    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResponse, NodeError> {
        if self.is_leader() {
            self.propose_here(command).await
        } else {
            // Refused here too (the leader's batcher checks what it proposes): a command too
            // large for any entry is not sent to the leader at all.
            crate::batcher::check_size(&command)?;
            self.forward(&command).await
        }
    }

    /// Proposes on this node only (a forwarded command: never forwarded again), waiting at
    /// most `write_timeout` for it to commit.
    pub(crate) async fn propose_here(
        &self,
        command: Command,
    ) -> Result<CommandResponse, NodeError> {
        let write = self.inner.batcher.propose(command);
        match tokio::time::timeout(self.inner.write_timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(NodeError::OutcomeUnknown(format!(
                "not committed within the write deadline of {:?}",
                self.inner.write_timeout
            ))),
        }
    }

    /// Runs a step that comes before any proposal (storing a payload, asking peers) within
    /// the write deadline; past it the write certainly did not happen.
    pub(crate) async fn before_proposal<T>(
        &self,
        step: impl std::future::Future<Output = Result<T, NodeError>>,
    ) -> Result<T, NodeError> {
        tokio::time::timeout(self.inner.write_timeout, step)
            .await
            .map_err(|_| {
                NodeError::Unavailable(format!(
                    "could not prepare the write within the write deadline of {:?}",
                    self.inner.write_timeout
                ))
            })?
    }
}

/// What openraft's `ensure_linearizable` answers.
pub(crate) type LeaderRead = Result<
    Option<openraft::LogId<NodeId>>,
    RaftError<NodeId, CheckIsLeaderError<NodeId, NodeInfo>>,
>;

/// What chunk replication sees of its node: the storage members from the Raft membership and
/// the linearizable read barrier. Weak, so the node's replicator does not keep the node alive.
pub(crate) struct MembershipView(pub(crate) Weak<Inner>);

impl MembershipView {
    fn node(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

impl ClusterView for MembershipView {
    fn storage_members(&self) -> Vec<(NodeId, NodeInfo)> {
        self.node()
            .map(|node| node.storage_members())
            .unwrap_or_default()
    }

    fn read_barrier(&self) -> Pin<Box<dyn Future<Output = Result<(), ChunkError>> + Send + '_>> {
        Box::pin(async move {
            let node = self
                .node()
                .ok_or_else(|| ChunkError::Unavailable("the node is stopping".into()))?;
            node.read_barrier(Consistency::Linearizable)
                .await
                .map_err(|e| ChunkError::Unavailable(e.to_string()))
        })
    }
}
