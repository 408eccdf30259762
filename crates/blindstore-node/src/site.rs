//! `blindstore site ...`: deploying a directory as a zone's site (files uploaded as chunks, then
//! one manifest published atomically), listing versions and switching back.

use std::time::Duration;

use anyhow::Context;
use blindstore_client::Client;
use blindstore_types::site::{SiteBlob, SiteFile, SiteManifest};
use blindstore_types::{Hash32, ZoneId};
use blindstore_web::site::{scan_dir, ScannedFile};
use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cluster::Target;

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Upload a directory as the zone's next site version and make it current. Files already
    /// stored are not sent again; nothing changes for visitors until every file is stored.
    Deploy(Box<DeployArgs>),
    /// The zone's site versions; `*` marks the current one.
    List(ListArgs),
    /// Make an earlier version current again (by default the one before the current).
    Rollback(RollbackArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The directory to publish (e.g. your bundler's `dist`). `x.gz` and `x.br` beside a file
    /// `x` are served as its precompressed variants; names starting with `.` are left out.
    dir: std::path::PathBuf,
    /// The zone.
    #[arg(long)]
    zone: String,
    /// A `Content-Security-Policy` sent with every file of the site.
    #[arg(long)]
    csp: Option<String>,
    /// A single-page app: HTML navigations to paths that are not files get `index.html`.
    #[arg(long)]
    spa: bool,
    /// Chunk size, bytes (at most the nodes' `max_chunk_bytes`).
    #[arg(long, default_value_t = 4 << 20)]
    chunk_bytes: usize,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    zone: String,
    #[command(flatten)]
    target: Target,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[arg(long)]
    zone: String,
    /// The version to make current [default: the one before the current].
    #[arg(long)]
    to: Option<u64>,
    #[command(flatten)]
    target: Target,
}

pub fn run(command: SiteCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match command {
            SiteCommand::Deploy(args) => deploy(*args).await,
            SiteCommand::List(args) => {
                let zone = zone_id(&args.zone)?;
                let list = args.target.client()?.site_versions(&zone).await?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    return Ok(());
                }
                if list.versions.is_empty() {
                    println!(
                        "zone {zone} has no site yet (blindstore site deploy DIR --zone {zone})"
                    );
                }
                for v in &list.versions {
                    println!(
                        "{} {:>5}  {:>6} files  {:>12} bytes  published at {} ms",
                        if v.current { "*" } else { " " },
                        v.version,
                        v.files,
                        v.bytes,
                        v.created_at_ms
                    );
                }
                Ok(())
            }
            SiteCommand::Rollback(args) => {
                let zone = zone_id(&args.zone)?;
                let client = args.target.client()?;
                let list = client.site_versions(&zone).await?;
                let current = list.current.context("the zone has no site")?;
                let to = match args.to {
                    Some(to) => to,
                    None => list
                        .versions
                        .iter()
                        .map(|v| v.version)
                        .filter(|v| *v < current)
                        .max()
                        .context("there is no version before the current one")?,
                };
                client.set_site_version(&zone, to).await?;
                println!("zone {zone}: site version {to} is current (was {current})");
                Ok(())
            }
        }
    })
}

fn zone_id(zone: &str) -> anyhow::Result<ZoneId> {
    ZoneId::new(zone).map_err(|e| anyhow::anyhow!("invalid zone id {zone:?}: {e}"))
}

/// A piece of a file to store.
struct Piece {
    hash: Hash32,
    path: std::path::PathBuf,
    offset: u64,
    len: usize,
}

