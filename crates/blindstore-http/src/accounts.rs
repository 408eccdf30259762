//! Account routes under `/v1/zones/{zone}/auth`: OPAQUE registration and login, sessions
//! (`Authorization: Bearer <session token>`), envelopes with compare-and-set, password change
//! and account deletion; and the administrator's account deletion. What cannot be undone
//! (a new password, ending other sessions, deleting an envelope or the account, adding or
//! removing a passkey) needs a step-up besides the session: `Blindstore-Step-Up`, the proof
//! of a login completed minutes ago for this session.
//!
//! The handlers here are alike on purpose: each is its route's OpenAPI description, the
//! extraction of its inputs and one `Node` call. They stay apart, not folded into a macro, so
//! each route reads and documents itself where it is declared.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, ETAG, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_cluster::{Authenticated, NodeError};
use blindstore_types::account::{AccountId, EnvelopeWrite};
use blindstore_types::api::{
    ChangePassword, CredentialsChanged, Envelope, EnvelopeInfo, EnvelopeList, EnvelopePut,
    ErrorBody, LoginFinish, LoginStart, LoginStarted, LogoutEverywhere, NewSession, PasskeyInfo,
    RegisterFinish, RegisterStart, RegisterStarted, Revoked, SessionList, StepUp, StepUpFinish,
};
use blindstore_types::ZoneId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Admin;
use crate::rate::ClientIp;
use crate::{parse_zone, ApiError, ApiJson, ApiPath, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_start))
        .routes(routes!(register_finish))
        .routes(routes!(login_start))
        .routes(routes!(login_finish))
        .routes(routes!(step_up))
        .routes(routes!(logout))
        .routes(routes!(logout_everywhere))
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
        .routes(routes!(list_envelopes))
        .routes(routes!(get_envelope, put_envelope, delete_envelope))
        .routes(routes!(change_password))
        .routes(routes!(delete_own_account))
}

/// The accounts routes behind the admin token (no CORS).
pub(crate) fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(admin_delete_account))
}

/// The bearer token a request carries (not yet checked).
pub(crate) struct Bearer(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| Bearer(t.trim().to_string()))
            .ok_or(ApiError::Node(NodeError::InvalidSession))
    }
}

/// The request's session if it carries a bearer token (401 if the token is not a live
/// session), or `None` without one.
pub(crate) async fn optional_session(
    state: &AppState,
    zone: &ZoneId,
    headers: &HeaderMap,
) -> Result<Option<Authenticated>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Node(NodeError::InvalidSession))?;
    Ok(Some(
        state
            .node
            .accounts()
            .authenticate(zone, token.trim())
            .await?,
    ))
}

pub(crate) async fn session(
    state: &AppState,
    zone: &str,
    bearer: &Bearer,
) -> Result<(ZoneId, Authenticated), ApiError> {
    let zone = parse_zone(zone)?;
    let who = state.node.accounts().authenticate(&zone, &bearer.0).await?;
    Ok((zone, who))
}

/// The header that carries a step-up.
pub(crate) const STEP_UP: &str = "blindstore-step-up";

/// Which limit a login or registration start counts against.
#[derive(Clone, Copy)]
pub(crate) enum StartLimit {
    Login,
    Register,
}

/// A login or registration start: whose, and from which device (a device token), if known.
pub(crate) trait StartBody {
    fn account(&self) -> &AccountId;
    fn device_token(&self) -> Option<&str>;
}

macro_rules! start_body {
    ($($body:ty),*) => {$(
        impl StartBody for $body {
            fn account(&self) -> &AccountId {
                &self.account
            }
            fn device_token(&self) -> Option<&str> {
                self.device_token.as_deref()
            }
        }
    )*};
}
start_body!(
    RegisterStart,
    LoginStart,
    blindstore_types::api::PasskeyLoginStart
);

/// The zone of a login or registration start, once the attempt is within its limits: per
/// client IP, and per account — or, with a live device token, per device.
pub(crate) async fn limited_start(
    state: &AppState,
    ip: std::net::IpAddr,
    zone: &str,
    body: &impl StartBody,
    limit: StartLimit,
) -> Result<ZoneId, ApiError> {
    let zone = parse_zone(zone)?;
    let account = body.account();
    let device = state
        .node
        .accounts()
        .device(&zone, account, body.device_token())
        .await?;
    let limiter = &state.auth_limiter;
    match limit {
        StartLimit::Login => limiter.login(ip, &zone, account, device)?,
        StartLimit::Register => limiter.register_start(ip, &zone, account, device)?,
    }
    Ok(zone)
}

