//! `blindstore cluster ...`: looking at and steering a cluster through any member's HTTP API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use blindstore_client::Client;
use blindstore_types::api::{ClusterMembers, Health, Member, NodeChange};
use clap::{Args, Subcommand};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// One row per node: id, role, addresses, leader, term, applied index, lag, chunks held,
    /// reachable.
    Status(StatusArgs),
    /// Remove a node: drain it first (its chunks are copied to their new owners, with
    /// progress), then take it out of the membership. `--force` removes a dead node at once and
    /// lets repair restore the copies it held.
    Remove(RemoveArgs),
    /// Replace the join token (and the gateway token made from it) with a new one. Members
    /// switch by themselves within the grace, then the old tokens are refused. Prints the new
    /// tokens: give the join token to nodes that will join, the gateway token to gateways.
    RotateToken(RotateTokenArgs),
    /// Stop draining a node (`cluster remove` starts it): it owns chunks again, and chunks move
    /// back to it at the next repair passes.
    #[command(subcommand)]
    Drain(DrainCommand),
    /// The cluster's admin credential, which every node and gateway accepts (and, once made,
    /// instead of their own --admin-token), and a read-only one for metrics scrapers.
    #[command(subcommand)]
    AdminToken(AdminTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum DrainCommand {
    /// Cancel the draining of a node (a `cluster remove` given up, timed out or interrupted).
    Cancel(DrainCancelArgs),
}

#[derive(Debug, Args)]
pub struct DrainCancelArgs {
    /// The node being drained.
    node_id: u64,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Replace the cluster's admin token (or with --metrics the metrics token) with a new random
    /// one, shown once. The first rotation retires every node's and gateway's own admin token.
    Rotate(RotateCredentialArgs),
}

#[derive(Debug, Args)]
pub struct RotateCredentialArgs {
    #[command(flatten)]
    target: Target,
    /// Replace the metrics token (reads /v1/metrics, nothing else) instead of the admin token.
    #[arg(long)]
    metrics: bool,
    /// Write the new token(s) to this file (mode 0600; one `name=token` line each) instead of
    /// printing them.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RotateTokenArgs {
    #[command(flatten)]
    target: Target,
    /// How long members keep using the old token (at most 1h); refused from twice that on.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    grace: Duration,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The node to remove.
    node_id: u64,
    #[command(flatten)]
    target: Target,
    /// Remove at once, without draining (for a node that is dead).
    #[arg(long)]
    force: bool,
    /// Give up draining after this long (the node stays a draining member: `cluster drain
    /// cancel` or another `cluster remove`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Remove it even though fewer than 3 members that can vote would be left: a cluster of 2
    /// voters stops committing when either one fails.
    #[arg(long)]
    below_three_voters: bool,
    /// Progress as JSON lines on stdout (one per change, then the result) instead of text.
    #[arg(long)]
    json: bool,
}

/// Which cluster, and the admin token for it.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// HTTP address of any member (or gateway): a URL, or host:port for http://host:port.
    #[arg(long, env = "BLINDSTORE_URL", default_value = "http://127.0.0.1:8080", value_parser = parse_url)]
    url: String,
    /// Admin token [default: the one in --data-dir]
    #[arg(long, env = "BLINDSTORE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Where to find the admin token when --admin-token is not given.
    #[arg(long, default_value = "./blindstore-data")]
    data_dir: PathBuf,
}

