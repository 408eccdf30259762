//! Cross-checks the checker against the `stateright` crate's general linearizability tester:
//! random small histories from a simulated chain that misbehaves now and then (stale reads,
//! skipped compare-and-set, acknowledged-but-dropped appends, doubled appends, unknown
//! outcomes), judged by both. They must agree on every history.

use blindstore_jepsen::checker::check;
use blindstore_jepsen::history::{Body, Op, Outcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// The sequential specification of a chain: compare-and-set appends and whole reads.
#[derive(Clone, Debug, Default)]
struct ChainSpec(Vec<u32>);

#[derive(Clone, Debug)]
enum ChainOp {
    Append { value: u32, index: u64 },
    Read,
}

#[derive(Clone, Debug, PartialEq)]
enum ChainRet {
    Appended(u64),
    Conflict,
    Values(Vec<u32>),
}

impl SequentialSpec for ChainSpec {
    type Op = ChainOp;
    type Ret = ChainRet;

    fn invoke(&mut self, op: &ChainOp) -> ChainRet {
        match op {
            ChainOp::Append { value, index } if *index == self.0.len() as u64 => {
                self.0.push(*value);
                ChainRet::Appended(*index)
            }
            ChainOp::Append { .. } => ChainRet::Conflict,
            ChainOp::Read => ChainRet::Values(self.0.clone()),
        }
    }
}

/// One simulated operation.
struct SimOp {
    process: u64,
    op: ChainOp,
    invoke: u64,
    /// Return time and value; `None` for an unknown outcome.
    ret: Option<(u64, ChainRet)>,
}

/// A client slot's operation in flight: its place in the history, and the return it will
/// give once it has taken effect.
type InFlight = (usize, Option<ChainRet>);

/// A chain shared by a few client processes, each with one operation in flight, with a
/// given chance of misbehaving at each step.
fn simulate(seed: u64, bug_rate: f64) -> Vec<SimOp> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log: Vec<u32> = Vec::new();
    let mut history: Vec<SimOp> = Vec::new();
    let mut time = 0u64;
    let mut next_process = 3u64;
    let mut next_value = 0u32;
    let mut slots: Vec<(u64, Option<InFlight>)> = (0..3).map(|p| (p, None)).collect();
    let total = rng.gen_range(3..=7);
    let mut started = 0;
    loop {
        let busy = slots.iter().any(|(_, s)| s.is_some());
        if !busy && started == total {
            break;
        }
        let slot = rng.gen_range(0..slots.len());
        time += 1;
        let (process, state) = &mut slots[slot];
        match state {
            None if started < total => {
                started += 1;
                let op = if rng.gen_bool(0.6) {
                    next_value += 1;
                    // Usually the current length (as if freshly read), sometimes a stale or
                    // a racing guess.
                    let guess = log.len() as i64 + rng.gen_range(-1..=1);
                    ChainOp::Append {
                        value: next_value,
                        index: guess.max(0) as u64,
                    }
                } else {
                    ChainOp::Read
                };
                history.push(SimOp {
                    process: *process,
                    op,
                    invoke: time,
                    ret: None,
                });
                *state = Some((history.len() - 1, None));
            }
            None => {}
            Some((at, pending @ None)) => {
                let buggy = rng.gen_bool(bug_rate);
                let ret = match history[*at].op.clone() {
                    ChainOp::Append { value, index } => match (buggy, rng.gen_range(0..3)) {
                        // Skipped compare-and-set: overwrite at the index.
                        (true, 0) if index <= log.len() as u64 => {
                            log.truncate(index as usize);
                            log.push(value);
                            ChainRet::Appended(index)
                        }
                        // Acknowledged, never applied.
                        (true, 1) => ChainRet::Appended(index),
                        // Applied twice.
                        (true, _) if index == log.len() as u64 => {
                            log.push(value);
                            log.push(value);
                            ChainRet::Appended(index)
                        }
                        _ if index == log.len() as u64 => {
                            log.push(value);
                            ChainRet::Appended(index)
                        }
                        _ => ChainRet::Conflict,
                    },
                    ChainOp::Read if buggy => {
                        let len = rng.gen_range(0..=log.len());
                        ChainRet::Values(log[..len].to_vec())
                    }
                    ChainOp::Read => ChainRet::Values(log.clone()),
                };
                *pending = Some(ret);
            }
            Some((at, Some(ret))) => {
                // An unknown outcome now and then; the process is then retired.
                if rng.gen_bool(0.1) {
                    *process = next_process;
                    next_process += 1;
                } else {
                    history[*at].ret = Some((time, ret.clone()));
                }
                *state = None;
            }
        }
    }
    // The final read, after everything.
    time += 1;
    history.push(SimOp {
        process: next_process,
        op: ChainOp::Read,
        invoke: time,
        ret: Some((time + 1, ChainRet::Values(log.clone()))),
    });
    history
}

