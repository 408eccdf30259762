//! `blindstore backup`, `blindstore backup verify` and `blindstore restore`.
//!
//! A backup directory holds `manifest.json` (the latest backup: its log position, time, counts
//! and the hash of its state file), `state/state-<index>.snap` (the replicated state at that
//! index, in the snapshot format, one file per backup) and `chunks/<zone>/<hash>`, every chunk
//! the states reference, named by their SHA-256 — so a second backup into the same directory
//! copies only the chunks it does not have. The manifest is written last: a backup cut off
//! midway leaves the previous one whole.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use blindstore_client::Client;
use blindstore_storage::{read_snapshot_file, ChunkStore, MapSizes, SnapshotContents};
use blindstore_types::{Hash32, ZoneId};
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::cluster::Target;

const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;
/// Chunk requests a backup keeps in flight.
const CONCURRENT_CHUNKS: usize = 8;

/// `blindstore backup`: back up a running cluster into a directory, or check one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// The backup directory: made if absent; a second backup into it copies only new chunks.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Re-read a backup directory: the manifest, the state file against its hash and its
    /// framing, and every chunk the state references against its name.
    Verify {
        /// The backup directory.
        dir: PathBuf,
    },
}

/// `blindstore restore`: start a new cluster's first node from a backup.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory (it is verified first).
    #[arg(long)]
    from: PathBuf,
    /// The new node's data dir: absent or empty. Start `blindstore serve` on it afterwards;
    /// other nodes join it as usual.
    #[arg(long)]
    data_dir: PathBuf,
    /// The state store's map size, bytes: as `serve` will be given it.
    #[arg(long, default_value_t = MapSizes::default().state as u64)]
    state_map_bytes: u64,
    /// The chunk store's map size, bytes: as `serve` will be given it. This node holds every
    /// chunk of the backup until others join.
    #[arg(long, default_value_t = MapSizes::default().chunks as u64)]
    chunks_map_bytes: u64,
}

/// What `manifest.json` says of the latest backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// The backup format (1).
    format: u32,
    /// The Raft log index the state was applied up to: every write acknowledged before the
    /// backup started is at or before it.
    index: u64,
    term: u64,
    /// When the backup was taken, milliseconds since the Unix epoch.
    created_at_ms: u64,
    /// The node it was taken from.
    source: String,
    /// The id of the cluster it was taken from (hex), once the cluster has one (version 2 and
    /// up): later backups into the same directory must come from the same cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster_id: Option<String>,
    state: StateFile,
    counts: Counts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    /// Relative to the backup directory.
    file: String,
    bytes: u64,
    sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Counts {
    zones: u64,
    chains: u64,
    entries: u64,
    accounts: u64,
    sessions: u64,
    /// Chunks the state references (all in `chunks/`).
    chunks: u64,
    /// Their bytes.
    chunk_bytes: u64,
}

