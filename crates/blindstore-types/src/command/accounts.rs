//! The account commands: the state changes of the accounts room (registration, sessions,
//! envelopes, passkeys, invites), each a struct of its own. `Command` carries them as
//! single-field variants, which encode exactly as the struct variants they were (postcard
//! writes the variant index, then the fields in order), so log entries and snapshots written
//! before are read the same. The state machine hands them to the accounts room as an
//! [`AccountCommand`], whose match the compiler checks.

use serde::{Deserialize, Serialize};

use super::{NewPassword, TicketUse};
use crate::account::{
    AccountId, Acting, EnvelopeWrite, PasskeyRecord, RegistrationSettings, Revoke, SessionRecord,
    ZoneAuth,
};
use crate::ids::{Hash32, ZoneId};

/// An account command, as the accounts room applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountCommand {
    SetZoneAuth(SetZoneAuth),
    CreateAccount(CreateAccount),
    CreateSession(CreateSession),
    RevokeSessions(RevokeSessions),
    PutEnvelope(PutEnvelope),
    ChangePassword(ChangePassword),
    ChangeCredentials(ChangeCredentials),
    RegisterAccount(RegisterAccount),
    SetRegistration(SetRegistration),
    CreateInvites(CreateInvites),
    RedeemTicket(RedeemTicket),
    DeleteAccount(DeleteAccount),
    AddPasskey(AddPasskey),
    RemovePasskey(RemovePasskey),
    CreatePasskeySession(CreatePasskeySession),
    DeleteEnvelope(DeleteEnvelope),
}

/// Give a zone its account secrets; a no-op if it has them (the first ones stay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetZoneAuth {
    pub zone: ZoneId,
    pub auth: ZoneAuth,
}

/// Create an account from a finished OPAQUE registration; rejected if the id is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAccount {
    pub zone: ZoneId,
    pub account: AccountId,
    pub registration: Vec<u8>,
    pub created_at_ms: u64,
}

/// Open a session after a login succeeded. Rejected if the account is gone, its password
/// changed since the login started, or the login ticket was used already (single use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSession {
    pub zone: ZoneId,
    pub token_hash: Hash32,
    pub session: SessionRecord,
    /// SHA-256 of the account's registration record when the login started (each
    /// registration and password change makes a new record).
    pub registration_hash: Hash32,
    pub ticket: TicketUse,
}

/// Revoke sessions of `account` (logout, log out everywhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeSessions {
    pub zone: ZoneId,
    pub account: AccountId,
    pub revoke: Revoke,
}

/// Write an envelope with compare-and-set on its version, for a live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutEnvelope {
    pub zone: ZoneId,
    pub account: AccountId,
    pub acting: Acting,
    pub write: EnvelopeWrite,
}

/// Replace the account's OPAQUE record (a new password), and optionally an envelope and
/// the other sessions, in one step, for a live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePassword {
    pub zone: ZoneId,
    pub account: AccountId,
    pub acting: Acting,
    pub registration: Vec<u8>,
    pub envelope: Option<EnvelopeWrite>,
    pub revoke_other_sessions: bool,
}

/// What a user does when an account may be in someone else's hands, as one step for a
/// live session of it (whose step-up the proposer checked): a new password (optional, with
/// an envelope), the removal of passkeys, the end of sessions (optional: every other one,
/// or every one for "log out everywhere"). An unknown passkey or an envelope conflict
/// rejects it all, changing nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCredentials {
    pub zone: ZoneId,
    pub account: AccountId,
    pub acting: Acting,
    pub password: Option<NewPassword>,
    pub remove_passkeys: Vec<Vec<u8>>,
    pub revoke: Option<Revoke>,
}

/// Create an account from a finished OPAQUE registration, under the zone's registration
/// policy and account cap (checked here): rejected if the id is taken, registration is
/// closed, the invite (needed under `invite`) is unknown, used or expired by
/// `created_at_ms` — it is used up by this — or the zone is at its account cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterAccount {
    pub zone: ZoneId,
    pub account: AccountId,
    pub registration: Vec<u8>,
    pub created_at_ms: u64,
    /// SHA-256 of the invite code the client gave, if any.
    pub invite: Option<Hash32>,
}

/// Set a zone's registration policy and caps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRegistration {
    pub zone: ZoneId,
    pub settings: RegistrationSettings,
}

/// Add one-time invite codes (their SHA-256s) to a zone, valid until `expires_at_ms`;
/// rejected if the zone would hold more than `MAX_INVITES_PER_ZONE` unused ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateInvites {
    pub zone: ZoneId,
    pub codes: Vec<Hash32>,
    pub expires_at_ms: u64,
    pub now_ms: u64,
}