fn stateright_verdict(history: &[SimOp]) -> bool {
    let mut events: Vec<(u64, usize, bool)> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        events.push((op.invoke, i, true));
        if let Some((t, _)) = &op.ret {
            events.push((*t, i, false));
        }
    }
    events.sort();
    let mut tester = LinearizabilityTester::new(ChainSpec::default());
    for (_, i, invoke) in events {
        let op = &history[i];
        if invoke {
            tester
                .on_invoke(op.process, op.op.clone())
                .expect("valid history");
        } else {
            let ret = op.ret.clone().expect("returned").1;
            tester.on_return(op.process, ret).expect("valid history");
        }
    }
    tester.is_consistent()
}

fn to_ops(history: &[SimOp]) -> Vec<Op> {
    history
        .iter()
        .enumerate()
        .map(|(i, sim)| {
            let (outcome, complete) = match &sim.ret {
                None => (Outcome::Info, None),
                Some((t, ChainRet::Conflict)) => (Outcome::Fail, Some(*t)),
                Some((t, _)) => (Outcome::Ok, Some(*t)),
            };
            let body = match (&sim.op, &sim.ret) {
                (ChainOp::Append { value, index }, ret) => Body::Append {
                    chain: 0,
                    value: value.to_string(),
                    expected_index: *index,
                    acked_index: match ret {
                        Some((_, ChainRet::Appended(at))) => Some(*at),
                        _ => None,
                    },
                    conflict: matches!(ret, Some((_, ChainRet::Conflict))),
                },
                (ChainOp::Read, ret) => Body::Read {
                    chain: 0,
                    values: match ret {
                        Some((_, ChainRet::Values(v))) => {
                            Some(v.iter().map(|x| x.to_string()).collect())
                        }
                        _ => None,
                    },
                    stale: false,
                    final_read: i == history.len() - 1,
                },
            };
            Op {
                id: i as u64,
                process: sim.process,
                node: None,
                invoke_ns: sim.invoke,
                complete_ns: complete,
                outcome,
                body,
                error: None,
            }
        })
        .collect()
}

fn describe(history: &[SimOp]) -> String {
    history
        .iter()
        .map(|op| {
            format!(
                "p{} [{}, {}] {:?} -> {:?}\n",
                op.process,
                op.invoke,
                op.ret.as_ref().map_or("-".into(), |(t, _)| t.to_string()),
                op.op,
                op.ret.as_ref().map(|(_, r)| r)
            )
        })
        .collect()
}

#[test]
fn checker_agrees_with_stateright_on_random_histories() {
    let runs = std::env::var("BLINDSTORE_CROSSCHECK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000u64);
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..runs {
        let bug_rate = [0.0, 0.05, 0.2][(seed % 3) as usize];
        let history = simulate(seed, bug_rate);
        let expected = stateright_verdict(&history);
        let verdict = check(&to_ops(&history), &[], 2).expect("checkable");
        assert_eq!(
            verdict.is_valid(),
            expected,
            "seed {seed}: stateright says linearizable={expected}, the checker found {:?}\n{}",
            verdict.anomalies,
            describe(&history)
        );
        if expected {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    // Both verdicts must be well represented, or the comparison proves little.
    assert!(
        valid > runs / 5 && invalid > runs / 10,
        "valid {valid}, invalid {invalid}"
    );
}
