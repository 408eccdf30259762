//! The recorded history: one [`Op`] per client operation, written as JSON lines.
//!
//! Times are nanoseconds since the start of the run, taken from one monotonic clock in the
//! harness process, so "A completed before B was invoked" is a plain comparison.

use serde::{Deserialize, Serialize};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened, and the answer is in the operation.
    Ok,
    /// It certainly did not happen (a refusal such as 409, or a connection never made).
    Fail,
    /// Unknown: it may or may not have happened (timeout, reset, `outcome_unknown`). The client
    /// process that saw it is retired.
    Info,
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Unique in the run.
    pub id: u64,
    /// The logical client process; a process has at most one operation in flight, and a
    /// process that saw `info` never issues another.
    pub process: u64,
    /// The node the request was sent to (1-based), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    pub invoke_ns: u64,
    /// `None` while in flight; every recorded operation has one (an `info` operation's is
    /// when the client gave up).
    pub complete_ns: Option<u64>,
    pub outcome: Outcome,
    #[serde(flatten)]
    pub body: Body,
    /// The error, for `fail` and `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the operation was, and what it returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// A compare-and-set append of `value` at `expected_index`.
    Append {
        chain: u32,
        value: String,
        expected_index: u64,
        /// The index the server acknowledged (`ok` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        acked_index: Option<u64>,
        /// `fail` because the index was taken (409 `index_conflict`).
        #[serde(default)]
        conflict: bool,
    },
    /// A read of the whole chain.
    Read {
        chain: u32,
        /// The payloads in chain order (`ok` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        values: Option<Vec<String>>,
        /// Asked with `consistency=stale`: checked for prefix consistency only.
        #[serde(default)]
        stale: bool,
        /// Part of the final read phase, after every fault was healed.
        #[serde(default, rename = "final")]
        final_read: bool,
    },
    /// A chunk upload.
    ChunkPut { hash: String },
    /// A chunk download: `intact` says whether the bytes hashed to the address.
    ChunkGet {
        hash: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        intact: Option<bool>,
    },
}

impl Op {
    /// The completion time, or "never" for an operation whose effect may come at any time.
    pub fn complete_or_never(&self) -> u64 {
        match (self.outcome, self.complete_ns) {
            (Outcome::Info, _) | (_, None) => u64::MAX,
            (_, Some(t)) => t,
        }
    }

    pub fn chain(&self) -> Option<u32> {
        match &self.body {
            Body::Append { chain, .. } | Body::Read { chain, .. } => Some(*chain),
            _ => None,
        }
    }
}