pub fn run(args: BackupArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.command {
        Some(BackupCommand::Verify { dir }) => {
            let (manifest, _) = verify(&dir)?;
            println!(
                "backup in {} is whole: cluster {}, index {}, {} entries, {} accounts, {} chunks ({} bytes), every file hash-checked",
                dir.display(),
                manifest.cluster_id.as_deref().unwrap_or("(no id)"),
                manifest.index,
                manifest.counts.entries,
                manifest.counts.accounts,
                manifest.counts.chunks,
                manifest.counts.chunk_bytes
            );
            Ok(())
        }
        None => {
            let out = args.out.expect("clap requires --out without a subcommand");
            runtime.block_on(backup(&args.target, &out))
        }
    }
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    if let Ok(mut items) = std::fs::read_dir(&args.data_dir) {
        if items.next().is_some() {
            bail!(
                "{} is not empty: a restore makes a new data dir and never writes over one",
                args.data_dir.display()
            );
        }
    }
    let (manifest, contents) = verify(&args.from)?;
    // LMDB needs room beyond the bytes themselves; a store that cannot hold them is refused
    // now rather than full midway.
    if manifest.counts.chunk_bytes > args.chunks_map_bytes / 10 * 9 {
        bail!(
            "the backup's chunks ({} bytes) do not fit a chunk store of {} bytes: give a larger --chunks-map-bytes (and the same to serve)",
            manifest.counts.chunk_bytes,
            args.chunks_map_bytes
        );
    }
    // Everything is built in a folder beside the data dir and renamed into place at the end: a
    // restore cut off midway leaves no data dir a node could start on.
    let parent = match args.data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let name = args
        .data_dir
        .file_name()
        .context("--data-dir names no folder")?
        .to_string_lossy()
        .into_owned();
    let staging = parent.join(format!(
        ".{name}.restoring-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let built = runtime.block_on(build_restored(&args, &staging, &manifest, &contents));
    let placed = built.and_then(|index| {
        std::fs::rename(&staging, &args.data_dir).with_context(|| {
            format!(
                "moving the restored data dir to {}",
                args.data_dir.display()
            )
        })?;
        std::fs::File::open(&parent)?.sync_all()?;
        Ok(index)
    });
    let index = match placed {
        Ok(index) => index,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.context("the restore did not finish; nothing was left in --data-dir"));
        }
    };
    println!(
        "restored the backup of cluster {} at index {index} into {}: {} entries, {} accounts, {} chunks. Start it with \
         `blindstore serve --data-dir {}` (and --rpc-addr for a cluster); it is a new cluster, with \
         a new id and join token, and other nodes join it as usual",
        manifest.cluster_id.as_deref().unwrap_or("(no id)"),
        args.data_dir.display(),
        manifest.counts.entries,
        manifest.counts.accounts,
        manifest.counts.chunks,
        args.data_dir.display()
    );
    Ok(())
}

