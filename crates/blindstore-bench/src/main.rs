//! `blindstore-bench`: Blindstore against etcd, nginx and the disk, on one machine, in one run
//! (`scripts/bench.sh` builds it and the node, then runs it).
//!
//! Method. The run starts, on 127.0.0.1 with free ports, a 3-node Blindstore cluster (as
//! scripts/cluster.sh does: the first node creates it, the others join with its join token, one
//! shared admin token), a single Blindstore node, a 3-member etcd cluster and nginx. Then it
//! runs each load against each system in turn with closed-loop clients (each sends a request,
//! waits for the answer, sends the next), first a warm-up that is not counted, then the
//! measured window (full mode: 2 s + 8 s per row; `--quick`: 0.5 s, no warm-up, fewer
//! clients). Throughput counts the successful requests sent in the window; p50 and p99 are
//! per-request latencies (HdrHistogram). Every loop is bounded in time and in count.
//!
//! - append: 1 KiB signed entries, each client on a chain of its own (so no conflicts), against
//!   etcd puts of 1 KiB values, each client on a key of its own; 1, 16, 64 and 256 clients.
//! - head read: `GET /v1/zones/bench/chains/{id}` (linearizable, the API's default) against
//!   etcd's linearizable get (its default, not `serializable`), on 16 chains and 16 keys.
//! - `entries?last=20` (linearizable) on chains of 20 entries of 1 KiB, compared with the same
//!   etcd get row.
//! - chunk PUT of 1 KiB and 1 MiB, every request with content no other had; the 1 MiB row is
//!   compared with the disk: 1 MiB writes each followed by `fdatasync` (like `dd oflag=dsync`)
//!   in the file system of the data directories, one writer, at most 128 MiB. Its ops/s is MiB/s.
//! - cached chunk GET of 1 KiB and 1 MiB (one stored chunk read over and over) against nginx
//!   serving the same bytes as a static file, with the same HTTP client code.
//!
//! Each Blindstore or nginx client has its own keep-alive HTTP/1.1 connection (reqwest), and
//! client `i` talks to node `i % 3`, as a load balancer would spread them: writes reaching a
//! follower are forwarded to the leader, a chunk asked of a node without a copy is fetched
//! from one that has it. Each etcd client is an `etcd-client` gRPC client given all three
//! members. Any failed request counts as an error: a non-2xx answer, a conflict, a timeout
//! (30 s) or an unknown outcome; the run exits non-zero if any load had one, did nothing, or a
//! server stopped.
//!
//! Limits raised for the benchmark: `--http-max-requests 4096` on every node (the default
//! 256 in flight would answer 503 to 256 clients on the single node), and the `bench` zone's
//! quotas (`PUT /v1/admin/zones/bench/quota`: chains, entries, chunks and chunk bytes) far above
//! anything a run writes, though the defaults (1,000,000 chains, 100,000,000 entries...) would
//! not be met either. Chains and chunks have no rate limits (only account endpoints do). etcd
//! gets an 8 GiB backend quota instead of 2 GiB.
//!
//! What this does not hide: the clients share the CPUs with the servers, and every node,
//! member and copy writes to the same disk, so a 3-node cluster here pays for three (Raft) or
//! two (chunks) copies on one disk.

mod load;
mod processes;
mod table;
mod targets;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::load::{Outcome, Window};
use crate::processes::{Blindstore, Etcd, Nginx, Processes};
use crate::table::{Baseline, Machine, Row};

