//! Faults: what they are, how each is installed and healed, and what was recorded of it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::workload::{ChunkLedger, Targets};

/// One fault to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9`, then restart after the hold.
    Kill(Who),
    /// SIGSTOP, then SIGCONT after the hold (longer than the election timeout).
    Pause(Who),
    Partition(Partition),
    /// A new node joins under load.
    Join,
    /// A node is drained and removed under load (`blindstore cluster remove`).
    Remove,
    /// A stopped node's chunk data gets bytes flipped inside stored chunks, then it restarts.
    DiskFlip,
    /// A stopped node's chunk data file is cut to half its length, then it restarts.
    DiskTruncate,
    /// A follower is killed while the nemesis appends a burst of large entries (each
    /// referencing the most chunks an entry may: several MB in all, more than one Raft message
    /// carries); after the restart it must catch up with the leader's log.
    Lag,
    /// Two faults at once.
    Mix(Box<Fault>, Box<Fault>),
    /// A rolling upgrade's step: a node not yet replaced is stopped as an operator does
    /// (SIGTERM), stays down while the fault is held, and is started again with the newer
    /// binary (`Nemesis::upgrade_to`) on the same data dir.
    Upgrade(Who),
}

/// Chunks each entry of a lag burst references.
const LAG_CHUNKS: u32 = 512;
/// Entries in a lag burst: about 17 KB each, 2 MB in all (twice the largest append batch).
const LAG_ENTRIES: u64 = 120;

/// Whom a process fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Leader,
    Follower,
    /// As many nodes as can fail with a majority left (1 of 3, 2 of 5), the leader among them.
    Minority,
}

/// The shapes of network partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// The leader alone on one side.
    IsolateLeader,
    /// A random majority and minority.
    Halves,
    /// Each node hears only its ring neighbours (needs 4 or more nodes to differ from none).
    Ring,
    /// Two sides that cannot hear each other, and one node that hears both.
    Bridge,
    /// The leader hears no one but everyone hears it.
    OneWay,
}

impl Fault {
    /// The kind the report groups by.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill",
            Fault::Pause(_) => "pause",
            Fault::Partition(_) => "partition",
            Fault::Join | Fault::Remove => "membership",
            Fault::DiskFlip | Fault::DiskTruncate => "disk",
            Fault::Lag => "lag",
            Fault::Mix(..) => "mix",
            Fault::Upgrade(_) => "upgrade",
        }
    }

    pub fn name(&self) -> String {
        match self {
            Fault::Kill(who) => format!("kill-{}", who.name()),
            Fault::Pause(who) => format!("pause-{}", who.name()),
            Fault::Partition(p) => format!("partition-{}", p.name()),
            Fault::Join => "join".into(),
            Fault::Remove => "remove".into(),
            Fault::DiskFlip => "disk-flip".into(),
            Fault::DiskTruncate => "disk-truncate".into(),
            Fault::Lag => "lag-large-entries".into(),
            Fault::Mix(a, b) => format!("mix({}+{})", a.name(), b.name()),
            Fault::Upgrade(who) => format!("upgrade-{}", who.name()),
        }
    }
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Leader => "leader",
            Who::Follower => "follower",
            Who::Minority => "minority",
        }
    }
}

impl Partition {
    fn name(self) -> &'static str {
        match self {
            Partition::IsolateLeader => "isolate-leader",
            Partition::Halves => "halves",
            Partition::Ring => "ring",
            Partition::Bridge => "bridge",
            Partition::OneWay => "one-way",
        }
    }
}

/// The live nodes other than the leader.
fn followers(live: &[u64], leader: Option<u64>) -> Vec<u64> {
    live.iter()
        .copied()
        .filter(|id| Some(*id) != leader)
        .collect()
}

/// The kinds every short run must install at least once.
pub const KINDS: [&str; 7] = [
    "kill",
    "pause",
    "partition",
    "membership",
    "disk",
    "lag",
    "mix",
];

