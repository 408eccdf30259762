//! `blindstore serve`: start-up, serving, graceful shutdown.

use std::io::Write;
use std::path::Path;

use std::time::Duration;

use anyhow::Context;
use blindstore_cluster::{Limits, Node, NodeConfig};
use blindstore_http::AppState;
use blindstore_rpc::tls::{ClusterCa, ClusterToken};
use blindstore_types::ZoneId;
use tracing_subscriber::EnvFilter;

use crate::config::{usable_token, Config, LogFormat, Role, ServeArgs, MIN_TOKEN_LEN};

const ADMIN_TOKEN_FILE: &str = "admin-token";
use blindstore_cluster::{GATEWAY_TOKEN_FILE, JOIN_TOKEN_FILE};

pub fn run(args: &ServeArgs, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    let config = Config::load(args, matches)?;
    check_negative_control()?;
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

/// A build with negative controls (the fault-injection harness's deliberate bugs) says loudly
/// when one is on; a normal build refuses to start when asked for one rather than silently
/// running correctly.
fn check_negative_control() -> anyhow::Result<()> {
    use blindstore_storage::negative_controls::{Control, COMPILED, ENV};
    let Ok(name) = std::env::var(ENV) else {
        return Ok(());
    };
    if !COMPILED {
        anyhow::bail!(
            "{ENV} is set, but this build has no negative controls \
             (they need --features negative-controls)"
        );
    }
    if Control::parse(&name).is_none() {
        anyhow::bail!(
            "{ENV}={name:?} is not a negative control (stale-reads, early-ack, skip-cas)"
        );
    }
    eprintln!("WARNING: negative control {name} is on: this node is deliberately broken");
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(data_dir = %config.data_dir.display(), http_addr = %config.http_addr, role = ?config.role, "starting");
    // A join into an empty data dir that fails leaves it empty again, so the same command can
    // be run once the cause is fixed (a token from a failed attempt would otherwise stay).
    let fresh_join = config.join.is_some()
        && config.role != Role::Gateway
        && std::fs::read_dir(&config.data_dir).map_or(true, |mut d| d.next().is_none());
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    // The metrics recorder first: series the node's background tasks register as they start
    // would otherwise go nowhere.
    blindstore_web::metrics::handle();
    let admin_token = admin_token(&config)?;
    if config.role == Role::Gateway {
        return serve_gateway(config, admin_token).await;
    }

    let (cluster_secret, new_cluster) = join_token(&config)?;

    // Bind first: a taken port should fail before any state is touched.
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding {}", config.http_addr))?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    let (rpc_listener, rpc_addr) = match config.rpc_addr {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding rpc {addr}"))?;
            let bound = l.local_addr().context("reading the bound rpc address")?;
            let advertised = config
                .advertise_rpc_addr
                .clone()
                .unwrap_or_else(|| bound.to_string());
            (Some(l), advertised)
        }
        None => (None, String::new()),
    };

    let node = Node::start(
        NodeConfig {
            data_dir: config.data_dir.clone(),
            http_addr: config
                .advertise_http_addr
                .clone()
                .unwrap_or_else(|| local_addr.to_string()),
            limits: Limits {
                max_chunk_bytes: config.max_chunk_bytes,
                max_entry_payload_bytes: config.max_entry_payload_bytes,
                inline_payload_bytes: config.inline_payload_bytes,
                ..Limits::default()
            },
            staging_ttl: config.staging_ttl,
            gc_interval: config.gc_interval,
            map_sizes: blindstore_storage::MapSizes {
                state: config.state_map_bytes as usize,
                chunks: config.chunks_map_bytes as usize,
                ..Default::default()
            },
            min_free_bytes: config.min_free_bytes,
            cache_bytes: config.cache_memory_bytes,
            snapshot_logs: config.snapshot_logs,
            rpc_addr: rpc_addr.clone(),
            cluster_secret: cluster_secret.clone(),
            join: config.join.clone(),
            node_id: config.node_id,
            voters: config.voters,
            replication: config.replication,
            down_after: config.down_after,
            repair_interval: config.repair_interval,
            write_timeout: config.write_timeout,
            scrub: blindstore_cluster::ScrubConfig {
                interval: config.scrub_interval,
                bytes_per_sec: config.scrub_bytes_per_sec,
            },
            accounts: blindstore_cluster::AccountSettings {
                session_ttl: config.session_ttl,
                ..Default::default()
            },
            feature_level: blindstore_types::command::FEATURE_LEVEL,
        },
        rpc_listener,
    )
    .await;
    let node = match node {
        Ok(node) => node,
        Err(e) if fresh_join => return Err(undo_failed_join(&config.data_dir, e.into())),
        Err(e) => return Err(anyhow::Error::from(e).context("starting the node")),
    };
    if !rpc_addr.is_empty() {
        println!("blindstore rpc listening on {rpc_addr}");
        // The gateway token follows from the join token; kept beside it for operators.
        let token =
            ClusterToken::parse(&cluster_secret).map_err(|e| anyhow::anyhow!("join token: {e}"))?;
        let gateway_token = token.gateway().to_string();
        if read_token(&config.data_dir, GATEWAY_TOKEN_FILE)?.as_deref() != Some(&gateway_token) {
            write_token(&config.data_dir, GATEWAY_TOKEN_FILE, &gateway_token)?;
        }
        if new_cluster {
            // Paths, not the secrets: stdout often goes to a journal others can read.
            let dir = config.data_dir.display();
            println!("blindstore join token written to {dir}/{JOIN_TOKEN_FILE} (mode 0600)");
            println!("blindstore gateway token written to {dir}/{GATEWAY_TOKEN_FILE} (mode 0600)");
        }
    }
    // A sole voter (a single node, or one that just created a cluster) elects itself at once:
    // wait for that, and set up the demo zone on a new cluster. A restarted member of a larger
    // cluster serves right away (503 until a quorum is back).
    if node.bootstrapped() || node.sole_voter().await {
        let leader = node.wait_for_leader(Duration::from_secs(60)).await?;
        tracing::info!(leader, "raft ready");
        // Alone, it confirms its own state at once (the new term's first entry commits all
        // it holds); a member of a larger cluster answers 503 until a quorum confirms it.
        node.wait_caught_up(Duration::from_secs(60)).await?;
        // Alone, nobody else's build can hold the version back: a new cluster (or a single
        // node started on a newer build) serves its level's features from the first request.
        if let Err(e) = node.advance_version_now().await {
            tracing::debug!(error = %e, "raising the cluster's version; the version keeper retries");
        }
    }
    let demo_zone = config.demo_zone.unwrap_or(config.rpc_addr.is_none());
    if node.bootstrapped() && demo_zone {
        let demo = ZoneId::new("demo").expect("'demo' is a valid zone id");
        if node.zones().create_zone(demo).await? {
            tracing::info!("created zone demo");
        }
    }

    let mut state = AppState::new(node.clone(), &admin_token, &config.auth_limits()?);
    state.revision = REVISION.into();
    state.name = config.name.clone().unwrap_or_default().into();
    if let Some(dir) = &config.site {
        let (site, files) =
            blindstore_http::LocalSite::new(dir.clone(), config.site_csp.clone(), config.site_spa)
                .with_context(|| format!("reading the site directory {}", dir.display()))?;
        tracing::info!(dir = %dir.display(), files, "serving a site at / (read live: edits show on reload)");
        state = state.with_local_site(site);
    }
    let app = blindstore_http::router(state);
    record_build_info("member");
    let shutdown = shutdown_signal()?;
    let tls = config.tls().await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %local_addr, scheme, "http listening");
    // One machine-readable line on stdout, for people and for scripts that started us on port 0.
    println!("blindstore listening on {scheme}://{local_addr}");
    let _ = std::io::stdout().flush();

    // On SIGTERM/SIGINT: stop Raft first (writes in flight end at once, even when no peer
    // can be reached), then let requests in flight finish, within a deadline.
    let drain = tokio_util::sync::CancellationToken::new();
    let limits = config.server_limits()?;
    let app = blindstore_web::limited(app, &limits);
    let server = blindstore_web::serve(listener, app, limits, tls, {
        let drain = drain.clone();
        async move { drain.cancelled().await }
    });
    let mut server = tokio::spawn(server);
    tokio::select! {
        _ = shutdown => {}
        result = &mut server => {
            node.shutdown(SHUTDOWN_DEADLINE).await;
            return result.context("http server task");
        }
    }
    node.shutdown(SHUTDOWN_DEADLINE).await;
    drain.cancel();
    match tokio::time::timeout(SHUTDOWN_DEADLINE, &mut server).await {
        Ok(result) => result.context("http server task")?,
        Err(_) => {
            tracing::warn!("requests still in flight at the shutdown deadline; closing them");
            server.abort();
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long each shutdown phase (stopping the node, draining HTTP) may take.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// The gateway role: no Raft, no stored chunks; forwards to members and caches chunks.
async fn serve_gateway(config: Config, admin_token: String) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding {}", config.http_addr))?;
    let local_addr = listener.local_addr().context("reading the bound address")?;
    let seed = config.join.clone().context("a gateway needs --join")?;
    let gateway = blindstore_gateway::Gateway::start(blindstore_gateway::GatewayConfig {
        seeds: vec![seed],
        token: config
            .gateway_token
            .clone()
            .or_else(|| config.join_token.clone())
            .context("a gateway needs --gateway-token")?,
        admin_token,
        revision: REVISION.into(),
        name: config.name.clone().unwrap_or_default(),
        cache_memory_bytes: config.cache_memory_bytes,
        cache_disk: (config.cache_disk_bytes > 0)
            .then(|| (config.data_dir.join("cache"), config.cache_disk_bytes)),
    })
    .await
    .map_err(|e| anyhow::anyhow!("finding the cluster: {e}"))?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let refresher = tokio::spawn(gateway.clone().refresh_until(shutdown.clone()));
    let signal = shutdown_signal()?;
    // On a signal, relayed streams end too, so the server can drain.
    let stop = {
        let gateway = gateway.clone();
        async move {
            signal.await;
            gateway.stop_streams();
        }
    };
    tracing::info!(addr = %local_addr, "gateway listening");
    let tls = config.tls().await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("blindstore listening on {scheme}://{local_addr}");
    let _ = std::io::stdout().flush();
    let limits = config.server_limits()?;
    let app = blindstore_web::limited(blindstore_gateway::router(gateway), &limits);
    record_build_info("gateway");
    blindstore_web::serve(listener, app, limits, tls, stop).await;
    shutdown.cancel();
    if let Err(e) = refresher.await {
        tracing::warn!(error = %e, "member refresher ended abnormally");
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// Log levels without `RUST_LOG`. openraft's own messages are errors only, and not its
/// replication's: those repeat for every retry to a peer that is down, which the node says
/// once itself (`blindstore_rpc::reachability`). `RUST_LOG=info,openraft=warn` shows them.
const DEFAULT_LOG_FILTER: &str =
    "info,openraft=error,openraft::replication=off,openraft::engine::handler::replication_handler=off";

/// The git revision this binary was built from (build.rs).
pub(crate) const REVISION: &str = env!("BLINDSTORE_REVISION");

/// What `blindstore --version` says: the version, the revision and the feature level.
pub(crate) fn version_line() -> String {
    format!(
        "{} (revision {REVISION}, feature level {})",
        env!("CARGO_PKG_VERSION"),
        blindstore_types::command::FEATURE_LEVEL
    )
}

/// `blindstore_build_info`, for a process of `role`.
fn record_build_info(role: &'static str) {
    blindstore_web::metrics::build_info(
        env!("CARGO_PKG_VERSION"),
        REVISION,
        blindstore_types::command::FEATURE_LEVEL,
        role,
    );
}

/// After a join into an empty data dir failed: empties it again, and says so.
fn undo_failed_join(dir: &std::path::Path, error: anyhow::Error) -> anyhow::Error {
    let emptied = std::fs::read_dir(dir).and_then(|items| {
        for item in items {
            let path = item?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    });
    match emptied {
        Ok(()) => error.context(format!(
            "joining the cluster failed; {} is empty again, so the same command can run once the cause is fixed",
            dir.display()
        )),
        Err(e) => error.context(format!(
            "joining the cluster failed, and {} could not be emptied ({e}): remove it before trying again",
            dir.display()
        )),
    }
}

/// The configured admin token, else the one stored in the data dir, else a new one stored
/// there with mode 0600.
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = &config.admin_token {
        return Ok(token.clone());
    }
    if let Some(token) = read_token(&config.data_dir, ADMIN_TOKEN_FILE)? {
        tracing::info!(
            file = ADMIN_TOKEN_FILE,
            "admin token read from the data dir"
        );
        return Ok(token);
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    write_token(&config.data_dir, ADMIN_TOKEN_FILE, &token)?;
    let path = config.data_dir.join(ADMIN_TOKEN_FILE);
    tracing::info!(path = %path.display(), "generated an admin token");
    eprintln!(
        "blindstore: admin token generated and stored in {}",
        path.display()
    );
    Ok(token)
}

/// The cluster secret every node-to-node call carries, which is also the join token: the one
/// given with `--join-token`, else the one in the data dir, else a new one (a new cluster).
/// Returns it and whether it is new.
fn join_token(config: &Config) -> anyhow::Result<(String, bool)> {
    let stored = read_token(&config.data_dir, JOIN_TOKEN_FILE)?;
    let existing = config.join_token.as_ref().or(stored.as_ref());
    if let (true, Some(token)) = (config.cluster_tls, existing) {
        let parsed = ClusterToken::parse(token).map_err(|e| anyhow::anyhow!("join token: {e}"))?;
        if parsed.ca.is_none() {
            anyhow::bail!(
                "cluster_tls is chosen when a cluster is created; this cluster runs plain gRPC between nodes (its join token names no CA)"
            );
        }
    }
    match (&config.join_token, stored) {
        (Some(given), Some(stored)) if *given != stored => anyhow::bail!(
            "the join token given differs from the one in {path}: this data dir belongs to another cluster, \
             or the token was rotated. After a rotation this member applied, start it without --join-token \
             (the file holds the current one); a member of a plain cluster that was down through a rotation \
             takes the new token once {path} is removed",
            path = config.data_dir.join(JOIN_TOKEN_FILE).display()
        ),
        (_, Some(stored)) => Ok((stored, false)),
        (Some(given), None) => {
            write_token(&config.data_dir, JOIN_TOKEN_FILE, given)?;
            Ok((given.clone(), false))
        }
        (None, None) => {
            let mut token = ClusterToken {
                secret: hex::encode(rand::random::<[u8; 32]>()),
                ca: None,
            };
            if config.cluster_tls {
                let ca = ClusterCa::generate().context("making the cluster CA")?;
                ca.store(&config.data_dir)
                    .context("storing the cluster CA")?;
                tracing::info!(fingerprint = %ca.fingerprint(), "cluster CA made: rpc between nodes runs over TLS");
                token.ca = Some(ca.fingerprint());
            }
            let token = token.to_string();
            write_token(&config.data_dir, JOIN_TOKEN_FILE, &token)?;
            Ok((token, true))
        }
    }
}

/// A token file's contents; `None` if there is no such file. An empty, truncated or garbled
/// file is refused: a secret never falls back to "empty".
fn read_token(dir: &Path, name: &str) -> anyhow::Result<Option<String>> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let token = text.trim();
    if !usable_token(token) {
        anyhow::bail!(
            "{} does not hold a usable token ({} characters; at least {MIN_TOKEN_LEN} printable ones are needed): \
             restore it from a backup or another member, or remove it to have a new one made",
            path.display(),
            token.len()
        );
    }
    Ok(Some(token.to_owned()))
}

/// Writes a token file atomically (mode 0600): a crash leaves no file or the whole token.
fn write_token(dir: &Path, name: &str, token: &str) -> anyhow::Result<()> {
    blindstore_storage::write_atomically(dir, name, format!("{token}\n").as_bytes())
        .with_context(|| format!("writing {}", dir.join(name).display()))
}

/// Listens for SIGINT and SIGTERM from the moment it is called (not from when the future is
/// first polled): a signal that arrives right after the "listening" line is a clean shutdown,
/// not the default action that kills the process.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}
