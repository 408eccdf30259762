//! How the state machine's store reaches the disk: its commits never sync (LMDB `NO_SYNC`);
//! the node syncs it in the background ([`StateMachineStore::sync`], every
//! `STATE_SYNC_INTERVAL` from the Raft core), before a snapshot is current, and when it
//! stops. The Raft log, synced at every write, replays what the state lost.
//!
//! A process crash loses nothing: the kernel holds every commit. A machine crash (power loss,
//! kernel panic) can lose the commits since the last sync, and — because the file system does
//! not keep the order in which LMDB's pages reach the disk — leave the file torn. So the store
//! keeps a marker, `state/durability`, saying which boot opened it and whether it was closed
//! cleanly; at open, a store left open by another boot is not trusted: it is moved aside
//! (`data.mdb.unclean`) and the node rebuilds its state from its current snapshot and its
//! log, serving nothing until it is current (`blindstore_raft`'s catch-up guard).
//!
//! The marker is text, one field per line:
//!
//! ```text
//! blindstore state durability 1
//! boot <the kernel's boot id>
//! open | clean
//! ```
//!
//! [`StateMachineStore::sync`]: crate::StateMachineStore::sync

use std::path::Path;

use crate::write_atomically;

const MARKER: &str = "durability";
const HEADER: &str = "blindstore state durability 1";

/// What the marker says about the store on disk, before it is opened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// No marker: a new store, or one from a build that synced every commit.
    Unmarked,
    /// Closed cleanly, or left open by a process of this boot: every commit is on disk or in
    /// the page cache.
    Trusted,
    /// Left open by another boot, or a marker that does not read: the machine went down with
    /// unsynced commits.
    Untrusted(String),
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), or a value no boot has.
pub(crate) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub(crate) fn read(dir: &Path) -> std::io::Result<Found> {
    let text = match std::fs::read_to_string(dir.join(MARKER)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Unmarked),
        Err(e) => return Err(e),
    };
    let lines: Vec<&str> = text.lines().collect();
    let found = match lines.as_slice() {
        [HEADER, boot, "clean"] if boot.starts_with("boot ") => Found::Trusted,
        [HEADER, boot, "open"] => {
            let opened_by = boot.strip_prefix("boot ").unwrap_or_default();
            let now = boot_id();
            if opened_by == now && now != "unknown" {
                Found::Trusted
            } else {
                Found::Untrusted(format!("left open by boot {opened_by}; this is boot {now}"))
            }
        }
        _ => Found::Untrusted(format!("an unreadable marker: {text:?}")),
    };
    Ok(found)
}

/// Records that this boot has the store open (`clean == false`) or closed it cleanly; durable
/// when this returns.
pub(crate) fn write(dir: &Path, clean: bool, boot: &str) -> std::io::Result<()> {
    let state = if clean { "clean" } else { "open" };
    write_atomically(
        dir,
        MARKER,
        format!("{HEADER}\nboot {boot}\n{state}\n").as_bytes(),
    )
}

/// Moves an untrusted store's files aside (`data.mdb.unclean`, replacing an older one) so a
/// new, empty store opens in their place.
pub(crate) fn set_aside(dir: &Path) -> std::io::Result<()> {
    let data = dir.join("data.mdb");
    if data.exists() {
        std::fs::rename(&data, dir.join("data.mdb.unclean"))?;
    }
    match std::fs::remove_file(dir.join("lock.mdb")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Makes a stopped node's state store look as a machine crash leaves it: left open by another
/// boot, with a page of its file overwritten. For tests and fault injection only.
pub fn emulate_machine_crash(state_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    write(state_dir, false, "a-boot-before-the-crash")?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(state_dir.join("data.mdb"))?;
    // The third page: past the two meta pages, so only reading it would notice.
    file.write_all_at(&[0xAB; 4096], 2 * 4096)?;
    file.sync_all()
}