/// The short run's schedule: every kind, the leader first.
pub fn short_schedule(nodes: usize) -> Vec<Fault> {
    let mut faults = vec![
        Fault::Kill(Who::Leader),
        Fault::Pause(Who::Leader),
        Fault::Partition(Partition::IsolateLeader),
        Fault::Join,
        Fault::DiskFlip,
        Fault::Partition(Partition::Halves),
        Fault::Kill(Who::Follower),
        Fault::Partition(Partition::Bridge),
        Fault::Remove,
        Fault::Partition(Partition::OneWay),
        Fault::DiskTruncate,
        Fault::Lag,
        Fault::Mix(
            Box::new(Fault::Partition(Partition::Halves)),
            Box::new(Fault::Pause(Who::Follower)),
        ),
    ];
    if nodes >= 5 {
        faults.push(Fault::Partition(Partition::Ring));
        faults.push(Fault::Kill(Who::Minority));
    }
    faults
}

/// A rolling upgrade of `nodes` nodes: the followers one at a time, then the leader.
pub fn upgrade_schedule(nodes: usize) -> Vec<Fault> {
    let mut steps = vec![Fault::Upgrade(Who::Follower); nodes.saturating_sub(1)];
    steps.push(Fault::Upgrade(Who::Leader));
    steps
}

/// A random fault for long runs; membership changes keep the cluster between `base` and
/// `base + 1` nodes.
pub fn random_fault(rng: &mut StdRng, nodes_now: usize, base: usize) -> Fault {
    let single = |rng: &mut StdRng| -> Fault {
        let who = *[Who::Leader, Who::Follower, Who::Minority]
            .choose(rng)
            .expect("non-empty");
        match rng.gen_range(0..8) {
            0 => Fault::Kill(who),
            1 => Fault::Pause(if who == Who::Minority {
                Who::Leader
            } else {
                who
            }),
            2 | 3 => Fault::Partition(
                *[
                    Partition::IsolateLeader,
                    Partition::Halves,
                    Partition::Ring,
                    Partition::Bridge,
                    Partition::OneWay,
                ]
                .choose(rng)
                .expect("non-empty"),
            ),
            4 if nodes_now > base => Fault::Remove,
            4 => Fault::Join,
            5 => Fault::DiskFlip,
            6 => Fault::Lag,
            _ => Fault::DiskTruncate,
        }
    };
    if rng.gen_bool(0.25) {
        // Mixes pair a network fault with a process fault, never two membership changes.
        let a = Fault::Partition(
            *[
                Partition::Halves,
                Partition::IsolateLeader,
                Partition::OneWay,
            ]
            .choose(rng)
            .expect("non-empty"),
        );
        let b = match rng.gen_range(0..3) {
            0 => Fault::Kill(Who::Follower),
            1 => Fault::Pause(Who::Follower),
            _ => Fault::DiskFlip,
        };
        Fault::Mix(Box::new(a), Box::new(b))
    } else {
        single(rng)
    }
}

/// What happened to one fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    pub kind: &'static str,
    pub name: String,
    /// `installed`, `skipped` (could not apply here: the reason is in `detail`) or
    /// `indeterminate` (may or may not have taken effect).
    pub status: &'static str,
    pub targets: Vec<u64>,
    /// The leader at the time was among the targets.
    pub leader_targeted: bool,
    pub start_s: f64,
    pub end_s: f64,
    pub detail: String,
    /// After healing: seconds until no chunk was under-replicated (kills and disk damage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_restored_s: Option<f64>,
    /// Lag: seconds until the restarted follower had applied the leader's log (`None` after
    /// the limit: the run is invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caught_up_s: Option<f64>,
}

/// What a fault left to heal.
#[derive(Debug, Default)]
pub struct Installed {
    pub targets: Vec<u64>,
    killed: Vec<u64>,
    paused: Vec<u64>,
    partitioned: bool,
    /// Lag: the follower that must catch up.
    pub lagging: Option<u64>,
    pub detail: Vec<String>,
    pub skipped: Option<String>,
}

/// The nemesis: applies faults to the cluster.
pub struct Nemesis {
    pub cluster: Cluster,
    pub targets: Targets,
    pub ledger: Arc<Mutex<ChunkLedger>>,
    pub rng: StdRng,
    pub client_timeout: Duration,
    /// The binary `Fault::Upgrade` replaces nodes' with.
    pub upgrade_to: Option<std::path::PathBuf>,
}

impl Nemesis {
    /// Installs `fault`. Returns what to heal.
    pub async fn install(&mut self, fault: &Fault) -> anyhow::Result<Installed> {
        let mut done = Installed::default();
        self.install_into(fault, &mut done).await?;
        Ok(done)
    }

