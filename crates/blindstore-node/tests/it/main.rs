//! The `blindstore` binary as users run it: real processes on ephemeral ports.

mod accounts;
mod acme;
mod backup;
mod cache;
mod cluster;
mod console;
mod credentials;
mod durability;
mod limits;
mod logs;
mod metrics;
mod passkeys;
mod process;
mod sdk;
mod serve;
mod web;
mod zone;
