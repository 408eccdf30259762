//! `blindstore zone ...`: creating zones and looking at and changing their settings, through
//! any member's admin API.

use anyhow::Context;
use blindstore_types::account::{
    ProxyRoute, RegistrationPolicy, WritePolicy, DEFAULT_PROXY_TIMEOUT_MS,
};
use blindstore_types::api::{RegistrationChange, Zone, ZoneQuota, ZoneSettingsChange};
use blindstore_types::ZoneId;
use clap::{Args, Subcommand};

use crate::cluster::Target;

#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// Create a zone (nothing happens if it exists) and show it.
    Create(ZoneArgs),
    /// One row per zone: id, chains, entries, chunks and bytes held by the answering node.
    List(ListArgs),
    /// A zone's usage, quotas and settings.
    Show(ZoneArgs),
    /// Change a zone's quotas and settings; those left out keep their values.
    Set(Box<SetArgs>),
    /// Create one-time invite codes for a zone whose registration is `invite` (printed once,
    /// one per line).
    Invite(InviteArgs),
    /// Delete a zone and everything in it: chains, entries, accounts, sessions, envelopes,
    /// passkeys, invites, site versions, quotas and settings (its chunks are collected on every
    /// node after the staging TTL). Shows what it will remove and asks for the zone's name, or
    /// takes --yes. There is no undo but a backup.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    zone: ZoneArgs,
    /// Delete without asking (for scripts): the zone and everything in it are gone.
    #[arg(long)]
    yes: bool,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    #[command(flatten)]
    zone: ZoneArgs,
    /// How many codes (1 to 1000).
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// How long they stay valid, e.g. 7d or 12h (at most 365d).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    ttl: std::time::Duration,
}

// Each subcommand declares its arguments itself (its help lists them in order), so the zone,
// target and `--json` of `zone show` and `site list` are alike on purpose.
#[derive(Debug, Args)]
pub struct ZoneArgs {
    /// The zone id: [a-z0-9][a-z0-9-]{0,62}.
    zone: String,
    #[command(flatten)]
    target: Target,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    zone: ZoneArgs,
    /// Chains in the zone at most.
    #[arg(long)]
    max_chains: Option<u64>,
    /// Entries in all the zone's chains together at most.
    #[arg(long)]
    max_entries: Option<u64>,
    /// Chunk bytes each node holds for the zone at most (a quota; not `serve`'s
    /// --max-chunk-bytes, the largest chunk).
    #[arg(long = "max-chunk-bytes-per-node")]
    max_chunk_bytes: Option<u64>,
    /// Chunks each node holds for the zone at most.
    #[arg(long = "max-chunks-per-node")]
    max_chunks: Option<u64>,
    /// Who may create chains and upload chunks: `open` (anyone) or `accounts` (a session).
    #[arg(long, value_parser = ["open", "accounts"])]
    writes: Option<String>,
    /// Who may create accounts: `open` (anyone), `invite` (a one-time code from `blindstore
    /// zone invite`) or `closed` (nobody; existing accounts keep working).
    #[arg(long, value_parser = ["open", "invite", "closed"])]
    registration: Option<String>,
    /// Accounts in the zone at most.
    #[arg(long)]
    max_accounts: Option<u64>,
    /// Envelope bytes of all the zone's accounts together at most.
    #[arg(long)]
    max_envelope_bytes: Option<u64>,
    /// With `--writes accounts`: chains one account may create.
    #[arg(long)]
    account_max_chains: Option<u64>,
    /// With `--writes accounts`: chunks charged to one account, per node.
    #[arg(long = "account-max-chunks-per-node")]
    account_max_chunks: Option<u64>,
    /// With `--writes accounts`: chunk bytes charged to one account, per node.
    #[arg(long = "account-max-chunk-bytes-per-node")]
    account_max_chunk_bytes: Option<u64>,
    /// Turn passkeys on with this relying party id: the domain passkeys are bound to, e.g.
    /// `app.example.com`, or `localhost` (never an IP address). Needs --passkey-origin.
    #[arg(long, value_name = "DOMAIN")]
    passkey_rp_id: Option<String>,
    /// A web origin allowed to use the zone's passkeys, e.g. `https://app.example.com` or
    /// `http://localhost:8080`; repeat for several. Replaces the current list.
    #[arg(long = "passkey-origin", value_name = "ORIGIN")]
    passkey_origins: Vec<String>,
    /// Turn passkeys off (registered passkeys stay, unusable until they are turned on again).
    #[arg(long, conflicts_with_all = ["passkey_rp_id", "passkey_origins"])]
    no_passkeys: bool,
    /// A web origin whose pages may call the zone's API from the browser (CORS), e.g.
    /// `https://budget.example.com`, or `*` for any; repeat for several. Replaces the list.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Allow no other origin to call the zone's API from the browser.
    #[arg(long, conflicts_with = "cors_origins")]
    no_cors: bool,
    /// A host name whose requests get the zone's site at `/` (e.g. budget.example.com);
    /// repeat for several. Replaces the list.
    #[arg(long = "site-host", value_name = "HOST")]
    site_hosts: Vec<String>,
    /// Serve the zone's site under no host name (it stays at /sites/ZONE/).
    #[arg(long, conflicts_with = "site_hosts")]
    no_site_hosts: bool,
    /// A reverse-proxy route NAME=URL: /v1/zones/ZONE/proxy/NAME/... goes to URL/...;
    /// repeat for several. Replaces the list.
    #[arg(long = "proxy", value_name = "NAME=URL")]
    proxies: Vec<String>,
    /// With --proxy: the time the upstream has to answer, e.g. 10s [default: 30s]
    #[arg(long, value_parser = humantime::parse_duration, requires = "proxies")]
    proxy_timeout: Option<std::time::Duration>,
    /// Remove every reverse-proxy route.
    #[arg(long, conflicts_with = "proxies")]
    no_proxies: bool,
}

