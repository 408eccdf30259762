//! Accounts: OPAQUE registration and login, sessions, envelopes. The OPAQUE steps are
//! `blindstore_auth`'s; this module reads the replicated state (after a read barrier, so every
//! node answers alike) and proposes the changes. Session checks are linearizable: a session
//! revoked before the check began is refused on every node.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_auth::ticket::{Ceremony, LoginTicket};
use blindstore_auth::{server, session_id, session_token_hash, AuthError};
use blindstore_types::account::{
    check_envelope_name, AccountId, Acting, EnvelopeRecord, EnvelopeWrite, RegistrationSettings,
    Revoke, SessionRecord, ZoneAuth, MAX_ENVELOPE_BYTES, MAX_INVITES_PER_REQUEST,
    MAX_SESSION_LABEL_BYTES,
};
use blindstore_types::api::{NewSession, SessionInfo, StepUp};
use blindstore_types::command::{accounts, Command, CommandResponse, NewPassword, TicketUse};
use blindstore_types::{Hash32, ZoneId};

use crate::error::unexpected;
use crate::now_ms;
use crate::{Consistency, NodeError};

/// A device's id, from a device token the zone issued (see [`Node::device`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId(pub [u8; 16]);

/// A request's live session.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub account: AccountId,
    pub token_hash: Hash32,
    pub session: SessionRecord,
}

impl Authenticated {
    /// The session's id, as `GET .../auth/sessions` lists it.
    pub fn session_id(&self) -> String {
        session_id(&self.token_hash)
    }

    pub(crate) fn acting(&self) -> Acting {
        Acting {
            session: self.token_hash,
            now_ms: now_ms(),
        }
    }
}

fn malformed(e: AuthError) -> NodeError {
    NodeError::BadRequest(e.to_string())
}

facade!(
    /// Accounts: registration, logins (password and passkey), sessions, step-ups, envelopes, the registration policy.
    Accounts,
    accounts
);

