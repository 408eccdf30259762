//! The membership as Raft holds it, and changing it: who the members and the leader are,
//! draining a node, removing one. Joining is in `joining`, reaching the leader in
//! `forwarding`, the node-to-node server in `rpc_server`.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::TypeConfig;
use blindstore_types::api::{ClusterMembers, Member};
use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::raft::{NodeId, NodeInfo};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft};

use crate::{Core, CoreError};

/// Runs [`Core::tidy_membership`] every `interval` until `shutdown`.
pub(crate) async fn run_tidy(node: Core, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = node.tidy_membership().await {
            tracing::warn!(error = %e, "tidying the membership failed; will retry");
        }
    }
}

impl Core {
    /// Runs one membership change (or learner addition) on the leader within `limit`. A
    /// change that errs or times out may still commit: its outcome is unknown.
    pub(crate) async fn change_bounded<F>(
        &self,
        limit: Duration,
        change: F,
    ) -> Result<(), CoreError>
    where
        F: std::future::Future<
            Output = Result<
                openraft::raft::ClientWriteResponse<TypeConfig>,
                RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>,
            >,
        >,
    {
        match tokio::time::timeout(limit, change).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                // Refused before anything was proposed (e.g. another change in progress).
                Err(CoreError::Unavailable(e.to_string()))
            }
            Ok(Err(e)) => Err(crate::error::write_error(e)),
            Err(_) => Err(CoreError::OutcomeUnknown(format!(
                "membership change not committed within {limit:?}"
            ))),
        }
    }

    /// The membership as this node sees it.
    pub fn members(&self) -> ClusterMembers {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let matched = m.replication.clone().unwrap_or_default();
        let draining = self.inner.state.draining().unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(id, info)| Member {
                draining: draining.contains(id),
                node_id: *id,
                role: if voters.contains(id) {
                    "voter"
                } else {
                    "learner"
                }
                .into(),
                rpc_addr: info.rpc_addr.clone(),
                http_addr: info.http_addr.clone(),
                matched: matched.get(id).copied().flatten().map(|l| l.index),
            })
            .collect();
        ClusterMembers {
            node_id: self.inner.id,
            leader: m.current_leader,
            term: m.current_term,
            leader_last_log_index: (m.current_leader == Some(self.inner.id))
                .then_some(m.last_log_index)
                .flatten(),
            members,
            removed: self.removed_nodes().into_iter().collect(),
        }
    }

    /// The latest membership this node knows (it may not be committed yet).
    pub fn membership(&self) -> openraft::Membership<NodeId, NodeInfo> {
        self.inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone()
    }

    /// The nodes that hold chunks: every member of the Raft membership that can be reached
    /// (has an rpc address), and always this node.
    pub fn storage_members(&self) -> Vec<(NodeId, NodeInfo)> {
        self.membership()
            .nodes()
            .filter(|(id, info)| **id == self.inner.id || !info.rpc_addr.is_empty())
            .map(|(id, info)| (*id, info.clone()))
            .collect()
    }

    pub(crate) fn raft(&self) -> &Raft<TypeConfig> {
        &self.inner.raft
    }

    /// The current leader and how to reach it, if known.
    pub(crate) fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        let leader = self.inner.raft.metrics().borrow().current_leader?;
        let info = self.membership().get_node(&leader).cloned()?;
        Some((leader, info))
    }

    /// Whether this node is leading now. (After a restart, `current_leader` can name this
    /// node from its saved vote before it has been elected again; the server state cannot.)
    pub(crate) fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics().borrow().clone();
        m.state == openraft::ServerState::Leader && m.current_leader == Some(self.inner.id)
    }

    /// Marks `node` as draining (or not). Its chunks then move to their other owners.
    pub async fn set_draining(&self, node: NodeId, draining: bool) -> Result<(), CoreError> {
        if !self.member_ids().contains(&node) {
            return Err(CoreError::BadRequest(format!(
                "node {node} is not a member"
            )));
        }
        match self
            .propose(Command::SetDraining { node, draining })
            .await?
        {
            CommandResponse::DrainingSet => Ok(()),
            other => Err(CoreError::Internal(format!("unexpected answer {other:?}"))),
        }
    }

    /// Leader: takes `node` out of the membership. Without `force` the node must be draining
    /// and hold no chunks (every chunk it held then has its full replication elsewhere); with
    /// `force` it goes at once and the repairers restore copies. If voters fall below the
    /// target, a storage node is promoted.
    pub async fn remove_member(
        &self,
        node: NodeId,
        force: bool,
        below_three_voters: bool,
    ) -> Result<(), CoreError> {
        if !self.is_leader() {
            let leader = self
                .leader()
                .map(|(id, info)| format!("node {id} at http://{}", info.http_addr))
                .unwrap_or_else(|| "unknown".into());
            return Err(CoreError::NotLeader(format!(
                "only the leader removes nodes; the leader is {leader}; nothing was changed"
            )));
        }
        // Held from the checks to the membership change: two removals at once cannot both
        // count the same members as staying.
        let _guard = self.inner.membership.lock().await;
        let members = self.member_ids();
        if !members.contains(&node) {
            return Err(CoreError::BadRequest(format!(
                "node {node} is not a member"
            )));
        }
        if members.len() == 1 {
            return Err(CoreError::BadRequest("cannot remove the last node".into()));
        }
        // Members able to vote afterwards: voters, and storage nodes the leader would promote;
        // a draining node is on its way out, and one already marked removed (whose membership
        // change did not finish) is gone.
        let draining = self.inner.state.draining()?;
        let removed = self.inner.state.removed_nodes()?;
        let left = members
            .iter()
            .filter(|m| **m != node && !draining.contains(m) && !removed.contains(m))
            .count();
        if left < 3 && !below_three_voters {
            return Err(CoreError::BadRequest(format!(
                "removing node {node} would leave {left} member(s) able to vote: a cluster needs \
                 a majority of its voters, so with 2 it stops committing when either one fails. \
                 Add a node first (it becomes a voter as node {node} leaves), or confirm the \
                 removal below three voters"
            )));
        }
        if !force {
            if !draining.contains(&node) {
                return Err(CoreError::BadRequest(format!(
                    "node {node} is not draining: drain it first, or use force"
                )));
            }
            let held = self.held_by(node).await?;
            if held > 0 {
                return Err(CoreError::BadRequest(format!(
                    "node {node} still holds {held} chunks; wait for the drain to finish"
                )));
            }
        }
        // Remembered first, for good: whatever happens to the membership change, the node is
        // never added back, and it learns it was removed from its own state.
        match self.propose(Command::MarkRemoved { node }).await? {
            CommandResponse::RemovedMarked => {}
            other => return Err(CoreError::Internal(format!("unexpected answer {other:?}"))),
        }
        let raft = &self.inner.raft;
        let limit = self.inner.write_timeout;
        let change = if self.voter_ids().contains(&node) {
            ChangeMembers::RemoveVoters(BTreeSet::from([node]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node]))
        };
        self.change_bounded(limit, raft.change_membership(change, false))
            .await?;
        tracing::info!(node_id = node, force, "removed from the cluster");
        drop(_guard);
        // Promoting a storage node and clearing the draining mark follow; if this node stops
        // leading first, the next leader's `tidy_membership` does them.
        self.tidy_membership().await
    }

    /// Leader: keeps the membership as wanted after removals, whoever made them: a storage
    /// node is promoted while voters are fewer than wanted, and nodes no longer members lose
    /// their draining mark. Idempotent; `run_tidy` calls it every repair interval.
    pub(crate) async fn tidy_membership(&self) -> Result<(), CoreError> {
        if !self.is_leader() {
            return Ok(());
        }
        let guard = self.inner.membership.lock().await;
        let voters = self.voter_ids();
        let draining = self.inner.state.draining()?;
        if voters.len() < self.inner.voters {
            let learner = self
                .member_ids()
                .into_iter()
                .find(|id| !voters.contains(id) && !draining.contains(id));
            if let Some(learner) = learner {
                let promote = ChangeMembers::AddVoterIds(BTreeSet::from([learner]));
                let change = self.inner.raft.change_membership(promote, false);
                self.change_bounded(self.inner.write_timeout, change)
                    .await?;
                tracing::info!(node_id = learner, "promoted a storage node to voter");
            }
        }
        drop(guard);
        let members = self.member_ids();
        for node in draining.into_iter().filter(|n| !members.contains(n)) {
            self.propose(Command::SetDraining {
                node,
                draining: false,
            })
            .await?;
        }
        Ok(())
    }

    /// How many chunks `node` holds, asked over rpc.
    pub(crate) async fn held_by(&self, node: NodeId) -> Result<u64, CoreError> {
        if node == self.inner.id {
            let held = self
                .inner
                .held
                .get()
                .ok_or_else(|| CoreError::Unavailable("the node is starting".into()))?;
            return held().map_err(CoreError::Internal);
        }
        let info = self
            .membership()
            .get_node(&node)
            .cloned()
            .ok_or_else(|| CoreError::BadRequest(format!("node {node} is not a member")))?;
        let mut client = self
            .inner
            .peers
            .cluster(&info.rpc_addr)
            .map_err(|s| CoreError::Unavailable(s.to_string()))?;
        let reply = client
            .held(blindstore_rpc::v1::HeldRequest {})
            .await
            .map_err(|s| CoreError::Unavailable(format!("asking node {node}: {}", s.message())))?;
        Ok(reply.into_inner().chunks)
    }

    pub(crate) fn member_ids(&self) -> BTreeSet<NodeId> {
        self.membership().nodes().map(|(id, _)| *id).collect()
    }

    pub(crate) fn voter_ids(&self) -> BTreeSet<NodeId> {
        self.membership().voter_ids().collect()
    }
}