pub(crate) async fn fresh_session(
    state: &AppState,
    zone: &str,
    bearer: &Bearer,
    headers: &HeaderMap,
) -> Result<(ZoneId, Authenticated), ApiError> {
    let (zone, who) = session(state, zone, bearer).await?;
    let step_up = headers.get(STEP_UP).and_then(|v| v.to_str().ok());
    state
        .node
        .accounts()
        .require_step_up(&zone, &who, step_up)
        .await?;
    Ok((zone, who))
}

fn base64_field(what: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| ApiError::BadRequest(format!("{what} is not base64url without padding")))
}

/// Starts an OPAQUE registration (stateless). For an id that exists the answer carries the
/// account's OPRF evaluation, as a login start's does, so it is held to the same per-account
/// limit (a password change presents its device token).
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/register/start", tag = "accounts",
    request_body = RegisterStart,
    responses(
        (status = 200, body = RegisterStarted),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 404, description = "Unknown zone", body = ErrorBody),
        (status = 429, description = "`rate_limited` (per client IP, and per account or device), with `Retry-After`", body = ErrorBody)))]
async fn register_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(zone): ApiPath<String>,
    ApiJson(body): ApiJson<RegisterStart>,
) -> Result<Json<RegisterStarted>, ApiError> {
    let zone = limited_start(&state, ip, &zone, &body, StartLimit::Register).await?;
    let registration_response = state
        .node
        .accounts()
        .register_start(&zone, &body.account, &body.registration_request)
        .await?;
    Ok(Json(RegisterStarted {
        registration_response,
    }))
}

/// Finishes a registration: creates the account.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/register/finish", tag = "accounts",
    request_body = RegisterFinish,
    responses(
        (status = 201, description = "Account created"),
        (status = 400, description = "Malformed record", body = ErrorBody),
        (status = 403, description = "`registration_closed`, `invalid_invite`, or `quota_exceeded` (the zone's account cap)", body = ErrorBody),
        (status = 409, description = "The account id is taken (`account_exists`)", body = ErrorBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = ErrorBody)))]
async fn register_finish(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(zone): ApiPath<String>,
    ApiJson(body): ApiJson<RegisterFinish>,
) -> Result<StatusCode, ApiError> {
    let zone = parse_zone(&zone)?;
    state.auth_limiter.register(ip)?;
    state
        .node
        .accounts()
        .register_finish(
            &zone,
            &body.account,
            &body.registration_record,
            body.invite.as_deref(),
        )
        .await?;
    Ok(StatusCode::CREATED)
}

/// Starts an OPAQUE login. An unknown account gets an answer of the same shape.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/login/start", tag = "accounts",
    request_body = LoginStart,
    responses((status = 200, body = LoginStarted),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 429, description = "`rate_limited` (per client IP and per account, or per device with a device token), with `Retry-After`", body = ErrorBody)))]
async fn login_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(zone): ApiPath<String>,
    ApiJson(body): ApiJson<LoginStart>,
) -> Result<Json<LoginStarted>, ApiError> {
    let zone = limited_start(&state, ip, &zone, &body, StartLimit::Login).await?;
    let (login_response, login_ticket) = state
        .node
        .accounts()
        .login_start(&zone, &body.account, &body.start_login_request)
        .await?;
    Ok(Json(LoginStarted {
        login_response,
        login_ticket,
    }))
}

/// Finishes a login (on any node): a session. A wrong password and an unknown account get
/// the same 401 `invalid_login`.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/login/finish", tag = "accounts",
    request_body = LoginFinish,
    responses((status = 200, body = NewSession),
        (status = 401, description = "`invalid_login`", body = ErrorBody)))]
async fn login_finish(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiJson(body): ApiJson<LoginFinish>,
) -> Result<Json<NewSession>, ApiError> {
    let zone = parse_zone(&zone)?;
    let session = state
        .node
        .accounts()
        .login_finish(
            &zone,
            &body.login_ticket,
            &body.finish_login_request,
            body.label,
            body.device_token.as_deref(),
        )
        .await?;
    Ok(Json(session))
}

