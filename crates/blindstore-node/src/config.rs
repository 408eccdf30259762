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

/// Everything a node can be told, declared once: the TOML keys (serde), the flags and
/// environment variables of `blindstore serve` (clap), and their defaults (`Default`, which
/// [`with_defaults`] gives clap, so `--help` and README's table show them). Every field has a
/// default, so an empty file (or none) is a working configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where all state lives
    ///
    /// Where the node keeps its data (Raft log, state, chunks, admin token).
    #[arg(long, env = "BLINDSTORE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// HTTP listen address (port 0: any free port)
    ///
    /// Address the HTTP API listens on. Port 0 picks a free port; the address actually bound is
    /// printed on standard output.
    #[arg(long, env = "BLINDSTORE_HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// A name for this node (e.g. its host), shown by `cluster status` and `/v1/health`
    ///
    /// A name for this node, up to 64 printable characters (e.g. its host name): `cluster
    /// status` and `/v1/health` show it beside the node id, so an operator knows which process
    /// is which.
    #[arg(long, env = "BLINDSTORE_NAME")]
    pub name: Option<String>,
    /// Admin bearer token, ≥ 16 printable characters [default: generated into
    /// `<data_dir>/admin-token`]
    ///
    /// Admin bearer token.
    #[arg(long, env = "BLINDSTORE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// `text` or `json`; levels from `RUST_LOG` (default `info`, openraft errors only)
    ///
    /// Log format: `text` or `json`. Levels come from `RUST_LOG` (default `info`, with openraft's
    /// errors only and not its replication retries).
    #[arg(long, env = "BLINDSTORE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Create an open zone `demo` when a new cluster starts [default: only for a single node
    /// without --rpc-addr]
    ///
    /// Create zone `demo` (open: anyone may write) when this start creates a new cluster, so the
    /// quickstart needs no admin step. By default only a bare single node (no --rpc-addr) gets
    /// it; a cluster gets it only when asked (`--demo-zone true`).
    #[arg(long, action = clap::ArgAction::Set, env = "BLINDSTORE_DEMO_ZONE")]
    pub demo_zone: Option<bool>,
    /// Largest chunk
    ///
    /// Largest chunk accepted, in bytes.
    #[arg(long, env = "BLINDSTORE_MAX_CHUNK_BYTES")]
    pub max_chunk_bytes: u64,
    /// Largest entry payload
    ///
    /// Largest entry payload, in bytes.
    #[arg(long, env = "BLINDSTORE_MAX_ENTRY_PAYLOAD_BYTES")]
    pub max_entry_payload_bytes: u64,
    /// Payloads up to this size travel in the Raft entry and are kept with it by every voter;
    /// larger ones are stored as chunks (0: all chunks, as earlier builds did)
    ///
    /// Payloads of at most this many bytes travel inside the Raft entry (every voter keeps them
    /// with the entry); larger ones are stored as chunks. 0: every payload is a chunk.
    #[arg(long, env = "BLINDSTORE_INLINE_PAYLOAD_BYTES")]
    pub inline_payload_bytes: u64,
    /// Age after which unreferenced chunks are deleted
    ///
    /// Unreferenced chunks older than this are deleted. At least three times `write_timeout` plus 1
    /// s.
    #[arg(long, env = "BLINDSTORE_STAGING_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub staging_ttl: Duration,
    /// How often garbage collection runs
    #[arg(long, env = "BLINDSTORE_GC_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub gc_interval: Duration,
    /// Raft snapshot every this many log entries; older log entries are then purged
    ///
    /// Take a Raft snapshot every this many log entries, then purge the log before it.
    #[arg(long, env = "BLINDSTORE_SNAPSHOT_LOGS")]
    pub snapshot_logs: u64,
    /// Node-to-node gRPC listen address; needed by every cluster member [default: none (single
    /// node, not joinable)]
    ///
    /// Node-to-node (gRPC) listen address. Needed for every member of a cluster. Port 0 picks a
    /// free port.
    #[arg(long, env = "BLINDSTORE_RPC_ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    /// The address peers dial, when listening on 0.0.0.0 [default: the bound rpc address]
    ///
    /// The address other nodes should dial for this node's rpc, if not `rpc_addr` (e.g. when
    /// listening on 0.0.0.0).
    #[arg(long, env = "BLINDSTORE_ADVERTISE_RPC_ADDR")]
    pub advertise_rpc_addr: Option<String>,
    /// The HTTP address gateways and `cluster status` use, when listening on 0.0.0.0 [default: the
    /// bound HTTP address]
    ///
    /// The HTTP address other nodes, gateways and `cluster status` should use for this node, if not
    /// the bound one (e.g. when listening on 0.0.0.0).
    #[arg(long, env = "BLINDSTORE_ADVERTISE_HTTP_ADDR")]
    pub advertise_http_addr: Option<String>,
    /// On first start, join the cluster of this member's rpc address [default: none]
    ///
    /// On first start, join the cluster that this member's rpc address belongs to.
    #[arg(long, env = "BLINDSTORE_JOIN")]
    pub join: Option<String>,
    /// The cluster's join token (required with `join`) [default: none]
    ///
    /// The join token printed by the first node (also in its `<data_dir>/join-token`). Required
    /// with `join`.
    #[arg(long, env = "BLINDSTORE_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// This node's id (first start only) [default: assigned]
    ///
    /// This node's id, on first start only.
    #[arg(long, env = "BLINDSTORE_NODE_ID")]
    pub node_id: Option<u64>,
    /// When creating a cluster: node-to-node gRPC over TLS with a cluster CA made now; the join
    /// token names it and joining nodes need no flag (docs/operations.md)
    ///
    /// When creating a cluster: run node-to-node gRPC over TLS, with a cluster CA made now and kept
    /// in `<data_dir>/cluster-ca.pem` and `cluster-ca-key.pem` (mode 0600). The join token then
    /// names the CA, so joining nodes and gateways verify it; they need no flag. Only at the
    /// cluster's first start.
    #[arg(long, env = "BLINDSTORE_CLUSTER_TLS")]
    pub cluster_tls: bool,
    /// Voters the cluster should have (1, 3 or 5); later joiners are storage nodes
    ///
    /// How many voters the cluster should have: 3 or 5 (1 is allowed for a single node). Nodes
    /// joining beyond that stay storage nodes (Raft learners).
    #[arg(long, env = "BLINDSTORE_VOTERS")]
    pub voters: usize,
    /// Copies of each chunk
    ///
    /// Copies of each chunk, on the nodes ranking highest for it.
    #[arg(long, env = "BLINDSTORE_REPLICATION")]
    pub replication: usize,
    /// An unreachable node stops owning chunks after this long; repair copies its chunks elsewhere
    ///
    /// A node unreachable for longer than this stops counting as a chunk owner, and its chunks are
    /// copied elsewhere.
    #[arg(long, env = "BLINDSTORE_DOWN_AFTER", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub down_after: Duration,
    /// How often each node checks its chunks against their owners
    #[arg(long, env = "BLINDSTORE_REPAIR_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub repair_interval: Duration,
    /// Deadline of a write: proposal until commit, forward, membership change, payload upload; then
    /// 503 `outcome_unknown` (may have happened) or `unavailable` (certainly not)
    ///
    /// How long a write may take before the client is answered 503: a proposal until it commits, a
    /// forward until the leader answers, a membership change, storing an append's payload.
    /// `outcome_unknown` if the write may have been proposed, `unavailable` if it certainly was
    /// not.
    #[arg(long, env = "BLINDSTORE_WRITE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Free disk below which new data is refused with 507
    ///
    /// Free disk space (bytes) on the data dir's file system below which the node refuses new data
    /// (chunk uploads, appends, new chains) with 507 `insufficient_storage`, keeping room for Raft
    /// to commit what recovery needs.
    #[arg(long, env = "BLINDSTORE_MIN_FREE_BYTES")]
    pub min_free_bytes: u64,
    /// Raft state store map size; new data refused with 507 past 90%
    ///
    /// Upper bound of the Raft state store (LMDB map), bytes; new data is refused with 507 once it
    /// is 90% full.
    #[arg(long, env = "BLINDSTORE_STATE_MAP_BYTES")]
    pub state_map_bytes: u64,
    /// Chunk store map size; a full store answers 507
    ///
    /// Upper bound of the chunk store (LMDB map), bytes.
    #[arg(long, env = "BLINDSTORE_CHUNKS_MAP_BYTES")]
    pub chunks_map_bytes: u64,
    /// How often a scrub pass re-hashes every chunk held (the first starts at start-up)
    ///
    /// How often each node starts a scrub pass: every chunk it holds is read and checked against
    /// its hash; a copy that fails is deleted and replaced from a replica. The first pass starts at
    /// start-up.
    #[arg(long, env = "BLINDSTORE_SCRUB_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub scrub_interval: Duration,
    /// Read rate of a scrub pass
    ///
    /// Bytes per second a scrub pass reads at most.
    #[arg(long, env = "BLINDSTORE_SCRUB_BYTES_PER_SEC")]
    pub scrub_bytes_per_sec: u64,
    /// Time a connection has to finish its TLS handshake, and then to send its first request's
    /// headers (any request's, on HTTP/1.1)
    ///
    /// HTTP: a connection must send its request headers within this.
    #[arg(long, env = "BLINDSTORE_HTTP_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub http_header_timeout: Duration,
    /// Time a request body has to arrive
    ///
    /// HTTP: a request body must arrive within this.
    #[arg(long, env = "BLINDSTORE_HTTP_BODY_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub http_body_timeout: Duration,
    /// Time a request has to be answered
    ///
    /// HTTP: a request is answered within this (503 beyond it).
    #[arg(long, env = "BLINDSTORE_HTTP_REQUEST_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub http_request_timeout: Duration,
    /// Open connections; a new one beyond is answered 503 and closed
    ///
    /// HTTP: open connections at most; a new one beyond is answered 503.
    #[arg(long, env = "BLINDSTORE_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: usize,
    /// Open connections from one client address (IPv6: /64); a new one beyond is answered 429;
    /// `trusted_proxies` are exempt
    ///
    /// HTTP: open connections from one client address (IPv6: one /64) at most; a new one beyond is
    /// answered 429. `trusted_proxies` are exempt.
    #[arg(long, env = "BLINDSTORE_HTTP_MAX_CONNECTIONS_PER_IP")]
    pub http_max_connections_per_ip: usize,
    /// A connection with no request in flight is closed after this (HTTP/2: GOAWAY)
    ///
    /// HTTP: a connection with no request in flight is closed after this.
    #[arg(long, env = "BLINDSTORE_HTTP_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub http_idle_timeout: Duration,
    /// Requests in flight; more are answered 503 at once
    ///
    /// HTTP: requests handled at once at most; more are answered 503 at once.
    #[arg(long, env = "BLINDSTORE_HTTP_MAX_REQUESTS")]
    pub http_max_requests: usize,
    /// A session ends this long after its login (fixed, not sliding)
    #[arg(long, env = "BLINDSTORE_SESSION_TTL", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Login attempts per client IP per minute (per node)
    ///
    /// Login attempts (`login/start`) per client IP per minute, per node.
    #[arg(long, env = "BLINDSTORE_LOGIN_RATE_PER_IP")]
    pub login_rate_per_ip: u32,
    /// Login and registration starts per account per minute for clients without a device token of
    /// the account, and the same again per device with one (per node)
    ///
    /// Login attempts per account per minute, per node.
    #[arg(long, env = "BLINDSTORE_LOGIN_RATE_PER_ACCOUNT")]
    pub login_rate_per_account: u32,
    /// Registration requests per client IP per minute (per node)
    ///
    /// Registration requests per client IP per minute, per node.
    #[arg(long, env = "BLINDSTORE_REGISTER_RATE_PER_IP")]
    pub register_rate_per_ip: u32,
    /// Envelope writes and deletions per account per minute (per node)
    ///
    /// Envelope writes (and deletions) per account per minute, per node.
    #[arg(long, env = "BLINDSTORE_ENVELOPE_RATE_PER_ACCOUNT")]
    pub envelope_rate_per_account: u32,
    /// Addresses or CIDR ranges whose `X-Forwarded-For` names the client (gateways, load balancers)
    ///
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For` names the client, for rate limits
    /// behind a gateway or load balancer.
    #[arg(long, env = "BLINDSTORE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Gateway: the cluster's gateway token (in every member's `<data_dir>/gateway-token`)
    /// [default: none]
    ///
    /// Gateway: the cluster's gateway token (printed by its first node, also in every member's
    /// `<data_dir>/gateway-token`). It lets a gateway find the members but not join, vote, move
    /// chunks or change the membership.
    #[arg(long, env = "BLINDSTORE_GATEWAY_TOKEN", hide_env_values = true)]
    pub gateway_token: Option<String>,
    /// `member` (holds data) or `gateway` (forwards to members, caches chunks; needs `join` and
    /// `gateway_token`)
    ///
    /// `member` (Raft voter or storage node, holding data) or `gateway` (no data: forwards the API
    /// to members, caching chunks; needs `join` and `gateway_token`).
    #[arg(long, env = "BLINDSTORE_ROLE")]
    pub role: Role,
    /// Bytes of chunks cached in memory for reads (0: none)
    ///
    /// Bytes of chunks kept in memory for reads, on members and gateways alike: the chunks read
    /// most lately, each checked against its hash before it is kept. 0 turns the cache off.
    #[arg(long, env = "BLINDSTORE_CACHE_MEMORY_BYTES")]
    pub cache_memory_bytes: u64,
    /// Gateway: chunk bytes cached in `<data_dir>/cache`, emptied at start
    ///
    /// Gateway: bytes of chunks cached on disk under `<data_dir>/cache` (emptied at start); 0 turns
    /// the disk cache off.
    #[arg(long, env = "BLINDSTORE_CACHE_DISK_BYTES")]
    pub cache_disk_bytes: u64,
    /// A directory served at `/` (requests no API route takes), read live (docs/web.md)
    /// [default: none]
    ///
    /// A directory served at `/` (requests no API route takes), read live: an edited file shows
    /// on the next reload. A web app and its API from one process, for development; `site
    /// deploy` publishes atomically for production.
    #[arg(long, env = "BLINDSTORE_SITE")]
    pub site: Option<PathBuf>,
    /// With `site`: the `Content-Security-Policy` of its files [default: none]
    #[arg(long, env = "BLINDSTORE_SITE_CSP")]
    pub site_csp: Option<String>,
    /// With `site`: HTML navigations to unknown paths get `index.html`
    ///
    /// With `site`: a single-page app (HTML navigations to paths that are not files get
    /// `index.html`).
    #[arg(long, env = "BLINDSTORE_SITE_SPA")]
    pub site_spa: bool,
    /// HTTPS: certificate chain (PEM, leaf first); HTTP/2 or HTTP/1.1 by ALPN; reloaded on SIGHUP
    /// [default: none (plain HTTP)]
    ///
    /// HTTPS: the certificate chain, PEM (leaf first). Needs `tls_key`. Reloaded on SIGHUP.
    #[arg(long, env = "BLINDSTORE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1) [default: none]
    ///
    /// HTTPS: the certificate's private key, PEM.
    #[arg(long, env = "BLINDSTORE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// HTTPS with certificates got and renewed over ACME (Let's Encrypt by default) for these
    /// names [default: none]
    ///
    /// HTTPS with a certificate for these DNS names, got over ACME (RFC 8555, HTTP-01 challenges
    /// answered on `acme_http_addr`), kept in `<data_dir>/acme/` (0600) and renewed when two
    /// thirds of its lifetime have passed. Each name must resolve to this machine, reachable on
    /// port 80 from the internet (or wherever the ACME server validates from). Not with
    /// `tls_cert`.
    #[arg(long, env = "BLINDSTORE_ACME_DOMAIN", value_delimiter = ',')]
    pub acme_domain: Vec<String>,
    /// With `acme_domain`: contact address given to the ACME server (expiry notices) [default:
    /// none]
    #[arg(long, env = "BLINDSTORE_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// With `acme_domain`: the ACME server's directory URL (Let's Encrypt's staging:
    /// https://acme-staging-v02.api.letsencrypt.org/directory)
    #[arg(long, env = "BLINDSTORE_ACME_DIRECTORY")]
    pub acme_directory: String,
    /// With `acme_domain`: a PEM root certificate to trust for the ACME server itself (a
    /// private or test ACME server) [default: the system's roots]
    #[arg(long, env = "BLINDSTORE_ACME_CA_CERT")]
    pub acme_ca_cert: Option<PathBuf>,
    /// With `acme_domain`: where HTTP-01 challenges are answered (port 80 as the ACME server
    /// sees it); other requests there are redirected to HTTPS
    #[arg(long, env = "BLINDSTORE_ACME_HTTP_ADDR")]
    pub acme_http_addr: SocketAddr,
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
            name: None,
            admin_token: None,
            site: None,
            site_csp: None,
            site_spa: false,
            cluster_tls: false,
            tls_cert: None,
            tls_key: None,
            acme_domain: Vec::new(),
            acme_email: None,
            acme_directory: crate::acme::LETS_ENCRYPT.into(),
            acme_ca_cert: None,
            acme_http_addr: SocketAddr::from(([0, 0, 0, 0], 80)),
            log_format: LogFormat::Text,
            demo_zone: None,
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
            cache_memory_bytes: NodeConfig::CACHE_BYTES,
            cache_disk_bytes: 0,
        }
    }
}

