//! Passkey routes under `/v1/zones/{zone}/auth/passkeys`: registering a passkey (with a
//! session), logging in with one (a new session), listing and removing them. The options and
//! credentials are the WebAuthn JSON the browser's `PublicKeyCredential` helpers read and
//! write.
//!
//! The handlers here are alike on purpose: each is its route's OpenAPI description, the
//! extraction of its inputs and one `Node` call. They stay apart, not folded into a macro, so
//! each route reads and documents itself where it is declared.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use blindstore_types::api::{
    ErrorBody, NewSession, PasskeyInfo, PasskeyList, PasskeyLoginFinish, PasskeyLoginStart,
    PasskeyOptions, PasskeyRegisterFinish, PasskeyStepUpFinish, StepUp,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{fresh_session, limited_start, session, Bearer, StartLimit};
use crate::rate::ClientIp;
use crate::{parse_zone, ApiError, ApiJson, ApiPath, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_start))
        .routes(routes!(register_finish))
        .routes(routes!(login_start))
        .routes(routes!(login_finish))
        .routes(routes!(step_up))
        .routes(routes!(list))
        .routes(routes!(remove))
}

/// Starts registering a passkey for the session's account (with a step-up): options for
/// `navigator.credentials.create` (the account's passkeys excluded; the browser adds the PRF
/// extension and may replace the user name shown) and a ticket for this session.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/passkeys/register/start", tag = "passkeys",
    security(("session_token" = [])),
    params(("Blindstore-Step-Up" = String, Header, description = "A step-up of this session")),
    responses((status = 200, body = PasskeyOptions),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 403, description = "`step_up_required`, `passkeys_off`, or `quota_exceeded` (16 passkeys)", body = ErrorBody)))]
async fn register_start(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    headers: HeaderMap,
    bearer: Bearer,
) -> Result<Json<PasskeyOptions>, ApiError> {
    let (zone, who) = fresh_session(&state, &zone, &bearer, &headers).await?;
    let (options, ticket) = state
        .node
        .accounts()
        .passkey_register_start(&zone, &who)
        .await?;
    Ok(Json(PasskeyOptions { options, ticket }))
}

/// Finishes a passkey registration with the browser's new credential.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/passkeys/register/finish", tag = "passkeys",
    security(("session_token" = [])),
    request_body = PasskeyRegisterFinish,
    responses((status = 201, body = PasskeyInfo),
        (status = 400, description = "The credential did not verify, or the ticket is invalid, expired, used or another session's", body = ErrorBody),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 409, description = "`passkey_exists`", body = ErrorBody)))]
async fn register_finish(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    bearer: Bearer,
    ApiJson(body): ApiJson<PasskeyRegisterFinish>,
) -> Result<(StatusCode, Json<PasskeyInfo>), ApiError> {
    let (zone, who) = session(&state, &zone, &bearer).await?;
    let info = state
        .node
        .accounts()
        .passkey_register_finish(&zone, &who, &body.ticket, body.credential, body.label)
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Starts a passkey login: options for `navigator.credentials.get` listing the account's
/// passkeys. An unknown account and one without passkeys both get 401 `invalid_login`.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/passkeys/login/start", tag = "passkeys",
    request_body = PasskeyLoginStart,
    responses((status = 200, body = PasskeyOptions),
        (status = 401, description = "`invalid_login`", body = ErrorBody),
        (status = 403, description = "`passkeys_off`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (the login limits, per client IP and per account), with `Retry-After`", body = ErrorBody)))]
async fn login_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(zone): ApiPath<String>,
    ApiJson(body): ApiJson<PasskeyLoginStart>,
) -> Result<Json<PasskeyOptions>, ApiError> {
    let zone = limited_start(&state, ip, &zone, &body, StartLimit::Login).await?;
    let (options, ticket) = state
        .node
        .accounts()
        .passkey_login_start(&zone, &body.account)
        .await?;
    Ok(Json(PasskeyOptions { options, ticket }))
}

/// Finishes a passkey login (on any node): a session. Any failed check is 401
/// `invalid_login`.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/passkeys/login/finish", tag = "passkeys",
    request_body = PasskeyLoginFinish,
    responses((status = 200, body = NewSession),
        (status = 401, description = "`invalid_login`", body = ErrorBody)))]
async fn login_finish(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    ApiJson(body): ApiJson<PasskeyLoginFinish>,
) -> Result<Json<NewSession>, ApiError> {
    let zone = parse_zone(&zone)?;
    let session = state
        .node
        .accounts()
        .passkey_login_finish(
            &zone,
            &body.ticket,
            body.credential,
            body.label,
            body.device_token.as_deref(),
        )
        .await?;
    Ok(Json(session))
}

/// Finishes a passkey login (started with `passkeys/login/start`) as a step-up for the
/// request's session: no new session, a proof for what cannot be undone. Any failed check,
/// or a login of another account, is 401 `invalid_login`.
#[utoipa::path(post, path = "/v1/zones/{zone}/auth/passkeys/step-up", tag = "passkeys",
    security(("session_token" = [])),
    request_body = PasskeyStepUpFinish,
    responses((status = 200, body = StepUp),
        (status = 401, description = "`invalid_session` or `invalid_login`", body = ErrorBody)))]
async fn step_up(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    bearer: Bearer,
    ApiJson(body): ApiJson<PasskeyStepUpFinish>,
) -> Result<Json<StepUp>, ApiError> {
    let (zone, who) = session(&state, &zone, &bearer).await?;
    let step_up = state
        .node
        .accounts()
        .step_up_with_passkey(&zone, &who, &body.ticket, body.credential)
        .await?;
    Ok(Json(step_up))
}

/// The account's passkeys.
#[utoipa::path(get, path = "/v1/zones/{zone}/auth/passkeys", tag = "passkeys",
    security(("session_token" = [])),
    responses((status = 200, body = PasskeyList),
        (status = 401, description = "`invalid_session`", body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiPath(zone): ApiPath<String>,
    bearer: Bearer,
) -> Result<Json<PasskeyList>, ApiError> {
    let (zone, who) = session(&state, &zone, &bearer).await?;
    let passkeys = state.node.accounts().passkeys(&zone, &who)?;
    Ok(Json(PasskeyList { passkeys }))
}

/// Removes one of the account's passkeys, with a step-up (an envelope the client made for it
/// stays until the client deletes it).
#[utoipa::path(delete, path = "/v1/zones/{zone}/auth/passkeys/{id}", tag = "passkeys",
    security(("session_token" = [])),
    params(("Blindstore-Step-Up" = String, Header, description = "A step-up of this session")),
    responses((status = 204, description = "Removed"),
        (status = 401, description = "`invalid_session`", body = ErrorBody),
        (status = 403, description = "`step_up_required`", body = ErrorBody),
        (status = 404, description = "`unknown_passkey`", body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiPath((zone, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    let (zone, who) = fresh_session(&state, &zone, &bearer, &headers).await?;
    state
        .node
        .accounts()
        .remove_passkey(&zone, &who, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