/// Finishes a password login (started with `login/start`) as a step-up for the request's
/// session: no new session, a proof for what cannot be undone. A wrong password, or a login of
/// another account, is 401 `invalid_login`.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/step-up", tag = "accounts",
    security(("session_token" = [])),
    request_body = StepUpFinish,
    responses((status = 200, body = StepUp),
        (status = 401, description = "`invalid_session` or `invalid_login`", body = ErrorBody)))]
async fn step_up(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    bearer: Bearer,
    ApiJson(body): ApiJson<StepUpFinish>,
) -> Result<Json<StepUp>, ApiError> {
    let (zone, who) = session(&state, &zone, &bearer).await?;
    let step_up = state
        .node
        .accounts()
        .step_up_with_password(&zone, &who, &body.login_ticket, &body.finish_login_request)
        .await?;
    Ok(Json(step_up))
}

/// Ends the session the request comes with.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/logout", tag = "accounts",
    security(("session_token" = [])),
    responses((status = 200, body = Revoked),
        (status = 401, description = "`invalid_session`", body = ErrorBody)))]
async fn logout(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    bearer: Bearer,
) -> Result<Json<Revoked>, ApiError> {
    let (zone, who) = session(&state, &zone, &bearer).await?;
    let revoked = state.node.accounts().logout(&zone, &who).await?;
    Ok(Json(Revoked { revoked }))
}

/// Ends every session of the account ("log out everywhere"), this one too, removing the
/// passkeys named in the body in the same step. Needs a step-up. The answer lists the
/// passkeys the account keeps.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/logout-all", tag = "accounts",
    security(("session_token" = [])),
    params(("Blindstore-Step-Up" = String, Header, description = "A step-up of this session")),
    request_body(content = Option<LogoutEverywhere>, description = "Optional"),
    responses((status = 200, body = CredentialsChanged),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 403, description = "`step_up_required`", body = ErrorBody),
        (status = 404, description = "`unknown_passkey`: nothing changed", body = ErrorBody)))]
async fn logout_everywhere(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    headers: HeaderMap,
    bearer: Bearer,
    body: axum::body::Bytes,
) -> Result<Json<CredentialsChanged>, ApiError> {
    let body: LogoutEverywhere = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutEverywhere::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?
    };
    let (zone, who) = fresh_session(&state, &zone, &bearer, &headers).await?;
    let passkeys = state.node.accounts().passkeys(&zone, &who)?;
    let revoked = state
        .node
        .accounts()
        .logout_everywhere(&zone, &who, &body.remove_passkeys)
        .await?;
    Ok(Json(CredentialsChanged {
        revoked,
        passkeys: kept(passkeys, &body.remove_passkeys),
    }))
}

/// The passkeys of `before` that are not among `removed`.
fn kept(before: Vec<PasskeyInfo>, removed: &[String]) -> Vec<PasskeyInfo> {
    before
        .into_iter()
        .filter(|p| !removed.contains(&p.passkey_id))
        .collect()
}

/// The account's live sessions.
#[utoipa::path(get, path = "/v1/zones/{zone}/auth/sessions", tag = "accounts",
    security(("session_token" = [])),
    responses((status = 200, body = SessionList),
        (status = 401, description = "`invalid_session`", body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    bearer: Bearer,
) -> Result<Json<SessionList>, ApiError> {
    let (zone, who) = session(&state, &zone, &bearer).await?;
    let sessions = state.node.accounts().sessions(&zone, &who)?;
    Ok(Json(SessionList {
        account: who.account,
        sessions,
    }))
}

/// Ends one of the account's sessions, by its listed id. Another session than the request's
/// needs a step-up.
#[utoipa::path(delete, path = "/v1/zones/{zone}/auth/sessions/{id}", tag = "accounts",
    security(("session_token" = [])),
    params(("Blindstore-Step-Up" = Option<String>, Header, description = "A step-up of this session (to end another)")),
    responses((status = 200, body = Revoked),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 403, description = "`step_up_required`", body = ErrorBody)))]
