//! Group commit above openraft: the leader's concurrent proposals share log entries.
//!
//! openraft 0.9 writes (and fsyncs) each `client_write` as its own log append before it takes
//! the next one, so a proposal per request costs one log flush per request. Instead, proposals
//! queue here; one task takes everything queued, up to [`MAX_BATCH_COMMANDS`] commands and
//! [`MAX_BATCH_BYTES`] of them, and proposes it as one [`Command::Batch`] whose responses come
//! back in order, one per command. At most [`IN_FLIGHT`] batches are proposed at a time: while
//! they commit, the next batch fills, so the batch grows with the load and a lone request waits
//! for nothing but its own commit.
//!
//! Each command of a batch is applied on its own (a rejected compare-and-set changes nothing
//! and does not affect the others), exactly as if it had been proposed alone, in the same order.

use std::sync::Arc;

use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::raft::{NodeId, NodeInfo};
use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::NodeError;
use crate::node::write_error;
use blindstore_storage::TypeConfig;

/// The most commands in one log entry.
pub(crate) const MAX_BATCH_COMMANDS: usize = 512;
/// Roughly the most command bytes in one log entry (a single larger command still goes, alone):
/// it keeps an entry within one append-entries message of the transport, and the log kept
/// between snapshots (`snapshot_logs` entries) within its map.
pub(crate) const MAX_BATCH_BYTES: usize = 256 << 10;
/// Batches proposed and not yet committed, at most. Two lets the leader flush one batch while
/// the followers store the previous one.
const IN_FLIGHT: usize = 2;
/// Proposals waiting to be batched, at most; callers wait (within their write deadline) for
/// room beyond it.
const QUEUE: usize = 8192;

type WriteResult = Result<CommandResponse, RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>>;

struct Proposal {
    command: Command,
    size: usize,
    reply: oneshot::Sender<WriteResult>,
}

/// The queue in front of this node's Raft, for commands proposed while it leads.
#[derive(Clone)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<Proposal>,
}

impl Batcher {
    /// Starts the batching task for `raft`; it ends when every `Batcher` clone is dropped.
    pub(crate) fn start(raft: Raft<TypeConfig>) -> Self {
        let (queue, proposals) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, proposals));
        Self { queue }
    }

    /// Proposes `command` in the next batch and waits for its own response. Errors are those
    /// of `client_write` (the whole batch shares them).
    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResponse, NodeError> {
        let (reply, answer) = oneshot::channel();
        let size = approximate_size(&command);
        self.queue
            .send(Proposal {
                command,
                size,
                reply,
            })
            .await
            .map_err(|_| NodeError::Unavailable("the node is shutting down".into()))?;
        match answer.await {
            Ok(result) => result.map_err(write_error),
            // The batch task ended with the proposal taken: it may be in the log.
            Err(_) => Err(NodeError::OutcomeUnknown(
                "the node stopped while proposing".into(),
            )),
        }
    }
}

async fn run(raft: Raft<TypeConfig>, mut proposals: mpsc::Receiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = proposals.recv().await {
        // Waiting for a free slot first lets the batch fill while earlier ones commit.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // A caller past its write deadline was told the outcome is unknown and may have moved
        // on: its command, never proposed, is dropped rather than committed late.
        let mut bytes = 0;
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(proposal) = next.take() {
            if !proposal.reply.is_closed() {
                bytes += proposal.size;
                batch.push(proposal);
            }
            if batch.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
                next = proposals.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        metrics::histogram!("blindstore_raft_batch_commands").record(batch.len() as f64);
        let raft = raft.clone();
        tokio::spawn(async move {
            propose_batch(&raft, batch).await;
            drop(permit);
        });
    }
}

/// Proposes one batch (a lone command as itself) and hands each caller its response.
async fn propose_batch(raft: &Raft<TypeConfig>, mut batch: Vec<Proposal>) {
    if batch.len() == 1 {
        let Proposal { command, reply, .. } = batch.pop().expect("one proposal");
        let _ = reply.send(raft.client_write(command).await.map(|r| r.data));
        return;
    }
    let (commands, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    let count = commands.len();
    match raft.client_write(Command::Batch(commands)).await {
        Ok(written) => match written.data {
            CommandResponse::Batch(responses) if responses.len() == count => {
                for (reply, response) in replies.into_iter().zip(responses) {
                    let _ = reply.send(Ok(response));
                }
            }
            other => {
                // Cannot happen: the state machine answers a batch with one response per command.
                tracing::error!(?other, count, "a batch was answered without its responses");
                for reply in replies {
                    let _ = reply.send(Ok(CommandResponse::None));
                }
            }
        },
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// About how many bytes `command` adds to a log entry: what counts is the payloads that travel
/// inline; other commands are small.
fn approximate_size(command: &Command) -> usize {
    const SMALL: usize = 256;
    match command {
        Command::AppendWithPayload {
            payload, header, ..
        } => SMALL + payload.len() + header.chunks.len() * 32,
        Command::Append { header, .. } => SMALL + header.chunks.len() * 32,
        Command::PublishSite { manifest, .. } => SMALL + manifest.files.len() * 128,
        _ => SMALL,
    }
}
