//! The state machine store's parts: its LMDB tables, which the rooms (zones, chains, sites,
//! accounts, the cluster's settings) read and write, and the shared handle the node reads
//! through. The engine that opens, applies and snapshots them is `state_machine`.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use heed::types::{Bytes, Str};
use heed::{Database, Env, WithoutTls};

use crate::accounts::AccountTables;
use crate::chain_watch::ChainWatchers;
use crate::verified::Verified;

/// The state machine store. Cheap to clone: the node keeps a clone for reads while openraft
/// owns another.
#[derive(Clone)]
pub struct StateMachineStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) env: Env<WithoutTls>,
    /// Counts committed changes (applied batches, installed snapshots): readers that follow
    /// chains wait on it and then read what is new.
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
    /// The followers of single chains, woken only by appends to theirs.
    pub(crate) chain_watchers: Arc<ChainWatchers>,
    pub(crate) tables: Tables,
    pub(crate) snapshot_dir: PathBuf,
    /// Serialises snapshot file replacement between builder and installer.
    pub(crate) snapshot_files: Mutex<()>,
    pub(crate) snapshot_seq: AtomicU64,
    pub(crate) verified: Verified,
    /// The state directory, where the durability marker is.
    pub(crate) dir: PathBuf,
    /// This boot's id, written in the marker.
    pub(crate) boot: String,
    /// Why the store was found untrusted at open and started empty, if it was.
    pub(crate) reset: Option<String>,
    /// The `changes` value the last sync covered.
    pub(crate) synced: AtomicU64,
}

#[derive(Clone, Copy)]
pub(crate) struct Tables {
    /// `last_applied`, `membership`.
    pub(crate) meta: Database<Str, Bytes>,
    /// zone id → `ZoneRecord`.
    pub(crate) zones: Database<Str, Bytes>,
    /// `zone_key(zone, chain_id)` → `ChainHead`.
    pub(crate) chains: Database<Bytes, Bytes>,
    /// `zone_key(zone, chain_id) || u64 index` → `EntryHeader`.
    pub(crate) entries: Database<Bytes, Bytes>,
    /// `zone_key(zone, chain_id) || u64 index` → the payload, for entries whose payload
    /// travelled in the Raft entry (the others' payloads are chunks).
    pub(crate) payloads: Database<Bytes, Bytes>,
    /// `zone_key(zone, chunk hash)` → empty: chunks some entry references (never collected).
    pub(crate) refs: Database<Bytes, Bytes>,
    /// Cluster-wide settings: `draining` → the set of draining node ids.
    pub(crate) cluster: Database<Bytes, Bytes>,
    /// zone id → `Quota`, for zones whose quotas were set (others have the defaults).
    pub(crate) quotas: Database<Bytes, Bytes>,
    /// Accounts, sessions, envelopes, zone secrets, redeemed login tickets.
    pub(crate) accounts: AccountTables,
    /// zone id → `ZoneSettings`, for zones whose settings were set (others have the defaults).
    pub(crate) settings: Database<Bytes, Bytes>,
    /// `u8 len(zone) || zone || u64 version` (big-endian) → `SiteVersionRecord`.
    pub(crate) sites: Database<Bytes, Bytes>,
    /// zone id → the current site version (u64 big-endian).
    pub(crate) site_current: Database<Bytes, Bytes>,
    /// Site host name → the zone whose settings list it. Derived from `settings`: kept by
    /// the settings change's apply, which refuses a host another zone has; rebuilt at open
    /// (for data dirs from before it was kept) and when a snapshot is installed; not in
    /// snapshots.
    pub(crate) site_hosts: Database<Str, Str>,
}
