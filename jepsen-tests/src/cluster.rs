//! A cluster of real `blindstore` processes, each in its own network namespace.
//!
//! Every node gets a namespace with one veth interface plugged into a bridge in the harness's
//! namespace; the harness (the clients) reaches all nodes over the bridge at all times.
//! Partitions are nftables rules inside the nodes' namespaces that drop traffic from chosen
//! peers, so they cut node-to-node traffic only, as in Jepsen.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use blindstore_client::Client;
use blindstore_types::api::Health;

const HTTP_PORT: u16 = 8000;
const RPC_PORT: u16 = 7000;

/// Runs a command, failing with its output if it fails.
pub fn sh(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The bridge and the namespaces of one run. Dropping it removes them.
pub struct Network {
    tag: String,
    /// The first three octets, e.g. `10.77.3`.
    prefix: String,
    hosts: Vec<u64>,
}

impl Network {
    /// Creates the bridge. Needs root (CAP_NET_ADMIN), `ip` and `nft`.
    pub fn new() -> anyhow::Result<Network> {
        let pid = std::process::id();
        let tag = format!("bsj{}", pid % 100_000);
        let prefix = format!("10.{}.{}", 100 + (pid / 250) % 150, pid % 250);
        let net = Network {
            tag,
            prefix,
            hosts: Vec::new(),
        };
        let bridge = net.bridge();
        // A bridge left by an earlier run whose process id this one reuses.
        let _ = sh("ip", &["link", "delete", &bridge]);
        sh("ip", &["link", "add", &bridge, "type", "bridge"])?;
        sh(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}.1/24", net.prefix),
                "dev",
                &bridge,
            ],
        )?;
        sh("ip", &["link", "set", &bridge, "up"])?;
        Ok(net)
    }

    /// Checks that network namespaces and nftables can be used here.
    pub fn preflight() -> anyhow::Result<()> {
        sh("ip", &["netns", "list"]).context("`ip netns` (iproute2) is needed")?;
        sh("nft", &["--version"]).context("`nft` (nftables) is needed")?;
        Ok(())
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    pub fn namespace(&self, node: u64) -> String {
        format!("{}n{node}", self.tag)
    }

    pub fn ip(&self, node: u64) -> String {
        format!("{}.{}", self.prefix, 10 + node)
    }

    /// Creates node `node`'s namespace, plugged into the bridge.
    pub fn add_host(&mut self, node: u64) -> anyhow::Result<()> {
        let ns = self.namespace(node);
        let outside = format!("{}v{node}", self.tag);
        let inside = format!("{}p{node}", self.tag);
        let _ = sh("ip", &["netns", "delete", &ns]);
        sh("ip", &["netns", "add", &ns])?;
        self.hosts.push(node);
        sh(
            "ip",
            &[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ],
        )?;
        sh("ip", &["link", "set", &inside, "netns", &ns])?;
        sh("ip", &["link", "set", &outside, "master", &self.bridge()])?;
        sh("ip", &["link", "set", &outside, "up"])?;
        let in_ns = |args: &[&str]| -> anyhow::Result<String> {
            let mut all = vec!["netns", "exec", &ns];
            all.extend_from_slice(args);
            sh("ip", &all)
        };
        in_ns(&["ip", "link", "set", "lo", "up"])?;
        in_ns(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", self.ip(node)),
            "dev",
            &inside,
        ])?;
        in_ns(&["ip", "link", "set", &inside, "up"])?;
        Ok(())
    }

    /// Drops, inside `node`'s namespace, all packets from the nodes in `from`.
    pub fn drop_from(&self, node: u64, from: &[u64]) -> anyhow::Result<()> {
        if from.is_empty() {
            return Ok(());
        }
        let ips: Vec<String> = from.iter().map(|n| self.ip(*n)).collect();
        let rules = format!(
            "table inet jepsen {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  ip saddr {{ {} }} drop\n }}\n}}\n",
            ips.join(", ")
        );
        nft_in(&self.namespace(node), &rules)
    }

    /// Removes every partition rule.
    pub fn heal(&self) -> anyhow::Result<()> {
        for node in &self.hosts {
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    &self.namespace(*node),
                    "nft",
                    "flush",
                    "ruleset",
                ],
            )?;
        }
        Ok(())
    }
}

fn nft_in(namespace: &str, rules: &str) -> anyhow::Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", namespace, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(rules.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Drop for Network {
    fn drop(&mut self) {
        for node in &self.hosts {
            let _ = sh("ip", &["netns", "delete", &self.namespace(*node)]);
        }
        let _ = sh("ip", &["link", "delete", &self.bridge()]);
    }
}

