//! The checker: decides from a recorded history whether chains behaved as linearizable
//! append-only logs and whether acknowledged chunks survived.
//!
//! A chain's operations are compare-and-set appends of unique values and whole-chain reads.
//! Unique values make every read reveal the order, so the check needs no search:
//!
//! 1. **Structure.** The chain's order is its longest successful read (the final read phase
//!    reads every chain after healing). Every read must be a prefix of it (else a *fork*); no
//!    read may hold a value twice (*duplicate*), a value no one tried to append
//!    (*never written*) or the value of an append that certainly failed (*failed but
//!    visible*). Every acknowledged append must be in the order (else *lost*), at the index it
//!    asked for and was told (else *wrong index*); two acknowledgements for one index are a
//!    fork.
//! 2. **Real time.** Each operation gets a key from its place in the order: an append that
//!    landed at index `p` has `2p+1`, a linearizable read that returned `n` values has `2n`.
//!    A linearization must order operations by key, so a history is linearizable only if no
//!    operation with a larger key *completed* before an operation with a smaller key was
//!    *invoked*. Checked for all pairs at once by sorting on key. A read involved is a
//!    *stale read*; two appends, or a read that saw the future, are *real-time* violations.
//!    Appends with an unknown outcome that landed count as completing never.
//! 3. **Conflicts.** A 409 at index `i` is justified only if the chain's length was not `i` at
//!    some moment while it was in flight: either it may have been shorter when it began (the
//!    append at `i-1` may have come after the 409 was invoked) or longer when it ended (the
//!    append at `i` may have come before it completed). Otherwise it is a *spurious conflict*.
//!
//! Stale-mode reads are checked for structure only. These rules decide linearizability of the
//! chain's sequential specification exactly; `tests/it/crosscheck.rs` compares the verdicts
//! with the `stateright` crate's general linearizability tester on random small histories.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::history::{Body, Op, Outcome};

/// The kinds of anomaly the checker reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Two reads disagree about the value at an index.
    ForkValues,
    /// Two appends were acknowledged at one index.
    ForkAcks,
    /// An append was acknowledged at an index other than the one it asked for, or its value
    /// sits elsewhere in the chain.
    WrongIndex,
    /// A value appears twice in one read.
    Duplicate,
    /// A read returned a value no client tried to append.
    NeverWritten,
    /// A read returned the value of an append that certainly failed.
    FailedVisible,
    /// An acknowledged append is missing from the chain.
    LostAppend,
    /// A linearizable read missed an append (or an entry seen by a read) that completed before
    /// the read began.
    StaleRead,
    /// Another real-time violation: appends ordered against real time, or a read that saw an
    /// append invoked after the read completed.
    RealTime,
    /// A 409 answered while the chain's length was certainly the index asked for.
    SpuriousConflict,
    /// An acknowledged chunk cannot be read anywhere.
    ChunkLost,
    /// A chunk read returned bytes that do not hash to its address.
    ChunkCorrupt,
    /// An acknowledged chunk is held by fewer live nodes than the replication factor.
    ChunkUnderReplicated,
}

impl AnomalyKind {
    /// The family the acceptance criteria speak of: `fork`, `lost`, `stale_read`...
    pub fn family(self) -> &'static str {
        match self {
            AnomalyKind::ForkValues | AnomalyKind::ForkAcks | AnomalyKind::WrongIndex => "fork",
            AnomalyKind::LostAppend => "lost",
            AnomalyKind::StaleRead => "stale_read",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::NeverWritten => "never_written",
            AnomalyKind::FailedVisible => "failed_visible",
            AnomalyKind::RealTime => "real_time",
            AnomalyKind::SpuriousConflict => "spurious_conflict",
            AnomalyKind::ChunkLost => "chunk_lost",
            AnomalyKind::ChunkCorrupt => "chunk_corrupt",
            AnomalyKind::ChunkUnderReplicated => "chunk_under_replicated",
        }
    }
}

/// One anomaly with a minimal witness: the operations that show it.
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<u32>,
    pub detail: String,
    pub witness: Vec<Op>,
}

