//! The node's configuration: one [`Config`], built once at start-up from defaults, then a TOML
//! file (`--config`), then `BLINDSTORE_*` environment variables, then flags — later sources
//! win — and validated before anything starts. It is passed explicitly from there on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
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
    /// Unreferenced chunks older than this are deleted. Default: `24h`.
    #[serde(with = "humantime_serde")]
    pub staging_ttl: Duration,
    /// How often garbage collection runs. Default: `10m`.
    #[serde(with = "humantime_serde")]
    pub gc_interval: Duration,
    /// Take a Raft snapshot every this many log entries, then purge the log before it.
    /// Default: 20000.
    pub snapshot_logs: u64,
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
            log_format: LogFormat::Text,
            demo_zone: true,
            max_chunk_bytes: 4 << 20,
            max_entry_payload_bytes: 64 << 10,
            staging_ttl: Duration::from_secs(24 * 3600),
            gc_interval: Duration::from_secs(600),
            snapshot_logs: 20_000,
        }
    }
}

/// Flags of `blindstore serve`; each may also come from the environment variable named.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as in the README, section Configuration).
    #[arg(long, env = "BLINDSTORE_CONFIG")]
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
    /// Delete unreferenced chunks after this long, e.g. 24h, 90m [default: 24h]
    #[arg(long, env = "BLINDSTORE_STAGING_TTL", value_parser = humantime::parse_duration)]
    pub staging_ttl: Option<Duration>,
    /// Garbage collection interval, e.g. 10m [default: 10m]
    #[arg(long, env = "BLINDSTORE_GC_INTERVAL", value_parser = humantime::parse_duration)]
    pub gc_interval: Option<Duration>,
    /// Raft snapshot every this many log entries [default: 20000]
    #[arg(long, env = "BLINDSTORE_SNAPSHOT_LOGS")]
    pub snapshot_logs: Option<u64>,
}

impl Config {
    /// Defaults, then the file, then environment and flags (clap has already merged those two,
    /// flags winning), then validation.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! overlay {
            ($($field:ident),*) => { $( if let Some(v) = &args.$field { config.$field = v.clone(); } )* };
        }
        overlay!(
            data_dir,
            http_addr,
            log_format,
            demo_zone,
            max_chunk_bytes,
            max_entry_payload_bytes,
            staging_ttl,
            gc_interval,
            snapshot_logs
        );
        if args.admin_token.is_some() {
            config.admin_token = args.admin_token.clone();
        }
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(token) = &self.admin_token {
            if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
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
        if self.snapshot_logs < 8 {
            bail!("snapshot_logs must be at least 8");
        }
        if self.gc_interval < Duration::from_millis(100) {
            bail!("gc_interval must be at least 100ms");
        }
        Ok(())
    }
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
            staging_ttl: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.http_addr.port(), 9000);
        assert_eq!(c.staging_ttl, Duration::from_secs(5), "flag beats file");
        assert!(!c.demo_zone);
        assert_eq!(
            c.data_dir,
            PathBuf::from("./blindstore-data"),
            "default kept"
        );

        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        assert!(Config::load(&args).is_err(), "unknown keys are refused");

        let short = ServeArgs {
            admin_token: Some("short".into()),
            ..Default::default()
        };
        assert!(Config::load(&short).is_err());
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("blindstore-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
