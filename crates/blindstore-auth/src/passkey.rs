//! Passkeys (WebAuthn) with `webauthn-rs`: the relying party a zone's passkey settings
//! describe, and the registration and login ceremonies in the shapes the HTTP API sends.
//!
//! The ceremonies' server state is serialised (`danger-allow-state-serialisation`) so it can
//! travel in a sealed, single-use ticket like the OPAQUE login state; a stored passkey is the
//! JSON of `webauthn_rs::prelude::Passkey`, opaque to the rest of the server.
//!
//! The browser adds the PRF extension to unwrap a passkey envelope; `webauthn-rs` has no typed
//! PRF support and ignores it. The PRF output is the client's secret, so the
//! `clientExtensionResults.prf` a careless client may send back is dropped before the
//! credential is even parsed.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    CredentialID, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::AuthError;

/// How long the browser may take over a ceremony (the ticket lives as long).
pub const CEREMONY_TIMEOUT: Duration = Duration::from_secs(300);

/// A zone's WebAuthn relying party.
pub struct RelyingParty {
    webauthn: Webauthn,
}

/// A passkey just registered.
pub struct NewPasskey {
    /// The credential id (what the browser sends back at login).
    pub id: Vec<u8>,
    /// The stored credential: `Passkey` as JSON.
    pub credential: Vec<u8>,
}

/// A passkey login that verified.
pub struct PasskeyLogin {
    /// The credential used.
    pub id: Vec<u8>,
    /// The credential with its new signature counter and backup state, when they changed.
    pub updated: Option<Vec<u8>>,
}

/// Checks a relying party id and its origins: the id is a domain name (no IP address, no port),
/// each origin is `https://host[:port]` (or `http://` for `localhost` and its subdomains) whose
/// host is the id or one of its subdomains. Returns the parsed origins.
pub fn check_relying_party(rp_id: &str, origins: &[String]) -> Result<Vec<Url>, String> {
    let valid_id = blindstore_types::account::check_site_host(rp_id).is_ok()
        && !rp_id.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !valid_id {
        return Err(format!(
            "passkey relying party id {rp_id:?} is not a lowercase domain name (browsers refuse IP addresses; use e.g. `localhost` or `app.example.com`)"
        ));
    }
    if origins.is_empty() {
        return Err("passkeys need at least one origin".into());
    }
    origins
        .iter()
        .map(|text| {
            let url = Url::parse(text).map_err(|e| format!("origin {text:?}: {e}"))?;
            let host = url.domain().unwrap_or_default();
            let under_id = host == rp_id || host.ends_with(&format!(".{rp_id}"));
            let localhost = host == "localhost" || host.ends_with(".localhost");
            let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && localhost);
            let bare = url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty();
            if !under_id || !scheme_ok || !bare {
                return Err(format!(
                    "origin {text:?} must be https://HOST[:PORT] (http only for localhost) with HOST {rp_id:?} or a subdomain of it"
                ));
            }
            Ok(url)
        })
        .collect()
}

impl RelyingParty {
    /// The relying party `rp_id` serving `origins` (checked by [`check_relying_party`]).
    pub fn new(rp_id: &str, origins: &[String]) -> Result<Self, AuthError> {
        let urls = check_relying_party(rp_id, origins).map_err(|_| AuthError::NotConfigured)?;
        let mut builder = WebauthnBuilder::new(rp_id, &urls[0])
            .map_err(|_| AuthError::NotConfigured)?
            .rp_name(rp_id)
            .timeout(CEREMONY_TIMEOUT);
        for url in &urls[1..] {
            builder = builder.append_allowed_origin(url);
        }
        let webauthn = builder.build().map_err(|_| AuthError::NotConfigured)?;
        Ok(RelyingParty { webauthn })
    }

    /// Starts registering a passkey for the account `user` (a stable, opaque user handle),
    /// excluding the credentials it already has. Returns the options for
    /// `navigator.credentials.create` (`{"publicKey": ...}`) and the state to seal.
    pub fn registration_start(
        &self,
        user: &[u8],
        existing: &[Vec<u8>],
    ) -> Result<(Value, Vec<u8>), AuthError> {
        let exclude: Vec<CredentialID> = existing.iter().map(|id| id.clone().into()).collect();
        // The name shown by the authenticator: the server knows only the account id (a hash
        // of the username); the browser replaces it with the name the user knows.
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user_handle(user), "account", "account", Some(exclude))
            .map_err(|_| AuthError::Malformed("passkey registration"))?;
        Ok((to_value(&options), to_bytes(&state)))
    }

    /// Finishes a registration: verifies the browser's credential against the sealed state.
    pub fn registration_finish(
        &self,
        state: &[u8],
        credential: Value,
    ) -> Result<NewPasskey, AuthError> {
        let state: PasskeyRegistration =
            serde_json::from_slice(state).map_err(|_| AuthError::BadTicket)?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(without_prf(credential))
                .map_err(|_| AuthError::Malformed("passkey credential"))?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|_| AuthError::PasskeyRefused)?;
        Ok(NewPasskey {
            id: passkey.cred_id().to_vec(),
            credential: to_bytes(&passkey),
        })
    }

    /// Starts a login with any of `passkeys` (stored credentials). Returns the options for
    /// `navigator.credentials.get` and the state to seal.
    pub fn login_start(&self, passkeys: &[Vec<u8>]) -> Result<(Value, Vec<u8>), AuthError> {
        let passkeys = passkeys
            .iter()
            .map(|p| stored_passkey(p))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|_| AuthError::LoginFailed)?;
        Ok((to_value(&options), to_bytes(&state)))
    }

    /// Finishes a login: verifies the browser's assertion against the sealed state. `stored`
    /// finds the credential the assertion names (to update its counter).
    pub fn login_finish(
        &self,
        state: &[u8],
        credential: Value,
        stored: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<PasskeyLogin, AuthError> {
        let state: PasskeyAuthentication =
            serde_json::from_slice(state).map_err(|_| AuthError::BadTicket)?;
        let credential: PublicKeyCredential = serde_json::from_value(without_prf(credential))
            .map_err(|_| AuthError::Malformed("passkey assertion"))?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&credential, &state)
            .map_err(|_| AuthError::LoginFailed)?;
        let id = result.cred_id().to_vec();
        let mut passkey = stored_passkey(&stored(&id).ok_or(AuthError::LoginFailed)?)?;
        let updated = match passkey.update_credential(&result) {
            Some(true) => Some(to_bytes(&passkey)),
            Some(false) => None,
            None => return Err(AuthError::LoginFailed),
        };
        Ok(PasskeyLogin { id, updated })
    }
}

