//! The chains room of the state machine: chain heads, entries and their inline payloads, the
//! chunks entries reference, and the compare-and-set append that keeps chains from forking.

use std::ops::Bound;

use heed::RwTxn;

use blindstore_types::account::{AccountId, Acting, WritePolicy};
use blindstore_types::command::{ChainHead, Command, CommandResponse, QuotaKind, Rejection};
use blindstore_types::entry::{chain_id, check_public_key, genesis, EntryHeader};
use blindstore_types::record::encode;
use blindstore_types::{ChainId, Hash32, PublicKey, ZoneId};

use crate::chain_watch::ChainChanges;
use crate::negative_controls;
use crate::store::{StateMachineStore, Tables};
use crate::verified::Verified;
use crate::zones::{get_zone, read_quota, read_settings};
use crate::{decode, zone_key, StorageError};

impl StateMachineStore {
    /// Records that this node verified the signature of `header` (against the key of
    /// `chain_id` in `zone`), so applying that exact entry here skips verifying it again.
    pub fn verified_entry(&self, zone: &ZoneId, chain_id: &ChainId, header: &EntryHeader) {
        self.inner.verified.insert(zone, chain_id, header);
    }

    /// Follows one chain: woken after each committed batch that appended to it (and after a
    /// snapshot is installed), not by changes to anything else.
    pub fn chain_changes(&self, zone: &ZoneId, chain: &ChainId) -> ChainChanges {
        self.inner.chain_watchers.follow(zone, chain)
    }

    /// How many chains are followed on this node.
    pub fn followed_chains(&self) -> usize {
        self.inner.chain_watchers.followed()
    }

    pub fn chain(&self, zone: &ZoneId, chain: &ChainId) -> Result<Option<ChainHead>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .tables
            .chains
            .get(&rtxn, &zone_key(zone, chain))?
            .map(|b| decode("chain", b))
            .transpose()
    }

    /// Entry headers `from..` of a chain, at most `limit` of them, each with its payload when
    /// the state machine keeps it (`None`: the payload is the chunk `payload_hash`), read in
    /// one transaction together with the chain head they belong to.
    ///
    /// `from: None` reads the last `limit` entries of the chain as of that same transaction.
    #[allow(clippy::type_complexity)]
    pub fn entries(
        &self,
        zone: &ZoneId,
        chain: &ChainId,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Option<(ChainHead, Vec<(EntryHeader, Option<Vec<u8>>)>)>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let prefix = zone_key(zone, chain);
        let Some(head) = self.inner.tables.chains.get(&rtxn, &prefix)? else {
            return Ok(None);
        };
        let head: ChainHead = decode("chain", head)?;
        let from = from.unwrap_or_else(|| head.length.saturating_sub(limit as u64));
        let start = entry_key(&prefix, from);
        let end = entry_key(&prefix, u64::MAX);
        let mut out = Vec::new();
        for item in self.inner.tables.entries.range(
            &rtxn,
            &(
                Bound::Included(start.as_slice()),
                Bound::Included(end.as_slice()),
            ),
        )? {
            if out.len() >= limit {
                break;
            }
            let (key, bytes) = item?;
            let header: EntryHeader = decode("entry header", bytes)?;
            let payload = match self.inner.tables.payloads.get(&rtxn, key)? {
                Some(bytes) => Some(decode("payload", bytes)?),
                None => None,
            };
            out.push((header, payload));
        }
        Ok(Some((head, out)))
    }

    /// Whether any committed entry of `zone` references chunk `hash` (as payload or extra).
    pub fn is_referenced(&self, zone: &ZoneId, hash: &Hash32) -> Result<bool, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        Ok(self
            .inner
            .tables
            .refs
            .get(&rtxn, &zone_key(zone, hash))?
            .is_some())
    }
}

/// The chains `command` may append to (a rejected append wakes its followers for nothing,
/// which costs them one read).
pub(crate) fn appended_chains(command: &Command, out: &mut Vec<(ZoneId, ChainId)>) {
    match command {
        Command::Append { zone, chain_id, .. }
        | Command::AppendWithPayload { zone, chain_id, .. } => out.push((zone.clone(), *chain_id)),
        Command::Batch(commands) => {
            for command in commands {
                appended_chains(command, out);
            }
        }
        _ => {}
    }
}

