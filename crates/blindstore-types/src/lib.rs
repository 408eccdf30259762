//! Blindstore's domain types. Everything here is pure data and pure functions: no I/O, no
//! clocks, no randomness. The entry format of docs/entry-format.md lives in [`entry`]; the commands the
//! Raft state machine applies live in [`command`]; the JSON bodies of HTTP API v1 in [`api`].

pub mod account;
pub mod api;
pub mod command;
pub mod entries_binary;
pub mod entry;
pub mod ids;
pub mod raft;
pub mod record;
pub mod site;

pub use ids::{ChainId, Hash32, PublicKey, Signature, ZoneId};
