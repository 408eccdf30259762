//! `blindstore`: runs a node and manages it.

mod cluster;
mod config;
mod serve;
mod site;
mod zone;

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "blindstore", version, about = "Blindstore: a zero-knowledge backend for static web apps.", long_about = None)]
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Cluster(command) => cluster::run(command),
        Command::Zone(command) => zone::run(command),
        Command::Site(command) => site::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blindstore: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
