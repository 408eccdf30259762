//! Accounts from Rust: OPAQUE registration and login with the same key stretching as
//! `@serenity-kit/opaque`, sessions and envelopes. The password and the export key never leave
//! this process. A session keeps the step-up its login gave (what cannot be undone needs one
//! minutes old at most: [`Client::step_up`] renews it) and the device token (pass it to
//! [`Client::login_as_device`] to log in again under this device's own rate limit).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_auth::client;
use blindstore_types::account::AccountId;
use blindstore_types::api::{
    ChangePassword, CredentialsChanged, Envelope, EnvelopeChange, EnvelopeInfo, EnvelopeList,
    EnvelopePut, LoginFinish, LoginStart, LoginStarted, LogoutEverywhere, NewSession, PasskeyInfo,
    PasskeyList, RegisterFinish, RegisterStart, RegisterStarted, Revoked, SessionList, StepUp,
    StepUpFinish,
};
use blindstore_types::ZoneId;
use reqwest::header::IF_MATCH;
use reqwest::Method;

use crate::{checked, json, Client, Result};

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub zone: ZoneId,
    /// The bearer token.
    pub token: String,
    pub session_id: String,
    pub account: AccountId,
    pub expires_at_ms: u64,
    /// OPAQUE's export key: 64 bytes only the password holder can compute, the same at every
    /// login; the root of the client's own keys. Never sent.
    pub export_key: Vec<u8>,
    /// The proof of a fresh login for this session (`Blindstore-Step-Up`), and its end.
    pub step_up: String,
    pub step_up_expires_at_ms: u64,
    /// This client's device token for the account.
    pub device_token: String,
}

impl Session {
    /// The session `login/finish` answered, in `zone`, with the login's export key (empty when
    /// it is not known).
    pub fn new(zone: ZoneId, new: NewSession, export_key: Vec<u8>) -> Self {
        Session {
            zone,
            token: new.token,
            session_id: new.session_id,
            account: new.account,
            expires_at_ms: new.expires_at_ms,
            export_key,
            step_up: new.step_up,
            step_up_expires_at_ms: new.step_up_expires_at_ms,
            device_token: new.device_token,
        }
    }
}

/// The header that carries a step-up.
const STEP_UP: &str = "blindstore-step-up";

impl Client {
    fn auth_path(zone: &ZoneId, rest: &str) -> String {
        format!("/v1/zones/{zone}/auth/{rest}")
    }

    /// Registers `account` with `password`; returns the export key.
    pub async fn register(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        password: &[u8],
    ) -> Result<Vec<u8>> {
        self.register_with_invite(zone, account, password, None)
            .await
    }

    /// Registers `account` with `password` and an invite code (for a zone whose registration
    /// is `invite`); returns the export key.
    pub async fn register_with_invite(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        password: &[u8],
        invite: Option<&str>,
    ) -> Result<Vec<u8>> {
        let record = self
            .registration_record(zone, account, password, None)
            .await?;
        let body = RegisterFinish {
            account: account.clone(),
            registration_record: record.message,
            invite: invite.map(str::to_owned),
        };
        checked(
            self.request(Method::POST, &Self::auth_path(zone, "register/finish"))
                .json(&body)
                .send()
                .await?,
        )
        .await?;
        Ok(record.export_key)
    }

    /// The two first steps of a registration: a record for `password`, not yet uploaded.
    async fn registration_record(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        password: &[u8],
        device_token: Option<&str>,
    ) -> Result<client::Finished> {
        let (state, registration_request) = client::start_registration(password)?;
        let start = RegisterStart {
            account: account.clone(),
            registration_request,
            device_token: device_token.map(str::to_owned),
        };
        let started: RegisterStarted = json(
            self.request(Method::POST, &Self::auth_path(zone, "register/start"))
                .json(&start)
                .send()
                .await?,
        )
        .await?;
        Ok(state.finish(password, &started.registration_response)?)
    }

    /// Logs in: a session. A wrong password or an unknown account fails on the client side
    /// (`ClientError::Login`) before the last message is sent.
    pub async fn login(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        password: &[u8],
        label: &str,
    ) -> Result<Session> {
        self.login_as_device(zone, account, password, label, None)
            .await
    }

