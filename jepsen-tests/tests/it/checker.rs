//! Hand-made histories: one for each anomaly the checker must flag, and valid ones it must
//! accept. Times are small integers; a chain is chain 0 unless said.

use blindstore_jepsen::checker::{check, AnomalyKind, ChunkFinal};
use blindstore_jepsen::history::{Body, Op, Outcome};

/// Builds histories with one line per operation.
#[derive(Default)]
pub struct H {
    pub ops: Vec<Op>,
}

impl H {
    fn push(&mut self, inv: u64, comp: u64, outcome: Outcome, body: Body) -> &mut Self {
        let id = self.ops.len() as u64;
        self.ops.push(Op {
            id,
            process: id,
            node: None,
            invoke_ns: inv,
            complete_ns: Some(comp),
            outcome,
            body,
            error: None,
        });
        self
    }

    /// An append of `value` at `idx` on chain 0; `ok` appends are acknowledged at `idx`.
    pub fn append(&mut self, value: &str, idx: u64, inv: u64, comp: u64, o: Outcome) -> &mut Self {
        self.push(
            inv,
            comp,
            o,
            Body::Append {
                chain: 0,
                value: value.into(),
                expected_index: idx,
                acked_index: (o == Outcome::Ok).then_some(idx),
                conflict: false,
            },
        )
    }

    /// An append acknowledged at another index than asked.
    pub fn append_acked_at(&mut self, value: &str, idx: u64, acked: u64, inv: u64, comp: u64) {
        self.push(
            inv,
            comp,
            Outcome::Ok,
            Body::Append {
                chain: 0,
                value: value.into(),
                expected_index: idx,
                acked_index: Some(acked),
                conflict: false,
            },
        );
    }

    /// A 409 for `value` at `idx`.
    pub fn conflict(&mut self, value: &str, idx: u64, inv: u64, comp: u64) -> &mut Self {
        self.push(
            inv,
            comp,
            Outcome::Fail,
            Body::Append {
                chain: 0,
                value: value.into(),
                expected_index: idx,
                acked_index: None,
                conflict: true,
            },
        )
    }

    pub fn read(&mut self, values: &[&str], inv: u64, comp: u64) -> &mut Self {
        self.read_as(values, inv, comp, false)
    }

    pub fn stale_read(&mut self, values: &[&str], inv: u64, comp: u64) -> &mut Self {
        self.read_as(values, inv, comp, true)
    }

    fn read_as(&mut self, values: &[&str], inv: u64, comp: u64, stale: bool) -> &mut Self {
        self.push(
            inv,
            comp,
            Outcome::Ok,
            Body::Read {
                chain: 0,
                values: Some(values.iter().map(|v| v.to_string()).collect()),
                stale,
                final_read: false,
            },
        )
    }

    fn kinds(&self) -> Vec<AnomalyKind> {
        let verdict = check(&self.ops, &[], 2).expect("checkable");
        verdict.counts.keys().copied().collect()
    }
}

use AnomalyKind::*;
use Outcome::{Fail, Info, Ok};

#[test]
fn sequential_appends_and_reads_are_valid() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok)
        .read(&["a"], 2, 3)
        .append("b", 1, 4, 5, Ok)
        .read(&["a", "b"], 6, 7);
    assert_eq!(h.kinds(), vec![]);
}

#[test]
fn concurrent_operations_may_take_effect_in_any_order_they_overlap() {
    let mut h = H::default();
    // The read overlaps the append: both answers are fine.
    h.append("a", 0, 0, 10, Ok)
        .read(&[], 1, 2)
        .read(&["a"], 3, 4)
        // Racing appends at one index: one wins, the other is a justified 409.
        .append("b", 1, 11, 20, Ok)
        .conflict("c", 1, 12, 21)
        .read(&["a", "b"], 30, 31);
    assert_eq!(h.kinds(), vec![]);
}