/// Appends a verified entry if it continues the chain (the compare-and-set), within the zone's
/// entries quota. `payload`, when given, is kept with the entry (it must hash to the header's
/// `payload_hash`); otherwise the payload is a chunk, which the entry references.
pub(crate) fn append(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
    chain_id: ChainId,
    header: EntryHeader,
    payload: Option<Vec<u8>>,
    verified: &Verified,
) -> Result<CommandResponse, StorageError> {
    let Some(mut zone_record) = get_zone(t, wtxn, &zone)? else {
        return Ok(CommandResponse::Rejected(Rejection::UnknownZone));
    };
    let key = zone_key(&zone, &chain_id);
    let Some(bytes) = t.chains.get(wtxn, &key)? else {
        return Ok(CommandResponse::Rejected(Rejection::UnknownChain));
    };
    let mut chain: ChainHead = decode("chain", bytes)?;
    if negative_controls::on(negative_controls::Control::SkipCas) {
        // Deliberately broken: the entry lands where it says, over whatever is there.
        chain.length = header.index;
        chain.head = header.prev;
    }
    let quota = read_quota(t, wtxn, &zone)?;
    if zone_record.entries >= quota.max_entries {
        return Ok(CommandResponse::Rejected(Rejection::QuotaExceeded {
            what: QuotaKind::Entries,
            limit: quota.max_entries,
        }));
    }
    // The proposer verified the entry; a command from anyone else is verified here too (on
    // the node that verified it when it arrived, that result stands: the entry hash covers
    // every signed byte and the signature, and the chain id fixes the key).
    if !verified.take(&zone, &chain_id, &header)
        && header.verify(&zone, &chain_id, &chain.public_key).is_err()
    {
        return Ok(CommandResponse::Rejected(Rejection::BadSignature));
    }
    if let Some(payload) = &payload {
        if payload.len() as u64 != header.payload_len
            || Hash32::digest(payload) != header.payload_hash
        {
            return Ok(CommandResponse::Rejected(Rejection::BadSignature));
        }
    }
    // The compare-and-set that keeps a chain linear.
    if header.index != chain.length || header.prev != chain.head {
        return Ok(CommandResponse::Rejected(Rejection::IndexConflict {
            length: chain.length,
            head: chain.head,
        }));
    }
    match payload {
        Some(payload) => t
            .payloads
            .put(wtxn, &entry_key(&key, header.index), &encode(&payload))?,
        None => t
            .refs
            .put(wtxn, &zone_key(&zone, &header.payload_hash), &[])?,
    }
    for chunk in &header.chunks {
        t.refs.put(wtxn, &zone_key(&zone, chunk), &[])?;
    }
    t.entries
        .put(wtxn, &entry_key(&key, header.index), &encode(&header))?;
    chain.length += 1;
    chain.head = header.entry_hash;
    t.chains.put(wtxn, &key, &encode(&chain))?;
    zone_record.entries += 1;
    zone_record.payload_bytes += header.payload_len;
    t.zones.put(wtxn, zone.as_str(), &encode(&zone_record))?;
    Ok(CommandResponse::Appended {
        index: header.index,
        entry_hash: header.entry_hash,
        length: chain.length,
    })
}

/// Creates the chain owned by `public_key` (answering the existing one if it exists), held
/// to the zone's chain quota and key check.
pub(crate) fn create_chain(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
    public_key: blindstore_types::PublicKey,
) -> Result<CommandResponse, StorageError> {
    let Some(mut zone_record) = get_zone(t, wtxn, &zone)? else {
        return Ok(CommandResponse::Rejected(Rejection::UnknownZone));
    };
    // The proposer checked the key; a command from anyone else is checked here too.
    if check_public_key(&public_key).is_err() {
        return Ok(CommandResponse::Rejected(Rejection::BadPublicKey));
    }
    let id = chain_id(&public_key);
    let key = zone_key(&zone, &id);
    if let Some(bytes) = t.chains.get(wtxn, &key)? {
        let chain = decode("chain", bytes)?;
        return Ok(CommandResponse::ChainCreated {
            created: false,
            chain,
        });
    }
    let quota = read_quota(t, wtxn, &zone)?;
    if zone_record.chains >= quota.max_chains {
        return Ok(CommandResponse::Rejected(Rejection::QuotaExceeded {
            what: QuotaKind::Chains,
            limit: quota.max_chains,
        }));
    }
    let chain = ChainHead {
        public_key,
        length: 0,
        head: genesis(&id),
    };
    t.chains.put(wtxn, &key, &encode(&chain))?;
    zone_record.chains += 1;
    t.zones.put(wtxn, zone.as_str(), &encode(&zone_record))?;
    Ok(CommandResponse::ChainCreated {
        created: true,
        chain,
    })
}

pub(crate) fn entry_key(chain_key: &[u8], index: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(chain_key.len() + 8);
    key.extend_from_slice(chain_key);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// A chain created without an account: refused in a zone whose writes need accounts.
pub(crate) fn create_open_chain(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
    public_key: PublicKey,
) -> Result<CommandResponse, StorageError> {
    // A node that had not yet applied a change to `accounts` let this through: the
    // policy holds where it is applied.
    if read_settings(t, wtxn, &zone)?.writes == WritePolicy::Accounts {
        return Ok(CommandResponse::Rejected(Rejection::InvalidSession));
    }
    create_chain(t, wtxn, zone, public_key)
}

/// A chain created for an account: held to its session and its chain quota.
pub(crate) fn create_account_chain(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
    public_key: PublicKey,
    account: AccountId,
    acting: Acting,
) -> Result<CommandResponse, StorageError> {
    if get_zone(t, wtxn, &zone)?.is_none() {
        return Ok(CommandResponse::Rejected(Rejection::UnknownZone));
    }
    if !t.accounts.acting_ok(wtxn, &zone, &account, acting)? {
        return Ok(CommandResponse::Rejected(Rejection::InvalidSession));
    }
    let Some(mut record) = t.accounts.account(wtxn, &zone, &account)? else {
        return Ok(CommandResponse::Rejected(Rejection::UnknownAccount));
    };
    let id = chain_id(&public_key);
    let exists = t.chains.get(wtxn, &zone_key(&zone, &id))?.is_some();
    let quota = read_settings(t, wtxn, &zone)?.account_quota;
    if !exists && record.chains >= quota.max_chains {
        return Ok(CommandResponse::Rejected(Rejection::AccountQuotaExceeded {
            what: QuotaKind::Chains,
            limit: quota.max_chains,
        }));
    }
    let response = create_chain(t, wtxn, zone.clone(), public_key)?;
    if matches!(
        response,
        CommandResponse::ChainCreated { created: true, .. }
    ) {
        record.chains += 1;
        t.accounts.put_account(wtxn, &zone, &account, &record)?;
    }
    Ok(response)
}