    /// Logs in presenting the device token an earlier login of this account gave this
    /// client: the login is held to this device's own rate limit.
    pub async fn login_as_device(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        password: &[u8],
        label: &str,
        device_token: Option<&str>,
    ) -> Result<Session> {
        let (state, start_login_request) = client::start_login(password)?;
        let started = self
            .login_start(zone, account, &start_login_request, device_token)
            .await?;
        let finished = state.finish(password, &started.login_response)?;
        let body = LoginFinish {
            login_ticket: started.login_ticket,
            finish_login_request: finished.message,
            label: label.to_owned(),
            device_token: device_token.map(str::to_owned),
        };
        let session: NewSession = json(
            self.request(Method::POST, &Self::auth_path(zone, "login/finish"))
                .json(&body)
                .send()
                .await?,
        )
        .await?;
        Ok(Session::new(zone.clone(), session, finished.export_key))
    }

    /// Proves the password again for `session` (a password login that opens no session) and
    /// keeps the new step-up in it.
    pub async fn step_up(&self, session: &mut Session, password: &[u8]) -> Result<()> {
        let (state, start_login_request) = client::start_login(password)?;
        let started = self
            .login_start(
                &session.zone,
                &session.account,
                &start_login_request,
                Some(&session.device_token),
            )
            .await?;
        let finished = state.finish(password, &started.login_response)?;
        let body = StepUpFinish {
            login_ticket: started.login_ticket,
            finish_login_request: finished.message,
        };
        let step_up: StepUp = json(
            self.session_request(Method::POST, session, "step-up")
                .json(&body)
                .send()
                .await?,
        )
        .await?;
        session.step_up = step_up.step_up;
        session.step_up_expires_at_ms = step_up.expires_at_ms;
        Ok(())
    }

