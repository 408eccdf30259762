//! The servers a run starts — Blindstore nodes, etcd members, nginx — all on 127.0.0.1 with
//! ports nothing else uses, and their end. [`Processes`] owns every one of them and stops them
//! by pid when dropped: after a run, on an error, and when the run is interrupted.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use blindstore_client::Client;
use blindstore_types::api::ZoneQuota;
use blindstore_types::ZoneId;

/// How long a server has to come up (a debug build joining a cluster is the slowest).
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long servers get to exit after SIGTERM before they are killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Every process this run started, stopped when dropped.
#[derive(Default)]
pub struct Processes {
    running: Vec<Running>,
}

struct Running {
    name: String,
    child: Child,
    /// Processes it forked that must be measured and stopped with it (nginx's workers), with
    /// their command names.
    forked: Vec<(u32, String)>,
    log: PathBuf,
    /// Drains the process's standard output; ends when the process does.
    reader: Option<JoinHandle<()>>,
}

impl Processes {
    /// Starts `command` with its standard error going to `log`; its standard output, if the
    /// command pipes it.
    fn spawn(
        &mut self,
        name: &str,
        mut command: Command,
        log: &Path,
    ) -> anyhow::Result<(usize, Option<ChildStdout>)> {
        let log_file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command.stdin(Stdio::null()).stderr(log_file);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        let stdout = child.stdout.take();
        self.running.push(Running {
            name: name.to_owned(),
            child,
            forked: Vec::new(),
            log: log.to_owned(),
            reader: None,
        });
        Ok((self.running.len() - 1, stdout))
    }

    /// Each process's resident memory (VmRSS, forked processes included), in bytes.
    pub fn rss(&self) -> Vec<(String, Option<u64>)> {
        self.running
            .iter()
            .map(|r| {
                let pids = std::iter::once(r.child.id()).chain(r.forked.iter().map(|f| f.0));
                let sizes: Option<Vec<u64>> = pids.map(rss_bytes).collect();
                (r.name.clone(), sizes.map(|s| s.iter().sum()))
            })
            .collect()
    }

    /// The processes that have exited, with how: a server that stops during a run is a
    /// failure even if every request happened to succeed.
    pub fn exited(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &mut self.running {
            if let Ok(Some(status)) = r.child.try_wait() {
                out.push(format!(
                    "{} exited ({status}); its log:\n{}",
                    r.name,
                    tail(&r.log)
                ));
            }
        }
        out
    }