impl Accounts<'_> {
    /// The zone's account secrets, created on first use (zones made before accounts existed
    /// have none; new zones get theirs when created).
    pub(crate) async fn zone_auth(&self, zone: &ZoneId) -> Result<ZoneAuth, NodeError> {
        self.zones().require_zone_fresh(zone).await?;
        if let Some(auth) = self.inner.state.zone_auth(zone)? {
            return Ok(auth);
        }
        self.read_barrier(Consistency::Linearizable).await?;
        if let Some(auth) = self.inner.state.zone_auth(zone)? {
            return Ok(auth);
        }
        self.set_zone_auth(zone).await?;
        self.read_barrier(Consistency::Linearizable).await?;
        self.inner
            .state
            .zone_auth(zone)?
            .ok_or_else(|| NodeError::Internal("zone secrets missing after creation".into()))
    }

    /// Gives `zone` account secrets unless it has some.
    pub(crate) async fn set_zone_auth(&self, zone: &ZoneId) -> Result<(), NodeError> {
        let command = Command::SetZoneAuth(accounts::SetZoneAuth {
            zone: zone.clone(),
            auth: blindstore_auth::new_zone_auth(),
        });
        answer!(self.propose(command).await?, CommandResponse::ZoneAuthSet { .. } => ())
    }

    /// Registration, first step (stateless): the OPAQUE registration response.
    pub async fn register_start(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        registration_request: &str,
    ) -> Result<String, NodeError> {
        let auth = self.zone_auth(zone).await?;
        server::registration_response(&auth.opaque_setup, account.as_str(), registration_request)
            .map_err(malformed)
    }

    /// Registration, last step: creates the account under the zone's registration policy
    /// (`invite`: the code given is used up) and account cap; `AccountExists` if the id is
    /// taken.
    pub async fn register_finish(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        registration_record: &str,
        invite: Option<&str>,
    ) -> Result<(), NodeError> {
        let registration = server::registration_record(registration_record).map_err(malformed)?;
        self.zone_auth(zone).await?;
        self.chunks().check_room()?;
        let command = Command::RegisterAccount(accounts::RegisterAccount {
            zone: zone.clone(),
            account: account.clone(),
            registration,
            created_at_ms: now_ms(),
            invite: invite.map(|code| invite_hash(code.trim())),
        });
        answer!(self.propose(command).await?, CommandResponse::AccountCreated => ())
    }

    /// Login, first step: the OPAQUE login response and a sealed ticket for `login_finish`.
    /// An unknown account gets an answer of the same shape (a dummy record).
    pub async fn login_start(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        start_login_request: &str,
    ) -> Result<(String, String), NodeError> {
        let auth = self.zone_auth(zone).await?;
        self.read_barrier(Consistency::Linearizable).await?;
        let record = self.inner.state.account(zone, account)?;
        let (response, state) = server::login_start(
            &auth.opaque_setup,
            account.as_str(),
            record.as_ref().map(|r| r.registration.as_slice()),
            start_login_request,
        )
        .map_err(malformed)?;
        let expires = now_ms() + self.inner.accounts.login_ttl.as_millis() as u64;
        let registration_hash = record.map_or([0; 32], |r| Hash32::digest(&r.registration).0);
        let ticket = LoginTicket::new(account.clone(), state, registration_hash, expires);
        Ok((
            response,
            ticket.seal(&auth.ticket_key, zone.as_str(), Ceremony::PasswordLogin),
        ))
    }

    /// Login, last step: a new session if the client proved the password. Every failure — a
    /// wrong password, an unknown account, an expired, forged or reused ticket — is the same
    /// `InvalidLogin`.
    pub async fn login_finish(
        &self,
        zone: &ZoneId,
        login_ticket: &str,
        finish_login_request: &str,
        label: String,
        device_token: Option<&str>,
    ) -> Result<NewSession, NodeError> {
        check_label("session label", &label)?;
        let now = now_ms();
        let ticket = self
            .password_login(zone, login_ticket, finish_login_request, now)
            .await?;
        let registration_hash = Hash32(ticket.binding);
        self.open_session(
            &ticket,
            zone,
            now,
            label,
            device_token,
            |token_hash, session, ticket| {
                Command::CreateSession(accounts::CreateSession {
                    zone: zone.clone(),
                    token_hash,
                    session,
                    registration_hash,
                    ticket,
                })
            },
        )
        .await
    }

    /// The login ticket of a password login whose last message proves the password.
    async fn password_login(
        &self,
        zone: &ZoneId,
        login_ticket: &str,
        finish_login_request: &str,
        now: u64,
    ) -> Result<LoginTicket, NodeError> {
        let auth = self.zone_auth(zone).await?;
        let ticket = LoginTicket::open(
            &auth.ticket_key,
            zone.as_str(),
            Ceremony::PasswordLogin,
            login_ticket,
            now,
        )
        .map_err(|_| NodeError::InvalidLogin)?;
        server::login_finish(&ticket.state, finish_login_request).map_err(|e| match e {
            AuthError::Malformed(_) => malformed(e),
            _ => NodeError::InvalidLogin,
        })?;
        Ok(ticket)
    }

    /// A step-up for `who`'s session from a password login of its account (started with
    /// `login_start`): the proof that the password was typed just now. No session is opened.
    /// A login of another account fails like a wrong password.
    pub async fn step_up_with_password(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        login_ticket: &str,
        finish_login_request: &str,
    ) -> Result<StepUp, NodeError> {
        let now = now_ms();
        let ticket = self
            .password_login(zone, login_ticket, finish_login_request, now)
            .await?;
        // The login must be against the record the account has now (not one replaced since).
        let current = self.inner.state.account(zone, &who.account)?;
        if ticket.account != who.account
            || current.is_none_or(|a| Hash32::digest(&a.registration).0 != ticket.binding)
        {
            return Err(NodeError::InvalidLogin);
        }
        self.redeem(&ticket, now).await?;
        self.step_up(zone, &who.token_hash, &who.account, now).await
    }

    /// Redeems a login ticket that opens no session (a step-up): once only.
    pub(crate) async fn redeem(&self, ticket: &LoginTicket, now: u64) -> Result<(), NodeError> {
        let ticket = TicketUse {
            id: ticket.id,
            expires_at_ms: ticket.expires_at_ms,
            now_ms: now,
        };
        match self
            .propose(Command::RedeemTicket(accounts::RedeemTicket { ticket }))
            .await?
        {
            CommandResponse::TicketRedeemed => Ok(()),
            CommandResponse::Rejected(_) => Err(NodeError::InvalidLogin),
            other => Err(unexpected(other)),
        }
    }

    /// Seals a step-up for the session `token_hash` of `account`.
    pub(crate) async fn step_up(
        &self,
        zone: &ZoneId,
        token_hash: &Hash32,
        account: &AccountId,
        now: u64,
    ) -> Result<StepUp, NodeError> {
        let auth = self.zone_auth(zone).await?;
        let expires_at_ms = now + self.inner.accounts.step_up_ttl.as_millis() as u64;
        let ticket = LoginTicket::new(account.clone(), Vec::new(), token_hash.0, expires_at_ms);
        Ok(StepUp {
            step_up: ticket.seal(&auth.ticket_key, zone.as_str(), Ceremony::StepUp),
            expires_at_ms,
        })
    }

    /// Checks that `who`'s request carries a live step-up of its own session: what cannot be
    /// undone needs one besides the session.
    pub async fn require_step_up(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        step_up: Option<&str>,
    ) -> Result<(), NodeError> {
        let required = NodeError::StepUpRequired {
            minutes: self.inner.accounts.step_up_ttl.as_secs().div_ceil(60),
        };
        let Some(step_up) = step_up else {
            return Err(required);
        };
        let auth = self.zone_auth(zone).await?;
        match LoginTicket::open(
            &auth.ticket_key,
            zone.as_str(),
            Ceremony::StepUp,
            step_up,
            now_ms(),
        ) {
            Ok(t) if t.account == who.account && t.binding == who.token_hash.0 => Ok(()),
            _ => Err(required),
        }
    }

    /// The device a device token of `account` names, if it is one the zone issued to a login
    /// of that account and it has not expired; `None` for anything else (a stranger).
    pub async fn device(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        device_token: Option<&str>,
    ) -> Result<Option<DeviceId>, NodeError> {
        let Some(token) = device_token else {
            return Ok(None);
        };
        let auth = self.zone_auth(zone).await?;
        Ok(LoginTicket::open(
            &auth.ticket_key,
            zone.as_str(),
            Ceremony::Device,
            token,
            now_ms(),
        )
        .ok()
        .filter(|t| t.account == *account)
        .map(|t| DeviceId(t.id)))
    }

    /// A device token for `account`: the same device id as `previous` if that is one of its
    /// tokens, a new one otherwise.
    async fn device_token(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        previous: Option<&str>,
        now: u64,
    ) -> Result<String, NodeError> {
        let auth = self.zone_auth(zone).await?;
        let expires = now + self.inner.accounts.device_ttl.as_millis() as u64;
        let mut ticket = LoginTicket::new(account.clone(), Vec::new(), [0; 32], expires);
        if let Some(DeviceId(id)) = self.device(zone, account, previous).await? {
            ticket.id = id;
        }
        Ok(ticket.seal(&auth.ticket_key, zone.as_str(), Ceremony::Device))
    }

    /// Opens a session for the account of a login `ticket` that verified: `command` makes the
    /// state change (which checks the login still holds and redeems the ticket). A rejection
    /// — the account deleted, its password or passkey changed, the ticket used — fails like
    /// a wrong password.
    pub(crate) async fn open_session(
        &self,
        ticket: &LoginTicket,
        zone: &ZoneId,
        now: u64,
        label: String,
        device_token: Option<&str>,
        command: impl FnOnce(Hash32, SessionRecord, TicketUse) -> Command,
    ) -> Result<NewSession, NodeError> {
        self.chunks().check_room()?;
        let (token, token_hash) = blindstore_auth::new_session_token();
        let session = SessionRecord {
            account: ticket.account.clone(),
            created_at_ms: now,
            expires_at_ms: now + self.inner.accounts.session_ttl.as_millis() as u64,
            label,
        };
        let expires_at_ms = session.expires_at_ms;
        let redeem = TicketUse {
            id: ticket.id,
            expires_at_ms: ticket.expires_at_ms,
            now_ms: now,
        };
        let account = &ticket.account;
        match self.propose(command(token_hash, session, redeem)).await? {
            CommandResponse::SessionCreated => {
                let step_up = self.step_up(zone, &token_hash, account, now).await?;
                Ok(NewSession {
                    token,
                    session_id: session_id(&token_hash),
                    account: ticket.account.clone(),
                    expires_at_ms,
                    step_up: step_up.step_up,
                    step_up_expires_at_ms: step_up.expires_at_ms,
                    device_token: self.device_token(zone, account, device_token, now).await?,
                })
            }
            CommandResponse::Rejected(_) => Err(NodeError::InvalidLogin),
            other => Err(unexpected(other)),
        }
    }

    /// The live session a bearer token names, checked after a read barrier: a revocation
    /// that returned before this call began is seen.
    pub async fn authenticate(
        &self,
        zone: &ZoneId,
        bearer: &str,
    ) -> Result<Authenticated, NodeError> {
        let token_hash = session_token_hash(bearer).ok_or(NodeError::InvalidSession)?;
        self.zones().require_zone_fresh(zone).await?;
        self.read_barrier(Consistency::Linearizable).await?;
        let session = self
            .inner
            .state
            .session(zone, &token_hash)?
            .filter(|s| s.expires_at_ms > now_ms())
            .ok_or(NodeError::InvalidSession)?;
        Ok(Authenticated {
            account: session.account.clone(),
            token_hash,
            session,
        })
    }

    /// Ends this session. Returns how many ended (0 or 1).
    pub async fn logout(&self, zone: &ZoneId, who: &Authenticated) -> Result<u64, NodeError> {
        self.revoke(zone, &who.account, Revoke::One(who.token_hash))
            .await
    }

    /// Ends one of the account's sessions by its listed id; false if it has none such.
    pub async fn end_session(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        id: &str,
    ) -> Result<bool, NodeError> {
        let target = self
            .inner
            .state
            .account_sessions(zone, &who.account)?
            .into_iter()
            .map(|(hash, _)| hash)
            .find(|hash| session_id(hash) == id);
        match target {
            Some(hash) => Ok(self.revoke(zone, &who.account, Revoke::One(hash)).await? > 0),
            None => Ok(false),
        }
    }

    async fn revoke(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        revoke: Revoke,
    ) -> Result<u64, NodeError> {
        let command = Command::RevokeSessions(accounts::RevokeSessions {
            zone: zone.clone(),
            account: account.clone(),
            revoke,
        });
        answer!(self.propose(command).await?, CommandResponse::SessionsRevoked { count } => count)
    }

    /// The account's live sessions, oldest first.
    pub fn sessions(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
    ) -> Result<Vec<SessionInfo>, NodeError> {
        let now = now_ms();
        let mut sessions: Vec<SessionInfo> = self
            .inner
            .state
            .account_sessions(zone, &who.account)?
            .into_iter()
            .filter(|(_, s)| s.expires_at_ms > now)
            .map(|(hash, s)| SessionInfo {
                session_id: session_id(&hash),
                label: s.label,
                created_at_ms: s.created_at_ms,
                expires_at_ms: s.expires_at_ms,
                current: hash == who.token_hash,
            })
            .collect();
        sessions.sort_by_key(|s| s.created_at_ms);
        Ok(sessions)
    }

    /// One of the account's envelopes.
    pub fn envelope(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        name: &str,
    ) -> Result<EnvelopeRecord, NodeError> {
        check_envelope_name(name).map_err(NodeError::BadRequest)?;
        self.inner
            .state
            .envelope(zone, &who.account, name)?
            .ok_or(NodeError::UnknownEnvelope)
    }

    /// The account's envelopes, by name.
    pub fn envelopes(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
    ) -> Result<Vec<(String, EnvelopeRecord)>, NodeError> {
        Ok(self.inner.state.envelopes(zone, &who.account)?)
    }

    /// Writes an envelope if its version is `if_version` (0: it must not exist); returns the
    /// new version and its time, or `EnvelopeConflict` with the current version.
    pub async fn put_envelope(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        write: EnvelopeWrite,
    ) -> Result<(u64, u64), NodeError> {
        check_envelope_write(&write)?;
        self.chunks().check_room()?;
        let acting = who.acting();
        let command = Command::PutEnvelope(accounts::PutEnvelope {
            zone: zone.clone(),
            account: who.account.clone(),
            acting,
            write,
        });
        answer!(
            self.propose(command).await?,
            CommandResponse::EnvelopePut { version } => (version, acting.now_ms)
        )
    }

    /// Deletes an envelope if its version is `if_version`; `EnvelopeConflict` with the current
    /// version (0: there is none) otherwise.
    pub async fn delete_envelope(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        name: &str,
        if_version: u64,
    ) -> Result<(), NodeError> {
        check_envelope_name(name).map_err(NodeError::BadRequest)?;
        let command = Command::DeleteEnvelope(accounts::DeleteEnvelope {
            zone: zone.clone(),
            account: who.account.clone(),
            acting: who.acting(),
            name: name.to_owned(),
            if_version,
        });
        answer!(self.propose(command).await?, CommandResponse::EnvelopeDeleted => ())
    }

    /// Replaces the account's OPAQUE record (the client ran `register/start` for it), with an
    /// envelope, the removal of passkeys (their ids, base64url) and the end of the other
    /// sessions, in one step. Returns how many sessions ended.
    pub async fn change_password(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        registration_record: &str,
        envelope: Option<EnvelopeWrite>,
        revoke_other_sessions: bool,
        remove_passkeys: &[String],
    ) -> Result<u64, NodeError> {
        let registration = server::registration_record(registration_record).map_err(malformed)?;
        if let Some(write) = &envelope {
            check_envelope_write(write)?;
        }
        let password = Some(NewPassword {
            registration,
            envelope,
        });
        let revoke = revoke_other_sessions.then_some(Revoke::All {
            except: Some(who.token_hash),
        });
        self.change_credentials(zone, who, password, remove_passkeys, revoke)
            .await
    }

    /// Ends every session of the account (this one too), removing the passkeys named (ids,
    /// base64url) in the same step. Returns how many sessions ended.
    pub async fn logout_everywhere(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        remove_passkeys: &[String],
    ) -> Result<u64, NodeError> {
        let revoke = Some(Revoke::All { except: None });
        self.change_credentials(zone, who, None, remove_passkeys, revoke)
            .await
    }

    async fn change_credentials(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        password: Option<NewPassword>,
        remove_passkeys: &[String],
        revoke: Option<Revoke>,
    ) -> Result<u64, NodeError> {
        let remove_passkeys = remove_passkeys
            .iter()
            .map(|id| {
                URL_SAFE_NO_PAD
                    .decode(id)
                    .map_err(|_| NodeError::UnknownPasskey)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let command = Command::ChangeCredentials(accounts::ChangeCredentials {
            zone: zone.clone(),
            account: who.account.clone(),
            acting: who.acting(),
            password,
            remove_passkeys,
            revoke,
        });
        answer!(
            self.propose(command).await?,
            CommandResponse::CredentialsChanged { revoked } => revoked
        )
    }

    /// Deletes an account with its sessions and envelopes: the account's own live session
    /// (`who`), or an administrator (`who` None).
    pub async fn delete_account(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        who: Option<&Authenticated>,
    ) -> Result<(), NodeError> {
        self.zones().require_zone_fresh(zone).await?;
        let command = Command::DeleteAccount(accounts::DeleteAccount {
            zone: zone.clone(),
            account: account.clone(),
            acting: who.map(Authenticated::acting),
        });
        answer!(self.propose(command).await?, CommandResponse::AccountDeleted => ())
    }
}

/// The state keeps an invite code's SHA-256 (of its text, as given to the user).
fn invite_hash(code: &str) -> Hash32 {
    Hash32::digest(code.as_bytes())
}

impl Accounts<'_> {
    /// Sets a zone's registration policy and caps; fields left out keep their values.
    pub async fn set_registration(
        &self,
        zone: &ZoneId,
        change: &blindstore_types::api::RegistrationChange,
    ) -> Result<RegistrationSettings, NodeError> {
        self.read_barrier(Consistency::Linearizable).await?;
        self.zones().require_zone(zone)?;
        let mut settings = self.inner.state.registration(zone)?;
        settings.policy = change.policy.unwrap_or(settings.policy);
        settings.max_accounts = change.max_accounts.unwrap_or(settings.max_accounts);
        settings.max_envelope_bytes = change
            .max_envelope_bytes
            .unwrap_or(settings.max_envelope_bytes);
        let command = Command::SetRegistration(accounts::SetRegistration {
            zone: zone.clone(),
            settings,
        });
        answer!(self.propose(command).await?, CommandResponse::RegistrationSet => settings)
    }

    /// Creates `count` one-time invite codes for `zone`, valid for `ttl`: the codes (shown
    /// once; the state keeps their hashes) and their expiry.
    pub async fn create_invites(
        &self,
        zone: &ZoneId,
        count: u64,
        ttl: std::time::Duration,
    ) -> Result<(Vec<String>, u64), NodeError> {
        if count == 0 || count > MAX_INVITES_PER_REQUEST {
            return Err(NodeError::BadRequest(format!(
                "count must be 1 to {MAX_INVITES_PER_REQUEST}"
            )));
        }
        if ttl.is_zero() || ttl > MAX_INVITE_TTL {
            return Err(NodeError::BadRequest(
                "an invite lasts at least a second and at most 365 days".into(),
            ));
        }
        self.zones().require_zone_fresh(zone).await?;
        let codes: Vec<String> = (0..count)
            .map(|_| blindstore_auth::new_invite_code())
            .collect();
        let now = now_ms();
        let expires_at_ms = now + ttl.as_millis() as u64;
        let command = Command::CreateInvites(accounts::CreateInvites {
            zone: zone.clone(),
            codes: codes.iter().map(|c| invite_hash(c)).collect(),
            expires_at_ms,
            now_ms: now,
        });
        answer!(
            self.propose(command).await?,
            CommandResponse::InvitesCreated => (codes, expires_at_ms)
        )
    }
}

/// The longest an invite lasts.
const MAX_INVITE_TTL: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

pub(crate) fn check_label(what: &'static str, label: &str) -> Result<(), NodeError> {
    if label.len() > MAX_SESSION_LABEL_BYTES {
        return Err(NodeError::TooLarge {
            what,
            limit: MAX_SESSION_LABEL_BYTES as u64,
        });
    }
    Ok(())
}

fn check_envelope_write(write: &EnvelopeWrite) -> Result<(), NodeError> {
    check_envelope_name(&write.name).map_err(NodeError::BadRequest)?;
    if write.data.len() > MAX_ENVELOPE_BYTES {
        return Err(NodeError::TooLarge {
            what: "envelope",
            limit: MAX_ENVELOPE_BYTES as u64,
        });
    }
    Ok(())
}
