//! Chains: creating them, appending (the compare-and-set that keeps them from forking),
//! reading entries with their payloads, and following changes.

use blindstore_replication::Writer;
use blindstore_storage::negative_controls::{
    self,
    Control::{EarlyAck, SkipCas},
};
use blindstore_types::command::{ChainHead, Command, CommandResponse, Rejection};
use blindstore_types::entry::{check_public_key, EntryHeader, UnsignedEntry};
use blindstore_types::{ChainId, Hash32, PublicKey, Signature, ZoneId};

use crate::error::rejection;
use crate::{Authenticated, Consistency, NodeError};

/// An append as a client sends it.
#[derive(Debug, Clone)]
pub struct AppendInput {
    pub index: u64,
    pub prev: Hash32,
    pub payload: Vec<u8>,
    pub chunks: Vec<Hash32>,
    pub signature: Signature,
}

/// Which entries to read.
#[derive(Debug, Clone, Copy)]
pub enum ReadEntries {
    /// `limit` entries starting at index `from`.
    From { from: u64, limit: usize },
    /// The last `n` entries.
    Last(usize),
}

/// A page of entries with their payloads.
#[derive(Debug, Clone)]
pub struct EntriesPage {
    pub chain: ChainHead,
    pub entries: Vec<(EntryHeader, Vec<u8>)>,
    /// Set when entries exist after the returned ones: where to continue.
    pub next: Option<u64>,
}

/// An upper bound on the bytes one entry adds to a JSON read answer: the payload as base64,
/// each referenced chunk as quoted hex, and the fixed fields (hashes, signature, index).
pub fn entry_answer_bytes(header: &EntryHeader) -> u64 {
    const FIXED: u64 = 512;
    header.payload_len.div_ceil(3) * 4 + header.chunks.len() as u64 * 67 + FIXED
}

facade!(
    /// Chains: creating them, appending, reading and following entries.
    Chains,
    chains
);