/// `zone delete`: shows what goes, has it confirmed, deletes.
async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let zone = zone_id(&args.zone.zone)?;
    let client = args.zone.target.client()?;
    let info = client.zone(&zone).await?;
    let what = format!(
        "zone {}: {} chains with {} entries, {} accounts, {} chunks ({} bytes) on the node asked",
        zone.as_str(),
        info.usage.chains,
        info.usage.entries,
        info.accounts.accounts,
        info.usage.chunks,
        info.usage.bytes
    );
    if !args.yes {
        use std::io::{BufRead, IsTerminal, Write};
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "deleting {what} needs --yes when not run from a terminal; nothing was changed"
            );
        }
        eprint!(
            "This deletes {what}, and every session, envelope, passkey, invite and site version of it. There is no undo but a backup.\nType the zone's name to delete it: "
        );
        std::io::stderr().flush()?;
        let mut typed = String::new();
        std::io::stdin().lock().read_line(&mut typed)?;
        if typed.trim() != zone.as_str() {
            anyhow::bail!("not confirmed; nothing was changed");
        }
    }
    let removed = client.delete_zone(&zone).await?;
    if args.zone.json {
        println!("{}", serde_json::to_string_pretty(&removed)?);
    } else {
        println!(
            "deleted zone {}: {} chains, {} entries, {} accounts, {} sessions, {} envelopes, {} passkeys, {} invites, {} site versions; its {} chunk references are gone, and the chunks are collected on every node after the staging TTL",
            zone.as_str(),
            removed.chains,
            removed.entries,
            removed.accounts,
            removed.sessions,
            removed.envelopes,
            removed.passkeys,
            removed.invites,
            removed.site_versions,
            removed.chunk_refs
        );
    }
    Ok(())
}

