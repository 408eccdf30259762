//! Starting the Raft core: the composition root of the core. It opens the log, settles the
//! node's identity (and on a TLS cluster its certificate), starts Raft over the state, spawns
//! the core's background tasks and, once the node above is ready, serves node-to-node gRPC and
//! joins or announces. Everything it starts is a `Core` method elsewhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use blindstore_rpc::tls::ClusterToken;
use blindstore_rpc::{ClusterSecret, Peers};
use blindstore_storage::{blocking, StateMachineStore};
use blindstore_types::raft::{NodeId, NodeInfo};
use openraft::Raft;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::core::{HeldChunks, Inner, Reservations};
use crate::rpc_server::{self, MembersOnly, RpcRouter};
use crate::transport::GrpcNetwork;
use crate::{identity, Core, CoreError, LogStore, StateMachine};

/// What the Raft core needs to start.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub data_dir: PathBuf,
    /// This node's HTTP address as clients should see it (kept in the Raft membership).
    pub http_addr: String,
    /// This node's node-to-node address as peers should dial it; empty if it serves none.
    pub rpc_addr: String,
    /// The join token (see `NodeConfig::cluster_secret` in the node crate).
    pub cluster_secret: String,
    /// On a pristine data dir: the rpc address of a member of the cluster to join.
    pub join: Option<String>,
    /// Use this node id instead of an assigned one (first start only).
    pub node_id: Option<NodeId>,
    /// How many voters the cluster should have; joining nodes beyond it stay learners.
    pub voters: usize,
    /// How long a write may take (a proposal, a forward, a membership change).
    pub write_timeout: Duration,
    /// Build a Raft snapshot after this many applied log entries.
    pub snapshot_logs: u64,
    /// The Raft log's LMDB map size.
    pub raft_log_map: usize,
    /// How often the leader tidies the membership (`tidy_membership`).
    pub tidy_interval: Duration,
    /// The feature level this node states (`FEATURE_LEVEL`; tests give less to play a node of
    /// an older build in a mixed cluster).
    pub feature_level: u32,
}

/// The rest of a node's node-to-node server, beside the core's Raft and Cluster services.
pub struct RpcServices {
    pub listener: TcpListener,
    /// Adds the node's own services (chunk transfers) to the server, each behind the
    /// members-only check it is given.
    pub services: Box<dyn FnOnce(RpcRouter, MembersOnly) -> RpcRouter + Send>,
}

impl Core {
    /// Opens the Raft log under `config.data_dir` and starts Raft over `state`. On a pristine
    /// data dir it either bootstraps a one-voter cluster or, with `config.join`, reserves a node
    /// id in the cluster that address belongs to (it asks to be added in [`Core::serve`]).
    /// State is recovered from LMDB on restart; a restarted member needs no `join`.
    pub async fn start(config: CoreConfig, state: StateMachineStore) -> Result<Self, CoreError> {
        let dir = &config.data_dir;
        if let Some(why) = state.reset() {
            let store = StateMachine::new(state.clone());
            let at = blocking(move || store.rebuild_from_current_snapshot()).await?;
            tracing::warn!(
                why,
                snapshot = ?at,
                "state rebuilt from the current snapshot after a machine crash; the Raft log replays the rest"
            );
        }
        crate::versions::check_start(&state, config.feature_level)?;
        let log = LogStore::open(dir, config.raft_log_map)?;
        let pristine = log.is_pristine()?;
        let token = ClusterToken::parse(&config.cluster_secret)
            .map_err(|e| CoreError::BadRequest(format!("join token: {e}")))?;
        let secret = ClusterSecret::new(&token.secret)
            .map_err(|e| CoreError::BadRequest(format!("cluster secret: {}", e.message())))?;
        // A rotation this node applied before it stopped, but had not switched to.
        crate::secret::follow(&state, &secret, token.ca, dir)?;
        let joining = match (&config.join, pristine) {
            (Some(seed), true) => Some(seed.clone()),
            _ => None,
        };
        let ca = identity::cluster_ca(dir, &token, joining.as_deref()).await?;
        // Before it has its certificate, a joining node calls as a stranger holding the token.
        let stranger = Peers::new(
            secret.clone(),
            ca.as_ref()
                .map(|ca| blindstore_rpc::tls::client_config(&ca.cert_pem, None)),
        );
        let id = identity::node_id(
            dir,
            &log,
            config.node_id,
            joining.as_deref(),
            &stranger,
            ca.as_ref(),
            config.feature_level,
        )
        .await?;
        let tls = ca
            .map(|ca| identity::node_cert(dir, id, &ca).map(|cert| identity::NodeTls { ca, cert }))
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
                .map_err(|e| CoreError::Unavailable(format!("raft config: {e}")))?,
        );
        // The state store syncs in the background, not at each commit: a machine crash leaves
        // it rebuilt from the snapshot (above), behind what this node served before, while the
        // saved commit index trails. Until it has applied every entry its log held at start,
        // or a read barrier has shown it current, it serves nothing from its state.
        let mut log = log;
        let held_at_start = openraft::storage::RaftLogStorage::get_log_state(&mut log)
            .await
            .map_err(|e| CoreError::Unavailable(format!("reading the log: {e}")))?
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
        .map_err(|e| CoreError::Unavailable(format!("raft start: {e}")))?;
        let own_info = NodeInfo {
            rpc_addr: config.rpc_addr.clone(),
            http_addr: config.http_addr.clone(),
        };