/// What the final phase found for one acknowledged chunk.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkFinal {
    pub hash: String,
    /// Some node returned the bytes.
    pub readable: bool,
    /// The bytes returned hashed to the address.
    pub intact: bool,
    /// Live nodes holding a copy.
    pub live_copies: usize,
}

/// The verdict on a history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Anomalies, at most [`MAX_WITNESSED`] per kind with witnesses.
    pub anomalies: Vec<Anomaly>,
    /// How many of each kind were found (may exceed the listed ones).
    pub counts: BTreeMap<AnomalyKind, usize>,
    /// Acknowledged appends missing from the final chains.
    pub lost_appends: usize,
    /// Acknowledged chunks not readable intact at the end.
    pub lost_chunks: usize,
}

/// At most this many anomalies of one kind keep their witnesses.
pub const MAX_WITNESSED: usize = 10;

impl Verdict {
    pub fn is_valid(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn has_family(&self, family: &str) -> bool {
        self.counts.keys().any(|k| k.family() == family)
    }

    fn add(&mut self, kind: AnomalyKind, chain: Option<u32>, detail: String, witness: Vec<&Op>) {
        let count = self.counts.entry(kind).or_default();
        *count += 1;
        if *count <= MAX_WITNESSED {
            self.anomalies.push(Anomaly {
                kind,
                chain,
                detail,
                witness: witness.into_iter().cloned().collect(),
            });
        }
    }
}

/// Why a history cannot be checked at all (a harness defect, not a system one).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("value {0:?} was appended by two operations; values must be unique")]
    ValueReused(String),
}

/// Checks every chain in `ops`, and the chunks: `chunk_puts`/`chunk_gets` are in `ops`,
/// `finals` is what the final phase found for each acknowledged chunk with replication factor
/// `replication`.
pub fn check(ops: &[Op], finals: &[ChunkFinal], replication: usize) -> Result<Verdict, CheckError> {
    let mut verdict = Verdict::default();
    let mut by_chain: BTreeMap<u32, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if let Some(chain) = op.chain() {
            by_chain.entry(chain).or_default().push(op);
        }
    }
    for (chain, chain_ops) in by_chain {
        check_chain(chain, &chain_ops, &mut verdict)?;
    }
    check_chunks(ops, finals, replication, &mut verdict);
    Ok(verdict)
}