impl Chains<'_> {
    /// Follows one chain on this node: woken after each applied batch that appended to it
    /// (and after a snapshot is installed), never by changes to other chains.
    pub fn chain_changes(
        &self,
        zone: &ZoneId,
        chain: &ChainId,
    ) -> blindstore_storage::ChainChanges {
        self.inner.state.chain_changes(zone, chain)
    }

    /// How many chains live readers follow on this node.
    pub fn followed_chains(&self) -> usize {
        self.inner.state.followed_chains()
    }

    /// Creates the chain owned by `public_key`; returns whether it was new, and the chain.
    #[tracing::instrument(skip_all, fields(zone = %zone), err(level = "debug"))]
    /// `who` as for [`Node::put_chunk`]: in a zone whose writes need accounts the chain is
    /// the account's, held to its chain quota.
    pub async fn create_chain(
        &self,
        zone: &ZoneId,
        public_key: PublicKey,
        who: Option<&Authenticated>,
    ) -> Result<(bool, ChainHead), NodeError> {
        check_public_key(&public_key).map_err(|_| NodeError::BadPublicKey)?;
        self.zones().require_zone_fresh(zone).await?;
        let writer = self.chunks().writer(zone, who)?;
        self.chunks().check_room()?;
        let command = match (writer, who) {
            (Writer::Client(Some(account)), Some(who)) => Command::CreateAccountChain {
                zone: zone.clone(),
                public_key,
                account,
                acting: who.acting(),
            },
            _ => Command::CreateChain {
                zone: zone.clone(),
                public_key,
            },
        };
        answer!(
            self.propose(command).await?,
            CommandResponse::ChainCreated { created, chain } => (created, chain)
        )
    }

    pub async fn chain(
        &self,
        zone: &ZoneId,
        chain: &ChainId,
        consistency: Consistency,
    ) -> Result<ChainHead, NodeError> {
        self.read_barrier(consistency).await?;
        self.zones().require_zone(zone)?;
        self.inner
            .state
            .chain(zone, chain)?
            .ok_or(NodeError::UnknownChain)
    }

    /// Appends a signed entry. Checks, in order: limits, the signature, that every referenced
    /// chunk is stored, and (early, then again inside the state machine) the index/prev
    /// compare-and-set. A payload of at most `inline_payload_bytes` travels in the Raft entry
    /// (every voter keeps it with the entry); a larger one is stored as a chunk before the
    /// entry is proposed. Either way a committed entry's payload is durable.
    #[tracing::instrument(skip_all, fields(zone = %zone, chain = %chain, index = input.index), err(level = "debug"))]
    pub async fn append(
        &self,
        zone: &ZoneId,
        chain: &ChainId,
        input: AppendInput,
    ) -> Result<(u64, Hash32, u64), NodeError> {
        let limits = &self.inner.limits;
        if input.payload.len() as u64 > limits.max_entry_payload_bytes {
            return Err(NodeError::TooLarge {
                what: "entry payload",
                limit: limits.max_entry_payload_bytes,
            });
        }
        if input.chunks.len() > limits.max_entry_chunks {
            return Err(NodeError::BadRequest(format!(
                "an entry may reference at most {} chunks",
                limits.max_entry_chunks
            )));
        }
        self.zones().require_zone_fresh(zone).await?;
        self.chunks().check_room()?;
        let head = match self.inner.state.chain(zone, chain)? {
            Some(head) => head,
            // This node may lag behind the leader: look again after catching up.
            None => {
                self.read_barrier(Consistency::Linearizable).await?;
                self.inner
                    .state
                    .chain(zone, chain)?
                    .ok_or(NodeError::UnknownChain)?
            }
        };

        let unsigned = UnsignedEntry::new(
            zone.clone(),
            *chain,
            input.index,
            input.prev,
            &input.payload,
            input.chunks,
        );
        let header = unsigned
            .with_signature(input.signature)
            .verify(&head.public_key)
            .map_err(|_| NodeError::BadSignature)?;
        self.inner.state.verified_entry(zone, chain, &header);

        let missing = self
            .before_proposal(self.chunks().missing_anywhere(zone, &header.chunks, true))
            .await?;
        if !missing.is_empty() {
            return Err(NodeError::MissingChunks(missing));
        }
        // Chains only grow and entries never change, so even a lagging copy proves a conflict
        // when the index is taken, or is the next one but prev is not the head. An index past
        // the local length may be right if this node lags (a follower that has not applied the
        // writer's previous append yet): the leader's state machine decides, without a
        // read-index round here first.
        let taken =
            header.index < head.length || (header.index == head.length && header.prev != head.head);
        if taken && !negative_controls::on(SkipCas) {
            return Err(NodeError::IndexConflict {
                length: head.length,
                head: head.head,
            });
        }
        // The state machine checks the entries quota again; checking it here first keeps a
        // refused append from storing its payload.
        let quota = self.inner.state.quota(zone)?;
        let entries = self.inner.state.zone(zone)?.map_or(0, |z| z.entries);
        if entries >= quota.max_entries {
            return Err(rejection(Rejection::QuotaExceeded {
                what: blindstore_types::command::QuotaKind::Entries,
                limit: quota.max_entries,
            }));
        }
        let (index, entry_hash) = (header.index, header.entry_hash);
        let command = if input.payload.len() as u64 <= limits.inline_payload_bytes {
            Command::AppendWithPayload {
                zone: zone.clone(),
                chain_id: *chain,
                header,
                payload: input.payload,
            }
        } else {
            self.before_proposal(self.chunks().store_chunk(
                zone,
                header.payload_hash,
                input.payload,
                &Writer::Client(None),
            ))
            .await?;
            Command::Append {
                zone: zone.clone(),
                chain_id: *chain,
                header,
            }
        };
        if negative_controls::on(EarlyAck) {
            // Deliberately broken: acknowledge now, commit (or not) later.
            let node = self.0.clone();
            tokio::spawn(async move { node.propose(command).await });
            return Ok((index, entry_hash, index + 1));
        }
        answer!(
            self.propose(command).await?,
            CommandResponse::Appended { index, entry_hash, length } => (index, entry_hash, length)
        )
    }

    /// Reads entries with their payloads, capped by count and by the size of the answer
    /// (payloads as base64, chunk lists and the other fields: see [`entry_answer_bytes`]).
    /// At least one entry is returned. `Last(n)` returns the last entries of the chain — the
    /// newest `max_read_entries` when `n` is larger, and the newest that fit the size cap.
    pub async fn entries(
        &self,
        zone: &ZoneId,
        chain: &ChainId,
        which: ReadEntries,
        consistency: Consistency,
    ) -> Result<EntriesPage, NodeError> {
        self.read_barrier(consistency).await?;
        self.zones().require_zone(zone)?;
        let limits = self.inner.limits.clone();
        let state = self.inner.state.clone();
        let (zone_owned, chain_owned) = (zone.clone(), *chain);
        // Up to `max_read_entries` headers: read and decoded on the blocking pool.
        let (chain_head, mut headers) = tokio::task::spawn_blocking(move || {
            // Head and entries in one read transaction, so `Last` is the last as of the head.
            let (from, limit) = match which {
                ReadEntries::From { from, limit } => (Some(from), limit),
                ReadEntries::Last(n) => (None, n),
            };
            state
                .entries(
                    &zone_owned,
                    &chain_owned,
                    from,
                    limit.min(limits.max_read_entries),
                )?
                .ok_or(NodeError::UnknownChain)
        })
        .await
        .map_err(|e| NodeError::Internal(format!("entry read task: {e}")))??;

        // The size cap: keep the first entries that fit (the last ones for `Last`).
        let cap = self.inner.limits.max_read_bytes;
        let fits = |headers: &[(EntryHeader, Option<Vec<u8>>)]| -> usize {
            let mut total = 0u64;
            let mut n = 0;
            for (h, _) in headers {
                total += entry_answer_bytes(h);
                if n > 0 && total > cap {
                    break;
                }
                n += 1;
            }
            n
        };
        if matches!(which, ReadEntries::Last(_)) {
            headers.reverse();
            headers.truncate(fits(&headers));
            headers.reverse();
        } else {
            headers.truncate(fits(&headers));
        }

        let mut entries = Vec::with_capacity(headers.len());
        for (header, kept) in headers {
            let fetched = match kept {
                Some(payload) => Ok(payload),
                None => self
                    .chunks()
                    .fetch_chunk(zone, &header.payload_hash)
                    .await
                    .map(|b| b.to_vec()),
            };
            let payload = match fetched {
                Ok(payload) => payload,
                Err(NodeError::UnknownChunk) => {
                    return Err(NodeError::Unavailable(format!(
                        "no reachable node holds the payload of entry {}",
                        header.index
                    )))
                }
                Err(e) => return Err(e),
            };
            entries.push((header, payload));
        }
        let next = entries
            .last()
            .map(|(h, _)| h.index + 1)
            .filter(|n| *n < chain_head.length);
        Ok(EntriesPage {
            chain: chain_head,
            entries,
            next,
        })
    }
}