/// How to start nodes.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub binary: PathBuf,
    pub voters: usize,
    pub admin_token: String,
    /// `BLINDSTORE_NEGATIVE_CONTROL` for every node, if any.
    pub negative_control: Option<String>,
    pub extra_args: Vec<String>,
}

/// One node: its process (if running) and where it lives.
pub struct Node {
    pub id: u64,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub url: String,
    pub rpc: String,
    /// The binary it runs, when not the settings' (a node replaced by a rolling upgrade).
    pub binary: Option<PathBuf>,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

/// The cluster: nodes by id, the network, and how to reach them.
pub struct Cluster {
    pub net: Network,
    pub settings: NodeSettings,
    pub dir: PathBuf,
    pub nodes: BTreeMap<u64, Node>,
    pub join_token: String,
    next_id: u64,
}

impl Cluster {
    /// Starts `count` nodes: the first bootstraps, the others join it.
    pub fn start(dir: &Path, settings: NodeSettings, count: usize) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster {
            net: Network::new()?,
            settings,
            dir: dir.to_owned(),
            nodes: BTreeMap::new(),
            join_token: String::new(),
            next_id: 1,
        };
        cluster.add_node()?;
        let first = &cluster.nodes[&1];
        cluster.join_token = std::fs::read_to_string(first.data_dir.join("join-token"))
            .context("reading the first node's join token")?
            .trim()
            .to_owned();
        for _ in 1..count {
            cluster.add_node()?;
        }
        Ok(cluster)
    }