async fn end_session(
    State(state): State<AppState>,
    ApiPath((zone, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    bearer: Bearer,
) -> Result<Json<Revoked>, ApiError> {
    let (zone, who) = session(&state, &zone, &bearer).await?;
    if who.session_id() != id {
        state
            .node
            .accounts()
            .require_step_up(
                &zone,
                &who,
                headers.get(STEP_UP).and_then(|v| v.to_str().ok()),
            )
            .await?;
    }
    let ended = state.node.accounts().end_session(&zone, &who, &id).await?;
    Ok(Json(Revoked {
        revoked: u64::from(ended),
    }))
}

/// The account's envelopes: names, versions, sizes.
#[utoipa::path(get, path = "/v1/zones/{zone}/auth/envelopes", tag = "accounts",
    security(("session_token" = [])),
    responses((status = 200, body = EnvelopeList),
        (status = 401, description = "`invalid_session`", body = ErrorBody)))]
async fn list_envelopes(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    bearer: Bearer,
) -> Result<Json<EnvelopeList>, ApiError> {
    let (zone, who) = session(&state, &zone, &bearer).await?;
    let envelopes = state
        .node
        .accounts()
        .envelopes(&zone, &who)?
        .into_iter()
        .map(|(name, e)| EnvelopeInfo {
            name,
            version: e.version,
            bytes: e.data.len() as u64,
            updated_at_ms: e.updated_at_ms,
        })
        .collect();
    Ok(Json(EnvelopeList { envelopes }))
}

/// One envelope, with `ETag: "<version>"`.
#[utoipa::path(get, path = "/v1/zones/{zone}/auth/envelopes/{name}", tag = "accounts",
    security(("session_token" = [])),
    responses((status = 200, body = Envelope),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 404, description = "`unknown_envelope`", body = ErrorBody)))]
async fn get_envelope(
    State(state): State<AppState>,
    ApiPath((zone, name)): ApiPath<(String, String)>,
    bearer: Bearer,
) -> Result<Response, ApiError> {
    let (zone, who) = session(&state, &zone, &bearer).await?;
    let envelope = state.node.accounts().envelope(&zone, &who, &name)?;
    let etag = version_etag(envelope.version);
    let body = Envelope {
        name,
        version: envelope.version,
        data: URL_SAFE_NO_PAD.encode(&envelope.data),
        updated_at_ms: envelope.updated_at_ms,
    };
    Ok(([(ETAG, etag)], Json(body)).into_response())
}

/// Writes an envelope. `If-Match: "<version>"` replaces that version; without `If-Match` the
/// envelope must not exist yet. Another version: 409 `envelope_conflict` with the current
/// version in `error.version`, and nothing changed.
#[utoipa::path(put, path = "/v1/zones/{zone}/auth/envelopes/{name}", tag = "accounts",
    security(("session_token" = [])),
    request_body = EnvelopePut,
    params(("If-Match" = Option<String>, Header, description = "The version being replaced, quoted")),
    responses((status = 200, body = EnvelopeInfo),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 403, description = "`quota_exceeded`: the zone's envelope bytes", body = ErrorBody),
        (status = 409, description = "`envelope_conflict`", body = ErrorBody),
        (status = 413, description = "Over 64 KiB", body = ErrorBody),
        (status = 429, description = "`rate_limited`: envelope writes of the account", body = ErrorBody)))]
async fn put_envelope(
    State(state): State<AppState>,
    ApiPath((zone, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
    bearer: Bearer,
    ApiJson(body): ApiJson<EnvelopePut>,
) -> Result<Response, ApiError> {
    let if_version = if_match_version(&headers)?;
    let data = base64_field("data", &body.data)?;
    let (zone, who) = session(&state, &zone, &bearer).await?;
    state.auth_limiter.envelope_write(&zone, &who.account)?;
    let bytes = data.len() as u64;
    let write = EnvelopeWrite {
        name: name.clone(),
        data,
        if_version,
    };
    let (version, updated_at_ms) = state
        .node
        .accounts()
        .put_envelope(&zone, &who, write)
        .await?;
    let info = EnvelopeInfo {
        name,
        version,
        bytes,
        updated_at_ms,
    };
    Ok(([(ETAG, version_etag(version))], Json(info)).into_response())
}

/// Deletes an envelope (with a step-up). `If-Match: "<version>"` is required: another version (or no such
/// envelope) is 409 `envelope_conflict` with the current version (0: none) in
/// `error.version`, and nothing changed.
#[utoipa::path(delete, path = "/v1/zones/{zone}/auth/envelopes/{name}", tag = "accounts",
    security(("session_token" = [])),
    params(("If-Match" = String, Header, description = "The version being deleted, quoted")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "No `If-Match`", body = ErrorBody),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 403, description = "`step_up_required`", body = ErrorBody),
        (status = 409, description = "`envelope_conflict`", body = ErrorBody)))]