/// A stored credential's id, from its JSON.
pub fn stored_id(credential: &[u8]) -> Result<Vec<u8>, AuthError> {
    Ok(stored_passkey(credential)?.cred_id().to_vec())
}

fn stored_passkey(bytes: &[u8]) -> Result<Passkey, AuthError> {
    serde_json::from_slice(bytes).map_err(|_| AuthError::Malformed("stored passkey"))
}

/// The WebAuthn user handle for an account: 16 bytes derived from it, the same every time
/// (so authenticators group the account's passkeys), telling nothing about it.
fn user_handle(user: &[u8]) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"blindstore/passkey-user/v1\0")
        .chain_update(user)
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// The credential without the PRF results (the client's secret) and without the
/// `extensions` alias that would collide with `clientExtensionResults`.
fn without_prf(mut credential: Value) -> Value {
    if let Some(object) = credential.as_object_mut() {
        if object.contains_key("clientExtensionResults") {
            object.remove("extensions");
        }
        for key in ["clientExtensionResults", "extensions"] {
            if let Some(results) = object.get_mut(key).and_then(Value::as_object_mut) {
                results.remove("prf");
            }
        }
    }
    credential
}

fn to_value(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("WebAuthn options serialise to JSON")
}

fn to_bytes(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("WebAuthn state serialises to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn relying_parties_are_domains_with_matching_secure_origins() {
        assert!(check_relying_party("localhost", &origins(&["http://localhost:8080"])).is_ok());
        assert!(check_relying_party(
            "example.com",
            &origins(&["https://example.com", "https://app.example.com:8443"])
        )
        .is_ok());
        for (id, list) in [
            ("127.0.0.1", vec!["http://127.0.0.1:8080"]),
            ("Example.com", vec!["https://example.com"]),
            ("example.com", vec![]),
            ("example.com", vec!["http://example.com"]),
            ("example.com", vec!["https://evilexample.com"]),
            ("example.com", vec!["https://example.com/app"]),
            ("app.example.com", vec!["https://example.com"]),
            ("", vec!["https://example.com"]),
        ] {
            assert!(
                check_relying_party(id, &origins(&list)).is_err(),
                "{id} {list:?}"
            );
        }
    }

    #[test]
    fn prf_results_never_reach_the_parser() {
        let credential = serde_json::json!({
            "id": "x",
            "clientExtensionResults": {"credProps": {"rk": false}, "prf": {"enabled": true, "results": {"first": "secret"}}},
            "extensions": {"prf": {}},
        });
        let stripped = without_prf(credential);
        assert!(!stripped.to_string().contains("secret"));
        assert!(stripped.get("extensions").is_none());
        assert_eq!(
            stripped["clientExtensionResults"]["credProps"]["rk"],
            Value::Bool(false)
        );
    }

    #[test]
    fn options_carry_the_relying_party_and_exclude_known_credentials() {
        let rp = RelyingParty::new("localhost", &origins(&["http://localhost:9000"])).unwrap();
        let (options, state) = rp
            .registration_start(b"zone/alice", &[vec![7; 16]])
            .unwrap();
        let public_key = &options["publicKey"];
        assert_eq!(public_key["rp"]["id"], "localhost");
        assert_eq!(
            public_key["authenticatorSelection"]["userVerification"],
            "required"
        );
        assert_eq!(
            public_key["excludeCredentials"].as_array().unwrap().len(),
            1
        );
        assert_eq!(
            public_key["user"]["id"],
            rp.registration_start(b"zone/alice", &[]).unwrap().0["publicKey"]["user"]["id"],
            "one account, one user handle"
        );
        assert!(!state.is_empty());
        assert!(matches!(
            rp.registration_finish(&state, serde_json::json!({"id": "nope"})),
            Err(AuthError::Malformed(_))
        ));
    }
}