#[test]
fn unknown_outcomes_may_or_may_not_have_happened() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Info) // happened, late
        .append("x", 1, 2, 3, Info) // never happened
        .read(&[], 4, 5) // allowed: "a" may take effect after this read
        .read(&["a"], 6, 7);
    assert_eq!(h.kinds(), vec![]);
}

#[test]
fn a_failed_append_that_stays_invisible_is_valid() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Fail).read(&[], 2, 3);
    assert_eq!(h.kinds(), vec![]);
}

#[test]
fn stale_mode_reads_are_checked_for_prefix_only() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok)
        .stale_read(&[], 5, 6)
        .read(&["a"], 7, 8);
    assert_eq!(h.kinds(), vec![]);
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok)
        .append("b", 1, 2, 3, Ok)
        .stale_read(&["b"], 5, 6)
        .read(&["a", "b"], 7, 8);
    assert_eq!(h.kinds(), vec![ForkValues]);
}

#[test]
fn two_values_at_one_index_is_a_fork() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Info)
        .append("b", 0, 0, 1, Info)
        .read(&["a"], 2, 3)
        .read(&["b"], 4, 5);
    assert_eq!(h.kinds(), vec![ForkValues]);
}

#[test]
fn two_acks_for_one_index_is_a_fork_and_a_loss() {
    let mut h = H::default();
    h.append("a", 0, 0, 2, Ok)
        .append("b", 0, 1, 3, Ok)
        .read(&["b"], 4, 5);
    assert_eq!(h.kinds(), vec![ForkAcks, LostAppend]);
}

#[test]
fn an_ack_at_the_wrong_index_is_flagged() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok);
    h.append_acked_at("b", 0, 1, 2, 3);
    h.read(&["a", "b"], 4, 5);
    assert_eq!(h.kinds(), vec![WrongIndex]);
    // Acknowledged where asked, but found elsewhere.
    let mut h = H::default();
    h.append("a", 0, 0, 1, Info)
        .append("b", 0, 0, 1, Ok)
        .read(&["a", "b"], 4, 5);
    assert_eq!(h.kinds(), vec![WrongIndex]);
}

#[test]
fn a_value_twice_is_a_duplicate() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok).read(&["a", "a"], 2, 3);
    assert!(h.kinds().contains(&Duplicate));
}

#[test]
fn a_value_no_one_wrote_is_flagged() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok).read(&["a", "zz"], 2, 3);
    assert_eq!(h.kinds(), vec![NeverWritten]);
}

#[test]
fn a_failed_append_must_stay_invisible() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Fail).read(&["a"], 2, 3);
    assert_eq!(h.kinds(), vec![FailedVisible]);
}

#[test]
fn an_acknowledged_append_missing_at_the_end_is_lost() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok)
        .append("b", 1, 2, 3, Ok)
        .read(&["a"], 10, 11);
    let verdict = check(&h.ops, &[], 2).unwrap();
    assert_eq!(
        verdict.counts.keys().copied().collect::<Vec<_>>(),
        vec![LostAppend]
    );
    assert_eq!(verdict.lost_appends, 1);
    assert_eq!(
        verdict.anomalies[0].witness.len(),
        2,
        "the append and the read"
    );
}

#[test]
fn a_read_that_misses_an_append_acknowledged_before_it_began_is_stale() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok)
        .read(&[], 2, 3)
        .read(&["a"], 4, 5);
    let verdict = check(&h.ops, &[], 2).unwrap();
    assert_eq!(
        verdict.counts.keys().copied().collect::<Vec<_>>(),
        vec![StaleRead]
    );
    let witness: Vec<u64> = verdict.anomalies[0].witness.iter().map(|o| o.id).collect();
    assert_eq!(
        witness,
        vec![1, 0],
        "the stale read and the append it missed"
    );
}

#[test]
fn a_read_shorter_than_an_earlier_completed_read_is_stale() {
    let mut h = H::default();
    h.append("a", 0, 0, 100, Info)
        .read(&["a"], 1, 2)
        .read(&[], 3, 4)
        .read(&["a"], 5, 6);
    assert_eq!(h.kinds(), vec![StaleRead]);
}

