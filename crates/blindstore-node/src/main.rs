//! `blindstore`: runs a node and manages it.

mod acme;
mod backup;
mod cluster;
mod config;
mod serve;
mod site;
mod zone;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::ServeArgs;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "blindstore", about = "Blindstore: a zero-knowledge backend for static web apps.", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node. With no flags: a single node on 127.0.0.1:8080 with data in
    /// ./blindstore-data and a ready-to-use zone `demo`.
    Serve(Box<ServeArgs>),
    /// Look at and manage a cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Create zones, look at their usage, change their quotas and write policy.
    #[command(subcommand)]
    Zone(zone::ZoneCommand),
    /// Deploy a directory as a zone's static site, list its versions, roll back.
    #[command(subcommand)]
    Site(site::SiteCommand),
    /// Back up a running cluster into a directory (the state at one Raft index and every chunk
    /// it references), or check a backup with `backup verify DIR`.
    Backup(backup::BackupArgs),
    /// Make the data dir of a new cluster's first node from a backup.
    Restore(backup::RestoreArgs),
}

fn main() -> std::process::ExitCode {
    // `serve`'s flags get their defaults from `Config::default()` (config::with_defaults).
    let matches = Cli::command()
        .version(serve::version_line())
        .mut_subcommand("serve", config::with_defaults)
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Serve(args) => {
            let serve = matches
                .subcommand_matches("serve")
                .expect("the serve subcommand was parsed");
            serve::run(&args, serve)
        }
        Command::Cluster(command) => cluster::run(command),
        Command::Zone(command) => zone::run(command),
        Command::Site(command) => site::run(command),
        Command::Backup(args) => backup::run(args),
        Command::Restore(args) => backup::restore(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blindstore: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
