//! `blindstore-jepsen`: runs a cluster of real `blindstore` processes under concurrent clients
//! and injected faults, then checks the recorded history.
//!
//! Exit status: 0 the history is valid (with `--expect`: the expected anomaly was found),
//! 1 an anomaly was found (with `--expect`: it was not), 2 the run could not decide (harness
//! failure, final reads impossible, a fault kind never installed in a short run).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use blindstore_client::ChainWriter;
use blindstore_jepsen::checker::{self, ChunkFinal};
use blindstore_jepsen::cluster::{self, Cluster, Network, NodeSettings};
use blindstore_jepsen::history::Outcome;
use blindstore_jepsen::nemesis::{self, Fault, FaultEvent, Nemesis, Who, KINDS};
use blindstore_jepsen::report;
use blindstore_jepsen::workload::{self, Chains, ChunkLedger, Recorder, Targets};
use blindstore_types::{Hash32, ZoneId};
use clap::Parser;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "blindstore-jepsen",
    about = "Fault-injection verification of Blindstore"
)]
struct Args {
    /// The long mode for people: 5 nodes, 30 minutes, random faults and mixes.
    #[arg(long)]
    long: bool,
    /// Nodes to start (default 3, or 5 with --long).
    #[arg(long)]
    nodes: Option<usize>,
    /// How long clients run: with --long, 30m by default; otherwise as long as the fault
    /// schedule takes, or longer if given.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Seed of every random choice (clients, faults, keys); random if not given.
    #[arg(long)]
    seed: Option<u64>,
    /// The blindstore binary.
    #[arg(long, default_value = "target/debug/blindstore")]
    binary: PathBuf,
    /// Where the history, results and node logs go (default target/jepsen/<time>-<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run with a negative control switched on in every node (stale-reads, early-ack,
    /// skip-cas); needs a binary built with `--features negative-controls`.
    #[arg(long)]
    control: Option<String>,
    /// With --control: succeed only if the checker reports this anomaly family
    /// (stale_read, lost, fork).
    #[arg(long)]
    expect: Option<String>,
    /// Chain client workers.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Chains written at a time.
    #[arg(long, default_value_t = 20)]
    chains: usize,
    /// Seconds each fault is held.
    #[arg(long, default_value_t = 6.0)]
    hold: f64,
    /// Seconds of calm between faults.
    #[arg(long, default_value_t = 3.0)]
    quiet: f64,
    /// A rolling upgrade instead of faults: the nodes, started from --binary, are replaced one
    /// at a time (followers first, then the leader) with this binary while clients run, each
    /// stopped as an operator does (SIGTERM). Valid if no acknowledged write is lost, writes
    /// never stop for longer than --max-write-gap, and the cluster's version then moves to the
    /// new build's level.
    #[arg(long)]
    upgrade_to: Option<PathBuf>,
    /// With --upgrade-to: the longest time, in seconds, no append may be acknowledged while
    /// nodes are replaced: one leader election (a follower waits 1-2 s for a lost leader, then
    /// a vote) and the clients' retry on another node.
    #[arg(long, default_value_t = 5.0)]
    max_write_gap: f64,
}