async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let zone = zone_id(&args.zone)?;
    anyhow::ensure!(args.chunk_bytes > 0, "--chunk-bytes must be positive");
    let client = args.target.client()?;
    let dir = args.dir.clone();
    let chunk = args.chunk_bytes;
    let (manifest, pieces) = tokio::task::spawn_blocking(move || build(&dir, chunk))
        .await
        .context("scanning the directory")??;
    let total: u64 = manifest.files.values().map(|f| f.blob.len).sum();
    println!(
        "{}: {} files, {total} bytes",
        args.dir.display(),
        manifest.files.len()
    );

    // Only what the zone does not hold yet is sent.
    let hashes: Vec<Hash32> = pieces.iter().map(|p| p.hash).collect();
    let mut missing = std::collections::HashSet::new();
    for batch in hashes.chunks(10_000) {
        missing.extend(client.missing_chunks(&zone, batch).await?);
    }
    let mut sending: Vec<&Piece> = Vec::new();
    for piece in &pieces {
        if missing.remove(&piece.hash) {
            sending.push(piece);
        }
    }
    let bytes: u64 = sending.iter().map(|p| p.len as u64).sum();
    let bar = ProgressBar::new(bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "uploading {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    futures::stream::iter(
        sending
            .iter()
            .map(|piece| upload(&client, &zone, piece, &bar)),
    )
    .buffer_unordered(4)
    .try_collect::<Vec<()>>()
    .await?;
    bar.finish_and_clear();
    println!(
        "uploaded {} new chunks ({bytes} bytes); {} already stored",
        sending.len(),
        pieces.len() - sending.len()
    );
    let version = client.publish_site(&zone, &manifest).await?;
    println!("published site version {version} of zone {zone}: it is current");
    Ok(())
}

async fn upload(
    client: &Client,
    zone: &ZoneId,
    piece: &Piece,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let bytes = read_piece(piece).await?;
    anyhow::ensure!(
        Hash32::digest(&bytes) == piece.hash,
        "{} changed during the deploy",
        piece.path.display()
    );
    client
        .put_chunk_as(zone, &piece.hash, bytes)
        .await
        .with_context(|| format!("uploading part of {}", piece.path.display()))?;
    bar.inc(piece.len as u64);
    Ok(())
}

async fn read_piece(piece: &Piece) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(&piece.path)
        .await
        .with_context(|| format!("opening {}", piece.path.display()))?;
    file.seek(std::io::SeekFrom::Start(piece.offset)).await?;
    let mut bytes = vec![0u8; piece.len];
    file.read_exact(&mut bytes)
        .await
        .with_context(|| format!("reading {}", piece.path.display()))?;
    Ok(bytes)
}

/// The manifest of `dir` and the pieces (chunks) of every file and variant, in order.
fn build(dir: &std::path::Path, chunk: usize) -> anyhow::Result<(SiteManifest, Vec<Piece>)> {
    let files = scan_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    anyhow::ensure!(!files.is_empty(), "{} holds no files", dir.display());
    let mut pieces = Vec::new();
    let mut manifest = SiteManifest::default();
    for f in &files {
        let ScannedFile {
            path,
            disk,
            content_type,
            len,
            sha256,
            gzip,
            br,
        } = f;
        let mut blob =
            |disk: &std::path::Path, len: u64, sha256: Hash32| -> anyhow::Result<SiteBlob> {
                let chunks = split(disk, chunk, &mut pieces)?;
                Ok(SiteBlob {
                    chunks,
                    len,
                    sha256,
                })
            };
        let file = SiteFile {
            content_type: content_type.clone(),
            blob: blob(disk, *len, *sha256)?,
            gzip: gzip.as_ref().map(|(d, l, s)| blob(d, *l, *s)).transpose()?,
            br: br.as_ref().map(|(d, l, s)| blob(d, *l, *s)).transpose()?,
        };
        manifest.files.insert(path.clone(), file);
    }
    Ok((manifest, pieces))
}

/// Reads `path` in `chunk`-byte pieces: their hashes, each recorded in `pieces`.
fn split(
    path: &std::path::Path,
    chunk: usize,
    pieces: &mut Vec<Piece>,
) -> anyhow::Result<Vec<Hash32>> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hashes = Vec::new();
    let mut buffer = vec![0u8; chunk];
    let mut offset = 0u64;
    loop {
        let mut filled = 0;
        while filled < chunk {
            let n = file.read(&mut buffer[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        let hash = Hash32::digest(&buffer[..filled]);
        hashes.push(hash);
        pieces.push(Piece {
            hash,
            path: path.to_owned(),
            offset,
            len: filled,
        });
        offset += filled as u64;
        if filled < chunk {
            break;
        }
    }
    Ok(hashes)
}