/// Benchmarks Blindstore against etcd, nginx and the disk; prints a markdown table.
#[derive(Debug, Parser)]
struct Args {
    /// Smoke check: few clients, 0.5 s per row, no warm-up; fails only on errors or no work.
    #[arg(long)]
    quick: bool,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only these groups of rows (comma-separated: append, read, put, get, disk) [default:
    /// all].
    #[arg(long, value_delimiter = ',', value_parser = ["append", "read", "put", "get", "disk"])]
    only: Vec<String>,
    /// The `blindstore` binary to run.
    #[arg(long, default_value = "target/release/blindstore")]
    blindstore: PathBuf,
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd: PathBuf,
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// Appends made before the disk rows measure (default: 500,000; 5,000 with --quick).
    #[arg(long)]
    disk_appends: Option<u64>,
    /// Members of the Blindstore cluster, all voters: 3 (as compared with etcd's 3) or 5.
    #[arg(long, default_value_t = 3, value_parser = cluster_size)]
    nodes: usize,
    /// Where the run's temporary directory goes (data dirs, logs); the disk row measures this
    /// file system [default: the system's temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

fn cluster_size(text: &str) -> Result<usize, String> {
    match text {
        "3" => Ok(3),
        "5" => Ok(5),
        _ => Err("the cluster has 3 or 5 voters".into()),
    }
}

/// How much each row does.
struct Plan {
    window: Window,
    /// Client counts of the append rows.
    append_clients: Vec<usize>,
    /// Client count of every other row.
    clients: usize,
    disk: Window,
    /// Appends of 1 KiB made before the disk use is measured.
    disk_appends: u64,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                window: window(0.0, 0.5, 100_000),
                append_clients: vec![1, 16],
                clients: 16,
                disk: window(0.0, 0.5, 16),
                disk_appends: 5_000,
            }
        } else {
            Self {
                window: window(2.0, 8.0, 10_000_000),
                append_clients: vec![1, 16, 64, 256],
                clients: 64,
                disk: window(0.0, 5.0, 128),
                disk_appends: 500_000,
            }
        }
    }
}