pub fn run(command: ZoneCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match command {
            ZoneCommand::Create(args) => {
                let zone = zone_id(&args.zone)?;
                let (created, info) = args.target.client()?.create_zone(&zone).await?;
                if !args.json {
                    println!("{}", if created { "created" } else { "exists" });
                }
                print_zone(&info, args.json)
            }
            ZoneCommand::List(args) => {
                let zones = args.target.client()?.zones().await?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&zones)?);
                    return Ok(());
                }
                println!(
                    "{:<24} {:>10} {:>12} {:>12} {:>16}",
                    "ZONE", "CHAINS", "ENTRIES", "CHUNKS", "CHUNK BYTES"
                );
                for z in zones {
                    println!(
                        "{:<24} {:>10} {:>12} {:>12} {:>16}",
                        z.zone.as_str(),
                        z.usage.chains,
                        z.usage.entries,
                        z.usage.chunks,
                        z.usage.bytes
                    );
                }
                Ok(())
            }
            ZoneCommand::Show(args) => {
                let zone = zone_id(&args.zone)?;
                let info = args.target.client()?.zone(&zone).await?;
                print_zone(&info, args.json)
            }
            ZoneCommand::Delete(args) => delete(args).await,
            ZoneCommand::Invite(args) => {
                let zone = zone_id(&args.zone.zone)?;
                let client = args.zone.target.client()?;
                let invites = client
                    .create_invites(&zone, args.count, Some(args.ttl.as_secs()))
                    .await?;
                if args.zone.json {
                    println!("{}", serde_json::to_string_pretty(&invites)?);
                } else {
                    for code in &invites.codes {
                        println!("{code}");
                    }
                    eprintln!(
                        "{} invite code(s) for zone {}, each good for one account until {} (unix ms); they are not shown again",
                        invites.codes.len(),
                        zone.as_str(),
                        invites.expires_at_ms
                    );
                }
                Ok(())
            }
            ZoneCommand::Set(args) => {
                let zone = zone_id(&args.zone.zone)?;
                let change = ZoneQuota {
                    max_chains: args.max_chains,
                    max_entries: args.max_entries,
                    max_chunk_bytes: args.max_chunk_bytes,
                    max_chunks: args.max_chunks,
                };
                let settings = ZoneSettingsChange {
                    writes: match args.writes.as_deref() {
                        Some("accounts") => Some(WritePolicy::Accounts),
                        Some(_) => Some(WritePolicy::Open),
                        None => None,
                    },
                    account_max_chains: args.account_max_chains,
                    account_max_chunks: args.account_max_chunks,
                    account_max_chunk_bytes: args.account_max_chunk_bytes,
                    passkey_rp_id: if args.no_passkeys {
                        Some(String::new())
                    } else {
                        args.passkey_rp_id
                    },
                    passkey_origins: (!args.passkey_origins.is_empty())
                        .then_some(args.passkey_origins),
                    cors_origins: if args.no_cors {
                        Some(Vec::new())
                    } else {
                        (!args.cors_origins.is_empty()).then_some(args.cors_origins)
                    },
                    site_hosts: if args.no_site_hosts {
                        Some(Vec::new())
                    } else {
                        (!args.site_hosts.is_empty()).then_some(args.site_hosts)
                    },
                    proxies: if args.no_proxies {
                        Some(Vec::new())
                    } else if args.proxies.is_empty() {
                        None
                    } else {
                        let timeout_ms = args.proxy_timeout.map_or(DEFAULT_PROXY_TIMEOUT_MS, |t| {
                            t.as_millis() as u64
                        });
                        Some(
                            args.proxies
                                .iter()
                                .map(|p| {
                                    let (name, upstream) = p.split_once('=').ok_or_else(|| {
                                        anyhow::anyhow!("--proxy takes NAME=URL, not {p:?}")
                                    })?;
                                    Ok(ProxyRoute {
                                        name: name.to_owned(),
                                        upstream: upstream.to_owned(),
                                        timeout_ms,
                                    })
                                })
                                .collect::<anyhow::Result<Vec<_>>>()?,
                        )
                    },
                };
                let registration = RegistrationChange {
                    policy: match args.registration.as_deref() {
                        Some("invite") => Some(RegistrationPolicy::Invite),
                        Some("closed") => Some(RegistrationPolicy::Closed),
                        Some(_) => Some(RegistrationPolicy::Open),
                        None => None,
                    },
                    max_accounts: args.max_accounts,
                    max_envelope_bytes: args.max_envelope_bytes,
                };
                if change == ZoneQuota::default()
                    && settings == ZoneSettingsChange::default()
                    && registration == RegistrationChange::default()
                {
                    anyhow::bail!(
                        "nothing to set: give --max-chains, --max-entries, --max-chunk-bytes-per-node, --max-chunks-per-node, --writes, --account-max-*, --registration, --max-accounts, --max-envelope-bytes, --passkey-rp-id/--passkey-origin, --no-passkeys, --cors-origin, --no-cors, --site-host, --no-site-hosts, --proxy or --no-proxies"
                    );
                }
                let client = args.zone.target.client()?;
                if change != ZoneQuota::default() {
                    client.set_quota(&zone, &change).await?;
                }
                if registration != RegistrationChange::default() {
                    client.set_registration(&zone, &registration).await?;
                }
                if settings != ZoneSettingsChange::default() {
                    client.set_zone_settings(&zone, &settings).await?;
                }
                let info = client.zone(&zone).await?;
                print_zone(&info, args.zone.json)
            }
        }
    })
}

