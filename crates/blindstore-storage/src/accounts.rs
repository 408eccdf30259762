//! Accounts in the state machine: zone secrets, OPAQUE records, sessions, envelopes and the
//! ids of redeemed login tickets. Applied inside the batch's transaction like every command;
//! every precondition (a live session of the right account, an envelope's version, a ticket
//! not yet used) is checked here, so whichever node proposed a command, a revocation or a
//! concurrent write that committed first wins.

use blindstore_types::account::{
    AccountId, AccountRecord, AccountUsage, Acting, EnvelopeRecord, EnvelopeWrite, PasskeyRecord,
    RegistrationPolicy, RegistrationSettings, Revoke, SessionRecord, ZoneAuth,
    MAX_ENVELOPES_PER_ACCOUNT, MAX_INVITES_PER_ZONE, MAX_PASSKEYS_PER_ACCOUNT,
    MAX_SESSIONS_PER_ACCOUNT,
};
use blindstore_types::command::accounts::{
    AccountCommand, AddPasskey, ChangeCredentials, ChangePassword, CreateAccount, CreateInvites,
    CreatePasskeySession, CreateSession, DeleteAccount, DeleteEnvelope, PutEnvelope, RedeemTicket,
    RegisterAccount, RemovePasskey, RevokeSessions, SetRegistration, SetZoneAuth,
};
use blindstore_types::command::{CommandResponse, NewPassword, QuotaKind, Rejection, TicketUse};
use blindstore_types::record::encode;
use blindstore_types::{Hash32, ZoneId};
use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn, WithoutTls};

use crate::{decode, zone_key, StorageError};

/// Redeemed ticket ids forgotten per command at most (they are forgotten once expired).
const TICKETS_PRUNED_PER_COMMAND: usize = 64;
/// The key, in `tickets`, of the latest expiry among forgotten ticket ids (u64 big-endian).
/// One byte long: no ticket key (24 bytes) is this key.
const TICKET_WATERMARK: &[u8] = b"w";

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
    /// `account_key || credential id` → `PasskeyRecord`.
    pub(crate) passkeys: Database<Bytes, Bytes>,
    /// `u8 len(zone) || zone || credential id` → account id: a credential id belongs to one
    /// account of a zone.
    pub(crate) passkey_ids: Database<Bytes, Bytes>,
    /// zone id → `RegistrationSettings`, for zones whose registration was set.
    pub(crate) registration: Database<Bytes, Bytes>,
    /// `zone_key(zone, SHA-256 of the code)` → u64 expiry (ms, big-endian): unused invites.
    pub(crate) invites: Database<Bytes, Bytes>,
    /// zone id → `AccountUsage`. Derived from `accounts` and `envelopes` (not in snapshots:
    /// rebuilt after one is installed, and when a data dir from before it is opened).
    pub(crate) usage: Database<Bytes, Bytes>,
}

