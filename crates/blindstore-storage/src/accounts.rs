//! Accounts in the state machine: zone secrets, OPAQUE records, sessions, envelopes and the
//! ids of redeemed login tickets. Applied inside the batch's transaction like every command;
//! every precondition (a live session of the right account, an envelope's version, a ticket
//! not yet used) is checked here, so whichever node proposed a command, a revocation or a
//! concurrent write that committed first wins.

use blindstore_types::account::{
    AccountId, AccountRecord, Acting, EnvelopeRecord, EnvelopeWrite, Revoke, SessionRecord,
    ZoneAuth, MAX_ENVELOPES_PER_ACCOUNT, MAX_SESSIONS_PER_ACCOUNT,
};
use blindstore_types::command::{Command, CommandResponse, Rejection, TicketUse};
use blindstore_types::record::encode;
use blindstore_types::{Hash32, ZoneId};
use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn, WithoutTls};

use crate::{decode, zone_key, StorageError};

/// Redeemed ticket ids forgotten per command at most (they are forgotten once expired).
const TICKETS_PRUNED_PER_COMMAND: usize = 64;

/// The account tables.
#[derive(Clone, Copy)]
pub(crate) struct AccountTables {
    /// zone id → `ZoneAuth`.
    pub(crate) zone_auth: Database<Bytes, Bytes>,
    /// `account_key` → `AccountRecord`.
    pub(crate) accounts: Database<Bytes, Bytes>,
    /// `zone_key(zone, token hash)` → `SessionRecord`.
    pub(crate) sessions: Database<Bytes, Bytes>,
    /// `account_key || token hash` → empty: an account's sessions.
    pub(crate) account_sessions: Database<Bytes, Bytes>,
    /// `account_key || name` → `EnvelopeRecord`.
    pub(crate) envelopes: Database<Bytes, Bytes>,
    /// `u64 expiry (ms, big-endian) || ticket id` → empty: redeemed, unexpired login tickets.
    pub(crate) tickets: Database<Bytes, Bytes>,
}

/// `u8 len(zone) || zone || u16 len(account) || account`: no key is a prefix of another.
pub(crate) fn account_key(zone: &ZoneId, account: &AccountId) -> Vec<u8> {
    let (zone, account) = (zone.as_str().as_bytes(), account.as_str().as_bytes());
    let mut key = Vec::with_capacity(3 + zone.len() + account.len() + 64);
    key.push(zone.len() as u8);
    key.extend_from_slice(zone);
    key.extend_from_slice(&(account.len() as u16).to_be_bytes());
    key.extend_from_slice(account);
    key
}

fn with_suffix(prefix: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + suffix.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(suffix);
    key
}

impl AccountTables {
    pub(crate) fn zone_auth(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
    ) -> Result<Option<ZoneAuth>, StorageError> {
        self.zone_auth
            .get(txn, zone.as_str().as_bytes())?
            .map(|b| decode("zone auth", b))
            .transpose()
    }

