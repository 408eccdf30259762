//! Reaching the leader from a follower: writes are forwarded to it (keeping "certainly not
//! done" apart from "outcome unknown"), and a linearizable read on a follower asks it for its
//! read index and waits until this node has applied that far.

use std::time::Duration;

use blindstore_rpc::v1::forward_error::Kind;
use blindstore_rpc::v1::forward_reply::Result as ForwardResult;
use blindstore_rpc::v1::{ForwardRequest, ReadIndexRequest};
use blindstore_rpc::{never_sent, Authed};
use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::record::{decode, encode};

use crate::{Core, CoreError, FORWARD_TIMEOUT};

impl Core {
    /// The leader's rpc address, or why there is none to talk to.
    pub(crate) fn leader_rpc(&self) -> Result<String, CoreError> {
        match self.leader() {
            Some((_, info)) if !info.rpc_addr.is_empty() => Ok(info.rpc_addr),
            Some((id, _)) => Err(CoreError::Unavailable(format!(
                "leader {id} has no rpc address"
            ))),
            None => Err(CoreError::Unavailable("no leader is known".into())),
        }
    }

    pub(crate) fn leader_client(
        &self,
    ) -> Result<blindstore_rpc::v1::cluster_client::ClusterClient<Authed>, CoreError> {
        let addr = self.leader_rpc()?;
        self.inner
            .peers
            .cluster(&addr)
            .map_err(|s| CoreError::Unavailable(s.to_string()))
    }

    /// Proposes on the leader, from a follower. A request that certainly did not reach it is
    /// `Unavailable`; one that may have is `OutcomeUnknown`.
    pub(crate) async fn forward(&self, command: &Command) -> Result<CommandResponse, CoreError> {
        let mut client = self.leader_client()?;
        let request = ForwardRequest {
            command_record: encode(command),
        };
        // The leader bounds its own proposal by the same deadline; a second more lets its
        // answer arrive.
        let limit = self.inner.write_timeout + Duration::from_secs(1);
        let reply = match tokio::time::timeout(limit, client.forward(request)).await {
            Err(_) => {
                return Err(CoreError::OutcomeUnknown(
                    "forwarded write timed out".into(),
                ))
            }
            Ok(Err(s)) if never_sent(&s) => {
                return Err(CoreError::Unavailable(format!(
                    "leader unreachable: {}",
                    s.message()
                )))
            }
            Ok(Err(s)) => {
                return Err(CoreError::OutcomeUnknown(format!(
                    "forwarded write failed: {}",
                    s.message()
                )))
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        match reply.result {
            Some(ForwardResult::ResponseRecord(record)) => decode("command response", &record)
                .map_err(|e| CoreError::OutcomeUnknown(e.to_string())),
            Some(ForwardResult::Error(e)) if e.kind == Kind::Unavailable as i32 => {
                Err(CoreError::Unavailable(e.message))
            }
            Some(ForwardResult::Error(e)) => Err(CoreError::OutcomeUnknown(e.message)),
            None => Err(CoreError::OutcomeUnknown("empty forward reply".into())),
        }
    }

    /// Leader: the index a linearizable read must see applied.
    pub(crate) async fn leader_read_index(&self) -> Result<u64, CoreError> {
        let log_id = self
            .leader_read()
            .await
            .map_err(|e| CoreError::Unavailable(format!("read index: {e}")))?
            .map_err(|e| CoreError::Unavailable(format!("read index: {e}")))?;
        Ok(log_id.map(|l| l.index).unwrap_or(0))
    }

    /// Follower: asks the leader for its read index.
    async fn fetch_read_index(&self) -> Result<u64, String> {
        let mut client = self.leader_client().map_err(|e| e.to_string())?;
        match tokio::time::timeout(FORWARD_TIMEOUT, client.read_index(ReadIndexRequest {})).await {
            Err(_) => Err("read index timed out".into()),
            Ok(Err(s)) => Err(format!("read index: {}", s.message())),
            Ok(Ok(reply)) => Ok(reply.into_inner().index),
        }
    }

    /// Follower: waits until this node has applied the leader's read index.
    /// The leader's read index comes from a call shared with the other reads waiting here.
    pub(crate) async fn follower_read_barrier(&self) -> Result<(), CoreError> {
        let index = self
            .inner
            .follower_reads
            .join(FORWARD_TIMEOUT, || self.fetch_read_index())
            .await
            .map_err(|_| "read index timed out".to_owned())
            .and_then(|index| index)
            .map_err(CoreError::Unavailable)?;
        self.inner
            .raft
            .wait(Some(FORWARD_TIMEOUT))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| CoreError::Unavailable(format!("catching up to the read index: {e}")))
    }
}