fn window(warmup: f64, measure: f64, max_ops: u64) -> Window {
    Window {
        warmup: Duration::from_secs_f64(warmup),
        measure: Duration::from_secs_f64(measure),
        max_ops,
    }
}

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let interrupted = match interrupted() {
        Ok(signal) => signal,
        Err(e) => {
            eprintln!("blindstore-bench: listening for signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On a signal the run is dropped: its `Processes` stops every server, then its temporary
    // directory is removed.
    let result = tokio::select! {
        report = run(&args) => report,
        () = interrupted => Err(anyhow::anyhow!("interrupted")),
    };
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("blindstore-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.text);
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, &report.text) {
            eprintln!("blindstore-bench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if report.problems.is_empty() {
        eprintln!("blindstore-bench: every load did work without errors");
        ExitCode::SUCCESS
    } else {
        eprintln!("blindstore-bench: FAILED:\n{}", report.problems.join("\n"));
        ExitCode::FAILURE
    }
}

struct Report {
    text: String,
    /// Loads with errors or no work, servers that stopped.
    problems: Vec<String>,
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let mut plan = Plan::new(args.quick);
    if let Some(n) = args.disk_appends {
        plan.disk_appends = n;
    }
    let machine = Machine::probe();
    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("blindstore-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    // nginx's workers may run as another user and must reach their files.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .context("chmod of the run's directory")?;
    // Declared after `dir`, so dropped first: servers stop before their files go.
    let mut processes = Processes::default();
    eprintln!("starting the servers in {}", dir.path().display());
    let systems = Systems::start(args, dir.path(), &mut processes).await?;

    let mut rows = Vec::new();
    let wanted = |group: &str| args.only.is_empty() || args.only.iter().any(|g| g == group);
    if wanted("append") {
        append_rows(&systems, &plan, &mut rows).await?;
    }
    if wanted("read") {
        read_rows(&systems, &plan, &mut rows).await?;
    }
    if wanted("put") {
        chunk_put_rows(&systems, &plan, &dir.path().join("disk-probe"), &mut rows).await?;
    }
    if wanted("get") {
        chunk_get_rows(&systems, &plan, &mut rows).await?;
    }
    let disk = if wanted("disk") {
        Some(disk_use(args, &plan, dir.path(), &mut processes).await?)
    } else {
        None
    };

    let rss = processes.rss();
    let mut problems = processes.exited();
    processes.stop();
    for row in &rows {
        for outcome in row.outcomes().filter(|o| !o.is_clean()) {
            problems.push(format!(
                "{}, {} clients: {} ops, {} errors",
                row.load, row.clients, outcome.ops, outcome.errors
            ));
        }
    }
    let mode = if args.quick {
        "quick (no warm-up, 0.5 s per row)"
    } else {
        "full (2 s warm-up + 8 s measured per row)"
    };
    let setup = format!(
        "Mode: {mode}; closed-loop clients, one connection each; blindstore binary {}.",
        args.blindstore.display()
    );
    Ok(Report {
        text: table::render(&machine, &setup, args.nodes, &rows, disk.as_ref(), &rss),
        problems,
    })
}

/// Everything measured, started.
struct Systems {
    cluster: Blindstore,
    /// "3-node" or "5-node".
    cluster_label: String,
    single: Blindstore,
    etcd: Etcd,
    nginx: Nginx,
    /// The bytes of the chunks the GET rows read, and of nginx's files of the same names.
    files: [(&'static str, Vec<u8>); 2],
}

impl Systems {
    async fn start(args: &Args, dir: &Path, processes: &mut Processes) -> anyhow::Result<Self> {
        let bin = &args.blindstore;
        let cluster = Blindstore::start(processes, bin, dir, "blindstore", args.nodes).await?;
        let single = Blindstore::start(processes, bin, dir, "blindstore-single", 1).await?;
        let etcd = Etcd::start(processes, &args.etcd, &dir.join("etcd"), 3).await?;
        let files = [
            ("1 KiB", targets::random_bytes(KIB)),
            ("1 MiB", targets::random_bytes(MIB)),
        ];
        let contents: Vec<&[u8]> = files.iter().map(|(_, bytes)| bytes.as_slice()).collect();
        let nginx = Nginx::start(processes, &args.nginx, &dir.join("nginx"), &contents).await?;
        Ok(Self {
            cluster_label: format!("{}-node", args.nodes),
            cluster,
            single,
            etcd,
            nginx,
            files,
        })
    }
}

/// Appends against etcd puts, at every client count.
async fn append_rows(s: &Systems, plan: &Plan, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let (w, load) = (plan.window, "append 1 KiB");
    for &n in &plan.append_clients {
        let (c, one) = (&s.cluster, &s.single);
        let cluster = measure(load, n, &s.cluster_label, async {
            load::run(targets::appenders(&c.urls, &c.zone, n).await?, w).await
        })
        .await?;
        let etcd = measure(load, n, "etcd put", async {
            load::run(targets::etcd_putters(&s.etcd.endpoints, n).await?, w).await
        })
        .await?;
        let single = measure(load, n, "1-node", async {
            load::run(targets::appenders(&one.urls, &one.zone, n).await?, w).await
        })
        .await?;
        let etcd = Baseline::new("etcd put 1 KiB", etcd);
        rows.push(Row::new(load, n, cluster, Some(etcd), single));
    }
    Ok(())
}

/// Disk bytes per payload byte: a fresh single node takes `plan.disk_appends` appends of
/// 1 KiB from 64 clients, then its data directory is measured (allocated blocks, by part).
async fn disk_use(
    args: &Args,
    plan: &Plan,
    dir: &Path,
    processes: &mut Processes,
) -> anyhow::Result<table::DiskUse> {
    const CLIENTS: usize = 64;
    let name = "blindstore-disk";
    let node = Blindstore::start(processes, &args.blindstore, dir, name, 1).await?;
    let per_client = plan.disk_appends.div_ceil(CLIENTS as u64);
    let filling = window(0.0, 1800.0, per_client);
    eprintln!(
        "disk use: {} appends of 1 KiB ...",
        per_client * CLIENTS as u64
    );
    let outcome = load::run(
        targets::appenders(&node.urls, &node.zone, CLIENTS).await?,
        filling,
    )
    .await?;
    anyhow::ensure!(
        outcome.errors == 0,
        "disk use: {} appends failed: {:?}",
        outcome.errors,
        outcome.first_error
    );
    let data = dir.join(name);
    // Measured at rest: a snapshot being built when the load ended, and the log purge after
    // it, finish first (the size holds still for 3 s, or 120 s pass).
    let mut last = allocated(&data)?;
    let mut still = 0;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = allocated(&data)?;
        still = if now == last { still + 1 } else { 0 };
        last = now;
        if still == 3 {
            break;
        }
    }
    let parts = [
        ("Raft log (raft-wal/)", data.join("raft-wal")),
        (
            "state (state/data.mdb)",
            data.join("state").join("data.mdb"),
        ),
        (
            "state snapshot (state/snapshots/)",
            data.join("state").join("snapshots"),
        ),
        ("chunks (chunks/)", data.join("chunks")),
    ];
    let total = allocated(&data)?;
    let mut measured = Vec::new();
    for (part, path) in parts {
        measured.push((part.to_string(), allocated(&path)?));
    }
    let listed: u64 = measured.iter().map(|(_, b)| b).sum();
    measured.push(("everything else".into(), total.saturating_sub(listed)));

    // The last snapshot's build, from the node's log.
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
    let builds: Vec<(f64, u64)> = log
        .lines()
        .filter(|l| l.contains("snapshot built"))
        .filter_map(|l| Some((log_field(l, "seconds=")?, log_field(l, "bytes=")? as u64)))
        .collect();

    // A crash and a restart on that data: until it answers, then until it has applied all it
    // had.
    let client = blindstore_client::Client::new(&node.urls[0]);
    let applied = client.health().await?.last_applied.unwrap_or(0);
    processes.kill_9(name)?;
    let started = std::time::Instant::now();
    let url = Blindstore::restart_single(processes, &args.blindstore, dir, name).await?;
    let listening = started.elapsed();
    let client = blindstore_client::Client::new(&url);
    let deadline = started + Duration::from_secs(600);
    loop {
        let health = client.health().await;
        if health.is_ok_and(|h| h.last_applied.unwrap_or(0) >= applied) {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the restarted node did not apply up to {applied} within 600 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(table::DiskUse {
        appends: outcome.ops,
        payload_bytes: outcome.ops * KIB as u64,
        parts: measured,
        total,
        snapshots: builds.len(),
        last_snapshot: builds.last().copied(),
        restart: (listening, started.elapsed()),
    })
}

/// The number after `key` in a log line (`seconds=1.5`).
fn log_field(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split(|c: char| c.is_whitespace() || c == ',')
        .next()?
        .parse()
        .ok()
}

/// Bytes allocated on disk to `path` and everything under it.
fn allocated(path: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("measuring {}", path.display())),
    };
    let mut bytes = meta.blocks() * 512;
    if meta.is_dir() {
        for item in std::fs::read_dir(path)? {
            bytes += allocated(&item?.path())?;
        }
    }
    Ok(bytes)
}

/// Head reads and `last=20` reads against etcd's linearizable gets.
async fn read_rows(s: &Systems, plan: &Plan, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    use targets::ChainReadKind::{Head, Last};
    let (w, n) = (plan.window, plan.clients);
    let (c, one) = (&s.cluster, &s.single);
    let cluster_chains = targets::read_chains(&c.urls, &c.zone).await?;
    let single_chains = targets::read_chains(&one.urls, &one.zone).await?;
    let keys = targets::read_keys(&s.etcd.endpoints).await?;

    let load = "chain head read";
    let cluster = measure(load, n, &s.cluster_label, async {
        let readers = targets::chain_readers(&c.urls, &c.zone, &cluster_chains, n, Head);
        load::run(readers, w).await
    })
    .await?;
    let etcd = measure(load, n, "etcd get", async {
        load::run(targets::etcd_getters(&s.etcd.endpoints, &keys, n).await?, w).await
    })
    .await?;
    let single = measure(load, n, "1-node", async {
        let readers = targets::chain_readers(&one.urls, &one.zone, &single_chains, n, Head);
        load::run(readers, w).await
    })
    .await?;
    let etcd_get = Baseline::new("etcd get 1 KiB (linearizable)", etcd);
    rows.push(Row::new(load, n, cluster, Some(etcd_get.clone()), single));

    let load = "entries?last=20 (1 KiB each)";
    let cluster = measure(load, n, &s.cluster_label, async {
        let readers = targets::chain_readers(&c.urls, &c.zone, &cluster_chains, n, Last);
        load::run(readers, w).await
    })
    .await?;
    let single = measure(load, n, "1-node", async {
        let readers = targets::chain_readers(&one.urls, &one.zone, &single_chains, n, Last);
        load::run(readers, w).await
    })
    .await?;
    let etcd_get = Baseline::new("etcd get (the row above)", etcd_get.outcome);
    rows.push(Row::new(load, n, cluster, Some(etcd_get), single));
    Ok(())
}

/// Chunk uploads; the 1 MiB row against the disk's fsynced write bandwidth, measured in the
/// data directories' file system (`probe`).
async fn chunk_put_rows(
    s: &Systems,
    plan: &Plan,
    probe: &Path,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let (w, n) = (plan.window, plan.clients);
    let (c, one) = (&s.cluster, &s.single);
    for (size, load) in [
        (KIB, "chunk PUT 1 KiB"),
        (MIB, "chunk PUT 1 MiB (ops/s = MiB/s)"),
    ] {
        let cluster = measure(load, n, &s.cluster_label, async {
            load::run(targets::chunk_putters(&c.urls, &c.zone, size, n), w).await
        })
        .await?;
        let disk = if size == MIB {
            let disk = measure(load, 1, "disk", async {
                load::run(vec![targets::DiskWrite::create(probe, MIB)?], plan.disk).await
            })
            .await?;
            std::fs::remove_file(probe).context("removing the disk probe")?;
            Some(Baseline::new(
                "disk: 1 MiB write + fdatasync, 1 writer",
                disk,
            ))
        } else {
            None
        };
        let single = measure(load, n, "1-node", async {
            load::run(targets::chunk_putters(&one.urls, &one.zone, size, n), w).await
        })
        .await?;
        rows.push(Row::new(load, n, cluster, disk, single));
    }
    Ok(())
}

/// One stored chunk read over and over, against nginx serving the same bytes.
async fn chunk_get_rows(s: &Systems, plan: &Plan, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let (w, n) = (plan.window, plan.clients);
    let (c, one) = (&s.cluster, &s.single);
    for (name, bytes) in &s.files {
        let (load, size) = (format!("cached chunk GET {name}"), bytes.len());
        let cluster_path = stored_chunk(c, bytes).await?;
        let single_path = stored_chunk(one, bytes).await?;
        let cluster = measure(&load, n, &s.cluster_label, async {
            load::run(targets::getters(&c.urls, &cluster_path, size, n), w).await
        })
        .await?;
        let nginx = measure(&load, n, "nginx", async {
            let url = std::slice::from_ref(&s.nginx.url);
            load::run(targets::getters(url, &Nginx::path(size), size, n), w).await
        })
        .await?;
        let single = measure(&load, n, "1-node", async {
            load::run(targets::getters(&one.urls, &single_path, size, n), w).await
        })
        .await?;
        let nginx = Baseline::new(&format!("nginx static file {name}"), nginx);
        rows.push(Row::new(&load, n, cluster, Some(nginx), single));
    }
    Ok(())
}

/// Stores `bytes` as a chunk (through the first node); the path to GET it.
async fn stored_chunk(system: &Blindstore, bytes: &[u8]) -> anyhow::Result<String> {
    let hash = targets::store_chunk(&system.urls[0], &system.zone, bytes.to_vec()).await?;
    Ok(format!("/v1/zones/{}/chunks/{hash}", system.zone))
}

/// Runs one measurement, saying on standard error what it got.
async fn measure(
    load: &str,
    clients: usize,
    system: &str,
    outcome: impl Future<Output = anyhow::Result<Outcome>>,
) -> anyhow::Result<Outcome> {
    let outcome = outcome
        .await
        .with_context(|| format!("{load}, {clients} clients, {system}"))?;
    eprintln!(
        "{load:<32} {clients:>4} clients  {system:<9} {:>9.0} ops/s  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}",
        outcome.ops_per_sec,
        outcome.p50.as_secs_f64() * 1e3,
        outcome.p99.as_secs_f64() * 1e3,
        outcome.errors
    );
    Ok(outcome)
}

/// Resolves on Ctrl-C or SIGTERM.
fn interrupted() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