#[test]
fn reading_a_value_before_its_append_began_violates_real_time() {
    let mut h = H::default();
    h.read(&["a"], 0, 1).append("a", 0, 2, 3, Ok);
    assert_eq!(h.kinds(), vec![RealTime]);
}

#[test]
fn appends_ordered_against_real_time_are_flagged() {
    let mut h = H::default();
    // "b" completed before "a" began, yet "a" sits before it.
    h.append("b", 1, 0, 1, Ok)
        .append("a", 0, 2, 3, Ok)
        .read(&["a", "b"], 0, 10);
    assert!(h.kinds().contains(&RealTime), "{:?}", h.kinds());
}

#[test]
fn a_conflict_while_the_index_was_certainly_free_is_spurious() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok)
        .conflict("x", 1, 2, 3) // the chain had exactly 1 entry throughout
        .append("b", 1, 4, 5, Ok)
        .read(&["a", "b"], 6, 7);
    assert_eq!(h.kinds(), vec![SpuriousConflict]);
    // Justified when the append at index 1 may have come first...
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok)
        .conflict("x", 1, 2, 5)
        .append("b", 1, 4, 6, Ok)
        .read(&["a", "b"], 7, 8);
    assert_eq!(h.kinds(), vec![]);
    // ...or when the chain may still have been shorter.
    let mut h = H::default();
    h.append("a", 0, 0, 3, Ok)
        .conflict("x", 1, 2, 4)
        .read(&["a"], 7, 8);
    assert_eq!(h.kinds(), vec![]);
    // A conflict at index 0 after nothing ever landed is spurious.
    let mut h = H::default();
    h.conflict("x", 0, 0, 1).read(&[], 2, 3);
    assert_eq!(h.kinds(), vec![SpuriousConflict]);
}

#[test]
fn chunk_anomalies_are_flagged() {
    let mut h = H::default();
    for hash in ["h1", "h2", "h3", "h4"] {
        h.push(0, 1, Ok, Body::ChunkPut { hash: hash.into() });
    }
    h.push(
        2,
        3,
        Ok,
        Body::ChunkGet {
            hash: "h4".into(),
            intact: Some(false),
        },
    );
    let finals = [
        ChunkFinal {
            hash: "h1".into(),
            readable: false,
            intact: false,
            live_copies: 0,
        },
        ChunkFinal {
            hash: "h2".into(),
            readable: true,
            intact: false,
            live_copies: 2,
        },
        ChunkFinal {
            hash: "h3".into(),
            readable: true,
            intact: true,
            live_copies: 1,
        },
        ChunkFinal {
            hash: "h4".into(),
            readable: true,
            intact: true,
            live_copies: 2,
        },
    ];
    let verdict = check(&h.ops, &finals, 2).unwrap();
    assert_eq!(verdict.counts.get(&ChunkLost), Some(&1));
    assert_eq!(verdict.counts.get(&ChunkCorrupt), Some(&2));
    assert_eq!(verdict.counts.get(&ChunkUnderReplicated), Some(&1));
    assert_eq!(verdict.lost_chunks, 2);
    let fine = [ChunkFinal {
        hash: "h1".into(),
        readable: true,
        intact: true,
        live_copies: 2,
    }];
    assert!(check(&h.ops[..4], &fine, 2).unwrap().is_valid());
}

#[test]
fn chains_are_checked_apart() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok);
    let mut other = h.ops[0].clone();
    other.id = 1;
    if let Body::Append { chain, value, .. } = &mut other.body {
        *chain = 1;
        *value = "b".into();
    }
    h.ops.push(other);
    h.read(&["a"], 2, 3);
    // Chain 1 was never read: its acknowledged append cannot be shown to survive.
    assert_eq!(h.kinds(), vec![LostAppend]);
}

#[test]
fn a_reused_value_is_a_harness_error() {
    let mut h = H::default();
    h.append("a", 0, 0, 1, Ok).append("a", 1, 2, 3, Ok);
    assert!(check(&h.ops, &[], 2).is_err());
}
