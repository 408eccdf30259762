//! The client's OPAQUE steps, with `@serenity-kit/opaque`'s default key stretching, for the
//! CLI, tests and benchmarks. The export key stays with the caller: it is the root of the
//! client's own keys and never goes to the server.

use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialResponse, Identifiers, RegistrationResponse,
};
use rand::rngs::OsRng;

use crate::{b64, key_stretching, to_b64, AuthError, Suite};

/// A registration in progress.
pub struct Registration(ClientRegistration<Suite>);

/// A login in progress.
pub struct Login(ClientLogin<Suite>);

/// What a finished registration or login gives the client.
pub struct Finished {
    /// The message to send (`registrationRecord` or `finishLoginRequest`).
    pub message: String,
    /// 64 bytes only the password holder can compute; the same at every login.
    pub export_key: Vec<u8>,
    /// The server's static public key (pin it to detect a server that changed).
    pub server_public_key: Vec<u8>,
}

/// Starts a registration: the state and the `registrationRequest`.
pub fn start_registration(password: &[u8]) -> Result<(Registration, String), AuthError> {
    let start = ClientRegistration::<Suite>::start(&mut OsRng, password)
        .map_err(|_| AuthError::Malformed("password"))?;
    Ok((
        Registration(start.state),
        to_b64(&start.message.serialize()),
    ))
}

// `Registration::finish` and `Login::finish` are alike on purpose: opaque-ke gives the two
// ceremonies different types (`ClientRegistration`, `ClientLogin`) with no trait in common.
impl Registration {
    /// Finishes with the server's `registrationResponse`: the `registrationRecord` to upload.
    pub fn finish(self, password: &[u8], response: &str) -> Result<Finished, AuthError> {
        let response =
            RegistrationResponse::<Suite>::deserialize(&b64("registrationResponse", response)?)
                .map_err(|_| AuthError::Malformed("registrationResponse"))?;
        let ksf = key_stretching();
        let finish = self
            .0
            .finish(
                &mut OsRng,
                password,
                response,
                ClientRegistrationFinishParameters::new(Identifiers::default(), Some(&ksf)),
            )
            .map_err(|_| AuthError::Malformed("registrationResponse"))?;
        Ok(Finished {
            message: to_b64(&finish.message.serialize()),
            export_key: finish.export_key.to_vec(),
            server_public_key: finish.server_s_pk.serialize().to_vec(),
        })
    }
}

/// Starts a login: the state and the `startLoginRequest`.
pub fn start_login(password: &[u8]) -> Result<(Login, String), AuthError> {
    let start = ClientLogin::<Suite>::start(&mut OsRng, password)
        .map_err(|_| AuthError::Malformed("password"))?;
    Ok((Login(start.state), to_b64(&start.message.serialize())))
}

impl Login {
    /// Finishes with the server's `loginResponse`: the `finishLoginRequest` to send.
    /// `LoginFailed` for a wrong password or an unknown account (the client cannot tell them
    /// apart either).
    pub fn finish(self, password: &[u8], response: &str) -> Result<Finished, AuthError> {
        let response = CredentialResponse::<Suite>::deserialize(&b64("loginResponse", response)?)
            .map_err(|_| AuthError::Malformed("loginResponse"))?;
        let ksf = key_stretching();
        let finish = self
            .0
            .finish(
                &mut OsRng,
                password,
                response,
                ClientLoginFinishParameters::new(None, Identifiers::default(), Some(&ksf)),
            )
            .map_err(|_| AuthError::LoginFailed)?;
        Ok(Finished {
            message: to_b64(&finish.message.serialize()),
            export_key: finish.export_key.to_vec(),
            server_public_key: finish.server_s_pk.serialize().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{new_zone_auth, server};

    /// The whole exchange in memory: registration, a login that succeeds with the same export
    /// key, a wrong password, and an unknown account that the server answers like a known one.
    #[test]
    fn register_then_log_in() {
        let auth = new_zone_auth();
        let setup = &auth.opaque_setup;
        let (reg, request) = start_registration(b"correct horse").unwrap();
        let response = server::registration_response(setup, "alice", &request).unwrap();
        let registered = reg.finish(b"correct horse", &response).unwrap();
        let record = server::registration_record(&registered.message).unwrap();

        let (login, ke1) = start_login(b"correct horse").unwrap();
        let (ke2, state) = server::login_start(setup, "alice", Some(&record), &ke1).unwrap();
        let done = login.finish(b"correct horse", &ke2).unwrap();
        server::login_finish(&state, &done.message).unwrap();
        assert_eq!(done.export_key, registered.export_key);
        assert_eq!(done.server_public_key, registered.server_public_key);

        let (login, ke1) = start_login(b"wrong").unwrap();
        let (ke2, _) = server::login_start(setup, "alice", Some(&record), &ke1).unwrap();
        assert!(matches!(
            login.finish(b"wrong", &ke2),
            Err(AuthError::LoginFailed)
        ));

        let (_, ke1) = start_login(b"anything").unwrap();
        let (known, _) = server::login_start(setup, "alice", Some(&record), &ke1).unwrap();
        let (unknown, _) = server::login_start(setup, "mallory", None, &ke1).unwrap();
        assert_eq!(
            known.len(),
            unknown.len(),
            "an unknown account looks like a known one"
        );
    }
}