    /// Starts a new node (joining through a running member, unless it is the first).
    pub fn add_node(&mut self) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.net.add_host(id)?;
        let ip = self.net.ip(id);
        let node = Node {
            id,
            data_dir: self.dir.join(format!("n{id}")),
            log: self.dir.join(format!("n{id}.log")),
            url: format!("http://{ip}:{HTTP_PORT}"),
            rpc: format!("{ip}:{RPC_PORT}"),
            binary: None,
            child: None,
            paused: false,
        };
        self.nodes.insert(id, node);
        let seed = self
            .nodes
            .values()
            .find(|n| n.id != id && n.is_running() && !n.paused)
            .map(|n| n.rpc.clone());
        let mut join = Vec::new();
        if let Some(seed) = seed {
            join = vec![
                "--join".to_owned(),
                seed,
                "--join-token".to_owned(),
                self.join_token.clone(),
                "--node-id".to_owned(),
                id.to_string(),
            ];
        }
        self.spawn(id, &join)?;
        Ok(id)
    }

    /// (Re)starts node `id`'s process with its data dir.
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.spawn(id, &[])
    }

    fn spawn(&mut self, id: u64, extra: &[String]) -> anyhow::Result<()> {
        let ns = self.net.namespace(id);
        let node = self.nodes.get_mut(&id).context("no such node")?;
        if node.child.is_some() {
            return Ok(());
        }
        let ip = node.rpc.split(':').next().expect("ip:port").to_owned();
        let binary = node.binary.as_ref().unwrap_or(&self.settings.binary);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--http-addr", &format!("{ip}:{HTTP_PORT}")])
            .args(["--rpc-addr", &format!("{ip}:{RPC_PORT}")])
            .args(["--admin-token", &self.settings.admin_token])
            .args(["--voters", &self.settings.voters.to_string()])
            .args(&self.settings.extra_args)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("BLINDSTORE_JEPSEN_NODE_LOG")
                    .unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .env_remove("BLINDSTORE_NEGATIVE_CONTROL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(control) = &self.settings.negative_control {
            cmd.env("BLINDSTORE_NEGATIVE_CONTROL", control);
        }
        let mut child = cmd.spawn().context("starting blindstore")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut out_log = log.try_clone()?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("blindstore listening on ") {
                    let _ = tx.send(());
                }
                let _ = writeln!(out_log, "{line}");
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let mut err_log = log;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(err_log, "{line}");
            }
        });
        let started = rx.recv_timeout(Duration::from_secs(60));
        node.child = Some(child);
        node.paused = false;
        if started.is_err() {
            bail!(
                "node {id} did not start within 60 s; see {}",
                node.log.display()
            );
        }
        Ok(())
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(&id).context("no such node")?;
        if let Some(mut child) = node.child.take() {
            if node.paused {
                let _ = signal(child.id(), "CONT");
            }
            child.kill()?;
            child.wait()?;
        }
        node.paused = false;
        Ok(())
    }

    /// SIGTERM, as an operator stops a node (it shuts down in order); SIGKILL if it has not
    /// exited after 20 s.
    pub fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(&id).context("no such node")?;
        if let Some(mut child) = node.child.take() {
            if node.paused {
                let _ = signal(child.id(), "CONT");
            }
            signal(child.id(), "TERM")?;
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while child.try_wait()?.is_none() {
                if std::time::Instant::now() > deadline {
                    child.kill()?;
                    child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        node.paused = false;
        Ok(())
    }

    /// Node `id` runs `binary` from its next start (a rolling upgrade).
    pub fn replace_binary(&mut self, id: u64, binary: &Path) -> anyhow::Result<()> {
        self.nodes.get_mut(&id).context("no such node")?.binary = Some(binary.to_owned());
        Ok(())
    }

    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(&id).context("no such node")?;
        if let Some(pid) = node.pid() {
            signal(pid, "STOP")?;
            node.paused = true;
        }
        Ok(())
    }

    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(&id).context("no such node")?;
        if let Some(pid) = node.pid() {
            if node.paused {
                signal(pid, "CONT")?;
            }
        }
        node.paused = false;
        Ok(())
    }

    /// Stops a node for good and forgets it (after it left the cluster).
    pub fn retire(&mut self, id: u64) -> anyhow::Result<()> {
        self.kill(id)?;
        self.nodes.remove(&id);
        Ok(())
    }

    /// Running, unpaused nodes.
    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.is_running() && !n.paused)
            .map(|n| n.id)
            .collect()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn client(&self, id: u64, timeout: Duration) -> Option<Client> {
        self.nodes.get(&id).map(|n| {
            Client::with_timeout(&n.url, timeout).with_admin_token(&self.settings.admin_token)
        })
    }

    /// The node that says it leads, asking every live node (highest term wins).
    pub async fn leader(&self) -> Option<u64> {
        leader_of(self.healths(&self.live()).await.iter().flatten())
    }

    /// `/v1/health` of each of `ids`, `None` for a node that did not answer within 2 s.
    pub async fn healths(&self, ids: &[u64]) -> Vec<Option<Health>> {
        let timeout = Duration::from_secs(2);
        healths(
            ids.iter().filter_map(|id| self.client(*id, timeout)),
            timeout,
        )
        .await
    }

    /// Heals everything: partitions removed, paused nodes resumed, dead nodes restarted.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        self.net.heal()?;
        for id in self.ids() {
            self.resume(id)?;
            if !self.nodes[&id].is_running() {
                self.restart(id)?;
            }
        }
        Ok(())
    }

    /// Waits until every node is up, one leads, all have applied the same index and nothing
    /// is under-replicated; returns how long that took, or `None` at the deadline.
    pub async fn converge(&self, deadline: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            let answers = self.healths(&self.ids()).await;
            let applied: Vec<Option<u64>> = answers
                .iter()
                .map(|h| h.as_ref().and_then(|h| h.last_applied))
                .collect();
            let answered: Vec<&Health> = answers.iter().flatten().collect();
            let under: u64 = answered.iter().map(|h| h.under_replicated).sum();
            let leaders = answered
                .iter()
                .filter(|h| h.leader == Some(h.node_id))
                .count();
            let same = applied.windows(2).all(|w| w[0] == w[1]) && !applied.contains(&None);
            if same && under == 0 && leaders == 1 {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }

    /// Stops every process.
    pub fn stop_all(&mut self) {
        for id in self.ids() {
            let _ = self.kill(id);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Each client's `/v1/health`, `None` where it did not answer within `timeout`.
pub async fn healths(
    clients: impl IntoIterator<Item = Client>,
    timeout: Duration,
) -> Vec<Option<Health>> {
    let mut out = Vec::new();
    for client in clients {
        let answer = tokio::time::timeout(timeout, client.health()).await;
        out.push(answer.ok().and_then(Result::ok));
    }
    out
}

/// The node that says it leads, with the highest term among those that do.
pub fn leader_of<'a>(healths: impl IntoIterator<Item = &'a Health>) -> Option<u64> {
    healths
        .into_iter()
        .filter(|h| h.leader == Some(h.node_id))
        .max_by_key(|h| h.term)
        .map(|h| h.node_id)
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    sh("kill", &[&format!("-{sig}"), &pid.to_string()]).map(|_| ())
}
