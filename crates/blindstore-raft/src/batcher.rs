//! Group commit above openraft: the leader's concurrent proposals share log entries.
//!
//! openraft 0.9 writes (and fsyncs) each `client_write` as its own log append before it takes
//! the next one, so a proposal per request costs one log flush per request. Instead, proposals
//! queue here; one task takes what is queued, up to [`MAX_BATCH_COMMANDS`] commands and
//! [`MAX_BATCH_BYTES`] of their encoded bytes, and proposes it as one [`Command::Batch`] whose
//! responses come back in order, one per command. At most [`IN_FLIGHT`] batches are proposed at
//! a time: while they commit, the next batch fills, so the batch grows with the load and a lone
//! request waits for nothing but its own commit.
//!
//! Bounds, all by encoded bytes (an estimate once let an entry grow past what a follower can
//! receive, and every write stalled):
//! - a batch never crosses [`MAX_BATCH_BYTES`]: a command that would is held for the next
//!   one; a command alone above [`MAX_COMMAND_BYTES`] is refused (413) before it is proposed;
//! - the commands waiting or in flight hold at most [`MAX_QUEUED_BYTES`]; a caller waits for
//!   room within its write deadline, and a caller that gives up takes its command out of the
//!   queue at once;
//! - batches reach openraft in the order they were formed (one task submits them), and only
//!   their commits are awaited concurrently.
//!
//! Each command of a batch is applied on its own (a rejected compare-and-set changes nothing
//! and does not affect the others), exactly as if it had been proposed alone, in the same order.

use std::sync::{Arc, Mutex};

use blindstore_types::command::{Command, CommandResponse};
use blindstore_types::raft::{NodeId, NodeInfo};
use blindstore_types::record::encoded_len;
use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::write_error;
use crate::CoreError;
use crate::TypeConfig;

/// The most commands in one log entry.
pub(crate) const MAX_BATCH_COMMANDS: usize = 512;
/// The most encoded command bytes in one log entry of several commands: it keeps an entry
/// within one append-entries message of the transport, and the log kept between snapshots
/// (`snapshot_logs` entries) within its map.
pub(crate) const MAX_BATCH_BYTES: usize = 256 << 10;
/// The largest command, encoded: it goes alone in its entry, far below the 16 MiB a Raft
/// message may carry. Larger ones are refused before they are proposed.
pub const MAX_COMMAND_BYTES: usize = 4 << 20;
/// Encoded bytes of the commands waiting to be batched or being committed, at most.
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// What a command adds to a batch's entry besides its own encoding (its place in the list).
const PER_COMMAND: usize = 8;
/// Batches proposed and not yet committed, at most. Two lets the leader flush one batch while
/// the followers store the previous one.
const IN_FLIGHT: usize = 2;
/// Proposals waiting to be batched, at most; callers wait (within their write deadline) for
/// room beyond it.
const QUEUE: usize = 8192;

type WriteResult = Result<CommandResponse, RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>>;

/// A command waiting for its batch, with the queue bytes it holds.
struct Queued {
    command: Command,
    _bytes: OwnedSemaphorePermit,
}

/// A command's place in the queue. Its command is taken by the batch that proposes it, or by
/// its caller on giving up (the bytes are free again and it is never proposed).
type Slot = Arc<Mutex<Option<Queued>>>;

struct Proposal {
    slot: Slot,
    size: usize,
    reply: oneshot::Sender<WriteResult>,
}

impl Proposal {
    /// The command, unless its caller gave up.
    fn take(&self) -> Option<Queued> {
        if self.reply.is_closed() {
            return None;
        }
        self.slot.lock().expect("proposal slot").take()
    }
}

/// Takes a waiting command out of the queue when its caller stops waiting.
struct Abandon(Slot);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.lock().expect("proposal slot").take();
    }
}

/// The queue in front of this node's Raft, for commands proposed while it leads.
#[derive(Clone)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<Proposal>,
    bytes: Arc<Semaphore>,
}

impl Batcher {
    /// Starts the batching task for `raft`; it ends when every `Batcher` clone is dropped.
    pub(crate) fn start(raft: Raft<TypeConfig>) -> Self {
        let (queue, proposals) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, proposals));
        Self {
            queue,
            bytes: Arc::new(Semaphore::new(MAX_QUEUED_BYTES)),
        }
    }

    /// Proposes `command` in the next batch and waits for its own response. Errors are those
    /// of `client_write` (the whole batch shares them), and `TooLarge` for a command above
    /// [`MAX_COMMAND_BYTES`].
    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResponse, CoreError> {
        let size = check_size(&command)? + PER_COMMAND;
        let bytes = self
            .bytes
            .clone()
            .acquire_many_owned(size as u32)
            .await
            .map_err(|_| CoreError::Unavailable("the node is shutting down".into()))?;
        let slot: Slot = Arc::new(Mutex::new(Some(Queued {
            command,
            _bytes: bytes,
        })));
        let _abandon = Abandon(slot.clone());
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Proposal { slot, size, reply })
            .await
            .map_err(|_| CoreError::Unavailable("the node is shutting down".into()))?;
        match answer.await {
            Ok(result) => result.map_err(write_error),
            // The batch task ended with the proposal taken: it may be in the log.
            Err(_) => Err(CoreError::OutcomeUnknown(
                "the node stopped while proposing".into(),
            )),
        }
    }
}

