//! Figures from a history: operations by kind and outcome, latencies, availability during
//! faults, and the text report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checker::Verdict;
use crate::history::{Body, Op, Outcome};
use crate::nemesis::FaultEvent;

/// Counts and latencies of one kind of operation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpStats {
    pub attempted: usize,
    pub ok: usize,
    pub failed: usize,
    pub indeterminate: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The kind an operation is counted under.
pub fn op_kind(op: &Op) -> &'static str {
    match &op.body {
        Body::Append { .. } => "append",
        Body::Read {
            final_read: true, ..
        } => "final_read",
        Body::Read { stale: true, .. } => "stale_read",
        Body::Read { .. } => "read",
        Body::ChunkPut { .. } => "chunk_put",
        Body::ChunkGet { .. } => "chunk_get",
    }
}

pub fn op_stats(ops: &[Op]) -> BTreeMap<&'static str, OpStats> {
    let mut latencies: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    let mut stats: BTreeMap<&'static str, OpStats> = BTreeMap::new();
    for op in ops {
        let kind = op_kind(op);
        let s = stats.entry(kind).or_default();
        s.attempted += 1;
        match op.outcome {
            Outcome::Ok => {
                s.ok += 1;
                if let Some(done) = op.complete_ns {
                    latencies
                        .entry(kind)
                        .or_default()
                        .push(done.saturating_sub(op.invoke_ns));
                }
            }
            Outcome::Fail => s.failed += 1,
            Outcome::Info => s.indeterminate += 1,
        }
    }
    for (kind, mut l) in latencies {
        l.sort_unstable();
        let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
        let s = stats.get_mut(kind).expect("counted");
        s.p50_ms = at(0.5);
        s.p99_ms = at(0.99);
    }
    stats
}

/// Share of operations (not the final phase) that succeeded, invoked during faults and
/// outside them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Availability {
    pub during_faults_ok: usize,
    pub during_faults_attempted: usize,
    pub during_faults: f64,
    pub outside_faults_ok: usize,
    pub outside_faults_attempted: usize,
    pub outside_faults: f64,
}

pub fn availability(ops: &[Op], faults: &[FaultEvent]) -> Availability {
    let windows: Vec<(u64, u64)> = faults
        .iter()
        .filter(|f| f.status != "skipped")
        .map(|f| ((f.start_s * 1e9) as u64, (f.end_s * 1e9) as u64))
        .collect();
    let mut a = Availability::default();
    for op in ops.iter().filter(|op| op_kind(op) != "final_read") {
        let during = windows
            .iter()
            .any(|(s, e)| op.invoke_ns >= *s && op.invoke_ns <= *e);
        let ok = usize::from(op.outcome == Outcome::Ok);
        if during {
            a.during_faults_attempted += 1;
            a.during_faults_ok += ok;
        } else {
            a.outside_faults_attempted += 1;
            a.outside_faults_ok += ok;
        }
    }
    let ratio = |ok: usize, n: usize| if n == 0 { 0.0 } else { ok as f64 / n as f64 };
    a.during_faults = ratio(a.during_faults_ok, a.during_faults_attempted);
    a.outside_faults = ratio(a.outside_faults_ok, a.outside_faults_attempted);
    a
}

/// The longest time, in seconds, between `from_s` and `to_s` during which no append was
/// acknowledged: gaps between acknowledgements, and from `from_s` to the first one and from the
/// last one to `to_s`.
pub fn longest_write_gap(ops: &[Op], from_s: f64, to_s: f64) -> f64 {
    let (from, to) = ((from_s * 1e9) as u64, (to_s * 1e9) as u64);
    let mut acked: Vec<u64> = ops
        .iter()
        .filter(|op| op_kind(op) == "append" && op.outcome == Outcome::Ok)
        .filter_map(|op| op.complete_ns)
        .filter(|t| (from..=to).contains(t))
        .collect();
    acked.sort_unstable();
    let mut longest = 0u64;
    let mut last = from;
    for t in acked.into_iter().chain([to]) {
        longest = longest.max(t - last);
        last = t;
    }
    longest as f64 / 1e9
}

/// Faults by kind: installed, skipped, indeterminate, and how often the leader was hit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultCounts {
    pub installed: usize,
    pub skipped: usize,
    pub indeterminate: usize,
    pub leader_targeted: usize,
}

pub fn fault_counts(faults: &[FaultEvent]) -> BTreeMap<&'static str, FaultCounts> {
    let mut out: BTreeMap<&'static str, FaultCounts> = BTreeMap::new();
    for f in faults {
        let c = out.entry(f.kind).or_default();
        match f.status {
            "installed" => c.installed += 1,
            "skipped" => c.skipped += 1,
            _ => c.indeterminate += 1,
        }
        c.leader_targeted += usize::from(f.leader_targeted && f.status != "skipped");
    }
    out
}