/// Builds the restored data dir in `dir`: the state as a new cluster's, then the chunks, all
/// synced. The backup's index.
async fn build_restored(
    args: &RestoreArgs,
    dir: &Path,
    manifest: &Manifest,
    contents: &SnapshotContents,
) -> anyhow::Result<u64> {
    let raft_log = MapSizes::default().raft_log;
    let state = args.from.join(&manifest.state.file);
    let restored =
        blindstore_cluster::restore_state(dir, &state, raft_log, args.state_map_bytes as usize)
            .await
            .context("restoring the state")?;
    let chunks = ChunkStore::open(&dir.join("chunks"), args.chunks_map_bytes as usize)
        .context("opening the new chunk store")?;
    let bar = progress(contents.chunks.len() as u64, "restoring chunks");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for (zone, hash) in &contents.chunks {
        let bytes = std::fs::read(chunk_path(&args.from, zone, hash))?;
        chunks
            .put(zone, *hash, bytes, now)
            .await
            .with_context(|| format!("storing chunk {hash} of zone {zone}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    chunks.close();
    std::fs::File::open(dir)?.sync_all()?;
    Ok(restored.index)
}

async fn backup(target: &Target, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out.join("state"))
        .with_context(|| format!("making {}", out.display()))?;
    // One backup at a time writes into a directory (a long one overlapping the next).
    let lock = std::fs::File::create(out.join(".lock"))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another backup is writing into {} now; try again when it has finished",
            out.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    // A directory backups go into must be one: a damaged one is not written into.
    let previous = if out.join(MANIFEST).exists() {
        Some(read_manifest(out)?)
    } else {
        None
    };
    // The state can take long to send; a chunk read gets the usual deadline.
    let client = target.client_with_timeout(Duration::from_secs(3600))?;
    let partial = out.join("state").join("incoming.snap.tmp");
    let mut file = HashingWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("writing {}", partial.display()))?,
    );
    eprintln!("backup: reading the state from {}", client.base());
    let (index, term) = client
        .backup_state(&mut file)
        .await
        .context("reading the state")?;
    let (file, bytes, sha256) = file.finish()?;
    file.sync_all()?;
    let (_, contents) =
        read_snapshot_file(&partial).context("the state the node sent is not whole")?;
    let cluster_id = contents.cluster_id.map(hex::encode);
    if let Some(previous) = &previous {
        if let Err(e) = same_cluster(out, previous, client.base(), cluster_id.as_deref()) {
            std::fs::remove_file(&partial)?;
            return Err(e);
        }
    }
    let name = format!("state/state-{index}.snap");
    std::fs::rename(&partial, out.join(&name))?;
    eprintln!(
        "backup: state at index {index} ({bytes} bytes), {} chunks referenced",
        contents.chunks.len()
    );

    let chunks = Client::new(client.base());
    let bar = progress(contents.chunks.len() as u64, "copying chunks");
    let (mut copied, mut kept, mut chunk_bytes) = (0u64, 0u64, 0u64);
    // A few chunks at a time: each is a request to the node.
    let mut copies = futures::stream::iter(&contents.chunks)
        .map(|(zone, hash)| copy_chunk(&chunks, out, zone, hash))
        .buffer_unordered(CONCURRENT_CHUNKS);
    while let Some(copy) = copies.next().await {
        let (len, new) = copy?;
        chunk_bytes += len;
        if new {
            copied += 1;
        } else {
            kept += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // What the manifest names is on disk, folders included, before the manifest is.
    sync_dirs(out)?;
    let manifest = Manifest {
        format: FORMAT,
        index,
        term,
        created_at_ms: now_ms(),
        source: client.base().to_owned(),
        cluster_id,
        state: StateFile {
            file: name,
            bytes,
            sha256,
        },
        counts: counts(&contents, chunk_bytes),
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    blindstore_storage::write_atomically(out, MANIFEST, text.as_bytes())?;
    // Only the state the manifest names is restorable: earlier ones go.
    for item in std::fs::read_dir(out.join("state"))? {
        let path = item?.path();
        if path.extension().is_some_and(|e| e == "snap") && !path.ends_with(&manifest.state.file) {
            std::fs::remove_file(&path)?;
        }
    }
    println!(
        "backup at index {index} in {}: {} zones, {} chains, {} entries, {} accounts, {} chunks ({copied} copied, {kept} already there)",
        out.display(),
        manifest.counts.zones,
        manifest.counts.chains,
        manifest.counts.entries,
        manifest.counts.accounts,
        manifest.counts.chunks
    );
    Ok(())
}

/// Refuses a backup of another cluster into `out`, which holds `previous`'s. A backup taken
/// before its cluster had an id (version 1) may be followed by any; a cluster restored from a
/// backup is a new cluster, with a new id.
fn same_cluster(
    out: &Path,
    previous: &Manifest,
    source: &str,
    cluster_id: Option<&str>,
) -> anyhow::Result<()> {
    let Some(kept) = previous.cluster_id.as_deref() else {
        return Ok(());
    };
    if cluster_id == Some(kept) {
        return Ok(());
    }
    bail!(
        "{} holds a backup of cluster {kept}, and {} is {}: refusing to mix two clusters' backups; nothing was changed. Back up into a new directory (a cluster restored from a backup is a new cluster, with a new id)",
        out.display(),
        source,
        match cluster_id {
            Some(id) => format!("cluster {id}"),
            None => "a cluster with no id yet (an older version)".to_owned(),
        }
    )
}

/// Copies chunk `hash` of `zone` into the backup `out` unless it holds it already (and it
/// hash-checks): its length, and whether it was copied now.
async fn copy_chunk(
    client: &Client,
    out: &Path,
    zone: &ZoneId,
    hash: &Hash32,
) -> anyhow::Result<(u64, bool)> {
    let path = chunk_path(out, zone, hash);
    if let Ok(held) = std::fs::read(&path) {
        if Hash32::digest(&held) == *hash {
            return Ok((held.len() as u64, false));
        }
    }
    let fetched = client
        .get_chunk(zone, hash)
        .await
        .with_context(|| format!("reading chunk {hash} of zone {zone}"))?;
    if Hash32::digest(&fetched) != *hash {
        bail!("chunk {hash} of zone {zone} came back with other bytes; nothing of it was kept");
    }
    let dir = path.parent().expect("a chunk path has a folder");
    std::fs::create_dir_all(dir)?;
    blindstore_storage::write_atomically(dir, &hash.to_hex(), &fetched)?;
    Ok((fetched.len() as u64, true))
}

/// Checks a backup directory through; its manifest and the state's contents.
fn verify(dir: &Path) -> anyhow::Result<(Manifest, SnapshotContents)> {
    let manifest = read_manifest(dir)?;
    let state = dir.join(&manifest.state.file);
    let mut file = std::fs::File::open(&state).with_context(|| {
        format!(
            "the backup is incomplete: its state file {} is missing",
            state.display()
        )
    })?;
    let mut hashing = HashingWriter::new(std::io::sink());
    std::io::copy(&mut file, &mut hashing)?;
    let (_, bytes, sha256) = hashing.finish()?;
    if bytes != manifest.state.bytes || sha256 != manifest.state.sha256 {
        bail!(
            "the backup's state file {} is damaged or was changed: it has {bytes} bytes hashing to {sha256}, the manifest says {} bytes hashing to {}",
            state.display(),
            manifest.state.bytes,
            manifest.state.sha256
        );
    }
    let (_, contents) = read_snapshot_file(&state)
        .with_context(|| format!("the backup's state file {} is damaged", state.display()))?;
    let bar = progress(contents.chunks.len() as u64, "checking chunks");
    let mut chunk_bytes = 0;
    for (zone, hash) in &contents.chunks {
        let path = chunk_path(dir, zone, hash);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| {
                format!(
                    "the backup is incomplete: chunk {hash} of zone {zone} ({}) is missing",
                    path.display()
                )
            })?;
        if Hash32::digest(&bytes) != *hash {
            bail!(
                "the backup is damaged: chunk {hash} of zone {zone} ({}) does not hash to its name",
                path.display()
            );
        }
        chunk_bytes += bytes.len() as u64;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let found = counts(&contents, chunk_bytes);
    if contents.cluster_id.map(hex::encode) != manifest.cluster_id {
        bail!(
            "the backup's state names another cluster than its manifest ({:?}): it was changed",
            manifest.cluster_id
        );
    }
    if found != manifest.counts {
        bail!(
            "the backup's state does not hold what its manifest counts: found {found:?}, the manifest says {:?}",
            manifest.counts
        );
    }
    Ok((manifest, contents))
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is not a Blindstore backup, or an incomplete one: {} cannot be read",
            dir.display(),
            path.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is damaged: not a backup manifest", path.display()))?;
    if manifest.format != FORMAT {
        bail!(
            "{} is a backup of format {}; this build reads format {FORMAT}",
            dir.display(),
            manifest.format
        );
    }
    if manifest.state.file.contains("..") || Path::new(&manifest.state.file).is_absolute() {
        bail!(
            "{} is damaged: its state file is named outside the backup",
            path.display()
        );
    }
    Ok(manifest)
}

/// Syncs the backup's folders: `state/`, `chunks/` and each zone's, and the backup itself.
fn sync_dirs(out: &Path) -> anyhow::Result<()> {
    let chunks = out.join("chunks");
    if let Ok(zones) = std::fs::read_dir(&chunks) {
        for zone in zones {
            std::fs::File::open(zone?.path())?.sync_all()?;
        }
        std::fs::File::open(&chunks)?.sync_all()?;
    }
    std::fs::File::open(out.join("state"))?.sync_all()?;
    std::fs::File::open(out)?.sync_all()?;
    Ok(())
}

fn counts(contents: &SnapshotContents, chunk_bytes: u64) -> Counts {
    let [zones, chains, entries, accounts, sessions] = contents.counts().map(|(_, n)| n);
    Counts {
        zones,
        chains,
        entries,
        accounts,
        sessions,
        chunks: contents.chunks.len() as u64,
        chunk_bytes,
    }
}

fn chunk_path(dir: &Path, zone: &ZoneId, hash: &Hash32) -> PathBuf {
    dir.join("chunks").join(zone.as_str()).join(hash.to_hex())
}

/// A progress bar on a terminal; nothing when standard error is not one (logs get the
/// summary lines instead).
fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}} ({{eta}} left)"))
            .expect("a valid template"),
    );
    bar
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes through to `inner`, hashing what passes (SHA-256) and counting it.
struct HashingWriter<W: Write> {
    inner: W,
    hash: sha2::Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hash: sha2::Sha256::new(),
            bytes: 0,
        }
    }

    /// Flushes; the writer, the bytes written and their SHA-256 (hex).
    fn finish(mut self) -> anyhow::Result<(W, u64, String)> {
        self.inner.flush()?;
        Ok((self.inner, self.bytes, hex::encode(self.hash.finalize())))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
