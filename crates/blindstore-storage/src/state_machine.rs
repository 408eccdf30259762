//! The replicated state in LMDB (`state/`) and its snapshots (`snapshots/`): the storage side
//! of the Raft core's state machine engine (`blindstore_raft::StateMachine`), which knows
//! openraft; this side knows the rooms and nothing of Raft.
//!
//! Applying a batch of log entries is one LMDB transaction that also records the engine's marks
//! (the last applied log id, the membership), so the state and "how far it got" can never
//! disagree after a crash. Reads used by the API go straight to LMDB (MVCC: a reader sees a
//! committed state, never half a batch).
//!
//! A snapshot is one file: a header (the engine's, opaque here) followed by every row of the
//! state tables. It is written to a temporary file, fsynced and renamed into place, so the
//! current snapshot is always complete.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use blindstore_types::account::{
    AccountId, AccountRecord, EnvelopeRecord, PasskeyRecord, SessionRecord, ZoneAuth,
};
use blindstore_types::command::{AccountCommand, Command, CommandResponse, Rejection};
use blindstore_types::{Hash32, ZoneId};
use heed::types::Bytes;
use heed::{Database, RwTxn, WithoutTls};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::accounts::AccountTables;
use crate::chains::{self, append, appended_chains};
use crate::cluster_state;
use crate::sites::{self};
pub use crate::store::StateMachineStore;
use crate::store::{Inner, Tables};
use crate::verified::Verified;
use crate::zones::{self, get_zone, rebuild_site_hosts};
use crate::{commit, decode, open_env, state_durability, StorageError};
use blindstore_types::record::encode;

const SNAPSHOT_MAGIC: &[u8; 20] = b"BLINDSTORE-SNAPSHOT\n";
const SNAPSHOT_V1: u8 = 1;
const CURRENT_SNAPSHOT: &str = "current.snap";
/// Meta key present once the account usage table is kept up to date.
const ACCOUNT_USAGE_KEPT: &str = "account_usage_kept";
/// Meta key present once the site host table is kept up to date.
const SITE_HOSTS_KEPT: &str = "site_hosts_kept";

impl Tables {
    /// The tables a snapshot carries, with their ids in the snapshot file.
    fn snapshot_tables(&self) -> [(u8, Database<Bytes, Bytes>); 20] {
        let a = &self.accounts;
        [
            (1, self.zones.remap_key_type::<Bytes>()),
            (2, self.chains),
            (3, self.entries),
            (4, self.refs),
            (5, self.cluster),
            (6, self.quotas),
            (7, a.zone_auth),
            (8, a.accounts),
            (9, a.sessions),
            (10, a.account_sessions),
            (11, a.envelopes),
            (12, a.tickets),
            (13, self.settings),
            (14, a.passkeys),
            (15, a.passkey_ids),
            (16, self.sites),
            (17, self.site_current),
            (18, self.payloads),
            (19, a.registration),
            (20, a.invites),
        ]
    }
}

