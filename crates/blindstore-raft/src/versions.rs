//! The cluster's version, for rolling upgrades. Each build supports a feature level
//! (`FEATURE_LEVEL`) and says so when asked (the `Version` call; a build older than levels
//! answers UNIMPLEMENTED, which means level 1). The leader moves the cluster's version, kept in
//! the replicated state, up to the lowest level of its members once every one of them has
//! answered; a command of a higher level is rejected until then (`Command::required_level`),
//! so no member ever meets an entry, or a snapshot row, its build cannot read. A node whose
//! build is below the cluster's version refuses to start, and one asking to join is refused.

use std::collections::BTreeSet;
use std::time::Duration;

use blindstore_rpc::v1::VersionRequest;
use blindstore_storage::StateMachineStore;
use blindstore_types::command::{Command, FIRST_FEATURE_LEVEL};
use blindstore_types::raft::{NodeId, NodeInfo};
use tokio_util::sync::CancellationToken;

use crate::{Core, CoreError};

/// How often the leader checks whether the cluster's version can move (only while it is below
/// the leader's own level).
pub(crate) const VERSION_CHECK: Duration = Duration::from_secs(1);

/// How long the leader waits for a member's level.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The level a node stated: 0 is what a build older than levels sends.
pub(crate) fn stated_level(level: u32) -> u32 {
    level.max(FIRST_FEATURE_LEVEL)
}

/// At start-up: refuses a build older than the cluster's version this data dir recorded.
pub(crate) fn check_start(state: &StateMachineStore, own_level: u32) -> Result<(), CoreError> {
    let version = state.cluster_version()?;
    if version > own_level {
        return Err(CoreError::Identity(format!(
            "this data dir belongs to a cluster at version {version}, and this build supports feature level {own_level} at most: start a build at least as new as the cluster's other members (a cluster's version never goes back)"
        )));
    }
    Ok(())
}

pub(crate) async fn run_version_keeper(core: Core, shutdown: CancellationToken) {
    let mut last_said = String::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(VERSION_CHECK) => {}
        }
        match core.advance_version().await {
            Ok(said) => {
                // Said once, not every second: why the version waits, or that it moved.
                if let Some(said) = said.filter(|s| *s != last_said) {
                    tracing::info!("{said}");
                    last_said = said;
                }
            }
            Err(e) => tracing::debug!(error = %e, "checking the cluster's version; will retry"),
        }
    }
}

impl Core {
    /// Leader: moves the cluster's version up now rather than at the next check (a second
    /// away). A node that is its cluster's only member calls it before it serves, so a new
    /// cluster answers at its build's level from its first request.
    pub async fn advance_version_now(&self) -> Result<(), CoreError> {
        if let Some(said) = self.advance_version().await? {
            tracing::info!("{said}");
        }
        Ok(())
    }

    /// The feature level this node's build supports.
    pub fn feature_level(&self) -> u32 {
        self.inner.feature_level
    }

    /// The cluster's version as this node has applied it.
    pub fn cluster_version(&self) -> u32 {
        self.inner
            .state
            .cluster_version()
            .unwrap_or(FIRST_FEATURE_LEVEL)
    }

    /// The cluster's id, once set.
    pub fn cluster_id(&self) -> Option<[u8; 16]> {
        self.inner.state.cluster_id().ok().flatten()
    }

    /// Leader: refuses a joining node whose build is older than the cluster's version.
    pub(crate) fn check_joining_level(&self, id: NodeId, level: u32) -> Result<(), CoreError> {
        let version = self.cluster_version();
        let level = stated_level(level);
        if level < version {
            let who = match id {
                0 => "the joining node".to_owned(),
                id => format!("node {id}"),
            };
            return Err(CoreError::TooOld(format!(
                "{who} runs a build of feature level {level}, and the cluster runs version {version}: join with a build at least as new as the cluster's members"
            )));
        }
        Ok(())
    }

    /// A member's level, or `None` if it did not answer.
    async fn member_level(&self, info: &NodeInfo) -> Option<u32> {
        let mut client = self.inner.peers.cluster(&info.rpc_addr).ok()?;
        match tokio::time::timeout(ASK_TIMEOUT, client.version(VersionRequest {})).await {
            Ok(Ok(reply)) => Some(stated_level(reply.into_inner().feature_level)),
            Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => Some(FIRST_FEATURE_LEVEL),
            _ => None,
        }
    }

    /// Leader: moves the cluster's version up to the lowest level of its members when every
    /// member answered, and names the cluster once its version allows. What it did or why
    /// the version waits, for the log.
    pub(crate) async fn advance_version(&self) -> Result<Option<String>, CoreError> {
        if !self.is_leader() {
            return Ok(None);
        }
        let mut said = None;
        let current = self.cluster_version();
        if current < self.inner.feature_level {
            // Asked without holding anything: a member that is slow to answer holds up no join.
            let members: Vec<(NodeId, NodeInfo)> = self
                .membership()
                .nodes()
                .map(|(id, info)| (*id, info.clone()))
                .collect();
            let mut lowest = self.inner.feature_level;
            let mut behind = Vec::new();
            for (id, info) in members.iter().filter(|(id, _)| *id != self.inner.id) {
                let Some(level) = self.member_level(info).await else {
                    return Ok(Some(format!(
                        "cluster version stays at {current}: node {id} does not answer for its build's level"
                    )));
                };
                if level <= current {
                    behind.push(format!("node {id} (level {level})"));
                }
                lowest = lowest.min(level);
            }
            if lowest <= current {
                return Ok(Some(format!(
                    "cluster version stays at {current}: older builds on {}",
                    behind.join(", ")
                )));
            }
            // Joins wait while the version moves, and a member added since the levels were
            // asked (its join checked against the old version) means asking again first.
            let _joins = self.inner.membership.lock().await;
            let asked: BTreeSet<NodeId> = members.iter().map(|(id, _)| *id).collect();
            if self.member_ids() != asked {
                return Ok(None);
            }
            self.propose(Command::SetClusterVersion { level: lowest })
                .await?;
            said = Some(format!(
                "cluster version moved from {current} to {lowest}: every member supports it"
            ));
        }
        let naming = Command::SetClusterId { id: rand::random() };
        if self.cluster_id().is_none() && naming.required_level() <= self.cluster_version() {
            self.propose(naming).await?;
        }
        Ok(said)
    }
}