    pub(crate) fn account(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StorageError> {
        self.accounts
            .get(txn, &account_key(zone, account))?
            .map(|b| decode("account", b))
            .transpose()
    }

    pub(crate) fn session(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
        token_hash: &Hash32,
    ) -> Result<Option<SessionRecord>, StorageError> {
        self.sessions
            .get(txn, &zone_key(zone, token_hash))?
            .map(|b| decode("session", b))
            .transpose()
    }

    pub(crate) fn put_account(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        account: &AccountId,
        record: &AccountRecord,
    ) -> Result<(), StorageError> {
        self.accounts
            .put(wtxn, &account_key(zone, account), &encode(record))?;
        Ok(())
    }

    /// An account's sessions, expired ones included.
    pub(crate) fn account_sessions(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<Vec<(Hash32, SessionRecord)>, StorageError> {
        let prefix = account_key(zone, account);
        let mut hashes = Vec::new();
        for item in self.account_sessions.prefix_iter(txn, &prefix)? {
            let (key, _) = item?;
            let hash: [u8; 32] = key[prefix.len()..]
                .try_into()
                .map_err(|_| StorageError::MalformedKey("account session key".into()))?;
            hashes.push(Hash32(hash));
        }
        let mut out = Vec::with_capacity(hashes.len());
        for hash in hashes {
            if let Some(record) = self.session(txn, zone, &hash)? {
                out.push((hash, record));
            }
        }
        Ok(out)
    }

    pub(crate) fn envelope(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<EnvelopeRecord>, StorageError> {
        self.envelopes
            .get(
                txn,
                &with_suffix(&account_key(zone, account), name.as_bytes()),
            )?
            .map(|b| decode("envelope", b))
            .transpose()
    }

    /// An account's envelopes: name, version and length.
    pub(crate) fn envelope_list(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<Vec<(String, EnvelopeRecord)>, StorageError> {
        let prefix = account_key(zone, account);
        let mut out = Vec::new();
        for item in self.envelopes.prefix_iter(txn, &prefix)? {
            let (key, bytes) = item?;
            let name = String::from_utf8(key[prefix.len()..].to_vec())
                .map_err(|_| StorageError::MalformedKey("envelope name".into()))?;
            out.push((name, decode("envelope", bytes)?));
        }
        Ok(out)
    }

    /// Applies an account command (`apply_command` sends only those here).
    pub(crate) fn apply(
        &self,
        wtxn: &mut RwTxn,
        zone_exists: impl Fn(&RwTxn, &ZoneId) -> Result<bool, StorageError>,
        command: Command,
    ) -> Result<CommandResponse, StorageError> {
        use CommandResponse as R;
        let rejected = |r| Ok(R::Rejected(r));
        Ok(match command {
            Command::SetZoneAuth { zone, auth } => {
                if !zone_exists(wtxn, &zone)? {
                    return rejected(Rejection::UnknownZone);
                }
                if self.zone_auth(wtxn, &zone)?.is_some() {
                    return Ok(R::ZoneAuthSet { created: false });
                }
                self.zone_auth
                    .put(wtxn, zone.as_str().as_bytes(), &encode(&auth))?;
                R::ZoneAuthSet { created: true }
            }
            Command::CreateAccount {
                zone,
                account,
                registration,
                created_at_ms,
            } => {
                if !zone_exists(wtxn, &zone)? {
                    return rejected(Rejection::UnknownZone);
                }
                if self.account(wtxn, &zone, &account)?.is_some() {
                    return rejected(Rejection::AccountExists);
                }
                let record = AccountRecord {
                    registration,
                    created_at_ms,
                    password_changed_at_ms: created_at_ms,
                    chains: 0,
                };
                self.accounts
                    .put(wtxn, &account_key(&zone, &account), &encode(&record))?;
                R::AccountCreated
            }
            Command::CreateSession {
                zone,
                token_hash,
                session,
                password_changed_at_ms,
                ticket,
            } => {
                let current = self.account(wtxn, &zone, &session.account)?;
                if current.is_none_or(|a| a.password_changed_at_ms != password_changed_at_ms) {
                    return rejected(Rejection::UnknownAccount);
                }
                if !self.redeem_ticket(wtxn, ticket)? {
                    return rejected(Rejection::TicketUsed);
                }
                self.make_room_for_session(wtxn, &zone, &session.account, session.created_at_ms)?;
                self.put_session(wtxn, &zone, &token_hash, &session)?;
                R::SessionCreated
            }
            Command::RevokeSessions {
                zone,
                account,
                revoke,
            } => {
                let count = self.revoke(wtxn, &zone, &account, revoke)?;
                R::SessionsRevoked { count }
            }
            Command::PutEnvelope {
                zone,
                account,
                acting,
                write,
            } => {
                if !self.acting_ok(wtxn, &zone, &account, acting)? {
                    return rejected(Rejection::InvalidSession);
                }
                if let Err(r) = self.check_envelope_write(wtxn, &zone, &account, &write)? {
                    return rejected(r);
                }
                let version = self.put_envelope(wtxn, &zone, &account, write, acting.now_ms)?;
                R::EnvelopePut { version }
            }
            Command::ChangePassword {
                zone,
                account,
                acting,
                registration,
                envelope,
                revoke_other_sessions,
            } => {
                if !self.acting_ok(wtxn, &zone, &account, acting)? {
                    return rejected(Rejection::InvalidSession);
                }
                let Some(mut record) = self.account(wtxn, &zone, &account)? else {
                    return rejected(Rejection::UnknownAccount);
                };
                if let Some(write) = &envelope {
                    if let Err(r) = self.check_envelope_write(wtxn, &zone, &account, write)? {
                        return rejected(r);
                    }
                }
                record.registration = registration;
                record.password_changed_at_ms =
                    acting.now_ms.max(record.password_changed_at_ms + 1);
                self.accounts
                    .put(wtxn, &account_key(&zone, &account), &encode(&record))?;
                if let Some(write) = envelope {
                    self.put_envelope(wtxn, &zone, &account, write, acting.now_ms)?;
                }
                if revoke_other_sessions {
                    let except = Some(acting.session);
                    self.revoke(wtxn, &zone, &account, Revoke::All { except })?;
                }
                R::PasswordChanged
            }
            Command::DeleteAccount {
                zone,
                account,
                acting,
            } => {
                if let Some(acting) = acting {
                    if !self.acting_ok(wtxn, &zone, &account, acting)? {
                        return rejected(Rejection::InvalidSession);
                    }
                }
                let key = account_key(&zone, &account);
                if !self.accounts.delete(wtxn, &key)? {
                    return rejected(Rejection::UnknownAccount);
                }
                self.revoke(wtxn, &zone, &account, Revoke::All { except: None })?;
                let names: Vec<Vec<u8>> = self
                    .envelopes
                    .prefix_iter(wtxn, &key)?
                    .map(|item| item.map(|(k, _)| k.to_vec()))
                    .collect::<Result<_, _>>()?;
                for name in names {
                    self.envelopes.delete(wtxn, &name)?;
                }
                R::AccountDeleted
            }
            other => unreachable!("not an account command: {other:?}"),
        })
    }

    /// Whether `acting` is a live session of `account` at the command's time.
    pub(crate) fn acting_ok(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
        account: &AccountId,
        acting: Acting,
    ) -> Result<bool, StorageError> {
        Ok(self
            .session(txn, zone, &acting.session)?
            .is_some_and(|s| s.account == *account && s.expires_at_ms > acting.now_ms))
    }

    /// Records a ticket as redeemed; false if it was already, or has expired. Forgets a few
    /// expired ones on the way.
    fn redeem_ticket(&self, wtxn: &mut RwTxn, ticket: TicketUse) -> Result<bool, StorageError> {
        let expired: Vec<Vec<u8>> = self
            .tickets
            .iter(wtxn)?
            .take(TICKETS_PRUNED_PER_COMMAND)
            .map(|item| item.map(|(k, _)| k.to_vec()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|k| u64::from_be_bytes(k[..8].try_into().expect("8 bytes")) <= ticket.now_ms)
            .collect();
        for key in expired {
            self.tickets.delete(wtxn, &key)?;
        }
        if ticket.expires_at_ms <= ticket.now_ms {
            return Ok(false);
        }
        let key = with_suffix(&ticket.expires_at_ms.to_be_bytes(), &ticket.id);
        if self.tickets.get(wtxn, &key)?.is_some() {
            return Ok(false);
        }
        self.tickets.put(wtxn, &key, &[])?;
        Ok(true)
    }

    /// Drops the account's expired sessions, and its oldest ones while it holds the most it
    /// may.
    fn make_room_for_session(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        account: &AccountId,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        let mut live = Vec::new();
        for (hash, record) in self.account_sessions(wtxn, zone, account)? {
            if record.expires_at_ms <= now_ms {
                self.delete_session(wtxn, zone, account, &hash)?;
            } else {
                live.push((record.created_at_ms, hash));
            }
        }
        live.sort();
        let excess = (live.len() + 1).saturating_sub(MAX_SESSIONS_PER_ACCOUNT);
        for (_, hash) in live.into_iter().take(excess) {
            self.delete_session(wtxn, zone, account, &hash)?;
        }
        Ok(())
    }

    fn put_session(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        token_hash: &Hash32,
        session: &SessionRecord,
    ) -> Result<(), StorageError> {
        self.sessions
            .put(wtxn, &zone_key(zone, token_hash), &encode(session))?;
        let index = with_suffix(&account_key(zone, &session.account), &token_hash.0);
        self.account_sessions.put(wtxn, &index, &[])?;
        Ok(())
    }

    fn delete_session(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        account: &AccountId,
        token_hash: &Hash32,
    ) -> Result<(), StorageError> {
        self.sessions.delete(wtxn, &zone_key(zone, token_hash))?;
        let index = with_suffix(&account_key(zone, account), &token_hash.0);
        self.account_sessions.delete(wtxn, &index)?;
        Ok(())
    }

    fn revoke(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        account: &AccountId,
        revoke: Revoke,
    ) -> Result<u64, StorageError> {
        let targets: Vec<Hash32> = match revoke {
            Revoke::One(hash) => match self.session(wtxn, zone, &hash)? {
                Some(s) if s.account == *account => vec![hash],
                _ => vec![],
            },
            Revoke::All { except } => self
                .account_sessions(wtxn, zone, account)?
                .into_iter()
                .map(|(hash, _)| hash)
                .filter(|hash| Some(*hash) != except)
                .collect(),
        };
        for hash in &targets {
            self.delete_session(wtxn, zone, account, hash)?;
        }
        Ok(targets.len() as u64)
    }

    /// The compare-and-set of an envelope write, and the per-account envelope limit.
    fn check_envelope_write(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
        account: &AccountId,
        write: &EnvelopeWrite,
    ) -> Result<Result<(), Rejection>, StorageError> {
        let current = self
            .envelope(txn, zone, account, &write.name)?
            .map_or(0, |e| e.version);
        if current != write.if_version {
            return Ok(Err(Rejection::EnvelopeConflict { version: current }));
        }
        if current == 0
            && self.envelope_list(txn, zone, account)?.len() >= MAX_ENVELOPES_PER_ACCOUNT
        {
            return Ok(Err(Rejection::TooManyEnvelopes));
        }
        Ok(Ok(()))
    }

    /// Writes an envelope whose compare-and-set has been checked; returns its new version.
    fn put_envelope(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        account: &AccountId,
        write: EnvelopeWrite,
        now_ms: u64,
    ) -> Result<u64, StorageError> {
        let record = EnvelopeRecord {
            version: write.if_version + 1,
            data: write.data,
            updated_at_ms: now_ms,
        };
        let key = with_suffix(&account_key(zone, account), write.name.as_bytes());
        self.envelopes.put(wtxn, &key, &encode(&record))?;
        Ok(record.version)
    }
}
