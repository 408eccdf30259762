//! The server's OPAQUE steps. The credential identifier is the account id's bytes (as
//! `@serenity-kit/opaque`'s server uses its `userIdentifier`); no protocol identifiers or
//! context are set, as the library sets none by default.

use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand::rngs::OsRng;

use crate::{b64, to_b64, AuthError, Suite};

fn setup(bytes: &[u8]) -> Result<ServerSetup<Suite>, AuthError> {
    ServerSetup::<Suite>::deserialize(bytes).map_err(|_| AuthError::Malformed("server setup"))
}

/// Registration, first step: the `registrationResponse` for a client's
/// `registrationRequest`. Stateless.
pub fn registration_response(
    opaque_setup: &[u8],
    account: &str,
    registration_request: &str,
) -> Result<String, AuthError> {
    let request = RegistrationRequest::<Suite>::deserialize(&b64(
        "registrationRequest",
        registration_request,
    )?)
    .map_err(|_| AuthError::Malformed("registrationRequest"))?;
    let start =
        ServerRegistration::<Suite>::start(&setup(opaque_setup)?, request, account.as_bytes())
            .map_err(|_| AuthError::Malformed("registrationRequest"))?;
    Ok(to_b64(&start.message.serialize()))
}

/// Registration, last step: the record to store, from the client's `registrationRecord`.
pub fn registration_record(registration_record: &str) -> Result<Vec<u8>, AuthError> {
    let upload =
        RegistrationUpload::<Suite>::deserialize(&b64("registrationRecord", registration_record)?)
            .map_err(|_| AuthError::Malformed("registrationRecord"))?;
    Ok(ServerRegistration::finish(upload).serialize().to_vec())
}

/// Login, first step: the `loginResponse` and the server's login state (secret: it holds the
/// session key; it travels only sealed in a ticket). With no record (an unknown account) a
/// dummy record answers exactly like a real one.
pub fn login_start(
    opaque_setup: &[u8],
    account: &str,
    record: Option<&[u8]>,
    start_login_request: &str,
) -> Result<(String, Vec<u8>), AuthError> {
    let request =
        CredentialRequest::<Suite>::deserialize(&b64("startLoginRequest", start_login_request)?)
            .map_err(|_| AuthError::Malformed("startLoginRequest"))?;
    let record = match record {
        Some(bytes) => Some(
            ServerRegistration::<Suite>::deserialize(bytes)
                .map_err(|_| AuthError::Malformed("stored registration"))?,
        ),
        None => None,
    };
    let start = ServerLogin::start(
        &mut OsRng,
        &setup(opaque_setup)?,
        record,
        request,
        account.as_bytes(),
        ServerLoginParameters::default(),
    )
    .map_err(|_| AuthError::Malformed("startLoginRequest"))?;
    Ok((
        to_b64(&start.message.serialize()),
        start.state.serialize().to_vec(),
    ))
}

/// Login, last step: succeeds only if the client proved it knows the password.
pub fn login_finish(state: &[u8], finish_login_request: &str) -> Result<(), AuthError> {
    let state = ServerLogin::<Suite>::deserialize(state).map_err(|_| AuthError::BadTicket)?;
    let finish = CredentialFinalization::<Suite>::deserialize(&b64(
        "finishLoginRequest",
        finish_login_request,
    )?)
    .map_err(|_| AuthError::Malformed("finishLoginRequest"))?;
    state
        .finish(finish, ServerLoginParameters::default())
        .map(|_| ())
        .map_err(|_| AuthError::LoginFailed)
}
