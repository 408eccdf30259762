//! Which peers this node can reach, from the outcome of its node-to-node calls (Raft messages
//! and chunk transfers alike): one log line when a peer becomes unreachable and one when it is
//! back — each failed call is logged at debug only — and the `blindstore_peer_reachable`
//! gauge.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed calls in a row after which a peer counts as unreachable (a single timeout under load
/// does not).
pub const FAILURES_BEFORE_UNREACHABLE: u32 = 3;

#[derive(Debug, Default)]
pub struct Reachability {
    peers: Mutex<HashMap<String, Peer>>,
}

#[derive(Debug, Default)]
struct Peer {
    node: u64,
    failures: u32,
    /// When the first of the failed calls in a row was made, once the peer counts as
    /// unreachable.
    down_since: Option<Instant>,
    first_failure: Option<Instant>,
}

/// A peer that does not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub node: u64,
    pub addr: String,
    /// How long it has not answered.
    pub for_how_long: Duration,
}

impl Reachability {
    /// A call to node `node` at `addr` was answered (whatever the answer).
    pub fn answered(&self, node: u64, addr: &str) {
        let mut peers = self.peers.lock().expect("reachability lock");
        let peer = peers.entry(addr.to_owned()).or_default();
        let was_new = peer.node == 0;
        peer.node = node;
        peer.failures = 0;
        peer.first_failure = None;
        if let Some(since) = peer.down_since.take() {
            tracing::info!(
                node_id = node,
                addr,
                "node {node} at {addr} is reachable again after {:.1}s",
                since.elapsed().as_secs_f64()
            );
            gauge(node, 1.0);
        } else if was_new {
            gauge(node, 1.0);
        }
    }

    /// A call to node `node` at `addr` could not be made or got no answer in time.
    pub fn failed(&self, node: u64, addr: &str, why: &dyn std::fmt::Display) {
        let mut peers = self.peers.lock().expect("reachability lock");
        let peer = peers.entry(addr.to_owned()).or_default();
        peer.node = node;
        peer.failures += 1;
        let first = *peer.first_failure.get_or_insert_with(Instant::now);
        tracing::debug!(node_id = node, addr, error = %why, failures = peer.failures, "a call to a peer failed");
        if peer.down_since.is_none() && peer.failures >= FAILURES_BEFORE_UNREACHABLE {
            peer.down_since = Some(first);
            tracing::warn!(
                node_id = node,
                addr,
                error = %why,
                "node {node} at {addr} is unreachable ({} calls failed in {:.1}s; each further one is logged at debug)",
                peer.failures,
                first.elapsed().as_secs_f64()
            );
            gauge(node, 0.0);
        }
    }

    /// The peers that count as unreachable now.
    pub fn unreachable(&self) -> Vec<Unreachable> {
        let peers = self.peers.lock().expect("reachability lock");
        let mut out: Vec<Unreachable> = peers
            .iter()
            .filter_map(|(addr, p)| {
                p.down_since.map(|since| Unreachable {
                    node: p.node,
                    addr: addr.clone(),
                    for_how_long: since.elapsed(),
                })
            })
            .collect();
        out.sort_by_key(|u| u.node);
        out
    }
}

fn gauge(node: u64, value: f64) {
    metrics::gauge!("blindstore_peer_reachable", "peer" => node.to_string()).set(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_unreachable_after_failures_in_a_row_and_back_on_an_answer() {
        let r = Reachability::default();
        r.failed(2, "n2:7000", &"refused");
        r.failed(2, "n2:7000", &"refused");
        assert!(r.unreachable().is_empty(), "two failures are not enough");
        r.answered(2, "n2:7000");
        r.failed(2, "n2:7000", &"refused");
        r.failed(2, "n2:7000", &"refused");
        assert!(
            r.unreachable().is_empty(),
            "an answer starts the count again"
        );
        r.failed(2, "n2:7000", &"refused");
        let down = r.unreachable();
        assert_eq!(down.len(), 1);
        assert_eq!((down[0].node, down[0].addr.as_str()), (2, "n2:7000"));
        r.failed(2, "n2:7000", &"refused");
        assert_eq!(r.unreachable().len(), 1);
        r.answered(2, "n2:7000");
        assert!(r.unreachable().is_empty());
    }
}