        let bootstrapped = pristine && joining.is_none();
        if bootstrapped {
            let members = BTreeMap::from([(id, own_info.clone())]);
            raft.initialize(members)
                .await
                .map_err(|e| CoreError::Unavailable(format!("bootstrap: {e}")))?;
            tracing::info!(node_id = id, "bootstrapped a one-voter cluster");
        }

        let renew = tls.as_ref().is_some_and(|t| {
            t.ca.signer.is_none()
                && t.cert
                    .expires_within(blindstore_rpc::tls::NODE_CERT_RENEW_BEFORE)
        });
        let core = Core {
            inner: Arc::new(Inner {
                id,
                data_dir: config.data_dir.clone(),
                secret,
                bootstrapped,
                pristine,
                joining,
                own_info,
                voters: config.voters,
                feature_level: config.feature_level,
                batcher: crate::batcher::Batcher::start(raft.clone()),
                leader_reads: crate::rounds::Rounds::new(),
                removed: Default::default(),
                caught_up: std::sync::atomic::AtomicBool::new(caught_up),
                follower_reads: crate::rounds::Rounds::new(),
                raft,
                state,
                peers,
                write_timeout: config.write_timeout,
                membership: tokio::sync::Mutex::new(Reservations::default()),
                tls,
                held: std::sync::OnceLock::new(),
                shutdown: CancellationToken::new(),
                tasks: tokio::sync::Mutex::new(Vec::new()),
            }),
        };
        let tidy = tokio::spawn(crate::membership::run_tidy(
            core.clone(),
            config.tidy_interval,
            core.inner.shutdown.clone(),
        ));
        core.add_task(tidy).await;
        let keeper = tokio::spawn(crate::versions::run_version_keeper(
            core.clone(),
            core.inner.shutdown.clone(),
        ));
        core.add_task(keeper).await;
        let syncing = tokio::spawn(run_state_sync(
            core.inner.state.clone(),
            core.inner.shutdown.clone(),
        ));
        core.add_task(syncing).await;
        if !caught_up {
            let catching_up = tokio::spawn(core.clone().catch_up(held_at_start.unwrap_or(0)));
            core.add_task(catching_up).await;
        }
        core.add_task(tokio::spawn(core.clone().watch_for_removal()))
            .await;
        core.add_task(tokio::spawn(core.clone().follow_join_secret()))
            .await;
        if renew {
            let renewal = tokio::spawn(core.clone().renew_own_certificate(dir.clone()));
            core.add_task(renewal).await;
        }
        Ok(core)
    }

    /// Serves node-to-node gRPC with `rpc` (if given) until shutdown, then — on a joining
    /// node — asks to be added to the cluster, or on a restarted member announces its
    /// addresses. Call once, when the node above the core is ready for peers' calls; `held`
    /// counts the chunks it holds.
    pub async fn serve(&self, held: HeldChunks, rpc: Option<RpcServices>) -> Result<(), CoreError> {
        let _ = self.inner.held.set(held);
        if let Some(rpc) = rpc {
            let server_tls = self
                .inner
                .tls
                .as_ref()
                .map(|t| blindstore_rpc::tls::server_config(&t.ca.cert_pem, &t.cert));
            let rpc_task = tokio::spawn(rpc_server::serve_rpc(
                self.clone(),
                rpc.listener,
                self.inner.secret.clone(),
                server_tls,
                rpc.services,
            ));
            self.add_task(rpc_task).await;
        }
        if let Some(seed) = self.inner.joining.clone() {
            self.ask_to_be_added(&seed).await?;
        } else if !self.inner.pristine {
            let refresh = tokio::spawn(self.clone().announce_own_address());
            self.add_task(refresh).await;
        }
        Ok(())
    }
}

/// How often the state store's commits are synced: what a machine crash can take from it (and
/// the log replays), as etcd's backend commits every 100 ms.
pub const STATE_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Syncs the state store every [`STATE_SYNC_INTERVAL`] while anything changed, until shutdown
/// ([`Core::shutdown`] syncs it one last time and marks it closed).
async fn run_state_sync(state: StateMachineStore, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(STATE_SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let state = state.clone();
        if let Err(e) = blocking(move || state.sync()).await {
            tracing::error!(error = %e, "the state store could not be synced");
        }
    }
}