/// `blindstore serve`'s arguments: the configuration file, and every setting of [`Config`] as a
/// flag (or its environment variable).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as in the README, section Configuration).
    #[arg(long, env = "BLINDSTORE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Config,
}

/// `serve`'s command with the defaults of [`Config`] on its flags: clap shows them in `--help`
/// and fills them in where neither a flag nor its variable gave a value. (A setting without a
/// default — an `Option` left unset, an empty list — gets none.)
pub fn with_defaults(serve: clap::Command) -> clap::Command {
    let defaults = flag_values(&Config::default());
    serve.mut_args(|arg| {
        let id = arg.get_id().as_str();
        match defaults.get(id) {
            Some(value) => arg.default_value(value.clone()).required(false),
            None => arg,
        }
    })
}

/// Each setting's value as its flag would take it, by key: numbers and words as they are,
/// durations in humantime's words; unset options and empty lists are left out.
fn flag_values(config: &Config) -> std::collections::BTreeMap<String, String> {
    let serde_json::Value::Object(map) = serde_json::to_value(config).expect("Config serializes")
    else {
        unreachable!("Config serializes as a map")
    };
    map.into_iter()
        .filter_map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((key, text))
        })
        .collect()
}

impl Config {
    /// The HTTP server's limits.
    /// The TLS configuration, loaded, with a task that reloads it on SIGHUP; `None` for
    /// plain HTTP.
    /// HTTPS, if configured: a certificate over ACME (got before this returns, then kept
    /// renewed), or the given files (reloaded on SIGHUP).
    pub async fn tls(&self) -> anyhow::Result<Option<std::sync::Arc<blindstore_web::Tls>>> {
        if !self.acme_domain.is_empty() {
            let acme = crate::acme::AcmeConfig {
                domains: self.acme_domain.clone(),
                email: self.acme_email.clone(),
                directory: self.acme_directory.clone(),
                ca_cert: self.acme_ca_cert.clone(),
                http_addr: self.acme_http_addr,
                dir: self.data_dir.join("acme"),
            };
            return crate::acme::start(acme).await.map(Some);
        }
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
    /// gives, and the result is read into [`Config`] once, unknown keys refused. `matches`
    /// are serve's: only what a flag or a variable gave overlays the file (clap filled in the
    /// rest from the defaults).
    pub fn load(args: &ServeArgs, matches: &clap::ArgMatches) -> anyhow::Result<Config> {
        use clap::parser::ValueSource;
        use figment::providers::{Format, Serialized, Toml};
        let mut layers = figment::Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            layers = layers.merge(Toml::string(&text));
        }
        let serde_json::Value::Object(mut given) = serde_json::to_value(&args.settings)? else {
            unreachable!("Config serializes as a map")
        };
        given.retain(|key, _| {
            matches!(
                matches.value_source(key),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        });
        let config: Config = layers
            .merge(Serialized::defaults(given))
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

    /// The configuration `blindstore serve ARGS` would run with (`args` without the program
    /// and subcommand names), environment variables included.
    #[cfg(test)]
    pub fn from_serve_args<I, T>(args: I) -> anyhow::Result<Config>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::FromArgMatches;
        let command = with_defaults(ServeArgs::augment_args(clap::Command::new("serve")));
        let matches = command.try_get_matches_from(
            std::iter::once(std::ffi::OsString::from("serve"))
                .chain(args.into_iter().map(Into::into)),
        )?;
        let serve = ServeArgs::from_arg_matches(&matches)?;
        Config::load(&serve, &matches)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("tls_cert and tls_key go together");
        }
        if !self.acme_domain.is_empty() && self.tls_cert.is_some() {
            bail!("acme_domain gets its own certificate: leave out tls_cert and tls_key");
        }
        for name in &self.acme_domain {
            crate::acme::check_domain(name)?;
        }
        if !self.acme_directory.starts_with("https://") {
            bail!(
                "acme_directory must be an https:// URL, not {:?}",
                self.acme_directory
            );
        }
        if let Some(name) = &self.name {
            if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
                bail!("name must be 1 to 64 printable characters");
            }
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

/// The settings as README's table lists them, one row each in declaration order: the key,
/// the flag and its variable, the default (clap's, from [`Config::default`]; for a setting
/// without one, the `[default: …]` its help ends with) and the help.
#[cfg(test)]
pub fn settings_table() -> String {
    let command = with_defaults(ServeArgs::augment_args(clap::Command::new("serve")));
    let mut table = String::new();
    for arg in command.get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        if long == "config" {
            continue;
        }
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let (meaning, default) = match help.rsplit_once(" [default: ") {
            Some((meaning, unset)) => (meaning.to_owned(), unset.trim_end_matches(']').to_owned()),
            None => {
                let values: Vec<String> = arg
                    .get_default_values()
                    .iter()
                    .map(|v| format!("`{}`", v.to_string_lossy()))
                    .collect();
                let default = if values.is_empty() {
                    "none".to_owned()
                } else {
                    values.join(", ")
                };
                (help, default)
            }
        };
        table.push_str(&format!(
            "| `{}` | `--{long}` / `{}` | {default} | {meaning} |\n",
            arg.get_id(),
            env.to_string_lossy(),
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> anyhow::Result<Config> {
        Config::from_serve_args(args)
    }

    #[test]
    fn file_then_flags_with_validation() {
        let dir = tempfile_dir();
        let path = dir.join("c.toml");
        let file = path.to_str().unwrap();
        std::fs::write(
            &path,
            "http_addr = \"127.0.0.1:9000\"\nstaging_ttl = \"2h\"\ndemo_zone = false\n",
        )
        .unwrap();
        let c = serve(&["--config", file, "--staging-ttl", "60s"]).unwrap();
        assert_eq!(c.http_addr.port(), 9000);
        assert_eq!(c.staging_ttl, Duration::from_secs(60), "flag beats file");
        assert_eq!(c.demo_zone, Some(false));
        assert_eq!(
            c.data_dir,
            PathBuf::from("./blindstore-data"),
            "default kept"
        );
        // A flag given with the default's value still beats the file: what counts is that it
        // was given, not that it differs from the default clap shows.
        let c = serve(&["--config", file, "--demo-zone", "true"]).unwrap();
        assert_eq!(c.demo_zone, Some(true));

        // What the flags leave out keeps the file's value; given flags win, whatever their kind.
        std::fs::write(
            &path,
            "voters = 5\nsite_spa = true\ntrusted_proxies = [\"10.0.0.0/8\"]\nrole = \"member\"\n",
        )
        .unwrap();
        let c = serve(&[
            "--config",
            file,
            "--trusted-proxies",
            "192.0.2.1",
            "--down-after",
            "5s",
        ])
        .unwrap();
        assert_eq!(
            c.voters, 5,
            "clap's default for a flag left out does not hide the file"
        );
        assert!(
            c.site_spa,
            "a flag left out does not turn the file's true off"
        );
        assert_eq!(c.trusted_proxies, vec!["192.0.2.1".to_string()]);
        assert_eq!(c.down_after, Duration::from_secs(5));

        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        let e = format!("{:#}", serve(&["--config", file]).unwrap_err());
        assert!(
            e.contains("no_such_setting"),
            "unknown keys are refused: {e}"
        );
        assert!(e.contains("c.toml"), "the file is named: {e}");
        std::fs::write(&path, "voters = \"three\"\n").unwrap();
        let e = format!("{:#}", serve(&["--config", file]).unwrap_err());
        assert!(e.contains("voters") && e.contains("c.toml"), "{e}");
        let missing = dir.join("none.toml");
        let e = format!(
            "{:#}",
            serve(&["--config", missing.to_str().unwrap()]).unwrap_err()
        );
        assert!(e.contains("reading config file"), "{e}");

        assert!(serve(&["--admin-token", "short"]).is_err());
        let e = format!("{:#}", serve(&["--voters", "three"]).unwrap_err());
        assert!(e.contains("--voters"), "a bad flag is named: {e}");
    }

    /// With nothing given, the configuration is `Config::default()`, and `--help` states those
    /// defaults: clap takes them from it.
    #[test]
    fn the_defaults_are_declared_once() {
        let parsed = serde_json::to_value(serve(&[]).unwrap()).unwrap();
        assert_eq!(parsed, serde_json::to_value(Config::default()).unwrap());
        let command = with_defaults(ServeArgs::augment_args(clap::Command::new("serve")));
        let staging = command
            .get_arguments()
            .find(|a| a.get_id() == "staging_ttl")
            .unwrap();
        assert_eq!(staging.get_default_values(), ["1day"]);
    }

    /// README's table of settings, as `settings_table` makes it from `serve`'s command: a row
    /// for every key (TOML), its flag and variable, its default and what it means. Run with
    /// `BLINDSTORE_UPDATE_README=1` to write the table into the README.
    #[test]
    fn the_readme_states_every_setting_with_its_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let header = "| key (TOML) | flag / env | default | meaning |\n|---|---|---|---|\n";
        let start = readme.find(header).expect("README has the settings table") + header.len();
        let end = start + readme[start..].find("\n\n").expect("the table ends");
        let table = settings_table();
        if std::env::var_os("BLINDSTORE_UPDATE_README").is_some() {
            std::fs::write(
                path,
                format!("{}{table}{}", &readme[..start], &readme[end + 1..]),
            )
            .unwrap();
            return;
        }
        assert_eq!(
            &readme[start..=end],
            table,
            "README's settings table is not the one Config makes; run `BLINDSTORE_UPDATE_README=1 cargo test -p blindstore-node --bin blindstore readme` to write it"
        );
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("blindstore-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