impl StateMachineStore {
    /// Opens or creates the state machine in `dir`, with snapshots in `dir/snapshots`.
    /// Its commits are not synced: see [`sync`](Self::sync). A store that a machine crash left
    /// open is set aside and this one starts empty ([`reset`](Self::reset)).
    pub fn open(dir: &Path, map_size: usize) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)?;
        let reset = match state_durability::read(dir)? {
            state_durability::Found::Untrusted(why) => {
                tracing::warn!(
                    dir = %dir.display(),
                    why,
                    "the state store was open when the machine went down; setting it aside (data.mdb.unclean) and rebuilding it from the snapshot and the Raft log"
                );
                state_durability::set_aside(dir)?;
                Some(why)
            }
            _ => None,
        };
        let boot = state_durability::boot_id();
        let env = open_env(dir, map_size, 32, crate::Sync::Deferred)?;
        let mut wtxn = env.write_txn()?;
        let tables = Tables {
            meta: env.create_database(&mut wtxn, Some("meta"))?,
            zones: env.create_database(&mut wtxn, Some("zones"))?,
            chains: env.create_database(&mut wtxn, Some("chains"))?,
            entries: env.create_database(&mut wtxn, Some("entries"))?,
            refs: env.create_database(&mut wtxn, Some("refs"))?,
            payloads: env.create_database(&mut wtxn, Some("payloads"))?,
            cluster: env.create_database(&mut wtxn, Some("cluster"))?,
            quotas: env.create_database(&mut wtxn, Some("quotas"))?,
            accounts: AccountTables {
                zone_auth: env.create_database(&mut wtxn, Some("zone_auth"))?,
                accounts: env.create_database(&mut wtxn, Some("accounts"))?,
                sessions: env.create_database(&mut wtxn, Some("sessions"))?,
                account_sessions: env.create_database(&mut wtxn, Some("account_sessions"))?,
                envelopes: env.create_database(&mut wtxn, Some("envelopes"))?,
                tickets: env.create_database(&mut wtxn, Some("tickets"))?,
                passkeys: env.create_database(&mut wtxn, Some("passkeys"))?,
                passkey_ids: env.create_database(&mut wtxn, Some("passkey_ids"))?,
                registration: env.create_database(&mut wtxn, Some("registration"))?,
                invites: env.create_database(&mut wtxn, Some("invites"))?,
                usage: env.create_database(&mut wtxn, Some("account_usage"))?,
            },
            settings: env.create_database(&mut wtxn, Some("settings"))?,
            sites: env.create_database(&mut wtxn, Some("sites"))?,
            site_current: env.create_database(&mut wtxn, Some("site_current"))?,
            site_hosts: env.create_database(&mut wtxn, Some("site_hosts"))?,
        };
        // Account usage is derived state: a data dir from before it was kept gets it counted.
        if tables.meta.get(&wtxn, ACCOUNT_USAGE_KEPT)?.is_none() {
            tables.accounts.rebuild_usage(&mut wtxn)?;
            tables.meta.put(&mut wtxn, ACCOUNT_USAGE_KEPT, &[1])?;
        }
        if tables.meta.get(&wtxn, SITE_HOSTS_KEPT)?.is_none() {
            rebuild_site_hosts(&tables, &mut wtxn)?;
            tables.meta.put(&mut wtxn, SITE_HOSTS_KEPT, &[1])?;
        }
        commit(wtxn, "state")?;
        env.force_sync()?;
        state_durability::write(dir, false, &boot)?;
        let snapshot_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)?;
        // Incoming or half-built snapshots from a previous run are useless: remove them.
        for item in std::fs::read_dir(&snapshot_dir)? {
            let path = item?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                env,
                changes: tokio::sync::watch::Sender::new(0),
                chain_watchers: Arc::default(),
                tables,
                snapshot_dir,
                snapshot_files: Mutex::new(()),
                snapshot_seq: AtomicU64::new(0),
                verified: Verified::new(),
                dir: dir.to_owned(),
                boot,
                reset,
                synced: AtomicU64::new(0),
            }),
        })
    }

    /// Why the store on disk was not trusted at open (a machine crash left it open), if it was
    /// not: this one started empty, and the owner rebuilds it from the current snapshot and the
    /// Raft log before serving from it.
    pub fn reset(&self) -> Option<&str> {
        self.inner.reset.as_deref()
    }

    /// Makes every commit so far durable, if any happened since the last sync; the time it took
    /// is `blindstore_storage_commit_seconds{store="state_sync"}`. A failed sync leaves the
    /// store marked untrusted, so the next start rebuilds it: after a failed `fsync` the
    /// kernel may have dropped pages it will never write.
    pub fn sync(&self) -> Result<(), StorageError> {
        let changes = *self.inner.changes.borrow();
        if self.inner.synced.load(Ordering::Acquire) == changes {
            return Ok(());
        }
        let started = std::time::Instant::now();
        if let Err(e) = self.inner.env.force_sync() {
            tracing::error!(error = %e, "syncing the state store failed; it will be rebuilt at the next start");
            let _ = state_durability::write(&self.inner.dir, false, "a-failed-sync");
            return Err(e.into());
        }
        metrics::histogram!("blindstore_storage_commit_seconds", "store" => "state_sync")
            .record(started.elapsed().as_secs_f64());
        self.inner.synced.fetch_max(changes, Ordering::AcqRel);
        Ok(())
    }

    /// Syncs and marks the store closed cleanly. Call once nothing writes to it any more.
    pub fn close(&self) -> Result<(), StorageError> {
        self.inner.env.force_sync()?;
        state_durability::write(&self.inner.dir, true, &self.inner.boot)?;
        Ok(())
    }

    /// A receiver that sees a new value after every committed change to the state (an applied
    /// batch, an installed snapshot). Values only count; read the state to see what changed.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|n| *n += 1);
    }

    /// A zone's registration policy and caps.
    pub fn registration(
        &self,
        zone: &ZoneId,
    ) -> Result<blindstore_types::account::RegistrationSettings, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .tables
            .accounts
            .registration_settings(&rtxn, zone)
    }

    /// What a zone's accounts keep in the state: accounts and envelope bytes.
    pub fn account_usage(
        &self,
        zone: &ZoneId,
    ) -> Result<blindstore_types::account::AccountUsage, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner.tables.accounts.usage(&rtxn, zone)
    }

    /// How full the state store's memory map is, as (bytes used, map size).
    pub fn map_usage(&self) -> Result<(u64, u64), StorageError> {
        let env = &self.inner.env;
        let info = env.info();
        let page = u64::from(env.stat().page_size);
        Ok((
            (info.last_page_number as u64 + 1) * page,
            info.map_size as u64,
        ))
    }

    /// A zone's account secrets, if it has them.
    pub fn zone_auth(&self, zone: &ZoneId) -> Result<Option<ZoneAuth>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner.tables.accounts.zone_auth(&rtxn, zone)
    }

    pub fn account(
        &self,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<Option<AccountRecord>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner.tables.accounts.account(&rtxn, zone, account)
    }

    /// The session whose bearer token hashes to `token_hash`, expired or not.
    pub fn session(
        &self,
        zone: &ZoneId,
        token_hash: &Hash32,
    ) -> Result<Option<SessionRecord>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner.tables.accounts.session(&rtxn, zone, token_hash)
    }

    /// An account's sessions (expired ones included), by token hash.
    pub fn account_sessions(
        &self,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<Vec<(Hash32, SessionRecord)>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .tables
            .accounts
            .account_sessions(&rtxn, zone, account)
    }

    pub fn envelope(
        &self,
        zone: &ZoneId,
        account: &AccountId,
        name: &str,
    ) -> Result<Option<EnvelopeRecord>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .tables
            .accounts
            .envelope(&rtxn, zone, account, name)
    }

    /// An account's envelopes, by name.
    pub fn envelopes(
        &self,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<Vec<(String, EnvelopeRecord)>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .tables
            .accounts
            .envelope_list(&rtxn, zone, account)
    }

    /// An account's passkeys, by credential id.
    pub fn passkeys(
        &self,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<Vec<(Vec<u8>, PasskeyRecord)>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner.tables.accounts.passkeys(&rtxn, zone, account)
    }

    /// Reads the value the engine keeps under `key` (how far it applied, the membership), or
    /// the default if there is none.
    pub fn mark<T: DeserializeOwned + Default>(
        &self,
        key: &'static str,
    ) -> Result<T, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        read_meta(&self.inner.tables, &rtxn, key)
    }

    /// Applies a batch of log entries in one transaction: each `Some` command through its room
    /// (`None`: an entry that carries none, answered `CommandResponse::None`), and `marks`, the
    /// engine's own records of how far it got, with them. Committed before returning, not synced
    /// (see [`sync`](Self::sync)).
    pub fn apply_batch(
        &self,
        commands: Vec<Option<Command>>,
        marks: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<Vec<CommandResponse>, StorageError> {
        let inner = &self.inner;
        let t = &inner.tables;
        let mut wtxn = inner.env.write_txn()?;
        let mut responses = Vec::with_capacity(commands.len());
        let mut appended = Vec::new();
        for command in commands {
            responses.push(match command {
                None => CommandResponse::None,
                Some(command) => {
                    appended_chains(&command, &mut appended);
                    apply_command(t, &mut wtxn, command, &inner.verified)?
                }
            });
        }
        for (key, value) in marks {
            t.meta.put(&mut wtxn, key, &value)?;
        }
        commit(wtxn, "state")?;
        self.changed();
        inner.chain_watchers.wake(&appended);
        Ok(responses)
    }

    /// Writes a snapshot of the whole state and makes it the current one. `header` makes the
    /// snapshot's header from the engine's marks, read in the same transaction as the rows,
    /// and a number no other snapshot of this process had. Every applied batch is on disk
    /// (meta page included) before the snapshot is current: the log is purged up to near it
    /// next, and a machine crash must never leave the state behind the purged log.
    pub fn build_snapshot<H: Serialize>(
        &self,
        header: impl FnOnce(&Marks<'_>, u64) -> Result<H, StorageError>,
    ) -> Result<(H, PathBuf), StorageError> {
        let seq = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .inner
            .snapshot_dir
            .join(format!("build-{}-{seq}.tmp", std::process::id()));
        let head = self.write_snapshot(&tmp, |marks| header(marks, seq))?;
        self.inner.env.force_sync()?;
        let path = self.promote_snapshot(&tmp)?;
        Ok((head, path))
    }

    /// Writes a snapshot of the whole state to `path` (fsynced), in the format of the Raft
    /// snapshots, without making it the current one: a copy for a backup. Its header is
    /// `header`'s, made from the marks read in the same transaction as the rows.
    pub fn export_snapshot<H: Serialize>(
        &self,
        path: &Path,
        header: impl FnOnce(&Marks<'_>) -> Result<H, StorageError>,
    ) -> Result<H, StorageError> {
        self.write_snapshot(path, header)
    }

    fn write_snapshot<H: Serialize>(
        &self,
        path: &Path,
        header: impl FnOnce(&Marks<'_>) -> Result<H, StorageError>,
    ) -> Result<H, StorageError> {
        let inner = &self.inner;
        let rtxn = inner.env.read_txn()?;
        let head = header(&Marks {
            tables: &inner.tables,
            rtxn: &rtxn,
        })?;
        let mut out = BufWriter::new(File::create(path)?);
        write_snapshot_header(&mut out, &encode(&head))?;
        for (id, table) in inner.tables.snapshot_tables() {
            for item in table.iter(&rtxn)? {
                let (k, v) = item?;
                write_record(&mut out, id, k, v)?;
            }
        }
        out.write_all(&[0])?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(head)
    }

    /// Forgets the cluster's own records — draining and removed nodes, the join secret — which
    /// belong to the cluster a restored state came from, not to the one it starts.
    pub fn forget_cluster_state(&self) -> Result<(), StorageError> {
        let mut wtxn = self.inner.env.write_txn()?;
        self.inner.tables.cluster.clear(&mut wtxn)?;
        commit(wtxn, "state")?;
        self.changed();
        Ok(())
    }

    /// A directory for files the node writes beside its snapshots (exports for backups): on
    /// the same file system, and emptied of `*.tmp` files at every start.
    pub fn snapshot_dir(&self) -> &Path {
        &self.inner.snapshot_dir
    }

    /// Atomically makes `tmp` the current snapshot.
    fn promote_snapshot(&self, tmp: &Path) -> Result<PathBuf, StorageError> {
        let _files = self
            .inner
            .snapshot_files
            .lock()
            .expect("snapshot lock is never poisoned");
        let current = self.inner.snapshot_dir.join(CURRENT_SNAPSHOT);
        std::fs::rename(tmp, &current)?;
        File::open(&self.inner.snapshot_dir)?.sync_all()?;
        Ok(current)
    }

    /// The current snapshot's header and its file (read from the start), if there is one.
    pub fn current_snapshot<H: DeserializeOwned>(&self) -> Result<Option<(H, File)>, StorageError> {
        let _files = self
            .inner
            .snapshot_files
            .lock()
            .expect("snapshot lock is never poisoned");
        let path = self.inner.snapshot_dir.join(CURRENT_SNAPSHOT);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let header = read_snapshot_header(&mut BufReader::new(&mut file))?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Some((header, file)))
    }

    /// A path for a snapshot on its way in from the leader, in the snapshots folder (so it
    /// can be renamed into place) and never used before.
    pub fn incoming_snapshot_path(&self) -> PathBuf {
        let seq = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        self.inner
            .snapshot_dir
            .join(format!("incoming-{}-{seq}.tmp", std::process::id()))
    }

    /// Replaces the whole state with the snapshot in `file`, whose header `check` must accept,
    /// records `marks` with it, and keeps a copy as the current snapshot. The installed state
    /// is on disk (meta page included) before this returns: the log is purged up to it next.
    pub fn install_snapshot<H: DeserializeOwned>(
        &self,
        mut file: File,
        check: impl FnOnce(&H) -> Result<(), String>,
        marks: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let inner = &self.inner;
        file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::new(&mut file);
        let header: H = read_snapshot_header(&mut reader)?;
        check(&header).map_err(StorageError::BadSnapshot)?;
        let mut wtxn = inner.env.write_txn()?;
        let tables = inner.tables.snapshot_tables();
        for (_, table) in &tables {
            table.clear(&mut wtxn)?;
        }
        loop {
            let mut id = [0u8; 1];
            reader.read_exact(&mut id)?;
            if id[0] == 0 {
                break;
            }
            let table = tables
                .iter()
                .find(|(t, _)| *t == id[0])
                .ok_or_else(|| StorageError::BadSnapshot(format!("unknown table {}", id[0])))?
                .1;
            let key = read_chunk(&mut reader)?;
            let value = read_chunk(&mut reader)?;
            table.put(&mut wtxn, &key, &value)?;
        }
        for (key, value) in marks {
            inner.tables.meta.put(&mut wtxn, key, &value)?;
        }
        inner.tables.accounts.rebuild_usage(&mut wtxn)?;
        rebuild_site_hosts(&inner.tables, &mut wtxn)?;
        commit(wtxn, "state")?;
        self.inner.env.force_sync()?;
        self.changed();
        self.inner.chain_watchers.wake_all();
        drop(reader);

        // Keep what was installed as the current snapshot, for followers that need it next.
        file.seek(SeekFrom::Start(0))?;
        let seq = inner.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = inner
            .snapshot_dir
            .join(format!("installed-{}-{seq}.tmp", std::process::id()));
        let mut copy = File::create(&tmp)?;
        std::io::copy(&mut file, &mut copy)?;
        copy.sync_all()?;
        self.promote_snapshot(&tmp)?;
        Ok(())
    }
}

/// The engine's marks as a snapshot being built sees them.
pub struct Marks<'a> {
    tables: &'a Tables,
    rtxn: &'a heed::RoTxn<'a, WithoutTls>,
}

impl Marks<'_> {
    /// The value under `key`, or the default if there is none.
    pub fn get<T: DeserializeOwned + Default>(&self, key: &'static str) -> Result<T, StorageError> {
        read_meta(self.tables, self.rtxn, key)
    }
}