fn zone_id(zone: &str) -> anyhow::Result<ZoneId> {
    ZoneId::new(zone).map_err(|e| anyhow::anyhow!("invalid zone id {zone:?}: {e}"))
}

fn print_zone(z: &Zone, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(z)?);
        return Ok(());
    }
    let q = &z.quota;
    let limit = |v: Option<u64>| v.map_or_else(|| "default".to_owned(), |v| v.to_string());
    println!("zone            {}", z.zone.as_str());
    println!("created_at_ms   {}", z.created_at_ms);
    println!(
        "chains          {} (at most {})",
        z.usage.chains,
        limit(q.max_chains)
    );
    println!(
        "entries         {} (at most {})",
        z.usage.entries,
        limit(q.max_entries)
    );
    println!(
        "chunks          {} on the answering node (at most {} per node)",
        z.usage.chunks,
        limit(q.max_chunks)
    );
    println!(
        "chunk bytes     {} on the answering node (at most {} per node)",
        z.usage.bytes,
        limit(q.max_chunk_bytes)
    );
    let s = &z.settings;
    let writes = match s.writes {
        WritePolicy::Open => "open (anyone may create chains and upload chunks)",
        WritePolicy::Accounts => "accounts (creating chains and uploading chunks need a session)",
    };
    println!("writes          {writes}");
    let r = &z.registration;
    let registration = match r.policy {
        RegistrationPolicy::Open => "open (anyone may create an account)",
        RegistrationPolicy::Invite => {
            "invite (a one-time code from `blindstore zone invite` is needed)"
        }
        RegistrationPolicy::Closed => "closed (no new accounts)",
    };
    println!("registration    {registration}");
    println!(
        "accounts        {} (at most {})",
        z.accounts.accounts, r.max_accounts
    );
    println!(
        "envelope bytes  {} (at most {})",
        z.accounts.envelope_bytes, r.max_envelope_bytes
    );
    println!(
        "per account     {} chains, {} chunks and {} chunk bytes per node",
        s.account_quota.max_chains, s.account_quota.max_chunks, s.account_quota.max_chunk_bytes
    );
    match &s.passkeys {
        Some(p) => println!(
            "passkeys        on: relying party {}, origins {}",
            p.rp_id,
            p.origins.join(", ")
        ),
        None => println!("passkeys        off"),
    }
    if s.cors_origins.is_empty() {
        println!("cors            off (browsers on other origins may not call the API)");
    } else {
        println!("cors            {}", s.cors_origins.join(", "));
    }
    if !s.site_hosts.is_empty() {
        println!("site hosts      {}", s.site_hosts.join(", "));
    }
    for p in &s.proxies {
        println!(
            "proxy           {} -> {} ({} ms)",
            p.name, p.upstream, p.timeout_ms
        );
    }
    Ok(())
}
