//! The report: the machine, then one markdown table row per load, then each server's memory.

use std::fmt::Write;
use std::time::Duration;

use crate::load::Outcome;

/// One load, as measured against each system.
pub struct Row {
    pub load: String,
    pub clients: usize,
    /// The Blindstore cluster (3 or 5 nodes).
    pub cluster: Outcome,
    pub baseline: Option<Baseline>,
    /// The single Blindstore node.
    pub single: Outcome,
}

/// What a Blindstore row is compared with.
#[derive(Clone)]
pub struct Baseline {
    pub name: String,
    pub outcome: Outcome,
}

impl Baseline {
    pub fn new(name: &str, outcome: Outcome) -> Self {
        Self {
            name: name.to_owned(),
            outcome,
        }
    }
}

impl Row {
    pub fn new(
        load: &str,
        clients: usize,
        cluster: Outcome,
        baseline: Option<Baseline>,
        single: Outcome,
    ) -> Self {
        Self {
            load: load.to_owned(),
            clients,
            cluster,
            baseline,
            single,
        }
    }

    pub fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        let baseline = self.baseline.as_ref().map(|b| &b.outcome);
        std::iter::once(&self.cluster)
            .chain(baseline)
            .chain(std::iter::once(&self.single))
    }
}

/// Where and when the numbers were taken.
pub struct Machine {
    pub date: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub commit: String,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown".into(), |(_, model)| model.trim().to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".into(), |k| k.trim().to_owned());
        Self {
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel,
            commit: commit(),
        }
    }
}

/// The whole report, in markdown.
pub fn render(
    machine: &Machine,
    setup: &str,
    nodes: usize,
    rows: &[Row],
    disk: Option<&DiskUse>,
    rss: &[(String, Option<u64>)],
) -> String {
    let mut out = String::new();
    let m = machine;
    let _ = writeln!(
        out,
        "Machine: {} CPUs ({}), Linux {}; {}; commit {}.\n{setup}\n",
        m.cpus, m.cpu_model, m.kernel, m.date, m.commit
    );
    let _ = writeln!(
        out,
        "| load | clients | {nodes}-node ops/s | p50 ms | p99 ms | baseline | ops/s | p50 ms | p99 ms \
         | {nodes}-node / baseline | 1-node ops/s | p50 ms | p99 ms | errors {nodes}-node/baseline/1-node |",
    );
    out.push_str("|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for row in rows {
        let baseline = row.baseline.as_ref();
        let ratio = match baseline {
            Some(b) if b.outcome.ops_per_sec > 0.0 => {
                format!("{:.2}", row.cluster.ops_per_sec / b.outcome.ops_per_sec)
            }
            _ => "—".into(),
        };
        let errors = [
            Some(&row.cluster),
            baseline.map(|b| &b.outcome),
            Some(&row.single),
        ]
        .map(|o| o.map_or("—".into(), |o| o.errors.to_string()))
        .join("/");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {ratio} | {} | {errors} |",
            row.load,
            row.clients,
            cells(Some(&row.cluster)),
            baseline.map_or("—", |b| b.name.as_str()),
            cells(baseline.map(|b| &b.outcome)),
            cells(Some(&row.single)),
        );
    }
    let failed: Vec<String> = rows
        .iter()
        .flat_map(|r| r.outcomes().map(move |o| (r, o)))
        .filter_map(|(r, o)| {
            Some(format!(
                "- {}, {} clients: {}",
                r.load,
                r.clients,
                o.first_error.as_ref()?
            ))
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            out,
            "\nFirst error of each load that had errors:\n{}",
            failed.join("\n")
        );
    }
    if let Some(disk) = disk {
        let per = |bytes: u64| bytes as f64 / disk.payload_bytes.max(1) as f64;
        let _ = writeln!(
            out,
            "\nDisk use of a single node after {} appends of 1 KiB ({:.1} MiB of payloads):\n\n\
             | part | MiB on disk | bytes per payload byte |\n|---|--:|--:|",
            disk.appends,
            disk.payload_bytes as f64 / (1 << 20) as f64
        );
        for (part, bytes) in &disk.parts {
            let _ = writeln!(
                out,
                "| {part} | {:.1} | {:.2} |",
                *bytes as f64 / (1 << 20) as f64,
                per(*bytes)
            );
        }
        let _ = writeln!(
            out,
            "| **all** | {:.1} | **{:.2}** |",
            disk.total as f64 / (1 << 20) as f64,
            per(disk.total)
        );
        let last = disk.last_snapshot.map_or("none".into(), |(secs, bytes)| {
            format!(
                "the last took {secs:.1} s for {:.1} MiB",
                bytes as f64 / (1 << 20) as f64
            )
        });
        let _ = writeln!(
            out,
            "\nSnapshots built while filling: {} ({last}). Restart after `kill -9`: answering \
             in {:.2} s, all applied again in {:.2} s.",
            disk.snapshots,
            disk.restart.0.as_secs_f64(),
            disk.restart.1.as_secs_f64()
        );
    }
    out.push_str("\n| process | RSS at the end (MiB) |\n|---|--:|\n");
    for (name, bytes) in rss {
        let mib = bytes.map_or("gone".into(), |b| {
            format!("{:.1}", b as f64 / (1 << 20) as f64)
        });
        let _ = writeln!(out, "| {name} | {mib} |");
    }
    out
}

/// ops/s, p50 and p99 cells, or dashes.
fn cells(outcome: Option<&Outcome>) -> String {
    match outcome {
        Some(o) => format!(
            "{:.0} | {} | {}",
            o.ops_per_sec,
            millis(o.p50),
            millis(o.p99)
        ),
        None => "— | — | —".into(),
    }
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

/// `git rev-parse --short HEAD`, marked when the work tree differs from it.
fn commit() -> String {
    let git = |args: &[&str]| std::process::Command::new("git").args(args).output().ok();
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]).filter(|o| o.status.success()) else {
        return "unknown (not a git checkout)".into();
    };
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    // diff-index only reads (it does not refresh the index as `git status` would).
    match git(&["diff-index", "--quiet", "HEAD", "--"]) {
        Some(o) if o.status.code() == Some(1) => format!("{head} with uncommitted changes"),
        _ => head,
    }
}

/// How much disk a single node used for a number of appends.
pub struct DiskUse {
    pub appends: u64,
    pub payload_bytes: u64,
    /// Allocated bytes by part of the data directory.
    pub parts: Vec<(String, u64)>,
    pub total: u64,
    /// Snapshots built while it filled, and the last one's seconds and bytes.
    pub snapshots: usize,
    pub last_snapshot: Option<(f64, u64)>,
    /// After a `kill -9`: until the restarted node answered, and until it had applied all it
    /// had applied before.
    pub restart: (Duration, Duration),
}