/// Applies one command inside the batch's transaction. Preconditions that do not hold produce
/// a `Rejected` response and change nothing; only storage failures are errors.
fn apply_command(
    t: &Tables,
    wtxn: &mut RwTxn,
    command: Command,
    verified: &Verified,
) -> Result<CommandResponse, StorageError> {
    // A batch's commands pass the gate one by one, below.
    if !matches!(command, Command::Batch(_)) {
        if let Some(rejected) = cluster_state::version_gate(t, wtxn, command.required_level())? {
            return Ok(rejected);
        }
    }
    match command {
        Command::CreateZone {
            zone,
            created_at_ms,
        } => zones::create(t, wtxn, zone, created_at_ms),
        Command::CreateChain { zone, public_key } => {
            chains::create_open_chain(t, wtxn, zone, public_key)
        }
        Command::CreateAccountChain {
            zone,
            public_key,
            account,
            acting,
        } => chains::create_account_chain(t, wtxn, zone, public_key, account, acting),
        Command::SetZoneSettingsV1 { zone, settings } => apply_command(
            t,
            wtxn,
            Command::SetZoneSettings {
                zone,
                settings: settings.into(),
            },
            verified,
        ),
        Command::PublishSite {
            zone,
            manifest,
            created_at_ms,
        } => sites::publish(t, wtxn, zone, manifest, created_at_ms),
        Command::SetSiteVersion { zone, version } => sites::set_version(t, wtxn, zone, version),
        Command::SetZoneSettings { zone, settings } => zones::set_settings(t, wtxn, zone, settings),
        Command::SetQuota { zone, quota } => zones::set_quota(t, wtxn, zone, quota),
        Command::DeleteZone { zone } => zones::delete(t, wtxn, zone),
        Command::RotateJoinSecret {
            secret,
            previous,
            at_ms,
            grace_ms,
        } => cluster_state::rotate_join_secret(t, wtxn, secret, previous, at_ms, grace_ms),
        Command::MarkRemoved { node } => cluster_state::mark_removed(t, wtxn, node),
        Command::SetClusterVersion { level } => cluster_state::set_version(t, wtxn, level),
        Command::SetClusterId { id } => cluster_state::set_id(t, wtxn, id),
        Command::SetAdminCredentials {
            credentials,
            previous,
        } => cluster_state::set_admin_credentials(t, wtxn, credentials, previous),
        Command::SetDraining { node, draining } => {
            cluster_state::set_draining(t, wtxn, node, draining)
        }
        Command::Append {
            zone,
            chain_id,
            header,
        } => append(t, wtxn, zone, chain_id, header, None, verified),
        Command::AppendWithPayload {
            zone,
            chain_id,
            header,
            payload,
        } => append(t, wtxn, zone, chain_id, header, Some(payload), verified),
        Command::Batch(commands) => {
            let mut responses = Vec::with_capacity(commands.len());
            for command in commands {
                responses.push(match command {
                    Command::Batch(_) => CommandResponse::Rejected(Rejection::NestedBatch),
                    command => apply_command(t, wtxn, command, verified)?,
                });
            }
            Ok(CommandResponse::Batch(responses))
        }
        // The accounts room. Listed one by one: the compiler checks that every command has
        // its room, and the accounts room matches its own commands.
        Command::SetZoneAuth(c) => apply_account(t, wtxn, AccountCommand::SetZoneAuth(c)),
        Command::CreateAccount(c) => apply_account(t, wtxn, AccountCommand::CreateAccount(c)),
        Command::CreateSession(c) => apply_account(t, wtxn, AccountCommand::CreateSession(c)),
        Command::RevokeSessions(c) => apply_account(t, wtxn, AccountCommand::RevokeSessions(c)),
        Command::PutEnvelope(c) => apply_account(t, wtxn, AccountCommand::PutEnvelope(c)),
        Command::ChangePassword(c) => apply_account(t, wtxn, AccountCommand::ChangePassword(c)),
        Command::ChangeCredentials(c) => {
            apply_account(t, wtxn, AccountCommand::ChangeCredentials(c))
        }
        Command::RegisterAccount(c) => apply_account(t, wtxn, AccountCommand::RegisterAccount(c)),
        Command::SetRegistration(c) => apply_account(t, wtxn, AccountCommand::SetRegistration(c)),
        Command::CreateInvites(c) => apply_account(t, wtxn, AccountCommand::CreateInvites(c)),
        Command::RedeemTicket(c) => apply_account(t, wtxn, AccountCommand::RedeemTicket(c)),
        Command::DeleteAccount(c) => apply_account(t, wtxn, AccountCommand::DeleteAccount(c)),
        Command::AddPasskey(c) => apply_account(t, wtxn, AccountCommand::AddPasskey(c)),
        Command::RemovePasskey(c) => apply_account(t, wtxn, AccountCommand::RemovePasskey(c)),
        Command::CreatePasskeySession(c) => {
            apply_account(t, wtxn, AccountCommand::CreatePasskeySession(c))
        }
        Command::DeleteEnvelope(c) => apply_account(t, wtxn, AccountCommand::DeleteEnvelope(c)),
    }
}

