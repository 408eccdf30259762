//! Fault-injection verification of Blindstore, in the manner of Jepsen: real `blindstore`
//! processes, real faults (kills, pauses, partitions, membership changes, disk damage), a
//! recorded history of client operations, and an independent [`checker`].
//!
//! The binary `blindstore-jepsen` runs it; `docs/reliability.md` explains the method.

pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod report;
pub mod workload;