async fn delete_envelope(
    State(state): State<AppState>,
    ApiPath((zone, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    if !headers.contains_key(IF_MATCH) {
        return Err(ApiError::BadRequest(
            "deleting an envelope needs If-Match with its version, e.g. \"3\"".into(),
        ));
    }
    let if_version = if_match_version(&headers)?;
    let (zone, who) = fresh_session(&state, &zone, &bearer, &headers).await?;
    state.auth_limiter.envelope_write(&zone, &who.account)?;
    state
        .node
        .accounts()
        .delete_envelope(&zone, &who, &name, if_version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the password (with a step-up): a new OPAQUE record (from `register/start` with the
/// same account id), with an envelope, the removal of passkeys and the end of the other
/// sessions, in one atomic step. The answer lists the passkeys the account keeps.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/password", tag = "accounts",
    security(("session_token" = [])),
    params(("Blindstore-Step-Up" = String, Header, description = "A step-up of this session")),
    request_body = ChangePassword,
    responses((status = 200, description = "Changed", body = CredentialsChanged),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 403, description = "`step_up_required`", body = ErrorBody),
        (status = 404, description = "`unknown_passkey`: nothing changed", body = ErrorBody),
        (status = 409, description = "`envelope_conflict`: nothing changed", body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    headers: HeaderMap,
    bearer: Bearer,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<Json<CredentialsChanged>, ApiError> {
    let envelope = match body.envelope {
        Some(e) => Some(EnvelopeWrite {
            data: base64_field("envelope.data", &e.data)?,
            name: e.name,
            if_version: e.if_version,
        }),
        None => None,
    };
    let (zone, who) = fresh_session(&state, &zone, &bearer, &headers).await?;
    let passkeys = state.node.accounts().passkeys(&zone, &who)?;
    let revoked = state
        .node
        .accounts()
        .change_password(
            &zone,
            &who,
            &body.registration_record,
            envelope,
            body.revoke_other_sessions,
            &body.remove_passkeys,
        )
        .await?;
    Ok(Json(CredentialsChanged {
        revoked,
        passkeys: kept(passkeys, &body.remove_passkeys),
    }))
}

/// Deletes the account of the session (with a step-up): its record, envelopes, passkeys and
/// sessions.
#[utoipa::path(delete, path = "/v1/zones/{zone}/auth/account", tag = "accounts",
    security(("session_token" = [])),
    params(("Blindstore-Step-Up" = String, Header, description = "A step-up of this session")),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 403, description = "`step_up_required`", body = ErrorBody)))]
async fn delete_own_account(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    headers: HeaderMap,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    let (zone, who) = fresh_session(&state, &zone, &bearer, &headers).await?;
    state
        .node
        .accounts()
        .delete_account(&zone, &who.account.clone(), Some(&who))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an account (administrator): its record, envelopes, passkeys and sessions.
#[utoipa::path(delete, path = "/v1/admin/zones/{zone}/accounts/{account}", tag = "admin",
    security(("admin_token" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "`unknown_account`", body = ErrorBody)))]
pub(crate) async fn admin_delete_account(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((zone, account)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let zone = parse_zone(&zone)?;
    let account = AccountId::new(account).map_err(ApiError::BadRequest)?;
    state
        .node
        .accounts()
        .delete_account(&zone, &account, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn version_etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header value")
}

/// The version `If-Match` names (quoted or not), or 0 without the header.
fn if_match_version(headers: &HeaderMap) -> Result<u64, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(0);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::BadRequest("If-Match must be an envelope version, e.g. \"3\"".into())
        })
}