/// The encoded size of `command`, or `TooLarge` if it could never be proposed.
pub(crate) fn check_size(command: &Command) -> Result<usize, CoreError> {
    let size = encoded_len(command);
    if size > MAX_COMMAND_BYTES {
        return Err(CoreError::TooLarge {
            what: "one write (encoded)",
            limit: MAX_COMMAND_BYTES as u64,
        });
    }
    Ok(size)
}

async fn run(raft: Raft<TypeConfig>, mut proposals: mpsc::Receiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    // A proposal that did not fit the last batch opens the next one.
    let mut held: Option<(Proposal, Queued)> = None;
    loop {
        let first = match held.take() {
            Some(first) => first,
            None => {
                let Some(proposal) = proposals.recv().await else {
                    return;
                };
                // A caller past its write deadline was told the outcome is unknown and took its
                // command back: it is never proposed.
                match proposal.take() {
                    Some(queued) => (proposal, queued),
                    None => continue,
                }
            }
        };
        // Waiting for a free slot first lets the batch fill while earlier ones commit.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.0.size;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_COMMANDS {
            let Ok(proposal) = proposals.try_recv() else {
                break;
            };
            let Some(queued) = proposal.take() else {
                continue;
            };
            if bytes + proposal.size > MAX_BATCH_BYTES {
                held = Some((proposal, queued));
                break;
            }
            bytes += proposal.size;
            batch.push((proposal, queued));
        }
        metrics::histogram!("blindstore_raft_batch_commands").record(batch.len() as f64);
        metrics::histogram!("blindstore_raft_batch_bytes").record(bytes as f64);
        // Submitted here, in order; only the commits are awaited apart.
        let (replies, queued): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|(proposal, queued)| (proposal.reply, queued))
            .unzip();
        let mut commands = Vec::with_capacity(queued.len());
        let mut held_bytes = Vec::with_capacity(queued.len());
        for Queued { command, _bytes } in queued {
            commands.push(command);
            held_bytes.push(_bytes);
        }
        let count = commands.len();
        let command = if count == 1 {
            commands.pop().expect("one command")
        } else {
            Command::Batch(commands)
        };
        let submitted = raft.client_write_ff(command).await;
        tokio::spawn(async move {
            let result: WriteResult = match submitted {
                Err(fatal) => Err(RaftError::Fatal(fatal)),
                Ok(committed) => match committed.await {
                    Err(_) => Err(RaftError::Fatal(Fatal::Stopped)),
                    Ok(Err(e)) => Err(RaftError::APIError(e)),
                    Ok(Ok(written)) => Ok(written.data),
                },
            };
            answer(replies, result, count);
            drop(held_bytes);
            drop(permit);
        });
    }
}

/// Hands each caller of a batch its response (a lone command's is the response itself).
fn answer(replies: Vec<oneshot::Sender<WriteResult>>, result: WriteResult, count: usize) {
    match result {
        Ok(response) if count == 1 => {
            for reply in replies {
                let _ = reply.send(Ok(response.clone()));
            }
        }
        Ok(CommandResponse::Batch(responses)) if responses.len() == count => {
            for (reply, response) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok(response));
            }
        }
        Ok(other) => {
            // Cannot happen: the state machine answers a batch with one response per command.
            tracing::error!(?other, count, "a batch was answered without its responses");
            for reply in replies {
                let _ = reply.send(Ok(CommandResponse::None));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blindstore_types::account::ZoneSettings;
    use blindstore_types::ZoneId;

    #[test]
    fn commands_are_sized_by_their_encoding_and_the_largest_are_refused() {
        let zone = ZoneId::new("demo").unwrap();
        let mut settings = ZoneSettings {
            cors_origins: vec!["https://a.example".repeat(40_000)],
            ..Default::default()
        };
        let big = Command::SetZoneSettings {
            zone: zone.clone(),
            settings: settings.clone(),
        };
        let size = check_size(&big).unwrap();
        assert!(size > 600_000, "{size}");
        settings.cors_origins = vec!["https://a.example".repeat(300_000)];
        let huge = Command::SetZoneSettings { zone, settings };
        assert!(matches!(check_size(&huge), Err(CoreError::TooLarge { .. })));
    }
}
