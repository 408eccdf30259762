//! The node's configuration: one [`Config`], built once at start-up from defaults, then a TOML
//! file (`--config`), then `BLINDSTORE_*` environment variables, then flags — later sources
//! win — and validated before anything starts. It is passed explicitly from there on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use blindstore_cluster::NodeConfig;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

/// Everything a node can be told. Every field has a default, so an empty file (or none) is a
/// working configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the node keeps its data (Raft log, state, chunks, admin token).
    /// Default: `./blindstore-data`.
    pub data_dir: PathBuf,
    /// Address the HTTP API listens on. Default: `127.0.0.1:8080`. Port 0 picks a free port;
    /// the address actually bound is printed on standard output.
    pub http_addr: SocketAddr,
    /// Admin bearer token. Default: none, in which case one is generated on first start and
    /// kept in `<data_dir>/admin-token` (mode 0600).
    pub admin_token: Option<String>,
    /// Log format: `text` or `json`. Default: `text`. Levels come from `RUST_LOG`
    /// (default `info`).
    pub log_format: LogFormat,
    /// Create zone `demo` at start-up so the quickstart needs no admin step. Default: true.
    pub demo_zone: bool,
    /// Largest chunk accepted, in bytes. Default: 4 MiB (4194304).
    pub max_chunk_bytes: u64,
    /// Largest entry payload, in bytes. Default: 64 KiB (65536).
    pub max_entry_payload_bytes: u64,
    /// Payloads of at most this many bytes travel inside the Raft entry (every voter keeps
    /// them with the entry); larger ones are stored as chunks. 0: every payload is a chunk.
    /// Default: 64 KiB (65536).
    pub inline_payload_bytes: u64,
    /// Unreferenced chunks older than this are deleted. At least three times `write_timeout`
    /// plus 1 s.
    /// Default: `24h`.
    #[serde(with = "humantime_serde")]
    pub staging_ttl: Duration,
    /// How often garbage collection runs. Default: `10m`.
    #[serde(with = "humantime_serde")]
    pub gc_interval: Duration,
    /// Take a Raft snapshot every this many log entries, then purge the log before it.
    /// Default: 20000.
    pub snapshot_logs: u64,
    /// Node-to-node (gRPC) listen address. Default: none — a single node that cannot be
    /// joined. Needed for every member of a cluster. Port 0 picks a free port.
    pub rpc_addr: Option<SocketAddr>,
    /// The address other nodes should dial for this node's rpc, if not `rpc_addr` (e.g. when
    /// listening on 0.0.0.0). Default: the bound rpc address.
    pub advertise_rpc_addr: Option<String>,
    /// The HTTP address other nodes, gateways and `cluster status` should use for this node, if
    /// not the bound one (e.g. when listening on 0.0.0.0). Default: the bound HTTP address.
    pub advertise_http_addr: Option<String>,
    /// On first start, join the cluster that this member's rpc address belongs to.
    /// Default: none (bootstrap a new cluster).
    pub join: Option<String>,
    /// The join token printed by the first node (also in its `<data_dir>/join-token`).
    /// Required with `join`. Default: none.
    pub join_token: Option<String>,
    /// Gateway: the cluster's gateway token (printed by its first node, also in every member's
    /// `<data_dir>/gateway-token`). It lets a gateway find the members but not join, vote,
    /// move chunks or change the membership. Default: none.
    pub gateway_token: Option<String>,
    /// This node's id, on first start only. Default: assigned (1 for a new cluster, the next
    /// free id when joining).
    pub node_id: Option<u64>,
    /// When creating a cluster: run node-to-node gRPC over TLS, with a cluster CA made now and
    /// kept in `<data_dir>/cluster-ca.pem` and `cluster-ca-key.pem` (mode 0600). The join token
    /// then names the CA, so joining nodes and gateways verify it; they need no flag. Only at
    /// the cluster's first start. Default: false (plain gRPC).
    pub cluster_tls: bool,
    /// A directory served at `/` (requests no API route takes), scanned at start: a web app
    /// and its API from one process. Default: none.
    pub site: Option<PathBuf>,
    /// With `site`: the `Content-Security-Policy` of its files. Default: none.
    pub site_csp: Option<String>,
    /// With `site`: a single-page app (HTML navigations to paths that are not files get
    /// `index.html`). Default: false.
    pub site_spa: bool,
    /// HTTPS: the certificate chain, PEM (leaf first). Needs `tls_key`. Reloaded on SIGHUP.
    /// Default: none (plain HTTP).
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the certificate's private key, PEM. Default: none.
    pub tls_key: Option<PathBuf>,
    /// How many voters the cluster should have: 3 or 5 (1 is allowed for a single node).
    /// Nodes joining beyond that stay storage nodes (Raft learners). Default: 3.
    pub voters: usize,
    /// Copies of each chunk, on the nodes ranking highest for it. Default: 2.
    pub replication: usize,
    /// A node unreachable for longer than this stops counting as a chunk owner, and its chunks
    /// are copied elsewhere. Default: `60s`.
    #[serde(with = "humantime_serde")]
    pub down_after: Duration,
    /// How often each node checks its chunks against their owners. Default: `10s`.
    #[serde(with = "humantime_serde")]
    pub repair_interval: Duration,
    /// Free disk space (bytes) on the data dir's file system below which the node refuses new
    /// data (chunk uploads, appends, new chains) with 507 `insufficient_storage`, keeping room
    /// for Raft to commit what recovery needs. Default: 268435456 (256 MiB).
    pub min_free_bytes: u64,
    /// Upper bound of the chunk store (LMDB map), bytes. Default: 274877906944 (256 GiB).
    pub chunks_map_bytes: u64,
    /// Upper bound of the Raft state store (LMDB map), bytes; new data is refused with 507
    /// once it is 90% full. Default: 17179869184 (16 GiB).
    pub state_map_bytes: u64,
    /// HTTP: a connection must send its request headers within this. Default: `10s`.
    #[serde(with = "humantime_serde")]
    pub http_header_timeout: Duration,
    /// HTTP: a request body must arrive within this. Default: `30s`.
    #[serde(with = "humantime_serde")]
    pub http_body_timeout: Duration,
    /// HTTP: a request is answered within this (503 beyond it). Default: `60s`.
    #[serde(with = "humantime_serde")]
    pub http_request_timeout: Duration,
    /// HTTP: open connections at most; a new one beyond is answered 503. Default: 1024.
    pub http_max_connections: usize,
    /// HTTP: open connections from one client address (IPv6: one /64) at most; a new one
    /// beyond is answered 429. `trusted_proxies` are exempt. Default: 64.
    pub http_max_connections_per_ip: usize,
    /// HTTP: a connection with no request in flight is closed after this. Default: `60s`.
    #[serde(with = "humantime_serde")]
    pub http_idle_timeout: Duration,
    /// HTTP: requests handled at once at most; more are answered 503 at once. Default: 256.
    pub http_max_requests: usize,
    /// How long a write may take before the client is answered 503: a proposal until it
    /// commits, a forward until the leader answers, a membership change, storing an append's
    /// payload. `outcome_unknown` if the write may have been proposed, `unavailable` if it
    /// certainly was not. Default: `10s`.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// A session ends this long after its login (fixed, not sliding). Default: `30d`.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Login attempts (`login/start`) per client IP per minute, per node. Default: 30.
    pub login_rate_per_ip: u32,
    /// Login attempts per account per minute, per node. Default: 10.
    pub login_rate_per_account: u32,
    /// Registration requests per client IP per minute, per node. Default: 10.
    pub register_rate_per_ip: u32,
    /// Envelope writes (and deletions) per account per minute, per node. Default: 60.
    pub envelope_rate_per_account: u32,
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For` names the client, for rate
    /// limits behind a gateway or load balancer. Default: none.
    pub trusted_proxies: Vec<String>,
    /// How often each node starts a scrub pass: every chunk it holds is read and checked
    /// against its hash; a copy that fails is deleted and replaced from a replica. The first
    /// pass starts at start-up. Default: `24h`.
    #[serde(with = "humantime_serde")]
    pub scrub_interval: Duration,
    /// Bytes per second a scrub pass reads at most. Default: 33554432 (32 MiB/s).
    pub scrub_bytes_per_sec: u64,
    /// `member` (Raft voter or storage node, holding data) or `gateway` (no data: forwards the
    /// API to members, caching chunks; needs `join` and `gateway_token`). Default: `member`.
    pub role: Role,
    /// Gateway: bytes of chunks cached in memory. Default: 268435456 (256 MiB).
    pub cache_memory_bytes: u64,
    /// Gateway: bytes of chunks cached on disk under `<data_dir>/cache` (emptied at start);
    /// 0 turns the disk cache off. Default: 0.
    pub cache_disk_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Gateway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./blindstore-data"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token: None,
            site: None,
            site_csp: None,
            site_spa: false,
            cluster_tls: false,
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Text,
            demo_zone: true,
            max_chunk_bytes: 4 << 20,
            max_entry_payload_bytes: 64 << 10,
            inline_payload_bytes: 64 << 10,
            staging_ttl: NodeConfig::STAGING_TTL,
            gc_interval: NodeConfig::GC_INTERVAL,
            snapshot_logs: NodeConfig::SNAPSHOT_LOGS,
            rpc_addr: None,
            advertise_rpc_addr: None,
            advertise_http_addr: None,
            join: None,
            join_token: None,
            gateway_token: None,
            node_id: None,
            voters: NodeConfig::VOTERS,
            replication: NodeConfig::REPLICATION,
            down_after: NodeConfig::DOWN_AFTER,
            repair_interval: NodeConfig::REPAIR_INTERVAL,
            min_free_bytes: NodeConfig::MIN_FREE_BYTES,
            chunks_map_bytes: 256 << 30,
            state_map_bytes: 16 << 30,
            http_header_timeout: Duration::from_secs(10),
            http_body_timeout: Duration::from_secs(30),
            http_request_timeout: Duration::from_secs(60),
            http_max_connections: 1024,
            http_max_connections_per_ip: 64,
            http_idle_timeout: Duration::from_secs(60),
            http_max_requests: 256,
            write_timeout: NodeConfig::WRITE_TIMEOUT,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            login_rate_per_ip: 30,
            login_rate_per_account: 10,
            register_rate_per_ip: 10,
            envelope_rate_per_account: 60,
            trusted_proxies: Vec::new(),
            scrub_interval: NodeConfig::SCRUB_INTERVAL,
            scrub_bytes_per_sec: NodeConfig::SCRUB_BYTES_PER_SEC,
            role: Role::Member,
            cache_memory_bytes: 256 << 20,
            cache_disk_bytes: 0,
        }
    }
}

/// Flags of `blindstore serve`; each may also come from the environment variable named. What
/// is given overlays the file as one layer (`Serialized`, leaving out what was not given).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ServeArgs {
    /// TOML configuration file (keys as in the README, section Configuration).
    #[arg(long, env = "BLINDSTORE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./blindstore-data]
    #[arg(long, env = "BLINDSTORE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:8080]
    #[arg(long, env = "BLINDSTORE_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Admin bearer token [default: generated and stored in the data dir]
    #[arg(long, env = "BLINDSTORE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log format [default: text]
    #[arg(long, env = "BLINDSTORE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Create zone `demo` at start-up [default: true]
    #[arg(long, env = "BLINDSTORE_DEMO_ZONE")]
    pub demo_zone: Option<bool>,
    /// Largest chunk, bytes [default: 4194304]
    #[arg(long, env = "BLINDSTORE_MAX_CHUNK_BYTES")]
    pub max_chunk_bytes: Option<u64>,
    /// Largest entry payload, bytes [default: 65536]
    #[arg(long, env = "BLINDSTORE_MAX_ENTRY_PAYLOAD_BYTES")]
    pub max_entry_payload_bytes: Option<u64>,
    /// Payloads up to this size travel in the Raft entry, larger ones are chunks; 0: all
    /// chunks [default: 65536]
    #[arg(long, env = "BLINDSTORE_INLINE_PAYLOAD_BYTES")]
    pub inline_payload_bytes: Option<u64>,
    /// Delete unreferenced chunks after this long, e.g. 24h, 90m [default: 24h]
    #[arg(long, env = "BLINDSTORE_STAGING_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub staging_ttl: Option<Duration>,
    /// Garbage collection interval, e.g. 10m [default: 10m]
    #[arg(long, env = "BLINDSTORE_GC_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub gc_interval: Option<Duration>,
    /// Raft snapshot every this many log entries [default: 20000]
    #[arg(long, env = "BLINDSTORE_SNAPSHOT_LOGS")]
    pub snapshot_logs: Option<u64>,
    /// Node-to-node gRPC listen address, e.g. 127.0.0.1:7070 [default: none]
    #[arg(long, env = "BLINDSTORE_RPC_ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    /// Address peers dial for this node's rpc [default: the bound rpc address]
    #[arg(long, env = "BLINDSTORE_ADVERTISE_RPC_ADDR")]
    pub advertise_rpc_addr: Option<String>,
    /// Address others use for this node's HTTP API [default: the bound HTTP address]
    #[arg(long, env = "BLINDSTORE_ADVERTISE_HTTP_ADDR")]
    pub advertise_http_addr: Option<String>,
    /// Join the cluster of this member (its rpc address), on first start
    #[arg(long, env = "BLINDSTORE_JOIN")]
    pub join: Option<String>,
    /// The cluster's join token (printed by its first node)
    #[arg(long, env = "BLINDSTORE_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// Gateway: the cluster's gateway token (members keep it in <data_dir>/gateway-token)
    #[arg(long, env = "BLINDSTORE_GATEWAY_TOKEN", hide_env_values = true)]
    pub gateway_token: Option<String>,
    /// This node's id, first start only [default: assigned]
    #[arg(long, env = "BLINDSTORE_NODE_ID")]
    pub node_id: Option<u64>,
    /// New cluster: gRPC between nodes over TLS with a cluster CA made now (joiners need no flag)
    #[arg(long, env = "BLINDSTORE_CLUSTER_TLS")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cluster_tls: bool,
    /// Serve this directory at / (a web app and its API from one process) [default: none]
    #[arg(long, env = "BLINDSTORE_SITE")]
    pub site: Option<PathBuf>,
    /// With --site: the Content-Security-Policy of its files [default: none]
    #[arg(long, env = "BLINDSTORE_SITE_CSP")]
    pub site_csp: Option<String>,
    /// With --site: a single-page app (navigations to unknown paths get index.html)
    #[arg(long, env = "BLINDSTORE_SITE_SPA")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub site_spa: bool,
    /// HTTPS: certificate chain (PEM); reloaded on SIGHUP [default: none, plain HTTP]
    #[arg(long, env = "BLINDSTORE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: private key (PEM) of --tls-cert
    #[arg(long, env = "BLINDSTORE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Voters the cluster should have: 3 or 5 [default: 3]
    #[arg(long, env = "BLINDSTORE_VOTERS")]
    pub voters: Option<usize>,
    /// Copies of each chunk [default: 2]
    #[arg(long, env = "BLINDSTORE_REPLICATION")]
    pub replication: Option<usize>,
    /// Stop counting an unreachable node as a chunk owner after this long [default: 60s]
    #[arg(long, env = "BLINDSTORE_DOWN_AFTER", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub down_after: Option<Duration>,
    /// Chunk repair interval [default: 10s]
    #[arg(long, env = "BLINDSTORE_REPAIR_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub repair_interval: Option<Duration>,
    /// Refuse new data below this many free bytes on disk [default: 268435456]
    #[arg(long, env = "BLINDSTORE_MIN_FREE_BYTES")]
    pub min_free_bytes: Option<u64>,
    /// Chunk store map size, bytes [default: 274877906944]
    #[arg(long, env = "BLINDSTORE_CHUNKS_MAP_BYTES")]
    pub chunks_map_bytes: Option<u64>,
    /// Raft state store map size, bytes [default: 17179869184]
    #[arg(long, env = "BLINDSTORE_STATE_MAP_BYTES")]
    pub state_map_bytes: Option<u64>,
    /// HTTP: time a connection has to send its request headers [default: 10s]
    #[arg(long, env = "BLINDSTORE_HTTP_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub http_header_timeout: Option<Duration>,
    /// HTTP: time a request body has to arrive [default: 30s]
    #[arg(long, env = "BLINDSTORE_HTTP_BODY_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub http_body_timeout: Option<Duration>,
    /// HTTP: time a request has to be answered [default: 60s]
    #[arg(long, env = "BLINDSTORE_HTTP_REQUEST_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub http_request_timeout: Option<Duration>,
    /// HTTP: open connections at most [default: 1024]
    #[arg(long, env = "BLINDSTORE_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// HTTP: open connections from one client address at most [default: 64]
    #[arg(long, env = "BLINDSTORE_HTTP_MAX_CONNECTIONS_PER_IP")]
    pub http_max_connections_per_ip: Option<usize>,
    /// HTTP: close a connection idle this long [default: 60s]
    #[arg(long, env = "BLINDSTORE_HTTP_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub http_idle_timeout: Option<Duration>,
    /// HTTP: requests in flight at most [default: 256]
    #[arg(long, env = "BLINDSTORE_HTTP_MAX_REQUESTS")]
    pub http_max_requests: Option<usize>,
    /// Deadline of a write (proposal, forward, membership change), e.g. 10s [default: 10s]
    #[arg(long, env = "BLINDSTORE_WRITE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub write_timeout: Option<Duration>,
    /// Sessions end this long after their login, e.g. 30d, 12h [default: 30d]
    #[arg(long, env = "BLINDSTORE_SESSION_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub session_ttl: Option<Duration>,
    /// Login attempts per client IP per minute [default: 30]
    #[arg(long, env = "BLINDSTORE_LOGIN_RATE_PER_IP")]
    pub login_rate_per_ip: Option<u32>,
    /// Login attempts per account per minute [default: 10]
    #[arg(long, env = "BLINDSTORE_LOGIN_RATE_PER_ACCOUNT")]
    pub login_rate_per_account: Option<u32>,
    /// Registration requests per client IP per minute [default: 10]
    #[arg(long, env = "BLINDSTORE_REGISTER_RATE_PER_IP")]
    pub register_rate_per_ip: Option<u32>,
    /// Envelope writes per account per minute [default: 60]
    #[arg(long, env = "BLINDSTORE_ENVELOPE_RATE_PER_ACCOUNT")]
    pub envelope_rate_per_account: Option<u32>,
    /// Trusted proxies whose X-Forwarded-For names the client: addresses or CIDR ranges, comma-separated [default: none]
    #[arg(long, env = "BLINDSTORE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// Start a scrub pass (re-hash every held chunk) this often [default: 24h]
    #[arg(long, env = "BLINDSTORE_SCRUB_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub scrub_interval: Option<Duration>,
    /// Bytes per second a scrub pass reads at most [default: 33554432]
    #[arg(long, env = "BLINDSTORE_SCRUB_BYTES_PER_SEC")]
    pub scrub_bytes_per_sec: Option<u64>,
    /// member or gateway [default: member]
    #[arg(long, env = "BLINDSTORE_ROLE")]
    pub role: Option<Role>,
    /// Gateway: memory cache size in bytes [default: 268435456]
    #[arg(long, env = "BLINDSTORE_CACHE_MEMORY_BYTES")]
    pub cache_memory_bytes: Option<u64>,
    /// Gateway: disk cache size in bytes, 0 for none [default: 0]
    #[arg(long, env = "BLINDSTORE_CACHE_DISK_BYTES")]
    pub cache_disk_bytes: Option<u64>,
}

impl Config {
    /// The HTTP server's limits.
    /// The TLS configuration, loaded, with a task that reloads it on SIGHUP; `None` for
    /// plain HTTP.
    pub fn tls(&self) -> anyhow::Result<Option<std::sync::Arc<blindstore_web::Tls>>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let tls = blindstore_web::Tls::load(cert, key).map_err(|e| anyhow::anyhow!(e))?;
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("listening for SIGHUP")?;
        let reloading = tls.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match reloading.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: TLS certificate not reloaded; the previous one stays in use")
                    }
                }
            }
        });
        Ok(Some(tls))
    }

    pub fn server_limits(&self) -> anyhow::Result<blindstore_web::ServerLimits> {
        Ok(blindstore_web::ServerLimits {
            header_read_timeout: self.http_header_timeout,
            body_read_timeout: self.http_body_timeout,
            request_timeout: self.http_request_timeout,
            idle_timeout: self.http_idle_timeout,
            max_connections: self.http_max_connections,
            max_connections_per_ip: self.http_max_connections_per_ip,
            trusted_proxies: self.auth_limits()?.trusted_proxies,
            max_requests: self.http_max_requests,
        })
    }

    /// The rate limits of account endpoints.
    pub fn auth_limits(&self) -> anyhow::Result<blindstore_http::AuthLimits> {
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!("trusted_proxies: {p:?} is not an address or CIDR range")
                    })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(blindstore_http::AuthLimits {
            login_per_ip: self.login_rate_per_ip,
            login_per_account: self.login_rate_per_account,
            register_per_ip: self.register_rate_per_ip,
            envelope_writes_per_account: self.envelope_rate_per_account,
            trusted_proxies,
        })
    }

    /// Defaults, then the file, then environment and flags (clap has already merged those two,
    /// flags winning), then validation. figment layers them: each layer replaces the keys it
    /// gives, and the result is read into [`Config`] once, unknown keys refused.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        use figment::providers::{Format, Serialized, Toml};
        let mut layers = figment::Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            layers = layers.merge(Toml::string(&text));
        }
        let config: Config = layers
            .merge(Serialized::defaults(args))
            .extract()
            .map_err(|e| {
                let message = describe(&e);
                // An error names the layer it came from: a file's mistakes are the file's.
                let from_file = e.metadata.as_ref().is_some_and(|m| m.name.contains("TOML"));
                match (&args.config, from_file) {
                    (Some(path), true) => {
                        anyhow::anyhow!("parsing config file {}: {message}", path.display())
                    }
                    _ => anyhow::anyhow!("{message}"),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("tls_cert and tls_key go together");
        }
        if let Some(token) = &self.admin_token {
            if !usable_token(token) {
                bail!("admin_token must be at least 16 printable ASCII characters without spaces");
            }
        }
        if self.max_chunk_bytes == 0 || self.max_chunk_bytes > 64 << 20 {
            bail!("max_chunk_bytes must be between 1 and 67108864 (64 MiB)");
        }
        if self.max_entry_payload_bytes == 0 || self.max_entry_payload_bytes > self.max_chunk_bytes
        {
            bail!("max_entry_payload_bytes must be between 1 and max_chunk_bytes");
        }
        if self.inline_payload_bytes > 1 << 20 {
            bail!("inline_payload_bytes must be at most 1048576 (1 MiB)");
        }
        if self.repair_interval < Duration::from_millis(100) {
            bail!("repair_interval must be at least 100ms");
        }
        if !(1..=5).contains(&self.replication) {
            bail!("replication must be between 1 and 5");
        }
        if ![1, 3, 5].contains(&self.voters) {
            bail!("voters must be 1, 3 or 5");
        }
        if self.join.is_some() && self.join_token.is_none() && self.role == Role::Member {
            bail!("join needs join_token (the token printed by the cluster's first node)");
        }
        if self.role == Role::Gateway
            && (self.join.is_none() || (self.join_token.is_none() && self.gateway_token.is_none()))
        {
            bail!(
                "a gateway needs join (a member's rpc address) and gateway_token (or join_token)"
            );
        }
        if self
            .gateway_token
            .as_deref()
            .is_some_and(|t| !usable_token(t))
        {
            bail!("gateway_token must be at least 16 printable ASCII characters without spaces");
        }
        if self.cluster_tls && (self.rpc_addr.is_none() || self.role == Role::Gateway) {
            bail!("cluster_tls is for a member with rpc_addr (a gateway follows the token it is given)");
        }
        if self.join.is_some() && self.rpc_addr.is_none() && self.role == Role::Member {
            bail!("join needs rpc_addr: members talk to each other over it");
        }
        if let Some(token) = &self.join_token {
            if !usable_token(token) {
                bail!("join_token must be at least 16 printable ASCII characters without spaces");
            }
        }
        if self.node_id == Some(0) {
            bail!("node_id must be at least 1");
        }
        if self.snapshot_logs < 8 {
            bail!("snapshot_logs must be at least 8");
        }
        self.auth_limits()?;
        if [
            self.login_rate_per_ip,
            self.login_rate_per_account,
            self.register_rate_per_ip,
            self.envelope_rate_per_account,
        ]
        .contains(&0)
        {
            bail!("login_rate_per_ip, login_rate_per_account, register_rate_per_ip and envelope_rate_per_account must be at least 1");
        }
        if self.session_ttl < Duration::from_secs(60)
            || self.session_ttl > Duration::from_secs(366 * 24 * 3600)
        {
            bail!("session_ttl must be between 60s and 366d");
        }
        if self.write_timeout < Duration::from_millis(500)
            || self.write_timeout > Duration::from_secs(300)
        {
            bail!("write_timeout must be between 500ms and 300s");
        }
        for (name, t) in [
            ("http_header_timeout", self.http_header_timeout),
            ("http_body_timeout", self.http_body_timeout),
            ("http_request_timeout", self.http_request_timeout),
        ] {
            if t < Duration::from_millis(100) {
                bail!("{name} must be at least 100ms");
            }
        }
        for (name, bytes) in [
            ("chunks_map_bytes", self.chunks_map_bytes),
            ("state_map_bytes", self.state_map_bytes),
        ] {
            if bytes < 1 << 20 {
                bail!("{name} must be at least 1048576 (1 MiB)");
            }
        }
        if self.http_max_connections == 0
            || self.http_max_requests == 0
            || self.http_max_connections_per_ip == 0
        {
            bail!("http_max_connections, http_max_connections_per_ip and http_max_requests must be at least 1");
        }
        // An append touches its chunks, then may spend a write deadline on each of three
        // steps (asking the holders, storing its payload, committing; a forward adds 1 s).
        let least = 3 * self.write_timeout + Duration::from_secs(1);
        if self.staging_ttl < least {
            bail!(
                "staging_ttl must be at least three times write_timeout plus 1s ({least:?}): an append's chunks must outlive its preparation and commit"
            );
        }
        if self.scrub_interval < Duration::from_secs(1) {
            bail!("scrub_interval must be at least 1s");
        }
        if self.scrub_bytes_per_sec < 1 << 20 {
            bail!("scrub_bytes_per_sec must be at least 1048576 (1 MiB/s)");
        }
        if self.gc_interval < Duration::from_millis(100) {
            bail!("gc_interval must be at least 100ms");
        }
        Ok(())
    }
}

/// A configuration error as an operator reads it: what is wrong, and the key.
fn describe(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| match e.path.is_empty() {
            true => e.kind.to_string(),
            false => format!("{}: {}", e.path.join("."), e.kind),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shortest admin or join token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Whether `token` may serve as an admin or join token: at least [`MIN_TOKEN_LEN`] printable
/// ASCII characters, no spaces.
pub fn usable_token(token: &str) -> bool {
    token.len() >= MIN_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_with_validation() {
        let dir = tempfile_dir();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "http_addr = \"127.0.0.1:9000\"\nstaging_ttl = \"2h\"\ndemo_zone = false\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            staging_ttl: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.http_addr.port(), 9000);
        assert_eq!(c.staging_ttl, Duration::from_secs(60), "flag beats file");
        assert!(!c.demo_zone);
        assert_eq!(
            c.data_dir,
            PathBuf::from("./blindstore-data"),
            "default kept"
        );

        // What the flags leave out keeps the file's value; given flags win, whatever their kind.
        std::fs::write(
            &path,
            "voters = 5\nsite_spa = true\ntrusted_proxies = [\"10.0.0.0/8\"]\nrole = \"member\"\n",
        )
        .unwrap();
        let flags = ServeArgs {
            config: Some(path.clone()),
            trusted_proxies: Some(vec!["192.0.2.1".into()]),
            down_after: Some(Duration::from_secs(5)),
            cluster_tls: false,
            ..Default::default()
        };
        let c = Config::load(&flags).unwrap();
        assert_eq!(c.voters, 5);
        assert!(
            c.site_spa,
            "a flag left out does not turn the file's true off"
        );
        assert_eq!(c.trusted_proxies, vec!["192.0.2.1".to_string()]);
        assert_eq!(c.down_after, Duration::from_secs(5));

        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let e = format!("{:#}", Config::load(&args).unwrap_err());
        assert!(
            e.contains("no_such_setting"),
            "unknown keys are refused: {e}"
        );
        assert!(e.contains("c.toml"), "the file is named: {e}");
        std::fs::write(&path, "voters = \"three\"\n").unwrap();
        let e = format!("{:#}", Config::load(&args).unwrap_err());
        assert!(e.contains("voters") && e.contains("c.toml"), "{e}");
        let missing = ServeArgs {
            config: Some(dir.join("none.toml")),
            ..Default::default()
        };
        let e = format!("{:#}", Config::load(&missing).unwrap_err());
        assert!(e.contains("reading config file"), "{e}");

        let short = ServeArgs {
            admin_token: Some("short".into()),
            ..Default::default()
        };
        assert!(Config::load(&short).is_err());
    }

    /// README's table of settings is checked against `Config`: a row for every key and no
    /// other, and each default it states is the one `Config::default()` has.
    #[test]
    fn the_readme_states_every_setting_with_its_default() {
        let readme = include_str!("../../../README.md");
        let defaults = match serde_json::to_value(Config::default()).unwrap() {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("Config serializes as a map"),
        };
        let mut rows = std::collections::BTreeMap::new();
        for line in readme.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 5 || !cells[1].starts_with('`') || !cells[2].starts_with("`--") {
                continue;
            }
            rows.insert(
                cells[1].trim_matches('`').to_owned(),
                (cells[2].to_owned(), cells[3].to_owned()),
            );
        }
        // Each row names the setting's flag and environment variable as `serve` declares them.
        let serve = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long().filter(|l| *l != "config") else {
                continue;
            };
            let key = long.replace('-', "_");
            let (flags, _) = rows
                .get(&key)
                .unwrap_or_else(|| panic!("README has no row for --{long}"));
            assert!(flags.contains(&format!("`--{long}`")), "{key}: {flags}");
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(
                    flags.contains(&format!("`{env}`")),
                    "{key} lacks {env}: {flags}"
                );
            }
        }
        let keys: Vec<&String> = defaults.keys().collect();
        let documented: Vec<&String> = rows.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            documented, sorted,
            "README's settings table and Config differ"
        );
        for (key, (_, cell)) in &rows {
            // The stated default: the first `literal` when the cell starts with one, or a bare
            // true/false; anything else ("none", "assigned", ...) stands for no value.
            let literal = match cell.strip_prefix('`') {
                Some(rest) => rest.split('`').next(),
                None if *cell == "true" || *cell == "false" => Some(cell.as_str()),
                None => None,
            };
            let value = &defaults[key];
            let agrees = match (literal, value) {
                (None, serde_json::Value::Null) => true,
                (None, serde_json::Value::Array(items)) => items.is_empty(),
                (None, _) => false,
                (Some(text), serde_json::Value::Number(n)) => {
                    text.parse::<u64>().ok() == n.as_u64()
                }
                (Some(text), serde_json::Value::Bool(b)) => text.parse::<bool>().ok() == Some(*b),
                (Some(text), serde_json::Value::String(s)) => {
                    text == s
                        || humantime::parse_duration(text)
                            .ok()
                            .is_some_and(|d| humantime::parse_duration(s).ok() == Some(d))
                }
                (Some(_), _) => false,
            };
            assert!(
                agrees,
                "README says {key} defaults to {cell:?}; Config has {value}"
            );
        }
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("blindstore-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