/// `--url`: an http(s) URL, or host:port (taken as http://host:port).
fn parse_url(value: &str) -> Result<String, String> {
    let url = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{value:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{value:?} names no host"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

impl Target {
    fn token(&self) -> anyhow::Result<String> {
        match &self.admin_token {
            Some(t) => Ok(t.clone()),
            None => {
                let path = self.data_dir.join("admin-token");
                Ok(std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!("no --admin-token given and cannot read {}", path.display())
                    })?
                    .trim()
                    .to_owned())
            }
        }
    }

    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.url).with_admin_token(&self.token()?))
    }

    /// Like [`Target::client`], with requests that may take up to `timeout`.
    pub(crate) fn client_with_timeout(&self, timeout: Duration) -> anyhow::Result<Client> {
        Ok(Client::with_timeout(&self.url, timeout).with_admin_token(&self.token()?))
    }

    /// Runs `op` on the current leader. The leader may have just died — exactly when
    /// operators remove nodes — so until `patience` runs out this asks the given node (and
    /// the other members it named) who leads, says what it is waiting for, and tries again
    /// when the leader cannot be reached or answers 503. An API refusal (4xx) ends at once.
    ///
    /// `done` tells from a fresh membership view whether the change has already happened (an
    /// earlier try whose answer was lost, or `outcome_unknown`): then it is not made again.
    async fn on_leader<F, Fut>(
        &self,
        patience: Duration,
        what: &str,
        done: impl Fn(&ClusterMembers) -> bool,
        op: F,
    ) -> anyhow::Result<()>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = blindstore_client::Result<NodeChange>>,
    {
        let token = self.token()?;
        let deadline = std::time::Instant::now() + patience;
        let mut askable = vec![self.url.clone()];
        let mut waiting_for = String::new();
        let mut tried = false;
        loop {
            let mut view = None;
            for url in &askable {
                if let Ok(members) = Client::new(url).with_admin_token(&token).cluster().await {
                    view = Some(members);
                    break;
                }
            }
            let step = match view {
                None => format!("no member answers at {}", askable.join(", ")),
                Some(members) if tried && done(&members) => return Ok(()),
                Some(members) => {
                    for m in &members.members {
                        let url = format!("http://{}", m.http_addr);
                        if !askable.contains(&url) {
                            askable.push(url);
                        }
                    }
                    let leader = members
                        .leader
                        .and_then(|id| members.members.iter().find(|m| m.node_id == id));
                    match leader {
                        None => "the cluster to elect a leader".to_owned(),
                        Some(leader) => {
                            let client = Client::new(&format!("http://{}", leader.http_addr))
                                .with_admin_token(&token);
                            tried = true;
                            match op(client).await {
                                Ok(_) => return Ok(()),
                                Err(e) if retryable(&e) => format!(
                                    "leader {} at {} ({})",
                                    leader.node_id,
                                    leader.http_addr,
                                    e.code().map_or("unreachable", |c| c.as_str())
                                ),
                                Err(e) => return Err(e).with_context(|| what.to_owned()),
                            }
                        }
                    }
                }
            };
            if std::time::Instant::now() >= deadline {
                bail!("{what}: gave up after {patience:?} waiting for {step}");
            }
            if step != waiting_for {
                eprintln!("{what}: waiting for {step}...");
                waiting_for = step;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Whether a failed admin call may succeed on a later try: the node could not be reached, or
/// answered 503 (no leader, not the leader any more, no quorum).
fn retryable(e: &blindstore_client::ClientError) -> bool {
    match e.status() {
        Some(status) => status.as_u16() == 503,
        None => true,
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One node as `status` reports it.
#[derive(Debug, Serialize)]
struct NodeRow {
    node_id: u64,
    /// The node's `--name`, if it has one.
    name: String,
    role: String,
    rpc_addr: String,
    http_addr: String,
    leader: bool,
    term: Option<u64>,
    applied: Option<u64>,
    /// How many log entries this node's applied index is behind the most advanced node.
    lag: Option<u64>,
    chunks: Option<u64>,
    /// Chunks with fewer reachable copies than the replication factor that this node counts
    /// (each by one holder).
    under_replicated: Option<u64>,
    /// Copies this node owed its chunks' owners at its last repair pass, and its copy rate.
    backlog: Option<u64>,
    copies_per_s: Option<f64>,
    /// The feature level the node's build supports (1 for a build older than levels).
    level: Option<u32>,
    reachable: bool,
}

pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match command {
        ClusterCommand::Status(args) => runtime.block_on(status(args)),
        ClusterCommand::Remove(args) => runtime.block_on(remove(args)),
        ClusterCommand::RotateToken(args) => runtime.block_on(rotate_token(args)),
        ClusterCommand::Drain(DrainCommand::Cancel(args)) => runtime.block_on(cancel_drain(args)),
        ClusterCommand::AdminToken(AdminTokenCommand::Rotate(args)) => {
            runtime.block_on(rotate_credential(args))
        }
    }
}

/// The members, each with its health as the answering node could ask it over HTTP (so this
/// works through a gateway, or from a machine that reaches one node only); from a node of an
/// older build, without that route, each member is asked from here.
async fn member_healths(
    target: &Target,
) -> anyhow::Result<(ClusterMembers, Vec<(Member, Option<Health>)>)> {
    let url = &target.url;
    let client = target.client()?;
    match client.cluster_overview().await {
        Ok(overview) => {
            let members = ClusterMembers {
                node_id: overview.answered_by,
                leader: overview.leader,
                term: overview.term,
                leader_last_log_index: overview.leader_last_log_index,
                members: overview.members.iter().map(|m| m.member.clone()).collect(),
                removed: overview.removed,
            };
            let healths = overview
                .members
                .into_iter()
                .map(|m| (m.member, m.health))
                .collect();
            return Ok((members, healths));
        }
        Err(e) if e.status().map(|s| s.as_u16()) != Some(404) => {
            return Err(e).with_context(|| format!("asking {url} for the cluster's members"))
        }
        Err(_) => {}
    }
    let members = client
        .cluster()
        .await
        .with_context(|| format!("asking {url} for the cluster's members"))?;
    let mut healths = Vec::new();
    for m in &members.members {
        let health = tokio::time::timeout(
            Duration::from_secs(3),
            Client::new(&format!("http://{}", m.http_addr)).health(),
        )
        .await;
        healths.push((m.clone(), health.ok().and_then(Result::ok)));
    }
    Ok((members, healths))
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let url = &args.target.url;
    let (members, healths) = member_healths(&args.target).await?;
    let mut rows = Vec::new();
    let mut versions = Vec::new();
    let mut rpc_tls = false;
    for (m, health) in healths {
        let m = &m;
        rows.push(NodeRow {
            node_id: m.node_id,
            name: health
                .as_ref()
                .map(|h| h.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "-".into()),
            role: if m.draining {
                format!("{}*", m.role)
            } else {
                m.role.clone()
            },
            rpc_addr: m.rpc_addr.clone(),
            http_addr: m.http_addr.clone(),
            leader: members.leader == Some(m.node_id),
            term: health.as_ref().map(|h| h.term),
            applied: health.as_ref().and_then(|h| h.last_applied),
            lag: None,
            chunks: health.as_ref().map(|h| h.chunks_held),
            under_replicated: health.as_ref().map(|h| h.under_replicated),
            backlog: health.as_ref().map(|h| h.repair_backlog),
            copies_per_s: health.as_ref().map(|h| h.repair_rate),
            level: health.as_ref().map(|h| h.feature_level.max(1)),
            reachable: health.is_some(),
        });
        rpc_tls |= health.as_ref().is_some_and(|h| h.rpc_tls);
        versions.extend(health.map(|h| (h.cluster_version.max(1), h.cluster_id)));
    }
    // The version the most advanced node applied (they agree once caught up).
    let (cluster_version, cluster_id) = versions.into_iter().max().unwrap_or((1, None));
    let newest = rows.iter().filter_map(|r| r.applied).max();
    for row in &mut rows {
        row.lag = match (newest, row.applied) {
            (Some(n), Some(a)) => Some(n - a),
            _ => None,
        };
    }
    if rows.is_empty() {
        bail!("{url} reports no members");
    }
    // Each under-replicated chunk is counted by one holder: the cluster's count is the sum.
    let under_replicated: u64 = rows.iter().filter_map(|r| r.under_replicated).sum();
    let backlog: u64 = rows.iter().filter_map(|r| r.backlog).sum();
    if args.json {
        let out = serde_json::json!({
            "leader": members.leader,
            "term": members.term,
            "under_replicated": under_replicated,
            "repair_backlog": backlog,
            "cluster_version": cluster_version,
            "rpc_tls": rpc_tls,
            "cluster_id": cluster_id,
            "nodes": rows,
            "removed": members.removed,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    println!(
        "{}",
        table_row(
            [
                "ID",
                "NAME",
                "ROLE",
                "RPC",
                "HTTP",
                "LEADER",
                "TERM",
                "APPLIED",
                "LAG",
                "CHUNKS",
                "UNDER-REPL",
                "BACKLOG",
                "LEVEL",
                "REACHABLE"
            ]
            .map(String::from)
        )
    );
    for r in &rows {
        println!(
            "{}",
            table_row([
                r.node_id.to_string(),
                r.name.clone(),
                r.role.clone(),
                r.rpc_addr.clone(),
                r.http_addr.clone(),
                yes_no(r.leader),
                opt(r.term),
                opt(r.applied),
                opt(r.lag),
                opt(r.chunks),
                opt(r.under_replicated),
                match (r.backlog, r.copies_per_s) {
                    (Some(b), Some(rate)) if b > 0 => format!("{b} ({rate:.0}/s)"),
                    (b, _) => opt(b),
                },
                opt(r.level.map(u64::from)),
                yes_no(r.reachable),
            ])
        );
    }
    println!(
        "under-replicated chunks: {under_replicated} (fewer than the replication factor of reachable copies); repair backlog: {backlog} copies owed (rebalancing included)"
    );
    println!(
        "cluster version: {cluster_version} (new features wait until every member's LEVEL reaches theirs); cluster id: {}",
        cluster_id.as_deref().unwrap_or("none yet")
    );
    println!(
        "node-to-node gRPC: {}",
        if rpc_tls {
            "mutual TLS (certificates from the cluster CA)"
        } else {
            "plain (the join token authenticates calls; use --cluster-tls on untrusted networks)"
        }
    );
    if !members.removed.is_empty() {
        let ids: Vec<String> = members.removed.iter().map(u64::to_string).collect();
        println!("removed for good (never added again): {}", ids.join(", "));
    }
    Ok(())
}

/// One line of the status table: fixed-width columns.
fn table_row(cols: [String; 14]) -> String {
    const WIDTHS: [usize; 14] = [5, 12, 8, 22, 22, 7, 6, 8, 6, 8, 11, 14, 6, 0];
    cols.iter()
        .zip(WIDTHS)
        .map(|(c, w)| format!("{c:<w$}"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end()
        .to_owned()
}

/// Whether `node` is no longer in the membership.
fn gone(node: u64) -> impl Fn(&ClusterMembers) -> bool {
    move |view| view.members.iter().all(|m| m.node_id != node)
}

/// How long operator commands wait for a leader to answer.
const LEADER_PATIENCE: Duration = Duration::from_secs(60);

async fn rotate_token(args: RotateTokenArgs) -> anyhow::Result<()> {
    // Not retried: a second rotation after a lost answer would make a token nobody printed.
    let rotated = args
        .target
        .client()?
        .rotate_join_token(Some(args.grace))
        .await
        .context("rotating the join token")?;
    let grace = rotated.grace_seconds;
    println!("join token: {}", rotated.join_token);
    println!("gateway token: {}", rotated.gateway_token);
    eprintln!(
        "Members switch within {grace} s and rewrite their join-token and gateway-token files; \
         the old tokens are refused from {} s on. Restart gateways with the new gateway token \
         before then.",
        grace * 2
    );
    Ok(())
}

async fn rotate_credential(args: RotateCredentialArgs) -> anyhow::Result<()> {
    let which = if args.metrics { "metrics" } else { "admin" };
    // The file first: a token made but not written anywhere would be lost.
    let file = args.out.as_deref().map(create_secret_file).transpose()?;
    // Not retried: a second rotation after a lost answer would make a token nobody saw.
    let rotated = match args.target.client()?.rotate_credential(which).await {
        Ok(rotated) => rotated,
        Err(e) => {
            if let Some(path) = &args.out {
                let _ = std::fs::remove_file(path);
            }
            return Err(e).with_context(|| format!("rotating the cluster's {which} token"));
        }
    };
    let lines: Vec<String> = [
        ("admin_token", &rotated.admin_token),
        ("metrics_token", &rotated.metrics_token),
    ]
    .into_iter()
    .filter_map(|(name, token)| token.as_ref().map(|t| format!("{name}={t}")))
    .collect();
    match (file, &args.out) {
        (Some(mut file), Some(path)) => {
            use std::io::Write;
            file.write_all((lines.join("\n") + "\n").as_bytes())?;
            file.sync_all()?;
            println!("new token(s) written to {}", path.display());
        }
        _ => {
            for line in &lines {
                println!("{line}");
            }
        }
    }
    if rotated.admin_token.is_some() {
        eprintln!(
            "Every node and gateway now accepts the new admin token (within seconds), and no \
             longer the previous one nor any node's own --admin-token or admin-token file."
        );
    }
    Ok(())
}

/// A new file at `path` readable by its owner only (refused if it exists).
fn create_secret_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))
}

async fn cancel_drain(args: DrainCancelArgs) -> anyhow::Result<()> {
    let node = args.node_id;
    args.target
        .on_leader(
            LEADER_PATIENCE,
            &format!("cancelling the draining of node {node}"),
            |view| {
                view.members
                    .iter()
                    .any(|m| m.node_id == node && !m.draining)
            },
            |leader| async move { leader.undrain(node).await },
        )
        .await?;
    println!("node {node} is no longer draining; chunks move back to it at the next repair passes");
    Ok(())
}

/// Refuses a removal that would leave fewer than 3 members able to vote (voters, and storage
/// nodes the leader would promote), unless the operator said so.
fn check_voters_left(members: &ClusterMembers, node: u64, allowed: bool) -> anyhow::Result<()> {
    let left = members
        .members
        .iter()
        .filter(|m| m.node_id != node && !m.draining)
        .count();
    if left < 3 && !allowed {
        bail!(
            "removing node {node} would leave {left} member(s) able to vote: a cluster needs a \
             majority of its voters, so with 2 it stops committing when either one fails. Add a \
             node first (it becomes a voter as node {node} leaves), or pass --below-three-voters \
             to remove it anyway"
        );
    }
    Ok(())
}

/// How a drain's progress is shown: a line rewritten in place on a terminal, a plain line at
/// most every 5 s otherwise, or JSON lines on stdout.
struct DrainProgress {
    node: u64,
    start: u64,
    started: std::time::Instant,
    json: bool,
    terminal: bool,
    last: Option<(u64, std::time::Instant)>,
}

impl DrainProgress {
    fn show(&mut self, held: u64, done: bool) {
        let moved = self.start.saturating_sub(held);
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            moved as f64 / elapsed
        } else {
            0.0
        };
        let eta = (rate > 0.0).then(|| held as f64 / rate);
        let quiet_since = self.last.map(|(m, at)| (m == moved, at.elapsed()));
        let due = match quiet_since {
            None => true,
            Some((same, since)) => done || (!same && (self.terminal || since.as_secs() >= 5)),
        };
        if !due {
            return;
        }
        self.last = Some((moved, std::time::Instant::now()));
        if self.json {
            let line = serde_json::json!({
                "node": self.node, "moved": moved, "total": self.start, "held": held,
                "rate_per_s": rate, "eta_s": eta, "done": done,
            });
            println!("{line}");
            return;
        }
        let percent = (moved * 100).checked_div(self.start).unwrap_or(100);
        let eta = eta.map_or("-".to_owned(), |s| format!("{s:.0}s"));
        let line = format!(
            "draining node {}: {moved} of {} chunks moved ({percent}%), {rate:.1}/s, ETA {eta}",
            self.node, self.start
        );
        if self.terminal {
            eprint!("\r{line}   ");
            if done {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}

async fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let node = args.node_id;
    let below = args.below_three_voters;
    let target = &args.target;
    let members = target.client()?.cluster().await?;
    check_voters_left(&members, node, args.below_three_voters)?;
    if args.force {
        target
            .on_leader(
                LEADER_PATIENCE,
                &format!("removing node {node}"),
                gone(node),
                |leader| async move { leader.remove_node(node, true, below).await },
            )
            .await?;
        println!("node {node} removed (forced); repair restores the copies it held");
        return Ok(());
    }
    let info = members
        .members
        .iter()
        .find(|m| m.node_id == node)
        .with_context(|| format!("node {node} is not a member"))?;
    let drained = Client::new(&format!("http://{}", info.http_addr));
    let start = drained
        .health()
        .await
        .with_context(|| format!("node {node} does not answer; use --force to remove a dead node"))?
        .chunks_held;
    target
        .on_leader(
            LEADER_PATIENCE,
            &format!("draining node {node}"),
            |view| view.members.iter().any(|m| m.node_id == node && m.draining),
            |leader| async move { leader.drain(node).await },
        )
        .await?;
    if !args.json {
        eprintln!(
            "draining node {node}: its {start} chunks move to their other owners (the node runs a repair pass every 0.2 s while it drains)"
        );
    }
    let mut progress = DrainProgress {
        node,
        start,
        started: std::time::Instant::now(),
        json: args.json,
        terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        last: None,
    };
    let deadline = std::time::Instant::now() + args.timeout;
    loop {
        let held = drained.health().await.map(|h| h.chunks_held).ok();
        if let Some(held) = held {
            progress.show(held, held == 0);
        }
        if held == Some(0) {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "node {node} still holds {} chunks after {:?}; it stays a draining member (`blindstore cluster drain cancel {node}` makes it an owner again)",
                held.map_or("some".to_owned(), |h| h.to_string()),
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    target
        .on_leader(
            LEADER_PATIENCE,
            &format!("removing node {node}"),
            gone(node),
            |leader| async move { leader.remove_node(node, false, below).await },
        )
        .await?;
    if args.json {
        println!("{}", serde_json::json!({"node": node, "removed": true}));
    } else {
        println!("node {node} drained and removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn url_takes_host_and_port_as_plain_http() {
        assert_eq!(
            parse_url("127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            parse_url("node1.internal:8080/").unwrap(),
            "http://node1.internal:8080"
        );
        assert_eq!(parse_url("https://n1:8443").unwrap(), "https://n1:8443");
        assert!(parse_url("ftp://n1").unwrap_err().contains("not an http"));
        assert!(parse_url("http://").unwrap_err().contains("names no host"));
    }
}