/// What a rolling upgrade run found beyond the history's checks.
struct UpgradeCheck {
    /// The longest time no append was acknowledged, from the first replacement until the
    /// clients stopped.
    longest_gap_s: f64,
    bound_s: f64,
    /// Each node's build's level and the cluster's version, once they settled (`None`: the
    /// version did not move within the limit).
    settled: Option<(Vec<u32>, u32)>,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    // Ctrl-C (or SIGTERM) drops the run, and with it the cluster: its processes are killed and its
    // namespaces and bridge removed.
    let outcome = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return Err(anyhow::anyhow!("cannot listen for SIGINT/SIGTERM"));
        };
        tokio::select! {
            outcome = run(args) => outcome,
            _ = interrupt.recv() => Err(anyhow::anyhow!("interrupted; nodes stopped")),
            _ = terminate.recv() => Err(anyhow::anyhow!("terminated; nodes stopped")),
        }
    });
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("blindstore-jepsen: could not decide: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

async fn run(args: Args) -> anyhow::Result<i32> {
    Network::preflight()?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let nodes = args.nodes.unwrap_or(if args.long { 5 } else { 3 });
    let mode = if args.upgrade_to.is_some() {
        "upgrade"
    } else if args.long {
        "long"
    } else {
        "short"
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        PathBuf::from(format!("target/jepsen/{now}-{seed}"))
    });
    std::fs::create_dir_all(&out)?;
    let out = out.canonicalize()?;
    let binary = args
        .binary
        .canonicalize()
        .with_context(|| format!("the blindstore binary {}", args.binary.display()))?;
    let revision = git_revision();
    // The command that repeats this run: the seed is added when it was drawn at random.
    let mut command_line: Vec<String> = std::env::args().collect();
    if args.seed.is_none() {
        command_line.extend(["--seed".to_owned(), seed.to_string()]);
    }
    println!(
        "blindstore-jepsen: {mode} run, {nodes} nodes, seed {seed}, revision {revision}{}",
        args.control
            .as_ref()
            .map(|c| format!(", negative control {c}"))
            .unwrap_or_default()
    );
    println!("  output: {}", out.display());

    let mut rng = StdRng::seed_from_u64(seed);
    let schedule: Vec<Fault> = match args.control.as_deref() {
        Some("stale-reads") => vec![nemesis::Fault::Partition(nemesis::Partition::Halves)],
        Some("early-ack") => vec![Fault::Kill(Who::Leader), Fault::Kill(Who::Leader)],
        Some("skip-cas") => vec![Fault::Pause(Who::Follower)],
        Some(other) => bail!("unknown negative control {other:?}"),
        None if args.upgrade_to.is_some() => nemesis::upgrade_schedule(nodes),
        None if args.long => Vec::new(),
        None => nemesis::short_schedule(nodes),
    };
    let per_fault = args.hold + args.quiet + 2.0;
    let duration = args.duration.unwrap_or(if args.long {
        Duration::from_secs(1800)
    } else {
        Duration::from_secs_f64(10.0 + per_fault * schedule.len() as f64)
    });

    let settings = NodeSettings {
        binary: binary.clone(),
        voters: nodes.min(5),
        admin_token: format!("jepsen-{seed:016x}"),
        negative_control: args.control.clone(),
        extra_args: [
            "--down-after",
            "3s",
            "--repair-interval",
            "1s",
            "--snapshot-logs",
            "2000",
        ]
        .map(String::from)
        .to_vec(),
    };
    let cluster = Cluster::start(&out, settings, nodes)?;
    let start = Instant::now();
    let recorder = Recorder::new(start);
    let targets = Targets::default();
    let ledger = Arc::new(Mutex::new(ChunkLedger::default()));
    let client_timeout = Duration::from_secs(5);
    let mut nemesis = Nemesis {
        cluster,
        targets: targets.clone(),
        ledger: ledger.clone(),
        rng: StdRng::seed_from_u64(rng.gen()),
        client_timeout,
        upgrade_to: args
            .upgrade_to
            .as_ref()
            .map(|b| {
                b.canonicalize()
                    .with_context(|| format!("the binary to upgrade to {}", b.display()))
            })
            .transpose()?,
    };
    nemesis.refresh_targets();
    if nemesis
        .cluster
        .converge(Duration::from_secs(60))
        .await
        .is_none()
    {
        bail!("the cluster did not form within 60 s");
    }

    // Setup: the zone and the chains (enough that none grows past max_len).
    let zone = ZoneId::new("jepsen").expect("a valid zone id");
    let admin = nemesis
        .cluster
        .client(1, Duration::from_secs(10))
        .expect("node 1");
    retry("creating the zone", || admin.create_zone(&zone)).await?;
    let total_chains = args.chains * (1 + duration.as_secs() as usize / 60);
    let mut writers = Vec::new();
    for _ in 0..total_chains {
        let writer = ChainWriter::new(zone.clone(), SigningKey::from_bytes(&rng.gen()));
        retry("creating a chain", || {
            admin.create_chain(&zone, writer.public_key())
        })
        .await?;
        writers.push(writer);
    }
    let chains = Arc::new(Chains::new(zone.clone(), writers, 300, args.chains));
    println!(
        "  cluster of {nodes} formed, {total_chains} chains created; clients run {:.0}s",
        duration.as_secs_f64()
    );

    // Clients: they run until the schedule is done (short) or for the duration (long).
    let stop = workload::Stop::default();
    let until = Instant::now() + duration;
    let mut clients = Vec::new();
    for w in 0..args.workers {
        clients.push(tokio::spawn(workload::chain_worker(
            w,
            rng.gen(),
            stop.clone(),
            chains.clone(),
            targets.clone(),
            recorder.clone(),
        )));
    }
    clients.push(tokio::spawn(workload::chunk_worker(
        rng.gen(),
        stop.clone(),
        Duration::from_millis(if args.long { 20 } else { 0 }),
        zone.clone(),
        ledger.clone(),
        targets.clone(),
        recorder.clone(),
    )));

    // Leader changes, seen from outside: every node asked twice a second.
    let leaders = Arc::new(Mutex::new(Vec::<(f64, u64)>::new()));
    let monitor = tokio::spawn(watch_leader(
        targets.clone(),
        leaders.clone(),
        start,
        stop.clone(),
    ));

    // Faults.
    let mut faults: Vec<FaultEvent> = Vec::new();
    // Followers that never caught up after a lag fault (a liveness failure: the run is invalid).
    let mut stuck: Vec<String> = Vec::new();
    let mut scheduled = schedule.into_iter();
    tokio::time::sleep(Duration::from_secs_f64(args.quiet)).await;
    let base_nodes = nodes;
    loop {
        let remaining = until
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        if args.long && remaining < args.hold + 3.0 {
            break;
        }
        let fault = if args.long {
            nemesis::random_fault(&mut nemesis.rng, nemesis.cluster.nodes.len(), base_nodes)
        } else {
            match scheduled.next() {
                Some(f) => f,
                None => break,
            }
        };
        let leader = nemesis.cluster.leader().await;
        let started = start.elapsed().as_secs_f64();
        let installed = nemesis.install(&fault).await;
        let (status, installed, detail) = match installed {
            Ok(i) if i.skipped.is_some() => {
                let reason = i.skipped.clone().unwrap_or_default();
                ("skipped", Some(i), reason)
            }
            Ok(i) => {
                let detail = i.detail.join("; ");
                ("installed", Some(i), detail)
            }
            Err(e) => ("indeterminate", None, format!("{e:#}")),
        };
        let hold = if args.long {
            nemesis.rng.gen_range(args.hold..args.hold * 2.5)
        } else {
            args.hold
        };
        if status == "installed" {
            tokio::time::sleep(Duration::from_secs_f64(hold)).await;
        }
        let targets_hit = installed
            .as_ref()
            .map(|i| i.targets.clone())
            .unwrap_or_default();
        if let Some(i) = &installed {
            nemesis.heal(i)?;
        } else {
            nemesis.cluster.heal_all()?;
        }
        let ended = start.elapsed().as_secs_f64();
        let lagging = installed.as_ref().and_then(|i| i.lagging);
        let caught_up = match lagging {
            Some(id) if status == "installed" => {
                let caught = nemesis.caught_up(id, Duration::from_secs(90)).await;
                if caught.is_none() {
                    stuck.push(format!("node {id} did not catch up after {}", fault.name()));
                }
                caught
            }
            _ => None,
        };
        let restores = matches!(fault.kind(), "kill" | "disk" | "mix" | "lag" | "upgrade")
            && status != "skipped";
        let restored = if restores {
            nemesis.replication_restored(Duration::from_secs(30)).await
        } else {
            None
        };
        let event = FaultEvent {
            kind: fault.kind(),
            name: fault.name(),
            status,
            leader_targeted: leader.is_some_and(|l| targets_hit.contains(&l)),
            targets: targets_hit,
            start_s: started,
            end_s: ended,
            detail,
            replication_restored_s: restored,
            caught_up_s: caught_up,
        };
        println!(
            "  {:>6.1}s {} {} {:?}{} {}",
            event.start_s,
            event.name,
            event.status,
            event.targets,
            if event.leader_targeted {
                " (leader)"
            } else {
                ""
            },
            event.detail
        );
        faults.push(event);
        let quiet = if args.long {
            nemesis.rng.gen_range(args.quiet..args.quiet * 3.0)
        } else {
            args.quiet
        };
        tokio::time::sleep(Duration::from_secs_f64(quiet)).await;
    }
    if args.long || args.duration.is_some() {
        tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    }
    stop.stop();
    let clients_ran = start.elapsed();
    for client in clients {
        client.await.context("a client task failed")?;
    }
    monitor.await.context("the leader monitor failed")?;

    // Heal everything, wait for convergence, then the final reads.
    nemesis.cluster.heal_all()?;
    nemesis.refresh_targets();
    let healed_at = Instant::now();
    let converged = nemesis
        .cluster
        .converge(Duration::from_secs(180))
        .await
        .map(|_| healed_at.elapsed().as_secs_f64());
    let mut final_rng = StdRng::seed_from_u64(rng.gen());
    let mut undecided = Vec::new();
    for chain in 0..chains.writers.len() {
        let mut done = false;
        for _ in 0..20 {
            let Some((node, client)) = targets.pick(&mut final_rng) else {
                break;
            };
            let process = recorder.new_process();
            let (outcome, _) = workload::read(
                &client, node, &chains, chain, false, true, process, &recorder,
            )
            .await;
            if outcome == Outcome::Ok {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !done {
            undecided.push(chain);
        }
    }
    let finals = chunk_finals(&nemesis, &zone, &ledger).await;

    // Check and report.
    let ops = recorder.ops();
    let verdict = checker::check(&ops, &finals, 2)?;
    let stats = report::op_stats(&ops);
    let availability = report::availability(&ops, &faults);
    let fault_counts = report::fault_counts(&faults);
    let leader_changes = {
        let seen = leaders.lock().expect("leaders lock");
        seen.len().saturating_sub(1)
    };
    let missing_kinds: Vec<&str> = if args.upgrade_to.is_some() {
        let replaced = fault_counts.get("upgrade").map_or(0, |c| c.installed);
        if replaced == nodes {
            Vec::new()
        } else {
            vec!["upgrade"]
        }
    } else if args.long || args.control.is_some() {
        Vec::new()
    } else {
        KINDS
            .iter()
            .copied()
            .filter(|k| fault_counts.get(k).is_none_or(|c| c.installed == 0))
            .collect()
    };
    let leader_hit = faults
        .iter()
        .any(|f| f.leader_targeted && f.status == "installed");

    let upgrade = match args.upgrade_to {
        Some(_) => {
            let from = faults.first().map_or(0.0, |f| f.start_s);
            let longest_gap_s = report::longest_write_gap(&ops, from, clients_ran.as_secs_f64());
            let settled = settled_version(&nemesis, Duration::from_secs(30)).await;
            Some(UpgradeCheck {
                longest_gap_s,
                bound_s: args.max_write_gap,
                settled,
            })
        }
        None => None,
    };
    let (code, conclusion) = conclude(
        &args,
        &verdict,
        upgrade.as_ref(),
        &stuck,
        &undecided,
        &missing_kinds,
        leader_hit || args.control.is_some(),
    );

    let mut history = std::io::BufWriter::new(std::fs::File::create(out.join("history.jsonl"))?);
    for op in &ops {
        serde_json::to_writer(&mut history, op)?;
        history.write_all(b"\n")?;
    }
    history.flush()?;
    let results = json!({
        "seed": seed,
        "mode": mode,
        "revision": revision,
        "command": command_line,
        "settings": {
            "nodes": nodes,
            "duration_s": clients_ran.as_secs_f64(),
            "workers": args.workers,
            "chains_active": args.chains,
            "chains_total": total_chains,
            "hold_s": args.hold,
            "quiet_s": args.quiet,
            "negative_control": args.control,
            "expect": args.expect,
            "binary": binary,
        },
        "exit_code": code,
        "valid": verdict.is_valid(),
        "conclusion": conclusion,
        "operations": stats,
        "availability": availability,
        "faults": faults,
        "faults_by_kind": fault_counts,
        "leader_changes": leader_changes,
        "converged_after_heal_s": converged,
        "replication_restored_s": faults.iter().filter_map(|f| f.replication_restored_s).collect::<Vec<_>>(),
        "caught_up_s": faults.iter().filter_map(|f| f.caught_up_s).collect::<Vec<_>>(),
        "never_caught_up": stuck,
        "lost_acknowledged_appends": verdict.lost_appends,
        "lost_acknowledged_chunks": verdict.lost_chunks,
        "chunks_acknowledged": finals.len(),
        "chains_undecided": undecided,
        "anomaly_counts": verdict.counts.iter().map(|(k, n)| (format!("{k:?}"), *n)).collect::<std::collections::BTreeMap<_, _>>(),
        "anomalies": verdict.anomalies,
        "upgrade": upgrade.as_ref().map(|u| json!({
            "longest_write_gap_s": u.longest_gap_s,
            "max_write_gap_s": u.bound_s,
            "feature_levels": u.settled.as_ref().map(|s| s.0.clone()),
            "cluster_version": u.settled.as_ref().map(|s| s.1),
        })),
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let header = format!(
        "blindstore-jepsen {mode} run: {nodes} nodes, seed {seed}, revision {revision}, {:.0}s of clients{}\nrepeat with: {}\n",
        clients_ran.as_secs_f64(),
        args.control
            .as_ref()
            .map(|c| format!(", negative control {c}"))
            .unwrap_or_default(),
        command_line.join(" ")
    );
    let text = report::text(
        &header,
        &stats,
        &availability,
        &faults,
        leader_changes,
        &verdict,
        converged,
        &upgrade.as_ref().map(upgrade_lines).unwrap_or_default(),
        &conclusion,
    );
    std::fs::write(out.join("report.txt"), &text)?;
    print!("{text}");
    println!("history: {}", out.join("history.jsonl").display());
    println!("results: {}", out.join("results.json").display());
    Ok(code)
}

/// The exit code and the sentence that explains it.
fn conclude(
    args: &Args,
    verdict: &checker::Verdict,
    upgrade: Option<&UpgradeCheck>,
    stuck: &[String],
    undecided: &[usize],
    missing_kinds: &[&str],
    leader_hit: bool,
) -> (i32, String) {
    if let Some(expected) = &args.expect {
        let control = args.control.as_deref().unwrap_or("none");
        return if verdict.has_family(expected) {
            (
                0,
                format!("VALID CONTROL: negative control {control} was reported invalid with {expected}, as it must be"),
            )
        } else {
            (
                1,
                format!("CONTROL NOT CAUGHT: negative control {control} was not reported with {expected}"),
            )
        };
    }
    if !verdict.is_valid() {
        return (1, "INVALID: anomalies found (see above)".into());
    }
    if !stuck.is_empty() {
        return (
            1,
            format!("INVALID: lagging followers never caught up: {stuck:?}"),
        );
    }
    if let Some(u) = upgrade {
        if u.longest_gap_s > u.bound_s {
            return (
                1,
                format!(
                    "INVALID: no append was acknowledged for {:.1}s during the upgrade, longer than the bound of {:.1}s",
                    u.longest_gap_s, u.bound_s
                ),
            );
        }
        if u.settled.is_none() {
            return (
                1,
                "INVALID: the cluster's version did not move to the new build's level after every node was replaced".into(),
            );
        }
    }
    if !undecided.is_empty() {
        return (
            2,
            format!("UNDECIDED: no final read succeeded for chains {undecided:?}"),
        );
    }
    if !missing_kinds.is_empty() {
        return (
            2,
            format!("UNDECIDED: fault kinds never installed: {missing_kinds:?}"),
        );
    }
    if !leader_hit {
        return (2, "UNDECIDED: no fault targeted the leader".into());
    }
    (0, "VALID: no anomalies".into())
}

/// The upgrade's lines in the report.
fn upgrade_lines(u: &UpgradeCheck) -> String {
    let settled = match &u.settled {
        Some((levels, version)) => {
            format!("nodes' build levels {levels:?}, cluster version {version}")
        }
        None => "the cluster's version did NOT move within 30 s".into(),
    };
    format!(
        "upgrade          longest time without an acknowledged append {:.2}s (bound {:.1}s); {settled}\n",
        u.longest_gap_s, u.bound_s
    )
}

/// Waits (at most `limit`) until every node answers, each states its build's level (every
/// build with levels does) and all have applied the cluster version those levels allow (the
/// lowest): the levels and the version.
async fn settled_version(nemesis: &Nemesis, limit: Duration) -> Option<(Vec<u32>, u32)> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let healths = nemesis.cluster.healths(&nemesis.cluster.ids()).await;
        if let Some(healths) = healths.into_iter().collect::<Option<Vec<_>>>() {
            let levels: Vec<u32> = healths.iter().map(|h| h.feature_level).collect();
            let lowest = levels.iter().copied().min().unwrap_or(0);
            if lowest > 0 && healths.iter().all(|h| h.cluster_version == lowest) {
                return Some((levels, lowest));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// Final state of every acknowledged chunk: readable and intact from some node, and on how
/// many live nodes.
async fn chunk_finals(
    nemesis: &Nemesis,
    zone: &ZoneId,
    ledger: &Arc<Mutex<ChunkLedger>>,
) -> Vec<ChunkFinal> {
    let acked: Vec<Hash32> = ledger.lock().expect("ledger lock").acked.clone();
    let live = nemesis.cluster.live();
    let clients: Vec<_> = live
        .iter()
        .filter_map(|id| nemesis.cluster.client(*id, Duration::from_secs(10)))
        .collect();
    let check = |(i, hash): (usize, Hash32)| {
        let clients = &clients;
        let live = &live;
        async move {
            let mut readable = false;
            let mut intact = false;
            let n = clients.len();
            for client in clients.iter().cycle().skip(i % n.max(1)).take(n) {
                if let Ok(bytes) = client.get_chunk(zone, &hash).await {
                    readable = true;
                    intact = Hash32::digest(&bytes) == hash;
                    if intact {
                        break;
                    }
                }
            }
            let mut live_copies = 0;
            for client in clients {
                if let Ok(replicas) = client.replicas(zone, &hash).await {
                    live_copies = replicas
                        .node_ids
                        .iter()
                        .filter(|id| live.contains(id))
                        .count();
                    break;
                }
            }
            ChunkFinal {
                hash: hash.to_string(),
                readable,
                intact,
                live_copies,
            }
        }
    };
    futures::stream::iter(acked.into_iter().enumerate())
        .map(check)
        .buffer_unordered(16)
        .collect()
        .await
}

/// Records the leader (the node that says it leads, highest term) whenever it changes.
async fn watch_leader(
    targets: Targets,
    leaders: Arc<Mutex<Vec<(f64, u64)>>>,
    start: Instant,
    stop: workload::Stop,
) {
    while !stop.stopped() {
        let clients = targets.all().into_iter().map(|(_, client)| client);
        let answers = cluster::healths(clients, Duration::from_millis(400)).await;
        if let Some(id) = cluster::leader_of(answers.iter().flatten()) {
            let mut seen = leaders.lock().expect("leaders lock");
            if seen.last().is_none_or(|(_, last)| *last != id) {
                seen.push((start.elapsed().as_secs_f64(), id));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Retries a setup step for up to 60 s (setup is not part of the history).
async fn retry<T, F, Fut>(what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, blindstore_client::ClientError>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline => {
                eprintln!("  {what}: {e} (retrying)");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("{what}: {e}")),
        }
    }
}

fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}