/// Redeem a login ticket finished as a step-up (no session opened): rejected if it was
/// redeemed already or has expired, so one login proves one step-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemTicket {
    pub ticket: TicketUse,
}

/// Delete an account with its envelopes and sessions: for its own live session, or by an
/// administrator (`acting` None).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAccount {
    pub zone: ZoneId,
    pub account: AccountId,
    pub acting: Option<Acting>,
}

/// Add a passkey to an account, for a live session of it, redeeming the registration's
/// ticket. Rejected if the credential id is registered in the zone already (to any
/// account) or the account holds the most passkeys it may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPasskey {
    pub zone: ZoneId,
    pub account: AccountId,
    pub acting: Acting,
    pub id: Vec<u8>,
    pub passkey: PasskeyRecord,
    pub ticket: TicketUse,
}

/// Remove one of the account's passkeys, for a live session of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovePasskey {
    pub zone: ZoneId,
    pub account: AccountId,
    pub acting: Acting,
    pub id: Vec<u8>,
}

/// Open a session after a passkey login verified, redeeming its ticket. Rejected if the
/// passkey was removed (or the account deleted) meanwhile. `credential`, when given, is
/// the passkey's new stored form (its signature counter moved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePasskeySession {
    pub zone: ZoneId,
    pub token_hash: Hash32,
    pub session: SessionRecord,
    pub passkey: Vec<u8>,
    pub credential: Option<Vec<u8>>,
    pub ticket: TicketUse,
}

/// Delete an envelope if its version is `if_version`, for a live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteEnvelope {
    pub zone: ZoneId,
    pub account: AccountId,
    pub acting: Acting,
    pub name: String,
    pub if_version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, NewPassword};

    /// Account commands encode byte for byte as they did when they were struct variants of
    /// `Command` (the bytes below were written by that build), so logs and snapshots from
    /// before read the same, and mixed versions agree on every entry.
    #[test]
    fn account_commands_encode_as_the_struct_variants_they_were() {
        let zone = ZoneId::new("demo").unwrap();
        let alice = AccountId::new("alice").unwrap();
        let h = |b: u8| Hash32([b; 32]);
        let acting = Acting {
            session: h(1),
            now_ms: 77,
        };
        let ticket = TicketUse {
            id: [9; 16],
            expires_at_ms: 500,
            now_ms: 400,
        };
        let cases = [
            (
                Command::CreateSession(CreateSession {
                    zone: zone.clone(),
                    token_hash: h(2),
                    session: SessionRecord {
                        account: alice.clone(),
                        created_at_ms: 1,
                        expires_at_ms: 2,
                        label: "phone".into(),
                    },
                    registration_hash: h(3),
                    ticket,
                }),
                "01070464656d6f020202020202020202020202020202020202020202020202020202020202020205616c69636501020570686f6e65030303030303030303030303030303030303030303030303030303030303030309090909090909090909090909090909f4039003",
            ),
            (
                Command::ChangeCredentials(ChangeCredentials {
                    zone: zone.clone(),
                    account: alice.clone(),
                    acting,
                    password: Some(NewPassword {
                        registration: vec![1, 2, 3],
                        envelope: Some(EnvelopeWrite {
                            name: "vault".into(),
                            data: vec![4; 5],
                            if_version: 6,
                        }),
                    }),
                    remove_passkeys: vec![vec![7, 8]],
                    revoke: Some(Revoke::All {
                        except: Some(h(4)),
                    }),
                }),
                "01170464656d6f05616c69636501010101010101010101010101010101010101010101010101010101010101014d010301020301057661756c7405040404040406010207080101010404040404040404040404040404040404040404040404040404040404040404",
            ),
            (
                Command::RegisterAccount(RegisterAccount {
                    zone: zone.clone(),
                    account: alice.clone(),
                    registration: vec![5; 3],
                    created_at_ms: 9,
                    invite: Some(h(5)),
                }),
                "01180464656d6f05616c6963650305050509010505050505050505050505050505050505050505050505050505050505050505",
            ),
            (
                Command::DeleteAccount(DeleteAccount {
                    zone: zone.clone(),
                    account: alice.clone(),
                    acting: None,
                }),
                "010b0464656d6f05616c69636500",
            ),
            (
                Command::RedeemTicket(RedeemTicket { ticket }),
                "011a09090909090909090909090909090909f4039003",
            ),
        ];
        for (command, golden) in cases {
            let bytes = crate::record::encode(&command);
            assert_eq!(hex::encode(&bytes), golden, "{command:?}");
            let back: Command = crate::record::decode("command", &bytes).unwrap();
            assert_eq!(back, command);
        }
    }
}
