//! Passkeys: with a session, register a WebAuthn credential; later log in with it to get a
//! session. The ceremonies are `blindstore_auth::passkey`'s; their server state travels in
//! sealed single-use tickets (any node finishes what another started), and the credentials
//! live in the replicated state. The zone's passkey settings name the relying party.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_auth::passkey::{RelyingParty, CEREMONY_TIMEOUT};
use blindstore_auth::ticket::{Ceremony, LoginTicket};
use blindstore_auth::AuthError;
use blindstore_types::account::{
    AccountId, PasskeyRecord, MAX_PASSKEYS_PER_ACCOUNT, MAX_PASSKEY_ID_BYTES,
};
use blindstore_types::api::{NewSession, PasskeyInfo, StepUp};
use blindstore_types::command::{accounts, Command, CommandResponse, TicketUse};
use blindstore_types::ZoneId;
use serde_json::Value;

use crate::accounts::check_label;
use crate::accounts::Accounts;
use crate::now_ms;
use crate::{Authenticated, Consistency, NodeError};

impl Accounts<'_> {
    fn relying_party(&self, zone: &ZoneId) -> Result<RelyingParty, NodeError> {
        let settings = self.inner.state.zone_settings(zone)?;
        let passkeys = settings.passkeys.ok_or(NodeError::PasskeysOff)?;
        RelyingParty::new(&passkeys.rp_id, &passkeys.origins).map_err(|_| NodeError::PasskeysOff)
    }

    fn ticket_expiry(now: u64) -> u64 {
        now + CEREMONY_TIMEOUT.as_millis() as u64
    }

    /// Starts registering a passkey for the session's account: the browser's creation
    /// options (the account's passkeys excluded) and a ticket bound to this session.
    pub async fn passkey_register_start(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
    ) -> Result<(Value, String), NodeError> {
        let auth = self.zone_auth(zone).await?;
        let rp = self.relying_party(zone)?;
        let existing: Vec<Vec<u8>> = self
            .inner
            .state
            .passkeys(zone, &who.account)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if existing.len() >= MAX_PASSKEYS_PER_ACCOUNT {
            return Err(NodeError::QuotaExceeded(format!(
                "an account holds at most {MAX_PASSKEYS_PER_ACCOUNT} passkeys"
            )));
        }
        let user = [
            zone.as_str().as_bytes(),
            b"\0",
            who.account.as_str().as_bytes(),
        ]
        .concat();
        let (options, state) = rp
            .registration_start(&user, &existing)
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        let ticket = LoginTicket::new(
            who.account.clone(),
            state,
            who.token_hash.0,
            Self::ticket_expiry(now_ms()),
        );
        let sealed = ticket.seal(
            &auth.ticket_key,
            zone.as_str(),
            Ceremony::PasskeyRegistration,
        );
        Ok((options, sealed))
    }

    /// Finishes a passkey registration started by this same session: stores the verified
    /// credential.
    pub async fn passkey_register_finish(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        ticket: &str,
        credential: Value,
        label: String,
    ) -> Result<PasskeyInfo, NodeError> {
        check_label("passkey label", &label)?;
        let auth = self.zone_auth(zone).await?;
        let now = now_ms();
        let ticket = LoginTicket::open(
            &auth.ticket_key,
            zone.as_str(),
            Ceremony::PasskeyRegistration,
            ticket,
            now,
        )
        .ok()
        .filter(|t| t.account == who.account && t.binding == who.token_hash.0)
        .ok_or_else(|| {
            NodeError::BadRequest(
                "invalid or expired passkey ticket (it is good for five minutes, once, with the session that started the registration)".into(),
            )
        })?;
        let rp = self.relying_party(zone)?;
        let passkey = rp
            .registration_finish(&ticket.state, credential)
            .map_err(|e| match e {
                AuthError::PasskeyRefused => NodeError::BadRequest(
                    "the passkey did not verify: wrong origin, challenge or relying party, or no user verification".into(),
                ),
                other => NodeError::BadRequest(other.to_string()),
            })?;
        if passkey.id.len() > MAX_PASSKEY_ID_BYTES {
            return Err(NodeError::TooLarge {
                what: "passkey credential id",
                limit: MAX_PASSKEY_ID_BYTES as u64,
            });
        }
        self.chunks().check_room()?;
        let record = PasskeyRecord {
            credential: passkey.credential,
            label,
            created_at_ms: now,
            last_used_ms: 0,
        };
        let info = passkey_info(&passkey.id, &record);
        let command = Command::AddPasskey(accounts::AddPasskey {
            zone: zone.clone(),
            account: who.account.clone(),
            acting: who.acting(),
            id: passkey.id,
            passkey: record,
            ticket: TicketUse {
                id: ticket.id,
                expires_at_ms: ticket.expires_at_ms,
                now_ms: now,
            },
        });
        answer!(self.propose(command).await?, CommandResponse::PasskeyAdded => info)
    }

    /// Starts a passkey login: the browser's request options listing the account's passkeys.
    /// An unknown account and one without passkeys are both `InvalidLogin`.
    pub async fn passkey_login_start(
        &self,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<(Value, String), NodeError> {
        let auth = self.zone_auth(zone).await?;
        let rp = self.relying_party(zone)?;
        self.read_barrier(Consistency::Linearizable).await?;
        let credentials: Vec<Vec<u8>> = self
            .inner
            .state
            .passkeys(zone, account)?
            .into_iter()
            .map(|(_, record)| record.credential)
            .collect();
        if credentials.is_empty() {
            return Err(NodeError::InvalidLogin);
        }
        let (options, state) = rp
            .login_start(&credentials)
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        let ticket = LoginTicket::new(
            account.clone(),
            state,
            [0; 32],
            Self::ticket_expiry(now_ms()),
        );
        let sealed = ticket.seal(&auth.ticket_key, zone.as_str(), Ceremony::PasskeyLogin);
        Ok((options, sealed))
    }

    /// Finishes a passkey login (on any node): a session if the assertion verifies. Every
    /// failure but a malformed request is `InvalidLogin`.
    pub async fn passkey_login_finish(
        &self,
        zone: &ZoneId,
        ticket: &str,
        credential: Value,
        label: String,
        device_token: Option<&str>,
    ) -> Result<NewSession, NodeError> {
        check_label("session label", &label)?;
        let now = now_ms();
        let (ticket, login) = self.passkey_login(zone, ticket, credential, now).await?;
        // As a password login's (`login_finish`), on purpose: only the command differs, which
        // also records the passkey's new signature counter.
        self.open_session(
            &ticket,
            zone,
            now,
            label,
            device_token,
            |token_hash, session, redeem| {
                Command::CreatePasskeySession(accounts::CreatePasskeySession {
                    zone: zone.clone(),
                    token_hash,
                    session,
                    passkey: login.id,
                    credential: login.updated,
                    ticket: redeem,
                })
            },
        )
        .await
    }

    /// A step-up for `who`'s session from a passkey login of its account (started with
    /// `passkey_login_start`): the proof that one of its passkeys was used just now. No session
    /// is opened. A login of another account fails like a wrong passkey.
    pub async fn step_up_with_passkey(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        ticket: &str,
        credential: Value,
    ) -> Result<StepUp, NodeError> {
        let now = now_ms();
        let (ticket, _) = self.passkey_login(zone, ticket, credential, now).await?;
        if ticket.account != who.account {
            return Err(NodeError::InvalidLogin);
        }
        self.redeem(&ticket, now).await?;
        self.step_up(zone, &who.token_hash, &who.account, now).await
    }

    /// The ticket of a passkey login whose assertion verifies against one of the account's
    /// passkeys, with what the login tells of that passkey.
    async fn passkey_login(
        &self,
        zone: &ZoneId,
        ticket: &str,
        credential: Value,
        now: u64,
    ) -> Result<(LoginTicket, blindstore_auth::passkey::PasskeyLogin), NodeError> {
        let auth = self.zone_auth(zone).await?;
        let ticket = LoginTicket::open(
            &auth.ticket_key,
            zone.as_str(),
            Ceremony::PasskeyLogin,
            ticket,
            now,
        )
        .map_err(|_| NodeError::InvalidLogin)?;
        let rp = self.relying_party(zone)?;
        self.read_barrier(Consistency::Linearizable).await?;
        let stored = self.inner.state.passkeys(zone, &ticket.account)?;
        let login = rp
            .login_finish(&ticket.state, credential, |id| {
                stored
                    .iter()
                    .find(|(stored_id, _)| stored_id == id)
                    .map(|(_, record)| record.credential.clone())
            })
            .map_err(|e| match e {
                AuthError::Malformed(_) => NodeError::BadRequest(e.to_string()),
                _ => NodeError::InvalidLogin,
            })?;
        Ok((ticket, login))
    }

    /// The session's account's passkeys, oldest first.
    pub fn passkeys(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
    ) -> Result<Vec<PasskeyInfo>, NodeError> {
        let mut list: Vec<PasskeyInfo> = self
            .inner
            .state
            .passkeys(zone, &who.account)?
            .iter()
            .map(|(id, record)| passkey_info(id, record))
            .collect();
        list.sort_by(|a, b| {
            (a.created_at_ms, &a.passkey_id).cmp(&(b.created_at_ms, &b.passkey_id))
        });
        Ok(list)
    }

    /// Removes one of the session's account's passkeys by its id (base64url).
    pub async fn remove_passkey(
        &self,
        zone: &ZoneId,
        who: &Authenticated,
        passkey_id: &str,
    ) -> Result<(), NodeError> {
        let id = URL_SAFE_NO_PAD
            .decode(passkey_id)
            .map_err(|_| NodeError::UnknownPasskey)?;
        let command = Command::RemovePasskey(accounts::RemovePasskey {
            zone: zone.clone(),
            account: who.account.clone(),
            acting: who.acting(),
            id,
        });
        answer!(self.propose(command).await?, CommandResponse::PasskeyRemoved => ())
    }
}

fn passkey_info(id: &[u8], record: &PasskeyRecord) -> PasskeyInfo {
    PasskeyInfo {
        passkey_id: URL_SAFE_NO_PAD.encode(id),
        label: record.label.clone(),
        created_at_ms: record.created_at_ms,
        last_used_ms: record.last_used_ms,
    }
}