/// The checks of one chain's operations.
pub fn check_chain(chain: u32, ops: &[&Op], verdict: &mut Verdict) -> Result<(), CheckError> {
    let mut appends: HashMap<&str, &Op> = HashMap::new();
    let mut reads: Vec<(&Op, &[String], bool)> = Vec::new();
    for op in ops {
        match &op.body {
            Body::Append { value, .. } if appends.insert(value.as_str(), op).is_some() => {
                return Err(CheckError::ValueReused(value.clone()));
            }
            Body::Read {
                values: Some(values),
                stale,
                ..
            } if op.outcome == Outcome::Ok => reads.push((op, values, *stale)),
            _ => {}
        }
    }
    let Some(&(longest_op, order, _)) = reads.iter().max_by_key(|(op, values, _)| {
        // The longest read; among equals the earliest, so witnesses are stable.
        (values.len(), std::cmp::Reverse(op.id))
    }) else {
        // Nothing was read: only acknowledged appends can be judged, and they are lost.
        for op in appends.values().filter(|op| op.outcome == Outcome::Ok) {
            verdict.lost_appends += 1;
            verdict.add(
                AnomalyKind::LostAppend,
                Some(chain),
                "acknowledged, but no read of the chain ever succeeded".into(),
                vec![op],
            );
        }
        return Ok(());
    };

    // 1. Structure.
    let mut fork_free_reads = Vec::new();
    for &(op, values, stale) in &reads {
        let mut seen = HashSet::new();
        for value in values {
            if !seen.insert(value.as_str()) {
                verdict.add(
                    AnomalyKind::Duplicate,
                    Some(chain),
                    format!("value {value:?} appears twice"),
                    vec![op],
                );
            }
            match appends.get(value.as_str()) {
                None => verdict.add(
                    AnomalyKind::NeverWritten,
                    Some(chain),
                    format!("value {value:?} was never appended"),
                    vec![op],
                ),
                Some(append) if append.outcome == Outcome::Fail => verdict.add(
                    AnomalyKind::FailedVisible,
                    Some(chain),
                    format!("value {value:?} is visible, but its append certainly failed"),
                    vec![append, op],
                ),
                Some(_) => {}
            }
        }
        match values.iter().zip(order).position(|(a, b)| a != b) {
            Some(i) => verdict.add(
                AnomalyKind::ForkValues,
                Some(chain),
                format!(
                    "index {i}: one read saw {:?}, another {:?}",
                    values[i], order[i]
                ),
                vec![op, longest_op],
            ),
            None if !stale => fork_free_reads.push((op, values.len())),
            None => {}
        }
    }
    let position: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_str(), i))
        .collect();
    let mut acked_at: HashMap<u64, &Op> = HashMap::new();
    for op in appends.values().filter(|op| op.outcome == Outcome::Ok) {
        let Body::Append {
            value,
            expected_index,
            acked_index,
            ..
        } = &op.body
        else {
            unreachable!("only appends are in `appends`")
        };
        let acked = acked_index.unwrap_or(*expected_index);
        if let Some(other) = acked_at.insert(acked, op) {
            verdict.add(
                AnomalyKind::ForkAcks,
                Some(chain),
                format!("two appends acknowledged at index {acked}"),
                vec![other, op],
            );
        }
        match position.get(value.as_str()) {
            None => {
                verdict.lost_appends += 1;
                verdict.add(
                    AnomalyKind::LostAppend,
                    Some(chain),
                    format!(
                        "acknowledged at index {acked}, missing from the longest read \
                         ({} entries)",
                        order.len()
                    ),
                    vec![op, longest_op],
                );
            }
            Some(&p) if p as u64 != acked || acked != *expected_index => verdict.add(
                AnomalyKind::WrongIndex,
                Some(chain),
                format!("asked for index {expected_index}, acknowledged at {acked}, found at {p}"),
                vec![op, longest_op],
            ),
            Some(_) => {}
        }
    }

    // 2. Real time, over operations that have a place in the order.
    let mut placed: Vec<Placed> = Vec::new();
    for op in appends.values() {
        let Body::Append { value, .. } = &op.body else {
            unreachable!("only appends are in `appends`")
        };
        if op.outcome == Outcome::Fail {
            continue; // Already reported if visible; it has no place otherwise.
        }
        if let Some(&p) = position.get(value.as_str()) {
            placed.push(Placed::new(op, 2 * p as u64 + 1));
        }
    }
    for &(op, len) in &fork_free_reads {
        placed.push(Placed::new(op, 2 * len as u64));
    }
    placed.sort_by_key(|p| p.key);
    // For each operation, the earliest completion among operations with a larger key.
    let mut later_min: Option<&Placed> = None;
    let mut i = placed.len();
    while i > 0 {
        let mut j = i;
        while j > 0 && placed[j - 1].key == placed[i - 1].key {
            j -= 1;
        }
        for x in &placed[j..i] {
            if let Some(y) = later_min {
                if y.complete < x.op.invoke_ns {
                    real_time_violation(chain, x, y, verdict);
                }
            }
        }
        for x in &placed[j..i] {
            if later_min.is_none_or(|y| x.complete < y.complete) {
                later_min = Some(x);
            }
        }
        i = j;
    }

    // 3. Conflicts. `placed` is sorted by key: the earliest completion from each position on,
    // and the latest invocation up to each position, answer every 409 with a binary search.
    let mut earliest_completion = vec![u64::MAX; placed.len() + 1];
    for i in (0..placed.len()).rev() {
        earliest_completion[i] = earliest_completion[i + 1].min(placed[i].complete);
    }
    let mut latest_invocation = vec![0u64; placed.len() + 1];
    for (i, p) in placed.iter().enumerate() {
        latest_invocation[i + 1] = latest_invocation[i].max(p.op.invoke_ns);
    }
    for op in appends.values() {
        let Body::Append {
            expected_index: idx,
            conflict: true,
            ..
        } = &op.body
        else {
            continue;
        };
        if op.outcome != Outcome::Fail {
            continue;
        }
        let idx = *idx;
        let len = order.len() as u64;
        if idx > len {
            continue; // Longer than the chain ever was: certainly a conflict.
        }
        // Latest moment the append at idx-1 can have happened: the earliest completion of
        // anything that must follow it. Shorter than idx when invoked is possible if that is
        // after the invocation.
        let shorter_possible = idx > 0 && {
            let from = placed.partition_point(|p| p.key < 2 * idx - 1);
            earliest_completion[from] > op.invoke_ns
        };
        // Earliest moment the append at idx can have happened: the latest invocation of
        // anything that must precede it (the append at idx exists when idx < len).
        let longer_possible = idx < len && {
            let upto = placed.partition_point(|p| p.key <= 2 * idx + 1);
            latest_invocation[upto] < op.complete_or_never()
        };
        if !shorter_possible && !longer_possible {
            let mut witness = vec![*op];
            witness.extend(
                placed
                    .iter()
                    .filter(|p| p.key + 1 == 2 * idx || p.key == 2 * idx + 1)
                    .map(|p| p.op),
            );
            verdict.add(
                AnomalyKind::SpuriousConflict,
                Some(chain),
                format!("409 at index {idx} while the chain certainly had {idx} entries"),
                witness,
            );
        }
    }
    Ok(())
}