fn apply_account(
    t: &Tables,
    wtxn: &mut RwTxn,
    command: AccountCommand,
) -> Result<CommandResponse, StorageError> {
    let zone_exists = |txn: &RwTxn, zone: &ZoneId| Ok(get_zone(t, txn, zone)?.is_some());
    t.accounts.apply(wtxn, zone_exists, command)
}

fn read_meta<T: serde::de::DeserializeOwned + Default>(
    t: &Tables,
    rtxn: &heed::RoTxn<WithoutTls>,
    key: &'static str,
) -> Result<T, StorageError> {
    Ok(t.meta
        .get(rtxn, key)?
        .map(|b| decode(key, b))
        .transpose()?
        .unwrap_or_default())
}

fn write_snapshot_header(out: &mut impl Write, meta: &[u8]) -> Result<(), StorageError> {
    out.write_all(SNAPSHOT_MAGIC)?;
    out.write_all(&[SNAPSHOT_V1])?;
    out.write_all(&(meta.len() as u32).to_be_bytes())?;
    out.write_all(meta)?;
    Ok(())
}

fn read_snapshot_header<H: DeserializeOwned>(input: &mut impl Read) -> Result<H, StorageError> {
    decode("snapshot meta", &read_header_bytes(input)?)
}

/// The header of a snapshot file, as it is stored (the engine's record, undecoded).
fn read_header_bytes(input: &mut impl Read) -> Result<Vec<u8>, StorageError> {
    let mut magic = [0u8; 21];
    input.read_exact(&mut magic)?;
    if &magic[..20] != SNAPSHOT_MAGIC || magic[20] != SNAPSHOT_V1 {
        return Err(StorageError::BadSnapshot(
            "not a version 1 Blindstore snapshot".into(),
        ));
    }
    read_chunk(input)
}