    /// SIGTERM to every process, up to [`STOP_DEADLINE`] to exit, then SIGKILL; forked
    /// processes left behind are killed too.
    /// Kills the process called `name` (`kill -9`: a crash) and forgets it.
    pub fn kill_9(&mut self, name: &str) -> anyhow::Result<()> {
        let at = self
            .running
            .iter()
            .position(|r| r.name == name)
            .with_context(|| format!("no process {name}"))?;
        let mut r = self.running.remove(at);
        r.child.kill().with_context(|| format!("killing {name}"))?;
        r.child.wait()?;
        if let Some(reader) = r.reader.take() {
            let _ = reader.join();
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        let mut pids = Vec::new();
        for r in &mut self.running {
            if matches!(r.child.try_wait(), Ok(None)) {
                pids.push(r.child.id().to_string());
            }
        }
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-TERM").args(&pids).status();
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        for r in &mut self.running {
            while matches!(r.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(r.child.try_wait(), Ok(None)) {
                eprintln!(
                    "{} did not stop within {STOP_DEADLINE:?}: killing it",
                    r.name
                );
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
            for (pid, name) in r.forked.drain(..) {
                // Still there and still the same program (not a reused pid).
                if command_name(pid).as_deref() == Some(name.as_str()) {
                    let _ = Command::new("kill")
                        .arg("-KILL")
                        .arg(pid.to_string())
                        .status();
                }
            }
            if let Some(reader) = r.reader.take() {
                let _ = reader.join();
            }
        }
        self.running.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Blindstore cluster (or a single node) with a zone for the benchmark.
pub struct Blindstore {
    /// Every node's HTTP base URL.
    pub urls: Vec<String>,
    pub zone: ZoneId,
}

impl Blindstore {
    /// Starts again the single node `name` that [`start`](Self::start) started in `dir`, on its
    /// data; returns its URL.
    pub async fn restart_single(
        processes: &mut Processes,
        binary: &Path,
        dir: &Path,
        name: &str,
    ) -> anyhow::Result<String> {
        let args: Vec<String> = [
            "--demo-zone",
            "false",
            "--http-max-requests",
            "4096",
            "--http-max-connections-per-ip",
            "4096",
        ]
        .map(String::from)
        .to_vec();
        let (url, _) = start_node(processes, binary, name, &dir.join(name), &args).await?;
        Ok(url)
    }

    /// Starts `nodes` nodes as scripts/cluster.sh does: the first creates the cluster, the
    /// others join it with its join token; all share one admin token. One node is a single
    /// node without rpc. Then creates the zone `bench` with quotas no run can reach.
    pub async fn start(
        processes: &mut Processes,
        binary: &Path,
        dir: &Path,
        name: &str,
        nodes: usize,
    ) -> anyhow::Result<Self> {
        let admin_token = hex_token();
        let mut urls = Vec::new();
        let mut seed: Option<(String, String)> = None;
        for i in 1..=nodes {
            let node_name = if nodes == 1 {
                name.to_owned()
            } else {
                format!("{name}-n{i}")
            };
            let data_dir = dir.join(&node_name);
            let mut args: Vec<String> = vec![
                "--admin-token".into(),
                admin_token.clone(),
                "--demo-zone".into(),
                "false".into(),
                // The default, 256 requests in flight per node, would answer 503 to a single
                // node's 256 clients plus anything else.
                "--http-max-requests".into(),
                "4096".into(),
                // Every client connects from 127.0.0.1: one address's share of the connections
                // (64 by default) would refuse most of 256.
                "--http-max-connections-per-ip".into(),
                "4096".into(),
            ];
            if nodes > 1 {
                args.extend(["--rpc-addr".into(), "127.0.0.1:0".into()]);
            }
            if nodes == 5 {
                args.extend(["--voters".into(), "5".into()]);
            }
            if let Some((rpc, token)) = &seed {
                args.extend([
                    "--join".into(),
                    rpc.clone(),
                    "--join-token".into(),
                    token.clone(),
                ]);
            }
            let (url, rpc) = start_node(processes, binary, &node_name, &data_dir, &args).await?;
            if seed.is_none() && nodes > 1 {
                let rpc = rpc.context("the first node printed no rpc address")?;
                let token = std::fs::read_to_string(data_dir.join("join-token"))
                    .context("reading the first node's join token")?;
                seed = Some((rpc, token.trim().to_owned()));
            }
            urls.push(url);
        }
        let admin = Client::new(&urls[0]).with_admin_token(&admin_token);
        wait_for_voters(&admin, nodes).await?;
        let zone = ZoneId::new("bench").expect("'bench' is a valid zone id");
        admin
            .create_zone(&zone)
            .await
            .context("creating zone bench")?;
        let unlimited = ZoneQuota {
            max_chains: Some(u64::MAX / 2),
            max_entries: Some(u64::MAX / 2),
            max_chunk_bytes: Some(u64::MAX / 2),
            max_chunks: Some(u64::MAX / 2),
        };
        admin
            .set_quota(&zone, &unlimited)
            .await
            .context("raising zone bench's quotas")?;
        Ok(Self { urls, zone })
    }
}

/// Starts `blindstore serve` on a free HTTP port and waits for the line giving its address.
async fn start_node(
    processes: &mut Processes,
    binary: &Path,
    name: &str,
    data_dir: &Path,
    args: &[String],
) -> anyhow::Result<(String, Option<String>)> {
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .args(["--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        // Warnings, and each snapshot built with its time and size (the disk rows read them).
        .env("RUST_LOG", "warn,blindstore_raft::state_machine=info")
        .env_remove("BLINDSTORE_CONFIG")
        .stdout(Stdio::piped());
    let log = data_dir.with_extension("log");
    let (index, stdout) = processes.spawn(name, command, &log)?;
    let stdout = stdout.expect("stdout is piped");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut rpc = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("blindstore rpc listening on ") {
                rpc = Some(addr.to_owned());
            }
            if let Some(url) = line.strip_prefix("blindstore listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send((url.to_owned(), rpc.clone()));
                }
            }
        }
    });
    processes.running[index].reader = Some(reader);
    match tokio::time::timeout(START_DEADLINE, rx).await {
        Ok(Ok(addresses)) => Ok(addresses),
        Ok(Err(_)) => bail!("{name} exited before listening; its log:\n{}", tail(&log)),
        Err(_) => bail!(
            "{name} did not listen within {START_DEADLINE:?}; its log:\n{}",
            tail(&log)
        ),
    }
}

/// Waits until the cluster has `voters` voters and a leader.
async fn wait_for_voters(admin: &Client, voters: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(members) = admin.cluster().await {
            let ready = members.members.iter().filter(|m| m.role == "voter").count();
            if members.leader.is_some() && ready == voters {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("the cluster did not have {voters} voters within {START_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A 3-member etcd cluster.
pub struct Etcd {
    /// Client URLs of every member.
    pub endpoints: Vec<String>,
}

impl Etcd {
    pub async fn start(
        processes: &mut Processes,
        binary: &Path,
        dir: &Path,
        members: usize,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).context("creating etcd's directory")?;
        let ports = free_ports(2 * members)?;
        let (client_ports, peer_ports) = ports.split_at(members);
        let peer_url = |i: usize| format!("http://127.0.0.1:{}", peer_ports[i]);
        let initial_cluster: Vec<String> = (0..members)
            .map(|i| format!("etcd-{}={}", i + 1, peer_url(i)))
            .collect();
        let endpoints: Vec<String> = client_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let name = format!("etcd-{}", i + 1);
            let mut command = Command::new(binary);
            command
                .args(["--name", &name, "--data-dir"])
                .arg(dir.join(&name))
                .args(["--listen-client-urls", endpoint])
                .args(["--advertise-client-urls", endpoint])
                .args(["--listen-peer-urls", &peer_url(i)])
                .args(["--initial-advertise-peer-urls", &peer_url(i)])
                .args(["--initial-cluster", &initial_cluster.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "blindstore-bench"])
                // Far above what a run writes; the default is 2 GiB.
                .args(["--quota-backend-bytes", "8589934592"])
                .args([
                    "--logger",
                    "zap",
                    "--log-outputs",
                    "stderr",
                    "--log-level",
                    "warn",
                ])
                .stdout(Stdio::null());
            processes.spawn(&name, command, &dir.join(format!("{name}.log")))?;
        }
        let etcd = Self { endpoints };
        etcd.wait_ready(processes).await?;
        Ok(etcd)
    }

    /// Waits until a put through any member succeeds (a leader is elected and a quorum up).
    async fn wait_ready(&self, processes: &mut Processes) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        let options = etcd_client::ConnectOptions::new()
            .with_timeout(Duration::from_secs(2))
            .with_connect_timeout(Duration::from_secs(1));
        let mut client = etcd_client::Client::connect(&self.endpoints, Some(options))
            .await
            .context("connecting to etcd")?;
        loop {
            match client.put("bench/ready", "1", None).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    bail!("etcd was not ready within {START_DEADLINE:?}: {e}")
                }
                Err(_) => {}
            }
            if let Some(exited) = processes.exited().into_iter().next() {
                bail!("{exited}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// nginx serving a directory of static files.
pub struct Nginx {
    pub url: String,
}

impl Nginx {
    /// The path of the file of `size` bytes.
    pub fn path(size: usize) -> String {
        format!("/{size}.bin")
    }

    /// Serves `files` from `dir`/www, each at [`Nginx::path`] of its size, with as many
    /// workers as cores, keep-alive connections that last the whole run and no access log.
    pub async fn start(
        processes: &mut Processes,
        binary: &Path,
        dir: &Path,
        files: &[&[u8]],
    ) -> anyhow::Result<Self> {
        let www = dir.join("www");
        std::fs::create_dir_all(&www).context("creating nginx's directory")?;
        for bytes in files {
            let path = www.join(Self::path(bytes.len()).trim_start_matches('/'));
            std::fs::write(path, bytes).context("writing nginx's files")?;
        }
        // Its workers may run as another user (nobody, when started as root).
        for path in [dir, &www] {
            set_mode(path, 0o755)?;
        }
        let port = free_ports(1)?[0];
        let d = dir.display();
        let config = format!(
            "daemon off;\n\
             master_process on;\n\
             worker_processes auto;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
               access_log off;\n\
               default_type application/octet-stream;\n\
               sendfile on;\n\
               tcp_nopush on;\n\
               keepalive_timeout 300s;\n\
               keepalive_requests 100000000;\n\
               client_body_temp_path {d}/client_body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 root {d}/www;\n\
               }}\n\
             }}\n"
        );
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config).context("writing nginx.conf")?;
        let mut command = Command::new(binary);
        command
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null());
        let (index, _) = processes.spawn("nginx", command, &dir.join("nginx.log"))?;
        let url = format!("http://127.0.0.1:{port}");
        let probe = format!("{url}{}", Self::path(files.first().map_or(0, |f| f.len())));
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(response) = reqwest::get(&probe).await {
                if response.status().is_success() {
                    break;
                }
            }
            if let Some(exited) = processes.exited().into_iter().next() {
                bail!("{exited}");
            }
            if Instant::now() > deadline {
                bail!("nginx did not serve {probe} within {START_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let master = processes.running[index].child.id();
        processes.running[index].forked = children_of(master);
        Ok(Self { url })
    }
}

/// `n` distinct ports that were free a moment ago (each bound on port 0, then released).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The processes whose parent is `parent`, with their command names, from /proc.
fn children_of(parent: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parens.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after_comm = &stat[stat.rfind(')')? + 1..];
                    after_comm.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .filter_map(|pid| Some((pid, command_name(pid)?)))
        .collect()
}

/// A live process's command name (/proc/PID/comm).
fn command_name(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_owned())
}

/// VmRSS of a live process, in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The last lines of a log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

fn hex_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