    /// `POST .../auth/login/start` with a prepared OPAQUE message.
    pub async fn login_start(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        start_login_request: &str,
        device_token: Option<&str>,
    ) -> Result<LoginStarted> {
        let body = LoginStart {
            account: account.clone(),
            start_login_request: start_login_request.to_owned(),
            device_token: device_token.map(str::to_owned),
        };
        json(
            self.request(Method::POST, &Self::auth_path(zone, "login/start"))
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    /// `POST .../auth/login/finish` with a prepared OPAQUE message.
    pub async fn login_finish(
        &self,
        zone: &ZoneId,
        login_ticket: &str,
        finish_login_request: &str,
        label: &str,
    ) -> Result<NewSession> {
        let body = LoginFinish {
            login_ticket: login_ticket.to_owned(),
            finish_login_request: finish_login_request.to_owned(),
            label: label.to_owned(),
            device_token: None,
        };
        json(
            self.request(Method::POST, &Self::auth_path(zone, "login/finish"))
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    fn session_request(
        &self,
        method: Method,
        session: &Session,
        rest: &str,
    ) -> reqwest::RequestBuilder {
        self.request(method, &Self::auth_path(&session.zone, rest))
            .bearer_auth(&session.token)
    }

    /// A session request for what cannot be undone: with the session's step-up.
    fn fresh_session_request(
        &self,
        method: Method,
        session: &Session,
        rest: &str,
    ) -> reqwest::RequestBuilder {
        self.session_request(method, session, rest)
            .header(STEP_UP, &session.step_up)
    }

    /// Ends this session.
    pub async fn logout(&self, session: &Session) -> Result<u64> {
        let revoked: Revoked = json(
            self.session_request(Method::POST, session, "logout")
                .send()
                .await?,
        )
        .await?;
        Ok(revoked.revoked)
    }

    /// Ends every session of the account, removing the passkeys named in the same step (with
    /// the session's step-up).
    pub async fn logout_everywhere(
        &self,
        session: &Session,
        remove_passkeys: &[String],
    ) -> Result<CredentialsChanged> {
        let body = LogoutEverywhere {
            remove_passkeys: remove_passkeys.to_vec(),
        };
        json(
            self.fresh_session_request(Method::POST, session, "logout-all")
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    /// The account's live sessions.
    pub async fn sessions(&self, session: &Session) -> Result<SessionList> {
        json(
            self.session_request(Method::GET, session, "sessions")
                .send()
                .await?,
        )
        .await
    }

    /// Ends one of the account's sessions by its id (another than this one needs the
    /// session's step-up); whether it existed.
    pub async fn end_session(&self, session: &Session, id: &str) -> Result<bool> {
        let path = format!("sessions/{id}");
        let revoked: Revoked = json(
            self.fresh_session_request(Method::DELETE, session, &path)
                .send()
                .await?,
        )
        .await?;
        Ok(revoked.revoked > 0)
    }

    /// One envelope: its version and bytes.
    pub async fn envelope(&self, session: &Session, name: &str) -> Result<(u64, Vec<u8>)> {
        let path = format!("envelopes/{name}");
        let envelope: Envelope = json(
            self.session_request(Method::GET, session, &path)
                .send()
                .await?,
        )
        .await?;
        let data =
            URL_SAFE_NO_PAD
                .decode(&envelope.data)
                .map_err(|e| crate::ClientError::Unexpected {
                    status: reqwest::StatusCode::OK,
                    detail: format!("envelope data: {e}"),
                })?;
        Ok((envelope.version, data))
    }

    /// The account's envelopes.
    pub async fn envelopes(&self, session: &Session) -> Result<Vec<EnvelopeInfo>> {
        let list: EnvelopeList = json(
            self.session_request(Method::GET, session, "envelopes")
                .send()
                .await?,
        )
        .await?;
        Ok(list.envelopes)
    }

    /// Writes an envelope replacing version `if_version` (0: it must not exist yet); the new
    /// version, or `envelope_conflict` with the current one.
    pub async fn put_envelope(
        &self,
        session: &Session,
        name: &str,
        data: &[u8],
        if_version: u64,
    ) -> Result<u64> {
        let path = format!("envelopes/{name}");
        let mut request = self
            .session_request(Method::PUT, session, &path)
            .json(&EnvelopePut {
                data: URL_SAFE_NO_PAD.encode(data),
            });
        if if_version > 0 {
            request = request.header(IF_MATCH, format!("\"{if_version}\""));
        }
        let info: EnvelopeInfo = json(request.send().await?).await?;
        Ok(info.version)
    }

    /// Deletes version `if_version` of an envelope; `envelope_conflict` with the current
    /// version (0: none) otherwise.
    pub async fn delete_envelope(
        &self,
        session: &Session,
        name: &str,
        if_version: u64,
    ) -> Result<()> {
        let path = format!("envelopes/{name}");
        checked(
            self.fresh_session_request(Method::DELETE, session, &path)
                .header(IF_MATCH, format!("\"{if_version}\""))
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    /// The account's passkeys (registering one and logging in with one need a browser's
    /// authenticator: `sdk/interop/passkeys.mjs`).
    pub async fn passkeys(&self, session: &Session) -> Result<Vec<PasskeyInfo>> {
        let list: PasskeyList = json(
            self.session_request(Method::GET, session, "passkeys")
                .send()
                .await?,
        )
        .await?;
        Ok(list.passkeys)
    }

    /// Removes one of the account's passkeys by its id (with the session's step-up).
    pub async fn remove_passkey(&self, session: &Session, passkey_id: &str) -> Result<()> {
        let path = format!("passkeys/{passkey_id}");
        checked(
            self.fresh_session_request(Method::DELETE, session, &path)
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    /// Changes the password (with the session's step-up), optionally with an envelope (name,
    /// bytes, version replaced) and the end of every other session, in one step; returns the
    /// new export key.
    pub async fn change_password(
        &self,
        session: &Session,
        new_password: &[u8],
        envelope: Option<(&str, &[u8], u64)>,
        revoke_other_sessions: bool,
    ) -> Result<Vec<u8>> {
        let device_token = Some(session.device_token.as_str()).filter(|t| !t.is_empty());
        let record = self
            .registration_record(&session.zone, &session.account, new_password, device_token)
            .await?;
        let body = ChangePassword {
            registration_record: record.message,
            envelope: envelope.map(|(name, data, if_version)| EnvelopeChange {
                name: name.to_owned(),
                data: URL_SAFE_NO_PAD.encode(data),
                if_version,
            }),
            revoke_other_sessions,
            remove_passkeys: Vec::new(),
        };
        checked(
            self.fresh_session_request(Method::POST, session, "password")
                .json(&body)
                .send()
                .await?,
        )
        .await?;
        Ok(record.export_key)
    }

    /// Deletes the session's account with its envelopes, passkeys and sessions.
    pub async fn delete_account(&self, session: &Session) -> Result<()> {
        checked(
            self.fresh_session_request(Method::DELETE, session, "account")
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }
}
