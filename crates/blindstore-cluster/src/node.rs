//! A Blindstore node: its stores, its Raft core and the domains' operations on top of it (the
//! `impl Node` blocks of `zones`, `chains`, `chunks`, `accounts`, `passkeys` and `sites`).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use blindstore_raft::{Consistency, Core, CoreConfig, RpcServices};
use blindstore_replication::{ChunkError, ClusterView, ReplicationConfig, Replicator, Schedule};
use blindstore_storage::{ChunkStore, MapSizes, StateMachineStore};
use blindstore_types::api::{ClusterMembers, Health};
use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::raft::{NodeId, NodeInfo};
use tokio::net::TcpListener;

use crate::NodeError;

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
    /// Bytes of chunks this node keeps in memory for reads (0: none).
    pub cache_bytes: u64,
    /// The background scrubber's pace.
    pub scrub: crate::ScrubConfig,
    /// Build a Raft snapshot after this many applied log entries; the log before it is then
    /// purged, keeping a quarter of that many entries for followers that lag slightly.
    pub snapshot_logs: u64,
    /// Sessions and logins.
    pub accounts: AccountSettings,
    /// The feature level this node states: the build's (`FEATURE_LEVEL`). Tests give less to
    /// play a node of an older build in a mixed-version cluster.
    pub feature_level: u32,
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
            cache_bytes: Self::CACHE_BYTES,
            scrub: crate::ScrubConfig {
                interval: Self::SCRUB_INTERVAL,
                bytes_per_sec: Self::SCRUB_BYTES_PER_SEC,
            },
            snapshot_logs: Self::SNAPSHOT_LOGS,
            accounts: AccountSettings::default(),
            feature_level: blindstore_types::command::FEATURE_LEVEL,
        }
    }

    /// A small node, for tests and for embedders that run many nodes in one process: LMDB
    /// maps of 256 MiB each, no free-space reserve, a snapshot every 1000 entries, and the
    /// background passes (garbage collection, repair, scrubbing, staging expiry) hourly until
    /// told otherwise.
    pub fn small(data_dir: impl Into<PathBuf>, cluster_secret: impl Into<String>) -> Self {
        const HOUR: Duration = Duration::from_secs(3600);
        let base = Self::new(data_dir, cluster_secret);
        Self {
            staging_ttl: HOUR,
            gc_interval: HOUR,
            map_sizes: MapSizes {
                raft_log: 1 << 28,
                state: 1 << 28,
                chunks: 1 << 28,
            },
            snapshot_logs: 1000,
            repair_interval: HOUR,
            min_free_bytes: 0,
            scrub: crate::ScrubConfig {
                interval: HOUR,
                ..base.scrub
            },
            ..base
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
    pub const CACHE_BYTES: u64 = 256 << 20;
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

/// A running node. Cloning shares it.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Raft: proposals, reads at a consistency level, the membership.
    pub(crate) core: Core,
    /// The replicated state, read by the domains (written only through the core).
    pub(crate) state: StateMachineStore,
    /// Chunk placement, transfer, repair, GC and scrubbing, over this node's chunk store.
    pub(crate) replicator: Replicator,
    pub(crate) limits: Limits,
    pub(crate) accounts: AccountSettings,
}

impl Node {
    /// Opens the stores under `config.data_dir` and starts the Raft core over them. On a
    /// pristine data dir it either bootstraps a one-voter cluster or, with `config.join`, joins
    /// the cluster that address belongs to. State is recovered from LMDB on restart; a
    /// restarted member needs no `join`. With `rpc_listener`, the node serves node-to-node
    /// gRPC on it until shutdown.
    #[tracing::instrument(skip_all, fields(data_dir = %config.data_dir.display()), err)]
    pub async fn start(
        config: NodeConfig,
        rpc_listener: Option<TcpListener>,
    ) -> Result<Self, NodeError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| NodeError::Storage(e.into()))?;
        let state = StateMachineStore::open(&dir.join("state"), config.map_sizes.state)?;
        let (chunks, opened) =
            ChunkStore::open_checked(&dir.join("chunks"), config.map_sizes.chunks)?;
        tracing::info!(quarantined = ?opened.quarantined, "chunk store opened");
        let core = Core::start(
            CoreConfig {
                data_dir: config.data_dir.clone(),
                http_addr: config.http_addr.clone(),
                rpc_addr: config.rpc_addr.clone(),
                cluster_secret: config.cluster_secret.clone(),
                join: config.join.clone(),
                node_id: config.node_id,
                voters: config.voters,
                write_timeout: config.write_timeout,
                snapshot_logs: config.snapshot_logs,
                raft_log_map: config.map_sizes.raft_log,
                tidy_interval: config.repair_interval,
                feature_level: config.feature_level,
            },
            state.clone(),
        )
        .await?;
        let replication = ReplicationConfig {
            id: core.id(),
            replication: config.replication,
            down_after: config.down_after,
            write_timeout: config.write_timeout,
            staging_ttl: config.staging_ttl,
            data_dir: config.data_dir.clone(),
            min_free_bytes: config.min_free_bytes,
            cache_bytes: config.cache_bytes,
        };
        let node = Node {
            // The replicator sees the node through a weak reference, so neither keeps the
            // other alive.
            inner: Arc::new_cyclic(|me: &Weak<Inner>| Inner {
                replicator: Replicator::new(
                    replication,
                    chunks,
                    state.clone(),
                    core.peers().clone(),
                    Box::new(MembershipView(me.clone())),
                ),
                core,
                state,
                limits: config.limits.clone(),
                accounts: config.accounts,
            }),
        };
        let schedule = Schedule {
            gc_interval: config.gc_interval,
            repair_interval: config.repair_interval,
            scrub: config.scrub,
        };
        let core = &node.inner.core;
        for task in node
            .inner
            .replicator
            .spawn_background(schedule, core.shutdown_token())
        {
            core.add_task(task).await;
        }
        let held = {
            let local = node.inner.replicator.local().clone();
            Box::new(move || {
                local
                    .total_usage()
                    .map(|usage| usage.chunks)
                    .map_err(|e| e.to_string())
            })
        };
        let rpc = rpc_listener.map(|listener| {
            let chunks = node.inner.replicator.rpc_service();
            RpcServices {
                listener,
                services: Box::new(move |router, members_only| {
                    router.add_service(tonic::service::interceptor::InterceptedService::new(
                        chunks,
                        members_only,
                    ))
                }),
            }
        });
        core.serve(held, rpc).await?;
        Ok(node)
    }

    /// The Raft core under this node.
    pub(crate) fn core(&self) -> &Core {
        &self.inner.core
    }

    /// Whether this start created a new one-voter cluster (a pristine data dir, no join).
    pub fn bootstrapped(&self) -> bool {
        self.core().bootstrapped()
    }

    /// Whether this node is the cluster's only voter (so it elects itself without help).
    pub async fn sole_voter(&self) -> bool {
        self.core().sole_voter().await
    }

    /// Leader: moves the cluster's version up to its members' lowest level now (see
    /// `Core::advance_version_now`); a follower does nothing.
    pub async fn advance_version_now(&self) -> Result<(), NodeError> {
        Ok(self.core().advance_version_now().await?)
    }

    /// Whether this node's state is known to be current enough to serve (see
    /// `Core::is_caught_up`).
    pub fn is_caught_up(&self) -> bool {
        self.core().is_caught_up()
    }

    /// Waits (at most `timeout`) until [`Node::is_caught_up`].
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), NodeError> {
        Ok(self.core().wait_caught_up(timeout).await?)
    }

    /// Waits until this node knows a leader, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, NodeError> {
        Ok(self.core().wait_for_leader(timeout).await?)
    }

    /// Stops Raft, then the background tasks (the replicator's with the core's), within
    /// `deadline` in all.
    pub async fn shutdown(&self, deadline: Duration) {
        self.core().shutdown(deadline).await
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Sees a new value after every change this node applies (entries, snapshots): live
    /// readers wait on it, then read what is new.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.core().changes()
    }

    /// Completes when the node starts shutting down: live streams end on it.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.core().stopping()
    }

    pub fn health(&self) -> Health {
        let (repair_backlog, repair_rate) = self.inner.replicator.repair_backlog();
        Health {
            under_replicated: self.inner.replicator.under_replicated(),
            repair_backlog,
            repair_rate,
            chunks_held: match self.chunks().chunk_usage() {
                Ok(usage) => usage.chunks,
                Err(e) => {
                    tracing::error!(error = %e, "reading chunk usage");
                    0
                }
            },
            ..self.core().health()
        }
    }

    /// Whether this node knows it was removed from the cluster for good.
    pub fn is_removed(&self) -> bool {
        self.core().is_removed()
    }

    /// The membership as this node sees it.
    pub fn members(&self) -> ClusterMembers {
        self.core().members()
    }

    /// Marks `node` as draining (or not). Its chunks then move to their other owners.
    pub async fn set_draining(&self, node: NodeId, draining: bool) -> Result<(), NodeError> {
        Ok(self.core().set_draining(node, draining).await?)
    }

    /// Leader: takes `node` out of the membership (see `Core::remove_member`).
    pub async fn remove_member(
        &self,
        node: NodeId,
        force: bool,
        below_three_voters: bool,
    ) -> Result<(), NodeError> {
        Ok(self
            .core()
            .remove_member(node, force, below_three_voters)
            .await?)
    }

    /// Replaces the join token (see `Core::rotate_join_token`).
    pub async fn rotate_join_token(
        &self,
        grace: Duration,
    ) -> Result<blindstore_raft::RotatedToken, NodeError> {
        Ok(self.core().rotate_join_token(grace).await?)
    }

    /// Writes the replicated state to a new file in this node's snapshot folder, as of a
    /// linearizable read barrier (every write acknowledged before the call is in it), for a
    /// backup: the file and the log position the state is at. The caller removes the file.
    pub async fn export_state(
        &self,
    ) -> Result<(std::path::PathBuf, blindstore_raft::ExportedState), NodeError> {
        self.read_barrier(Consistency::Linearizable).await?;
        let path = self.inner.state.snapshot_dir().join(format!(
            "export-{}-{}.tmp",
            std::process::id(),
            hex::encode(rand::random::<[u8; 8]>())
        ));
        let engine = blindstore_raft::StateMachine::new(self.inner.state.clone());
        let written = path.clone();
        let exported = tokio::task::spawn_blocking(move || engine.export(&written))
            .await
            .map_err(|e| NodeError::Internal(format!("exporting the state: {e}")))?;
        match exported {
            Ok(exported) => Ok((path, exported)),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e.into())
            }
        }
    }

    pub(crate) async fn read_barrier(&self, consistency: Consistency) -> Result<(), NodeError> {
        Ok(self.core().read_barrier(consistency).await?)
    }

    /// Proposes `command` through Raft, forwarding it to the leader if this node is not it.
    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResponse, NodeError> {
        Ok(self.core().propose(command).await?)
    }

    /// Runs a step that comes before any proposal (storing a payload, asking peers) within
    /// the write deadline; past it the write certainly did not happen.
    pub(crate) async fn before_proposal<T>(
        &self,
        step: impl std::future::Future<Output = Result<T, NodeError>>,
    ) -> Result<T, NodeError> {
        tokio::time::timeout(self.core().write_timeout(), step)
            .await
            .map_err(|_| {
                NodeError::Unavailable(format!(
                    "could not prepare the write within the write deadline of {:?}",
                    self.core().write_timeout()
                ))
            })?
    }
}

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
            .map(|node| node.core().storage_members())
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