struct Placed<'a> {
    op: &'a Op,
    key: u64,
    complete: u64,
}

impl<'a> Placed<'a> {
    fn new(op: &'a Op, key: u64) -> Self {
        Self {
            op,
            key,
            complete: op.complete_or_never(),
        }
    }
}

/// `y` (larger key) completed before `x` (smaller key) was invoked.
fn real_time_violation(chain: u32, x: &Placed, y: &Placed, verdict: &mut Verdict) {
    let is_read = |p: &Placed| p.key.is_multiple_of(2);
    let (kind, detail) = match (is_read(x), is_read(y)) {
        (true, false) => (
            AnomalyKind::StaleRead,
            format!(
                "read returned {} entries, but the append at index {} completed before it began",
                x.key / 2,
                y.key / 2
            ),
        ),
        (true, true) => (
            AnomalyKind::StaleRead,
            format!(
                "read returned {} entries, but an earlier read had already returned {}",
                x.key / 2,
                y.key / 2
            ),
        ),
        (false, true) => (
            AnomalyKind::RealTime,
            format!(
                "a read that completed before the append at index {} was invoked saw it",
                x.key / 2
            ),
        ),
        (false, false) => (
            AnomalyKind::RealTime,
            format!(
                "the append at index {} completed before the append at index {} was invoked",
                y.key / 2,
                x.key / 2
            ),
        ),
    };
    verdict.add(kind, Some(chain), detail, vec![x.op, y.op]);
}

/// Chunk checks: every acknowledged chunk is readable, intact and fully replicated at the
/// end; no read during the run returned corrupt bytes.
fn check_chunks(ops: &[Op], finals: &[ChunkFinal], replication: usize, verdict: &mut Verdict) {
    let puts: HashMap<&str, &Op> = ops
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .filter_map(|op| match &op.body {
            Body::ChunkPut { hash } => Some((hash.as_str(), op)),
            _ => None,
        })
        .collect();
    for op in ops {
        if let Body::ChunkGet {
            hash,
            intact: Some(false),
        } = &op.body
        {
            verdict.add(
                AnomalyKind::ChunkCorrupt,
                None,
                format!("chunk {hash}: a read returned bytes that do not match the hash"),
                vec![op],
            );
        }
    }
    for end in finals {
        let witness: Vec<&Op> = puts.get(end.hash.as_str()).copied().into_iter().collect();
        if !end.readable {
            verdict.lost_chunks += 1;
            verdict.add(
                AnomalyKind::ChunkLost,
                None,
                format!("chunk {}: acknowledged, not readable at the end", end.hash),
                witness,
            );
        } else if !end.intact {
            verdict.lost_chunks += 1;
            verdict.add(
                AnomalyKind::ChunkCorrupt,
                None,
                format!("chunk {}: corrupt at the end", end.hash),
                witness,
            );
        } else if end.live_copies < replication {
            verdict.add(
                AnomalyKind::ChunkUnderReplicated,
                None,
                format!(
                    "chunk {}: {} live copies, want {replication}",
                    end.hash, end.live_copies
                ),
                witness,
            );
        }
    }
}