fn write_record(
    out: &mut impl Write,
    table: u8,
    key: &[u8],
    value: &[u8],
) -> Result<(), StorageError> {
    out.write_all(&[table])?;
    for part in [key, value] {
        out.write_all(&(part.len() as u32).to_be_bytes())?;
        out.write_all(part)?;
    }
    Ok(())
}

/// The largest key or value a snapshot record may have: far above any record the state
/// holds (a site manifest, the largest, is at most 4 MiB), so a damaged length is refused
/// before it is allocated.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// Reads `u32 len || bytes`.
fn read_chunk(input: &mut impl Read) -> Result<Vec<u8>, StorageError> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_RECORD_BYTES {
        return Err(StorageError::BadSnapshot(format!(
            "a record of {len} bytes, above the limit of {MAX_RECORD_BYTES}"
        )));
    }
    let mut buf = vec![0u8; len];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

/// What a snapshot file holds, read without opening a store: the rows of each table (by the
/// table ids of `Tables::snapshot_tables`) and the chunks its entries and sites reference.
#[derive(Debug, Default, Clone)]
pub struct SnapshotContents {
    /// Rows per table id.
    pub rows: std::collections::BTreeMap<u8, u64>,
    /// Every chunk the state references, by zone.
    pub chunks: Vec<(ZoneId, Hash32)>,
    /// The cluster's id, if the state names one (cluster version 2 and up).
    pub cluster_id: Option<[u8; 16]>,
}