/// The parts of a [`ChangeCredentials`].
struct CredentialsChange {
    password: Option<NewPassword>,
    remove_passkeys: Vec<Vec<u8>>,
    revoke: Option<Revoke>,
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

/// `u8 len(zone) || zone || credential id`.
fn passkey_id_key(zone: &ZoneId, id: &[u8]) -> Vec<u8> {
    let zone = zone.as_str().as_bytes();
    let mut key = Vec::with_capacity(1 + zone.len() + id.len());
    key.push(zone.len() as u8);
    key.extend_from_slice(zone);
    key.extend_from_slice(id);
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

    /// An account's passkeys, by credential id.
    pub(crate) fn passkeys(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<Vec<(Vec<u8>, PasskeyRecord)>, StorageError> {
        let prefix = account_key(zone, account);
        let mut out = Vec::new();
        for item in self.passkeys.prefix_iter(txn, &prefix)? {
            let (key, bytes) = item?;
            out.push((key[prefix.len()..].to_vec(), decode("passkey", bytes)?));
        }
        Ok(out)
    }

    fn passkey(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
        account: &AccountId,
        id: &[u8],
    ) -> Result<Option<PasskeyRecord>, StorageError> {
        self.passkeys
            .get(txn, &with_suffix(&account_key(zone, account), id))?
            .map(|b| decode("passkey", b))
            .transpose()
    }

    fn delete_passkey(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        account: &AccountId,
        id: &[u8],
    ) -> Result<bool, StorageError> {
        self.passkey_ids.delete(wtxn, &passkey_id_key(zone, id))?;
        Ok(self
            .passkeys
            .delete(wtxn, &with_suffix(&account_key(zone, account), id))?)
    }

    /// Applies an account command.
    pub(crate) fn apply(
        &self,
        wtxn: &mut RwTxn,
        zone_exists: impl Fn(&RwTxn, &ZoneId) -> Result<bool, StorageError>,
        command: AccountCommand,
    ) -> Result<CommandResponse, StorageError> {
        use CommandResponse as R;
        let rejected = |r| Ok(R::Rejected(r));
        Ok(match command {
            AccountCommand::SetZoneAuth(SetZoneAuth { zone, auth }) => {
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
            // Written by older builds: a registration without an invite.
            AccountCommand::CreateAccount(CreateAccount {
                zone,
                account,
                registration,
                created_at_ms,
            })
            | AccountCommand::RegisterAccount(RegisterAccount {
                zone,
                account,
                registration,
                created_at_ms,
                invite: None,
            }) => {
                if !zone_exists(wtxn, &zone)? {
                    return rejected(Rejection::UnknownZone);
                }
                let new = (registration, created_at_ms, None);
                match self.register(wtxn, &zone, &account, new)? {
                    Ok(()) => R::AccountCreated,
                    Err(r) => R::Rejected(r),
                }
            }
            AccountCommand::RegisterAccount(RegisterAccount {
                zone,
                account,
                registration,
                created_at_ms,
                invite: Some(invite),
            }) => {
                if !zone_exists(wtxn, &zone)? {
                    return rejected(Rejection::UnknownZone);
                }
                let new = (registration, created_at_ms, Some(invite));
                match self.register(wtxn, &zone, &account, new)? {
                    Ok(()) => R::AccountCreated,
                    Err(r) => R::Rejected(r),
                }
            }
            AccountCommand::RedeemTicket(RedeemTicket { ticket }) => {
                if !self.redeem_ticket(wtxn, ticket)? {
                    return rejected(Rejection::TicketUsed);
                }
                R::TicketRedeemed
            }
            AccountCommand::SetRegistration(SetRegistration { zone, settings }) => {
                if !zone_exists(wtxn, &zone)? {
                    return rejected(Rejection::UnknownZone);
                }
                self.registration
                    .put(wtxn, zone.as_str().as_bytes(), &encode(&settings))?;
                R::RegistrationSet
            }
            AccountCommand::CreateInvites(CreateInvites {
                zone,
                codes,
                expires_at_ms,
                now_ms,
            }) => {
                if !zone_exists(wtxn, &zone)? {
                    return rejected(Rejection::UnknownZone);
                }
                let prefix = zone_prefix(&zone);
                // Expired codes go first; what is left counts against the cap.
                let mut live = 0u64;
                let mut expired = Vec::new();
                for item in self.invites.prefix_iter(wtxn, &prefix)? {
                    let (key, value) = item?;
                    if read_u64(value) <= now_ms {
                        expired.push(key.to_vec());
                    } else {
                        live += 1;
                    }
                }
                for key in expired {
                    self.invites.delete(wtxn, &key)?;
                }
                if live + codes.len() as u64 > MAX_INVITES_PER_ZONE {
                    return rejected(Rejection::QuotaExceeded {
                        what: QuotaKind::Invites,
                        limit: MAX_INVITES_PER_ZONE,
                    });
                }
                for code in codes {
                    self.invites.put(
                        wtxn,
                        &zone_key(&zone, &code),
                        &expires_at_ms.to_be_bytes(),
                    )?;
                }
                R::InvitesCreated
            }
            AccountCommand::CreateSession(CreateSession {
                zone,
                token_hash,
                session,
                registration_hash,
                ticket,
            }) => {
                let current = self.account(wtxn, &zone, &session.account)?;
                if current.is_none_or(|a| Hash32::digest(&a.registration) != registration_hash) {
                    return rejected(Rejection::UnknownAccount);
                }
                if !self.redeem_ticket(wtxn, ticket)? {
                    return rejected(Rejection::TicketUsed);
                }
                self.make_room_for_session(wtxn, &zone, &session.account, session.created_at_ms)?;
                self.put_session(wtxn, &zone, &token_hash, &session)?;
                R::SessionCreated
            }
            AccountCommand::RevokeSessions(RevokeSessions {
                zone,
                account,
                revoke,
            }) => {
                let count = self.revoke(wtxn, &zone, &account, revoke)?;
                R::SessionsRevoked { count }
            }
            AccountCommand::PutEnvelope(PutEnvelope {
                zone,
                account,
                acting,
                write,
            }) => {
                if !self.acting_ok(wtxn, &zone, &account, acting)? {
                    return rejected(Rejection::InvalidSession);
                }
                if let Err(r) = self.check_envelope_write(wtxn, &zone, &account, &write)? {
                    return rejected(r);
                }
                let version = self.put_envelope(wtxn, &zone, &account, write, acting.now_ms)?;
                R::EnvelopePut { version }
            }
            AccountCommand::ChangePassword(ChangePassword {
                zone,
                account,
                acting,
                registration,
                envelope,
                revoke_other_sessions,
            }) => {
                // Written by older builds; applied as the credentials change it is.
                let password = Some(NewPassword {
                    registration,
                    envelope,
                });
                let change = CredentialsChange {
                    password,
                    remove_passkeys: Vec::new(),
                    revoke: revoke_other_sessions.then_some(Revoke::All {
                        except: Some(acting.session),
                    }),
                };
                match self.change_credentials(wtxn, &zone, &account, acting, change)? {
                    Ok(_) => R::PasswordChanged,
                    Err(r) => R::Rejected(r),
                }
            }
            AccountCommand::ChangeCredentials(ChangeCredentials {
                zone,
                account,
                acting,
                password,
                remove_passkeys,
                revoke,
            }) => {
                let change = CredentialsChange {
                    password,
                    remove_passkeys,
                    revoke,
                };
                match self.change_credentials(wtxn, &zone, &account, acting, change)? {
                    Ok(revoked) => R::CredentialsChanged { revoked },
                    Err(r) => R::Rejected(r),
                }
            }
            AccountCommand::DeleteAccount(DeleteAccount {
                zone,
                account,
                acting,
            }) => {
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
                let envelopes: Vec<(Vec<u8>, u64)> = self
                    .envelopes
                    .prefix_iter(wtxn, &key)?
                    .map(|item| {
                        let (k, v) = item?;
                        let record: EnvelopeRecord = decode("envelope", v)?;
                        Ok((k.to_vec(), record.data.len() as u64))
                    })
                    .collect::<Result<_, StorageError>>()?;
                let mut usage = self.usage(wtxn, &zone)?;
                usage.accounts = usage.accounts.saturating_sub(1);
                for (name, bytes) in envelopes {
                    self.envelopes.delete(wtxn, &name)?;
                    usage.envelope_bytes = usage.envelope_bytes.saturating_sub(bytes);
                }
                self.put_usage(wtxn, &zone, usage)?;
                for (id, _) in self.passkeys(wtxn, &zone, &account)? {
                    self.delete_passkey(wtxn, &zone, &account, &id)?;
                }
                R::AccountDeleted
            }
            AccountCommand::DeleteEnvelope(DeleteEnvelope {
                zone,
                account,
                acting,
                name,
                if_version,
            }) => {
                if !self.acting_ok(wtxn, &zone, &account, acting)? {
                    return rejected(Rejection::InvalidSession);
                }
                let current = self
                    .envelope(wtxn, &zone, &account, &name)?
                    .map_or(0, |e| e.version);
                if current == 0 || current != if_version {
                    return rejected(Rejection::EnvelopeConflict { version: current });
                }
                let bytes = self
                    .envelope(wtxn, &zone, &account, &name)?
                    .map_or(0, |e| e.data.len() as u64);
                let key = with_suffix(&account_key(&zone, &account), name.as_bytes());
                self.envelopes.delete(wtxn, &key)?;
                let mut usage = self.usage(wtxn, &zone)?;
                usage.envelope_bytes = usage.envelope_bytes.saturating_sub(bytes);
                self.put_usage(wtxn, &zone, usage)?;
                R::EnvelopeDeleted
            }
            AccountCommand::AddPasskey(AddPasskey {
                zone,
                account,
                acting,
                id,
                passkey,
                ticket,
            }) => {
                if !self.acting_ok(wtxn, &zone, &account, acting)? {
                    return rejected(Rejection::InvalidSession);
                }
                if self.account(wtxn, &zone, &account)?.is_none() {
                    return rejected(Rejection::UnknownAccount);
                }
                let id_key = passkey_id_key(&zone, &id);
                if self.passkey_ids.get(wtxn, &id_key)?.is_some() {
                    return rejected(Rejection::PasskeyExists);
                }
                if self.passkeys(wtxn, &zone, &account)?.len() >= MAX_PASSKEYS_PER_ACCOUNT {
                    return rejected(Rejection::TooManyPasskeys);
                }
                if !self.redeem_ticket(wtxn, ticket)? {
                    return rejected(Rejection::TicketUsed);
                }
                self.passkey_ids
                    .put(wtxn, &id_key, account.as_str().as_bytes())?;
                let key = with_suffix(&account_key(&zone, &account), &id);
                self.passkeys.put(wtxn, &key, &encode(&passkey))?;
                R::PasskeyAdded
            }
            AccountCommand::RemovePasskey(RemovePasskey {
                zone,
                account,
                acting,
                id,
            }) => {
                if !self.acting_ok(wtxn, &zone, &account, acting)? {
                    return rejected(Rejection::InvalidSession);
                }
                if !self.delete_passkey(wtxn, &zone, &account, &id)? {
                    return rejected(Rejection::UnknownPasskey);
                }
                R::PasskeyRemoved
            }
            AccountCommand::CreatePasskeySession(CreatePasskeySession {
                zone,
                token_hash,
                session,
                passkey,
                credential,
                ticket,
            }) => {
                let Some(mut record) = self.passkey(wtxn, &zone, &session.account, &passkey)?
                else {
                    return rejected(Rejection::UnknownPasskey);
                };
                if !self.redeem_ticket(wtxn, ticket)? {
                    return rejected(Rejection::TicketUsed);
                }
                if let Some(credential) = credential {
                    record.credential = credential;
                }
                record.last_used_ms = session.created_at_ms;
                let key = with_suffix(&account_key(&zone, &session.account), &passkey);
                self.passkeys.put(wtxn, &key, &encode(&record))?;
                self.make_room_for_session(wtxn, &zone, &session.account, session.created_at_ms)?;
                self.put_session(wtxn, &zone, &token_hash, &session)?;
                R::SessionCreated
            }
        })
    }

    /// A new password, the end of the other sessions and the removal of passkeys, all or
    /// nothing: every precondition is checked before anything is written. Returns how many
    /// sessions ended.
    fn change_credentials(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        account: &AccountId,
        acting: Acting,
        change: CredentialsChange,
    ) -> Result<Result<u64, Rejection>, StorageError> {
        if !self.acting_ok(wtxn, zone, account, acting)? {
            return Ok(Err(Rejection::InvalidSession));
        }
        let Some(mut record) = self.account(wtxn, zone, account)? else {
            return Ok(Err(Rejection::UnknownAccount));
        };
        if let Some(write) = change.password.as_ref().and_then(|p| p.envelope.as_ref()) {
            if let Err(r) = self.check_envelope_write(wtxn, zone, account, write)? {
                return Ok(Err(r));
            }
        }
        for id in &change.remove_passkeys {
            if self.passkey(wtxn, zone, account, id)?.is_none() {
                return Ok(Err(Rejection::UnknownPasskey));
            }
        }
        if let Some(password) = change.password {
            record.registration = password.registration;
            record.password_changed_at_ms = acting.now_ms.max(record.password_changed_at_ms + 1);
            self.accounts
                .put(wtxn, &account_key(zone, account), &encode(&record))?;
            if let Some(write) = password.envelope {
                self.put_envelope(wtxn, zone, account, write, acting.now_ms)?;
            }
        }
        for id in &change.remove_passkeys {
            self.delete_passkey(wtxn, zone, account, id)?;
        }
        match change.revoke {
            Some(revoke) => Ok(Ok(self.revoke(wtxn, zone, account, revoke)?)),
            None => Ok(Ok(0)),
        }
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

    /// Records a ticket as redeemed; false (writing nothing) if it was already, or has
    /// expired by the command's clock or by the forgetting watermark. Ids are forgotten once
    /// their expiry has passed on the clock of some command; the watermark remembers how far
    /// that went, so a node whose clock runs ahead can make tickets expire early but never
    /// make a redeemed one usable again.
    fn redeem_ticket(&self, wtxn: &mut RwTxn, ticket: TicketUse) -> Result<bool, StorageError> {
        let watermark = match self.tickets.get(wtxn, TICKET_WATERMARK)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .try_into()
                    .map_err(|_| StorageError::MalformedKey("ticket watermark".into()))?,
            ),
            None => 0,
        };
        if ticket.expires_at_ms <= ticket.now_ms.max(watermark) {
            return Ok(false);
        }
        let key = with_suffix(&ticket.expires_at_ms.to_be_bytes(), &ticket.id);
        if self.tickets.get(wtxn, &key)?.is_some() {
            return Ok(false);
        }
        self.tickets.put(wtxn, &key, &[])?;
        let expired: Vec<Vec<u8>> = self
            .tickets
            .iter(wtxn)?
            .take(TICKETS_PRUNED_PER_COMMAND)
            .map(|item| item.map(|(k, _)| k.to_vec()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|k| k.len() == 24)
            .filter(|k| u64::from_be_bytes(k[..8].try_into().expect("8 bytes")) <= ticket.now_ms)
            .collect();
        if !expired.is_empty() {
            for key in &expired {
                self.tickets.delete(wtxn, key)?;
            }
            let forgotten = expired
                .iter()
                .map(|k| u64::from_be_bytes(k[..8].try_into().expect("8 bytes")))
                .max()
                .unwrap_or(0);
            self.tickets.put(
                wtxn,
                TICKET_WATERMARK,
                &forgotten.max(watermark).to_be_bytes(),
            )?;
        }
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
        let old = self
            .envelope(txn, zone, account, &write.name)?
            .map_or(0, |e| e.data.len() as u64);
        let new = write.data.len() as u64;
        let limit = self.registration_settings(txn, zone)?.max_envelope_bytes;
        let used = self.usage(txn, zone)?.envelope_bytes;
        if new > old && used.saturating_sub(old) + new > limit {
            return Ok(Err(Rejection::QuotaExceeded {
                what: QuotaKind::EnvelopeBytes,
                limit,
            }));
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
        let old = self
            .envelope(wtxn, zone, account, &write.name)?
            .map_or(0, |e| e.data.len() as u64);
        let record = EnvelopeRecord {
            version: write.if_version + 1,
            data: write.data,
            updated_at_ms: now_ms,
        };
        let mut usage = self.usage(wtxn, zone)?;
        usage.envelope_bytes = usage.envelope_bytes.saturating_sub(old) + record.data.len() as u64;
        self.put_usage(wtxn, zone, usage)?;
        let key = with_suffix(&account_key(zone, account), write.name.as_bytes());
        self.envelopes.put(wtxn, &key, &encode(&record))?;
        Ok(record.version)
    }

    /// Creates an account under the zone's policy and cap: (record, time, invite hash).
    fn register(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        account: &AccountId,
        (registration, created_at_ms, invite): (Vec<u8>, u64, Option<Hash32>),
    ) -> Result<Result<(), Rejection>, StorageError> {
        // The policy first: a zone closed to strangers tells them nothing about which ids exist.
        let settings = self.registration_settings(wtxn, zone)?;
        let invite_key = match (settings.policy, invite) {
            (RegistrationPolicy::Closed, _) => return Ok(Err(Rejection::RegistrationClosed)),
            (RegistrationPolicy::Invite, None) => return Ok(Err(Rejection::InvalidInvite)),
            (RegistrationPolicy::Invite, Some(code)) => {
                let key = zone_key(zone, &code);
                match self.invites.get(wtxn, &key)? {
                    Some(expiry) if read_u64(expiry) > created_at_ms => Some(key),
                    _ => return Ok(Err(Rejection::InvalidInvite)),
                }
            }
            // An open zone ignores an invite.
            (RegistrationPolicy::Open, _) => None,
        };
        // An invite is used up only by the account it creates.
        if self.account(wtxn, zone, account)?.is_some() {
            return Ok(Err(Rejection::AccountExists));
        }
        let mut usage = self.usage(wtxn, zone)?;
        if usage.accounts >= settings.max_accounts {
            return Ok(Err(Rejection::QuotaExceeded {
                what: QuotaKind::Accounts,
                limit: settings.max_accounts,
            }));
        }
        if let Some(key) = invite_key {
            self.invites.delete(wtxn, &key)?;
        }
        let record = AccountRecord {
            registration,
            created_at_ms,
            password_changed_at_ms: created_at_ms,
            chains: 0,
        };
        self.accounts
            .put(wtxn, &account_key(zone, account), &encode(&record))?;
        usage.accounts += 1;
        self.put_usage(wtxn, zone, usage)?;
        Ok(Ok(()))
    }

    /// The zone's registration policy and caps.
    pub(crate) fn registration_settings(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
    ) -> Result<RegistrationSettings, StorageError> {
        match self.registration.get(txn, zone.as_str().as_bytes())? {
            Some(bytes) => decode("registration settings", bytes),
            None => Ok(RegistrationSettings::default()),
        }
    }

    /// What the zone's accounts keep in the state.
    pub(crate) fn usage(
        &self,
        txn: &RoTxn<WithoutTls>,
        zone: &ZoneId,
    ) -> Result<AccountUsage, StorageError> {
        match self.usage.get(txn, zone.as_str().as_bytes())? {
            Some(bytes) => decode("account usage", bytes),
            None => Ok(AccountUsage::default()),
        }
    }

    fn put_usage(
        &self,
        wtxn: &mut RwTxn,
        zone: &ZoneId,
        usage: AccountUsage,
    ) -> Result<(), StorageError> {
        self.usage
            .put(wtxn, zone.as_str().as_bytes(), &encode(&usage))?;
        Ok(())
    }

    /// Counts every zone's accounts and envelope bytes again from the tables (after a snapshot
    /// replaced them, or for a data dir written before the counts were kept).
    pub(crate) fn rebuild_usage(&self, wtxn: &mut RwTxn) -> Result<(), StorageError> {
        let mut usage: std::collections::BTreeMap<Vec<u8>, AccountUsage> = Default::default();
        for item in self.accounts.iter(wtxn)? {
            let (key, _) = item?;
            usage.entry(key_zone(key).to_vec()).or_default().accounts += 1;
        }
        for item in self.envelopes.iter(wtxn)? {
            let (key, value) = item?;
            let record: EnvelopeRecord = decode("envelope", value)?;
            usage
                .entry(key_zone(key).to_vec())
                .or_default()
                .envelope_bytes += record.data.len() as u64;
        }
        self.usage.clear(wtxn)?;
        for (zone, counts) in usage {
            self.usage.put(wtxn, &zone, &encode(&counts))?;
        }
        Ok(())
    }
}

/// The zone id at the start of an `account_key` (`u8 len(zone) || zone || ...`).
fn key_zone(key: &[u8]) -> &[u8] {
    let len = key.first().copied().unwrap_or(0) as usize;
    key.get(1..1 + len).unwrap_or_default()
}

/// `u8 len(zone) || zone`: the prefix of every `zone_key` of the zone.
fn zone_prefix(zone: &ZoneId) -> Vec<u8> {
    let mut prefix = vec![zone.as_str().len() as u8];
    prefix.extend_from_slice(zone.as_str().as_bytes());
    prefix
}

fn read_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(dir: &std::path::Path) -> (heed::Env<WithoutTls>, AccountTables) {
        let env = crate::open_env(dir, 1 << 24, 16, crate::Sync::Full).unwrap();
        let mut wtxn = env.write_txn().unwrap();
        let mut db = |name| env.create_database(&mut wtxn, Some(name)).unwrap();
        let tables = AccountTables {
            zone_auth: db("zone_auth"),
            accounts: db("accounts"),
            sessions: db("sessions"),
            account_sessions: db("account_sessions"),
            envelopes: db("envelopes"),
            tickets: db("tickets"),
            passkeys: db("passkeys"),
            passkey_ids: db("passkey_ids"),
            registration: db("registration"),
            invites: db("invites"),
            usage: db("account_usage"),
        };
        wtxn.commit().unwrap();
        (env, tables)
    }

    fn redeem(
        env: &heed::Env<WithoutTls>,
        t: &AccountTables,
        id: u8,
        expires: u64,
        now: u64,
    ) -> bool {
        let mut wtxn = env.write_txn().unwrap();
        let ticket = TicketUse {
            id: [id; 16],
            expires_at_ms: expires,
            now_ms: now,
        };
        let redeemed = t.redeem_ticket(&mut wtxn, ticket).unwrap();
        wtxn.commit().unwrap();
        redeemed
    }

    fn stored(env: &heed::Env<WithoutTls>, t: &AccountTables) -> u64 {
        t.tickets.len(&env.read_txn().unwrap()).unwrap()
    }

    #[test]
    fn a_ticket_works_once_even_when_a_fast_clock_forgets_it() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t) = tables(dir.path());
        assert!(redeem(&env, &t, 1, 60_000, 1_000));
        assert!(!redeem(&env, &t, 1, 60_000, 2_000), "used");
        // A node whose clock is far ahead redeems another ticket and forgets the first.
        assert!(redeem(&env, &t, 2, 300_000, 150_000));
        // Back on a slow clock the first is still refused: it expired before the watermark.
        assert!(!redeem(&env, &t, 1, 60_000, 3_000));
        // An expired ticket is refused and nothing is written.
        let before = stored(&env, &t);
        assert!(!redeem(&env, &t, 3, 10, 20));
        assert_eq!(stored(&env, &t), before);
    }
}