/// The human-readable report.
#[allow(clippy::too_many_arguments)]
pub fn text(
    header: &str,
    stats: &BTreeMap<&'static str, OpStats>,
    availability: &Availability,
    faults: &[FaultEvent],
    leader_changes: usize,
    verdict: &Verdict,
    converge_s: Option<f64>,
    extra: &str,
    conclusion: &str,
) -> String {
    let mut out = String::new();
    out.push_str(header);
    out.push_str("\noperations       attempted       ok   failed  unknown   p50 ms   p99 ms\n");
    for (kind, s) in stats {
        out.push_str(&format!(
            "  {kind:<12} {:>11} {:>8} {:>8} {:>8} {:>8.1} {:>8.1}\n",
            s.attempted, s.ok, s.failed, s.indeterminate, s.p50_ms, s.p99_ms
        ));
    }
    out.push_str(&format!(
        "availability     {:.1}% of operations ok during faults ({} of {}), {:.1}% outside\n",
        availability.during_faults * 100.0,
        availability.during_faults_ok,
        availability.during_faults_attempted,
        availability.outside_faults * 100.0
    ));
    out.push_str("faults\n");
    for f in faults {
        out.push_str(&format!(
            "  {:>7.1}s {:<40} {:<13} targets {:?}{}{}\n",
            f.start_s,
            f.name,
            f.status,
            f.targets,
            if f.leader_targeted { " (leader)" } else { "" },
            f.replication_restored_s
                .map(|s| format!(", replication restored {s:.1}s after heal"))
                .unwrap_or_default()
        ));
        if !f.detail.is_empty() {
            out.push_str(&format!("           {}\n", f.detail));
        }
    }
    for (kind, c) in fault_counts(faults) {
        out.push_str(&format!(
            "  {kind:<12} installed {} skipped {} indeterminate {} leader targeted {}\n",
            c.installed, c.skipped, c.indeterminate, c.leader_targeted
        ));
    }
    out.push_str(&format!("leader changes   {leader_changes}\n"));
    out.push_str(&format!(
        "converged        {}\n",
        converge_s
            .map(|s| format!("{s:.1}s after the final heal"))
            .unwrap_or_else(|| "NOT within the deadline".into())
    ));
    out.push_str(&format!(
        "lost             {} acknowledged appends, {} acknowledged chunks\n",
        verdict.lost_appends, verdict.lost_chunks
    ));
    if verdict.counts.is_empty() {
        out.push_str("anomalies        none\n");
    } else {
        out.push_str("anomalies\n");
        for (kind, n) in &verdict.counts {
            out.push_str(&format!("  {:<22} {n}\n", format!("{kind:?}")));
            if let Some(a) = verdict.anomalies.iter().find(|a| a.kind == *kind) {
                out.push_str(&format!(
                    "    e.g. {:?}{}: {}\n",
                    a.kind,
                    a.chain.map(|c| format!(" chain {c}")).unwrap_or_default(),
                    a.detail
                ));
                for op in &a.witness {
                    let mut line = serde_json::to_string(op).unwrap_or_default();
                    if line.len() > 300 {
                        let cut = (0..=300).rev().find(|i| line.is_char_boundary(*i));
                        line.truncate(cut.unwrap_or(0));
                        line.push_str("... (whole operation in results.json)");
                    }
                    out.push_str(&format!("      {line}\n"));
                }
            }
        }
    }
    out.push_str(extra);
    out.push_str(conclusion);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Body;

    fn append(complete_s: f64, outcome: Outcome) -> Op {
        Op {
            id: 0,
            process: 0,
            node: None,
            invoke_ns: 0,
            complete_ns: Some((complete_s * 1e9) as u64),
            outcome,
            body: Body::Append {
                chain: 0,
                value: String::new(),
                expected_index: 0,
                acked_index: None,
                conflict: false,
            },
            error: None,
        }
    }

    #[test]
    fn the_longest_write_gap_counts_only_acknowledged_appends_in_the_window() {
        let ops = [
            append(1.0, Outcome::Ok),
            append(2.0, Outcome::Ok),
            // A failed append does not end a gap.
            append(3.0, Outcome::Fail),
            append(5.5, Outcome::Ok),
            append(6.0, Outcome::Ok),
            // Outside the window.
            append(20.0, Outcome::Ok),
        ];
        assert_eq!(longest_write_gap(&ops, 0.5, 7.0), 3.5);
        // The window's edges count: nothing acknowledged from 6 s to 10 s.
        assert_eq!(longest_write_gap(&ops, 0.5, 10.0), 4.0);
        assert_eq!(longest_write_gap(&[], 1.0, 3.0), 2.0);
    }
}
