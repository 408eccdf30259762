//! Where chunks live: rendezvous (highest-random-weight) hashing of `(zone, chunk hash)` over
//! the storage members in the Raft membership. Every node reads the same membership from Raft,
//! so every node computes the same owners with no lookup table; adding or removing a node
//! moves only the chunks whose top ranks change (about 1/n of them).

use blindstore_types::raft::{NodeId, NodeInfo};
use blindstore_types::{Hash32, ZoneId};

/// The weight of `node` for chunk `hash` of `zone`:
/// the first 8 bytes (big-endian) of SHA-256("blindstore/hrw/v1\0" || u64 node id || u8 len(zone) || zone || hash).
pub(crate) fn weight(node: NodeId, zone: &ZoneId, hash: &Hash32) -> u64 {
    let zone = zone.as_str().as_bytes();
    let mut input = Vec::with_capacity(18 + 8 + 1 + zone.len() + 32);
    input.extend_from_slice(b"blindstore/hrw/v1\0");
    input.extend_from_slice(&node.to_be_bytes());
    input.push(zone.len() as u8);
    input.extend_from_slice(zone);
    input.extend_from_slice(&hash.0);
    let digest = Hash32::digest(&input);
    u64::from_be_bytes(digest.0[..8].try_into().expect("8 bytes"))
}

/// `members` ordered from the highest weight for this chunk to the lowest (ties, which need a
/// SHA-256 prefix collision, broken by node id). The first `replication` are its owners; the
/// rest are where copies go when owners are unreachable.
pub(crate) fn rank(
    members: &[(NodeId, NodeInfo)],
    zone: &ZoneId,
    hash: &Hash32,
) -> Vec<(NodeId, NodeInfo)> {
    let mut ranked: Vec<(u64, NodeId, NodeInfo)> = members
        .iter()
        .map(|(id, info)| (weight(*id, zone, hash), *id, info.clone()))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, id, info)| (id, info)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[NodeId]) -> Vec<(NodeId, NodeInfo)> {
        ids.iter().map(|id| (*id, NodeInfo::default())).collect()
    }

    fn owners(ids: &[NodeId], i: u32) -> Vec<NodeId> {
        let zone = ZoneId::new("z").unwrap();
        let hash = Hash32::digest(&i.to_be_bytes());
        rank(&members(ids), &zone, &hash)
            .into_iter()
            .take(2)
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn ranking_is_deterministic_and_independent_of_member_order() {
        for i in 0..100 {
            assert_eq!(owners(&[1, 2, 3, 4], i), owners(&[4, 2, 1, 3], i));
        }
    }

    #[test]
    fn load_is_spread_evenly() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            for id in owners(&[1, 2, 3, 4], i) {
                counts[id as usize - 1] += 1;
            }
        }
        // 8000 copies over 4 nodes: 2000 each, give or take.
        for c in counts {
            assert!((1800..2200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn adding_a_node_moves_only_the_chunks_it_takes() {
        let (mut moved, total) = (0, 3000);
        for i in 0..total {
            let before = owners(&[1, 2, 3], i);
            let after = owners(&[1, 2, 3, 4], i);
            for id in &after {
                if !before.contains(id) {
                    assert_eq!(*id, 4, "only the new node gains chunks");
                    moved += 1;
                }
            }
        }
        // The new node should take about 2/4 of 3000 copies' worth of slots: ~1500.
        assert!((1300..1700).contains(&moved), "{moved}");
    }

    /// Pinned values: the weight function is part of the cluster's contract (every node must
    /// compute the same owners), so a change to it must show up here.
    #[test]
    fn weight_is_stable() {
        let zone = ZoneId::new("demo").unwrap();
        let hash = Hash32::digest(b"chunk");
        let w: Vec<u64> = (1..=3).map(|n| weight(n, &zone, &hash)).collect();
        assert_eq!(w, PINNED);
    }

    // Computed independently (Python hashlib) from the formula in `weight`.
    const PINNED: [u64; 3] = [398545157593887835, 3222173131205780233, 2346746146933860397];
}