    fn install_into<'a>(
        &'a mut self,
        fault: &'a Fault,
        done: &'a mut Installed,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>> {
        Box::pin(async move {
            let leader = self.cluster.leader().await;
            let live = self.cluster.live();
            match fault {
                Fault::Kill(who) | Fault::Pause(who) => {
                    // In a mix, nodes behind a partition may still be killed or paused, but
                    // not twice.
                    let taken: Vec<u64> = done.killed.iter().chain(&done.paused).copied().collect();
                    let chosen = self.choose(*who, leader, &live, &taken);
                    if chosen.is_empty() {
                        done.skipped = Some("no node to target".into());
                    }
                    for id in chosen {
                        if matches!(fault, Fault::Kill(_)) {
                            self.cluster.kill(id)?;
                            done.killed.push(id);
                        } else {
                            self.cluster.pause(id)?;
                            done.paused.push(id);
                        }
                        if !done.targets.contains(&id) {
                            done.targets.push(id);
                        }
                    }
                }
                Fault::Partition(shape) => {
                    let all = self.cluster.ids();
                    let Some(cuts) = cuts(*shape, leader, &all, &mut self.rng) else {
                        done.skipped =
                            Some(format!("{} needs a leader and enough nodes", shape.name()));
                        return Ok(());
                    };
                    for (node, from) in &cuts {
                        self.cluster.net.drop_from(*node, from)?;
                    }
                    done.partitioned = true;
                    done.detail.push(format!("drops (node <- from): {cuts:?}"));
                    if let Some(l) = leader {
                        if matches!(shape, Partition::IsolateLeader | Partition::OneWay) {
                            done.targets.push(l);
                        }
                    }
                    for (node, _) in cuts {
                        if !done.targets.contains(&node) && *shape != Partition::IsolateLeader {
                            done.targets.push(node);
                        }
                    }
                }
                Fault::Join => {
                    let id = self.cluster.add_node()?;
                    self.refresh_targets();
                    done.targets.push(id);
                    done.detail.push(format!("node {id} joined"));
                }
                Fault::Remove => {
                    let candidates = followers(&live, leader);
                    let (Some(&id), Some(leader)) = (candidates.choose(&mut self.rng), leader)
                    else {
                        done.skipped = Some("no leader, or no other live node".into());
                        return Ok(());
                    };
                    done.targets.push(id);
                    let detail = self.remove(id, leader).await?;
                    done.detail.push(detail);
                }
                Fault::DiskFlip | Fault::DiskTruncate => {
                    let candidates: Vec<u64> = live
                        .iter()
                        .copied()
                        .filter(|id| Some(*id) != leader)
                        .filter(|id| !done.killed.contains(id) && !done.paused.contains(id))
                        .collect();
                    let Some(&id) = candidates.choose(&mut self.rng) else {
                        done.skipped = Some("no live follower".into());
                        return Ok(());
                    };
                    self.cluster.kill(id)?;
                    done.targets.push(id);
                    let damage = self.damage(id, *fault == Fault::DiskTruncate)?;
                    done.detail.push(damage);
                    self.cluster.restart(id)?;
                    done.detail.push(self.noticed(id));
                }
                Fault::Lag => {
                    let candidates = followers(&live, leader);
                    let (Some(&id), Some(leader)) = (candidates.choose(&mut self.rng), leader)
                    else {
                        done.skipped = Some("no leader, or no follower".into());
                        return Ok(());
                    };
                    let chunks = self.lag_chunks(leader).await?;
                    self.cluster.kill(id)?;
                    done.killed.push(id);
                    done.targets.push(id);
                    done.lagging = Some(id);
                    let burst = self.lag_burst(leader, chunks).await?;
                    done.detail.push(format!("node {id} down during: {burst}"));
                }
                Fault::Upgrade(who) => {
                    let binary = self
                        .upgrade_to
                        .clone()
                        .context("an upgrade step needs the binary to upgrade to")?;
                    let replaced: Vec<u64> = self
                        .cluster
                        .nodes
                        .values()
                        .filter(|n| n.binary.is_some())
                        .map(|n| n.id)
                        .collect();
                    let chosen = self.choose(*who, leader, &live, &replaced);
                    let Some(&id) = chosen.iter().find(|id| !replaced.contains(id)) else {
                        done.skipped = Some("no node left to upgrade".into());
                        return Ok(());
                    };
                    // Down while the fault is held (the binary being swapped), then started
                    // with the new one by the heal.
                    self.cluster.stop(id)?;
                    self.cluster.replace_binary(id, &binary)?;
                    done.killed.push(id);
                    done.targets.push(id);
                    // The next step waits until this node has caught up, as an operator would.
                    done.lagging = Some(id);
                    done.detail
                        .push(format!("node {id} now runs {}", binary.display()));
                }
                Fault::Mix(a, b) => {
                    self.install_into(a, done).await?;
                    self.install_into(b, done).await?;
                    // Half a mix is still a fault that was installed: say which half missed.
                    let installed_any =
                        done.partitioned || !done.killed.is_empty() || !done.paused.is_empty();
                    if installed_any {
                        if let Some(reason) = done.skipped.take() {
                            done.detail.push(format!("part skipped: {reason}"));
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Heals what `installed` left: partitions removed, paused nodes resumed, killed nodes
    /// restarted.
    pub fn heal(&mut self, installed: &Installed) -> anyhow::Result<()> {
        if installed.partitioned {
            self.cluster.net.heal()?;
        }
        for id in &installed.paused {
            self.cluster.resume(*id)?;
        }
        for id in &installed.killed {
            if self.cluster.nodes.contains_key(id) {
                self.cluster.restart(*id)?;
            }
        }
        Ok(())
    }

    fn choose(&mut self, who: Who, leader: Option<u64>, live: &[u64], taken: &[u64]) -> Vec<u64> {
        let followers: Vec<u64> = live
            .iter()
            .copied()
            .filter(|id| Some(*id) != leader && !taken.contains(id))
            .collect();
        match who {
            Who::Leader => leader.into_iter().collect(),
            Who::Follower => followers
                .choose(&mut self.rng)
                .copied()
                .into_iter()
                .collect(),
            Who::Minority => {
                let size = (self.cluster.nodes.len() - 1) / 2;
                let mut out: Vec<u64> = leader.into_iter().collect();
                let mut rest = followers;
                rest.shuffle(&mut self.rng);
                out.extend(rest.into_iter().take(size.saturating_sub(out.len())));
                out
            }
        }
    }

    /// Drains and removes `id` with the real CLI, then stops it.
    async fn remove(&mut self, id: u64, leader: u64) -> anyhow::Result<String> {
        let url = self.cluster.nodes[&leader].url.clone();
        let binary = self.cluster.settings.binary.clone();
        let token = self.cluster.settings.admin_token.clone();
        let out = tokio::process::Command::new(binary)
            .args(["cluster", "remove", &id.to_string(), "--url", &url])
            // The harness tests removal itself; the cluster stays at 3 or more in every schedule.
            .arg("--below-three-voters")
            .args(["--admin-token", &token, "--timeout", "60s"])
            .env_remove("BLINDSTORE_NEGATIVE_CONTROL")
            .output()
            .await
            .context("running blindstore cluster remove")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let last = text
            .rsplit(['\n', '\r'])
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned();
        if !out.status.success() {
            anyhow::bail!("cluster remove {id} failed: {last}");
        }
        self.cluster.retire(id)?;
        self.refresh_targets();
        Ok(last)
    }

    /// Damages node `id`'s chunk data (the node is stopped). Flipping targets the bytes of
    /// recently acknowledged chunks found in the file, so LMDB's own pages stay intact and the
    /// damage is the kind only a checksum finds.
    fn damage(&mut self, id: u64, truncate: bool) -> anyhow::Result<String> {
        use std::os::unix::fs::FileExt;
        let path = self.cluster.nodes[&id]
            .data_dir
            .join("chunks")
            .join("data.mdb");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        if truncate {
            file.set_len(len / 2)?;
            return Ok(format!(
                "node {id}: chunks/data.mdb cut from {len} to {} bytes",
                len / 2
            ));
        }
        // The first 16 bytes of recent chunks, looked for in one pass over the file.
        let needles: std::collections::HashMap<[u8; 16], ()> = {
            let ledger = self.ledger.lock().expect("ledger lock");
            ledger
                .recent
                .iter()
                .map(|(_, b)| (b[..16].try_into().expect("chunks are >= 4 KiB"), ()))
                .collect()
        };
        let bytes = std::fs::read(&path)?;
        let mut flipped = 0;
        let mut at = 0;
        while at + 16 <= bytes.len() && flipped < 5 {
            let window: [u8; 16] = bytes[at..at + 16].try_into().expect("16 bytes");
            if needles.contains_key(&window) {
                file.write_all_at(&[bytes[at + 100] ^ 0x5a], (at + 100) as u64)?;
                flipped += 1;
                at += 4096;
            } else {
                at += 1;
            }
        }
        file.sync_all()?;
        Ok(format!(
            "node {id}: flipped a byte in {flipped} stored chunks"
        ))
    }

    /// The zone the lag bursts write into (the clients' zone stays theirs).
    fn lag_zone() -> blindstore_types::ZoneId {
        blindstore_types::ZoneId::new("jepsen-lag").expect("a valid zone id")
    }

    /// Through `leader`: `LAG_CHUNKS` chunks for a lag burst, uploaded while every node is up.
    async fn lag_chunks(&self, leader: u64) -> anyhow::Result<Vec<blindstore_types::Hash32>> {
        let client = self
            .cluster
            .client(leader, Duration::from_secs(30))
            .context("no client for the leader")?;
        let zone = Self::lag_zone();
        // The nemesis's own zone (a cluster has no `demo` zone unless asked); idempotent.
        client.create_zone(&zone).await?;
        let tag: u64 = rand::random();
        let mut chunks = Vec::new();
        for i in 0..LAG_CHUNKS {
            let bytes = format!("lag burst {tag:016x} chunk {i}").into_bytes();
            let (hash, _) = client.put_chunk(&zone, bytes).await?;
            chunks.push(hash);
        }
        Ok(chunks)
    }

    /// Through `leader`: appends `LAG_ENTRIES` entries to a chain of the nemesis's own, each
    /// referencing all of `chunks`. Chunks the dead follower held become referenceable once
    /// repair has made second copies (after `--down-after`), so appends are retried meanwhile.
    async fn lag_burst(
        &self,
        leader: u64,
        chunks: Vec<blindstore_types::Hash32>,
    ) -> anyhow::Result<String> {
        use blindstore_client::ChainWriter;
        use blindstore_types::api::ErrorCode;
        let client = self
            .cluster
            .client(leader, Duration::from_secs(30))
            .context("no client for the leader")?;
        let zone = Self::lag_zone();
        let started = Instant::now();
        let writer = ChainWriter::generate(zone.clone());
        client.create_chain(&zone, writer.public_key()).await?;
        let mut head = writer.genesis();
        let mut appended = 0;
        let deadline = Instant::now() + Duration::from_secs(45);
        while appended < LAG_ENTRIES && Instant::now() < deadline {
            let (request, hash) = writer.sign(appended, head, b"lag burst entry", chunks.clone());
            match client.append(&zone, &writer.chain_id(), &request).await {
                Ok(_) => {
                    head = hash;
                    appended += 1;
                }
                // Chunks the dead follower held count once repair has made second copies.
                Err(e)
                    if matches!(
                        e.code(),
                        Some(ErrorCode::MissingChunk | ErrorCode::Unavailable)
                    ) =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                // The leader changed or a request timed out: read where the chain is.
                Err(_) => {
                    if let Ok(chain) = client.chain(&zone, &writer.chain_id()).await {
                        appended = chain.length;
                        head = chain.head;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        Ok(format!(
            "{appended} entries referencing {LAG_CHUNKS} chunks each appended in {:.1}s",
            started.elapsed().as_secs_f64()
        ))
    }

    /// Seconds until node `id` has applied the log as far as the leader had it when asked, up
    /// to `limit`.
    pub async fn caught_up(&self, id: u64, limit: Duration) -> Option<f64> {
        let start = Instant::now();
        let mut target = None;
        while start.elapsed() < limit {
            if target.is_none() {
                if let Some(leader) = self.cluster.leader().await {
                    let answer = self.cluster.healths(&[leader]).await;
                    target = answer
                        .into_iter()
                        .flatten()
                        .next()
                        .and_then(|h| h.last_log_index);
                }
            }
            if let Some(target) = target {
                let answer = self.cluster.healths(&[id]).await;
                let applied = answer
                    .into_iter()
                    .flatten()
                    .next()
                    .and_then(|h| h.last_applied);
                if applied.is_some_and(|a| a >= target) {
                    return Some(start.elapsed().as_secs_f64());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }

    /// What the node's log says so far of its chunk store: the start-up check (a store moved
    /// aside) and, once it has run, the scrubber's first pass (damaged copies deleted).
    fn noticed(&self, id: u64) -> String {
        let log = std::fs::read_to_string(&self.cluster.nodes[&id].log).unwrap_or_default();
        let last = |marker: &str| {
            log.lines()
                .rev()
                .find_map(|l| l.find(marker).map(|start| l[start..].to_owned()))
        };
        let found: Vec<String> = ["chunk store opened", "scrub pass done"]
            .iter()
            .filter_map(|m| last(m))
            .collect();
        if found.is_empty() {
            format!("node {id}: no chunk store line in its log yet")
        } else {
            format!("node {id}: {}", found.join("; "))
        }
    }

    /// Points clients at the current members.
    pub fn refresh_targets(&self) {
        let targets = self
            .cluster
            .ids()
            .into_iter()
            .filter_map(|id| Some((id, self.cluster.client(id, self.client_timeout)?)))
            .collect();
        self.targets.set(targets);
    }

    /// Seconds until no live node reports under-replicated chunks, up to `limit`.
    pub async fn replication_restored(&self, limit: Duration) -> Option<f64> {
        let start = Instant::now();
        // One repair pass must have run after the heal before the backlog means anything.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        while start.elapsed() < limit {
            let answers = self.cluster.healths(&self.cluster.live()).await;
            let all_answered = answers.iter().all(Option::is_some);
            let under: u64 = answers.iter().flatten().map(|h| h.under_replicated).sum();
            if under == 0 && all_answered {
                return Some(start.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }
}

/// The rules of a partition: for each node, the nodes whose packets it drops. `None` when the
/// shape needs a leader that is not known, or more nodes than there are.
pub fn cuts(
    shape: Partition,
    leader: Option<u64>,
    all: &[u64],
    rng: &mut StdRng,
) -> Option<Vec<(u64, Vec<u64>)>> {
    let others =
        |of: &[u64]| -> Vec<u64> { all.iter().copied().filter(|n| !of.contains(n)).collect() };
    let sides = |a: &[u64], b: &[u64]| -> Vec<(u64, Vec<u64>)> {
        let mut cuts: Vec<(u64, Vec<u64>)> = a.iter().map(|n| (*n, b.to_vec())).collect();
        cuts.extend(b.iter().map(|n| (*n, a.to_vec())));
        cuts
    };
    match shape {
        Partition::IsolateLeader => {
            let l = leader?;
            Some(sides(&[l], &others(&[l])))
        }
        Partition::OneWay => {
            let l = leader?;
            Some(vec![(l, others(&[l]))])
        }
        Partition::Halves => {
            let mut shuffled = all.to_vec();
            shuffled.shuffle(rng);
            let minority = &shuffled[..all.len() / 2];
            (!minority.is_empty()).then(|| sides(minority, &shuffled[minority.len()..]))
        }
        Partition::Bridge => {
            if all.len() < 3 {
                return None;
            }
            // shuffled[0] is the bridge: it has no rules and hears both sides.
            let mut shuffled = all.to_vec();
            shuffled.shuffle(rng);
            let rest = &shuffled[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            Some(sides(a, b))
        }
        Partition::Ring => {
            if all.len() < 4 {
                return None;
            }
            let n = all.len();
            Some(
                (0..n)
                    .map(|i| {
                        let keep = [all[(i + 1) % n], all[(i + n - 1) % n]];
                        let drop = all
                            .iter()
                            .copied()
                            .filter(|x| *x != all[i] && !keep.contains(x))
                            .collect();
                        (all[i], drop)
                    })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::SeedableRng;

    use super::*;

    /// Who can hear whom under `cuts`: the pairs (a, b) where a's packets reach b.
    fn hears(all: &[u64], cuts: &[(u64, Vec<u64>)]) -> BTreeSet<(u64, u64)> {
        let mut out = BTreeSet::new();
        for &to in all {
            for &from in all {
                let dropped = cuts
                    .iter()
                    .any(|(node, drops)| *node == to && drops.contains(&from));
                if from != to && !dropped {
                    out.insert((from, to));
                }
            }
        }
        out
    }

    #[test]
    fn isolating_the_leader_cuts_it_off_both_ways() {
        let mut rng = StdRng::seed_from_u64(1);
        let all = [1, 2, 3, 4, 5];
        let rules = cuts(Partition::IsolateLeader, Some(3), &all, &mut rng).unwrap();
        let h = hears(&all, &rules);
        assert!(h.iter().all(|(a, b)| *a != 3 && *b != 3));
        assert_eq!(h.len(), 4 * 3, "the other four still form a full mesh");
        assert!(cuts(Partition::IsolateLeader, None, &all, &mut rng).is_none());
    }

    #[test]
    fn one_way_leaves_the_leader_heard_but_deaf() {
        let mut rng = StdRng::seed_from_u64(1);
        let all = [1, 2, 3];
        let h = hears(
            &all,
            &cuts(Partition::OneWay, Some(1), &all, &mut rng).unwrap(),
        );
        assert!(h.contains(&(1, 2)) && h.contains(&(1, 3)));
        assert!(!h.contains(&(2, 1)) && !h.contains(&(3, 1)));
        assert!(h.contains(&(2, 3)));
    }

    #[test]
    fn halves_split_into_a_majority_and_a_minority_that_do_not_hear_each_other() {
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let all = [1, 2, 3, 4, 5];
            let rules = cuts(Partition::Halves, None, &all, &mut rng).unwrap();
            let h = hears(&all, &rules);
            // Connected components of the symmetric "hears" relation.
            let mut sides: Vec<BTreeSet<u64>> = Vec::new();
            for n in all {
                match sides
                    .iter_mut()
                    .find(|s| s.iter().any(|m| h.contains(&(*m, n))))
                {
                    Some(side) => {
                        side.insert(n);
                    }
                    None => sides.push([n].into()),
                }
            }
            let mut sizes: Vec<usize> = sides.iter().map(BTreeSet::len).collect();
            sizes.sort();
            assert_eq!(sizes, vec![2, 3], "seed {seed}");
        }
    }

    #[test]
    fn a_bridge_node_hears_both_sides_which_do_not_hear_each_other() {
        let mut rng = StdRng::seed_from_u64(7);
        let all = [1, 2, 3, 4, 5];
        let rules = cuts(Partition::Bridge, None, &all, &mut rng).unwrap();
        let h = hears(&all, &rules);
        let ruled: BTreeSet<u64> = rules.iter().map(|(n, _)| *n).collect();
        let bridge: Vec<u64> = all.iter().copied().filter(|n| !ruled.contains(n)).collect();
        assert_eq!(bridge.len(), 1);
        let bridge = bridge[0];
        for n in all.iter().filter(|n| **n != bridge) {
            assert!(h.contains(&(bridge, *n)) && h.contains(&(*n, bridge)));
        }
        assert_eq!(h.len(), 2 * 4 + 2 * 2, "bridge links plus two 2-node sides");
    }

    #[test]
    fn a_ring_leaves_each_node_its_two_neighbours() {
        let mut rng = StdRng::seed_from_u64(1);
        let all = [1, 2, 3, 4, 5];
        let h = hears(&all, &cuts(Partition::Ring, None, &all, &mut rng).unwrap());
        for (i, n) in all.iter().enumerate() {
            let next = all[(i + 1) % 5];
            assert!(h.contains(&(*n, next)) && h.contains(&(next, *n)));
        }
        assert_eq!(h.len(), 10);
        assert!(cuts(Partition::Ring, None, &[1, 2, 3], &mut rng).is_none());
    }

    #[test]
    fn a_rolling_upgrade_replaces_every_follower_then_the_leader() {
        let up = |who| Fault::Upgrade(who);
        assert_eq!(
            upgrade_schedule(3),
            vec![up(Who::Follower), up(Who::Follower), up(Who::Leader)]
        );
        assert_eq!(upgrade_schedule(5).len(), 5);
    }

    #[test]
    fn the_short_schedule_has_every_kind_and_starts_with_the_leader() {
        let schedule = short_schedule(3);
        for kind in KINDS {
            assert!(schedule.iter().any(|f| f.kind() == kind), "{kind}");
        }
        assert_eq!(schedule[0], Fault::Kill(Who::Leader));
    }
}