impl SnapshotContents {
    /// Zones, chains, entries, accounts and sessions, in that order.
    pub fn counts(&self) -> [(&'static str, u64); 5] {
        let rows = |id| self.rows.get(&id).copied().unwrap_or(0);
        [
            ("zones", rows(1)),
            ("chains", rows(2)),
            ("entries", rows(3)),
            ("accounts", rows(8)),
            ("sessions", rows(9)),
        ]
    }
}

/// The header of the snapshot file at `path` (the engine's record, undecoded), read without
/// the rows.
pub fn read_snapshot_file_header(path: &Path) -> Result<Vec<u8>, StorageError> {
    read_header_bytes(&mut BufReader::new(File::open(path)?))
}

/// Reads a snapshot file through, checking its framing: a header (returned as stored: the
/// engine's record), then records up to the end marker, nothing after it. A truncated or
/// damaged file is an error, never a short list.
pub fn read_snapshot_file(path: &Path) -> Result<(Vec<u8>, SnapshotContents), StorageError> {
    let mut reader = BufReader::new(File::open(path)?);
    let header = read_header_bytes(&mut reader)?;
    let mut contents = SnapshotContents::default();
    loop {
        let mut id = [0u8; 1];
        reader.read_exact(&mut id)?;
        if id[0] == 0 {
            break;
        }
        if !(1..=20).contains(&id[0]) {
            return Err(StorageError::BadSnapshot(format!(
                "unknown table {}",
                id[0]
            )));
        }
        let key = read_chunk(&mut reader)?;
        let value = read_chunk(&mut reader)?;
        *contents.rows.entry(id[0]).or_default() += 1;
        // Table 5 is the cluster's own records.
        if id[0] == 5 && key == cluster_state::ID {
            contents.cluster_id = Some(decode("cluster id", &value)?);
        }
        // Table 4 holds the references: `zone_key(zone, hash)`.
        if id[0] == 4 {
            contents.chunks.push(parse_zone_hash(&key)?);
        }
    }
    let mut rest = [0u8; 1];
    if reader.read(&mut rest)? != 0 {
        return Err(StorageError::BadSnapshot(
            "bytes after the end of the snapshot".into(),
        ));
    }
    Ok((header, contents))
}

/// The zone and hash of a `zone_key`.
fn parse_zone_hash(key: &[u8]) -> Result<(ZoneId, Hash32), StorageError> {
    let bad = || StorageError::MalformedKey(format!("{} bytes of a chunk reference", key.len()));
    let (&len, rest) = key.split_first().ok_or_else(bad)?;
    let len = usize::from(len);
    if rest.len() != len + 32 {
        return Err(bad());
    }
    let zone = std::str::from_utf8(&rest[..len])
        .ok()
        .and_then(|z| ZoneId::new(z).ok())
        .ok_or_else(bad)?;
    let hash: [u8; 32] = rest[len..].try_into().map_err(|_| bad())?;
    Ok((zone, Hash32(hash)))
}
