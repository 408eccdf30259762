//! The Raft core of a node: its Raft instance over the log and the replicated state, and what
//! it offers the node above it — propose a command, read at a consistency level, follow
//! applied changes, and the membership.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::TypeConfig;
use blindstore_storage::negative_controls::{self, Control::StaleReads};
use blindstore_storage::StateMachineStore;
use blindstore_types::api::Health;
use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::raft::{NodeId, NodeInfo};
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::{Raft, ServerState};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::CoreError;
use blindstore_rpc::ClusterSecret;
use blindstore_rpc::Peers;

/// How many chunks this node holds (the `Held` call, and removal's check that a drained node
/// holds none).
pub type HeldChunks = Box<dyn Fn() -> Result<u64, String> + Send + Sync>;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (Raft read index).
    #[default]
    Linearizable,
    /// Whatever this node has applied; may lag behind the leader.
    Stale,
}

/// Node ids handed out by this node as leader but not yet in the membership.
#[derive(Default)]
pub(crate) struct Reservations {
    pub(crate) reserved: BTreeSet<NodeId>,
}

/// The Raft core of a running node. Cloning shares it.
#[derive(Clone)]
pub struct Core {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) id: NodeId,
    pub(crate) data_dir: PathBuf,
    /// The join token's secret every node-to-node call carries (shared with `peers` and the
    /// rpc server; rotations switch it for all of them).
    pub(crate) secret: ClusterSecret,
    /// False after a restart until this node's state is known to be at least as new as what
    /// it served before (see `Core::start`).
    pub(crate) caught_up: std::sync::atomic::AtomicBool,
    /// Set once this node learns it was removed from the cluster.
    pub(crate) removed: std::sync::atomic::AtomicBool,
    /// Whether this start created a new cluster.
    pub(crate) bootstrapped: bool,
    /// Whether the data dir had no Raft state at this start.
    pub(crate) pristine: bool,
    /// The member to join through, on a pristine data dir with `join`.
    pub(crate) joining: Option<String>,
    /// This node's addresses as it advertises them.
    pub(crate) own_info: NodeInfo,
    /// How many voters the cluster should have; joining nodes beyond it stay learners.
    pub(crate) voters: usize,
    /// The feature level this node's build supports (`FEATURE_LEVEL`; lower in tests that
    /// play an older build).
    pub(crate) feature_level: u32,
    pub(crate) raft: Raft<TypeConfig>,
    /// Proposals made while this node leads, committed in shared log entries.
    pub(crate) batcher: crate::batcher::Batcher,
    /// Read-index rounds shared by the linearizable reads waiting at the same time: on the
    /// leader (its own reads and followers' read-index calls), and a follower's calls to it.
    pub(crate) leader_reads: crate::rounds::Rounds<LeaderRead>,
    pub(crate) follower_reads: crate::rounds::Rounds<Result<u64, String>>,
    pub(crate) state: StateMachineStore,
    pub(crate) peers: Peers,
    pub(crate) write_timeout: Duration,
    /// Serialises membership changes made by this node as leader.
    pub(crate) membership: tokio::sync::Mutex<Reservations>,
    /// The cluster CA and this node's certificate, when the cluster's rpc runs over TLS.
    pub(crate) tls: Option<crate::identity::NodeTls>,
    /// How many chunks this node holds, for the `Held` call (set by `serve`).
    pub(crate) held: std::sync::OnceLock<HeldChunks>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Core {
    /// Has `task` stopped (or aborted, past the deadline) by [`Core::shutdown`].
    pub async fn add_task(&self, task: JoinHandle<()>) {
        self.inner.tasks.lock().await.push(task);
    }

    /// Cancelled when the node starts shutting down.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// This node's Raft id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The clients of this node's peers (as a member: with its certificate on a TLS cluster).
    pub fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// How long a write may take.
    pub fn write_timeout(&self) -> Duration {
        self.inner.write_timeout
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

    /// Waits (at most `timeout`) until [`Core::is_caught_up`].
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), CoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_caught_up() {
            if tokio::time::Instant::now() >= deadline {
                return Err(CoreError::Unavailable(
                    "not caught up with the cluster after the restart".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// After a restart whose state trails the log: catches up, then lets the node serve.
    pub(crate) async fn catch_up(self, held: u64) {
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

    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, CoreError> {
        let metrics = self
            .inner
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .map_err(|e| CoreError::Unavailable(format!("no leader: {e}")))?;
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
        let state = self.inner.state.clone();
        match blindstore_storage::blocking(move || state.close()).await {
            Ok(()) => tracing::info!("state store synced and closed"),
            Err(e) => tracing::error!(error = %e, "closing the state store"),
        }
        tracing::info!("node stopped");
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
            // The chunk side of health is the node's (`Node::health`).
            under_replicated: 0,
            repair_backlog: 0,
            repair_rate: 0.0,
            chunks_held: 0,
            removed: self.is_removed(),
            feature_level: self.inner.feature_level,
            cluster_version: self.cluster_version(),
            cluster_id: self.cluster_id().map(hex::encode),
            rpc_tls: self.inner.tls.is_some(),
            // The HTTP edge knows the build and the name (`AppState`).
            name: String::new(),
            version: String::new(),
            revision: String::new(),
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
    pub fn removed_nodes(&self) -> BTreeSet<NodeId> {
        self.inner.state.removed_nodes().unwrap_or_default()
    }

    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), CoreError> {
        if consistency == Consistency::Stale || negative_controls::on(StaleReads) {
            return Ok(());
        }
        match self.leader_read().await {
            Err(timed_out) => Err(CoreError::Unavailable(format!(
                "linearizable read: no quorum confirmed the leader ({timed_out})"
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                self.follower_read_barrier().await
            }
            Ok(Err(e)) => Err(CoreError::Unavailable(format!("linearizable read: {e}"))),
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

    /// A command goes to the leader: proposed here if this node leads, else forwarded. Once
    /// proposed here it is never forwarded as well — a leader that steps down answers
    /// `ForwardToLeader` for entries that may still commit, so that is an unknown outcome,
    /// not a reason to propose the command a second time.
    pub async fn propose(&self, command: Command) -> Result<CommandResponse, CoreError> {
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
    ) -> Result<CommandResponse, CoreError> {
        let write = self.inner.batcher.propose(command);
        match tokio::time::timeout(self.inner.write_timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(CoreError::OutcomeUnknown(format!(
                "not committed within the write deadline of {:?}",
                self.inner.write_timeout
            ))),
        }
    }
}

/// What openraft's `ensure_linearizable` answers.
pub(crate) type LeaderRead = Result<
    Option<openraft::LogId<NodeId>>,
    RaftError<NodeId, CheckIsLeaderError<NodeId, NodeInfo>>,
>;
