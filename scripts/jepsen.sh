#!/usr/bin/env bash
# Fault-injection verification (jepsen-tests/): real blindstore processes in network
# namespaces, real faults, a recorded history and an independent checker.
#
#   scripts/jepsen.sh            short mode (the test command runs it): a 3-node cluster
#                                through every fault kind (the leader targeted), then the
#                                three negative controls, each of which must be caught.
#   scripts/jepsen.sh --long     long mode for people: 5 nodes, 30 minutes of random faults
#                                and mixes. Extra arguments go to blindstore-jepsen, e.g.
#                                `scripts/jepsen.sh --long --seed 42 --duration 45m`.
#
# Needs: root (network namespaces, nftables), iproute2 and nftables (apt-get install
# iproute2 nftables), the Rust toolchain. Results: target/jepsen/<time>-<seed>/ holds
# report.txt, results.json, history.jsonl and each node's log.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/jepsen.sh: needs root (network namespaces and nftables)" >&2
    exit 2
fi

# The negative controls need a blindstore built with its `negative-controls` feature. Build
# it first and keep a copy, then build the normal binary again (cargo keeps both, so
# switching back only relinks).
build_binaries() {
    cargo build -p blindstore-node --features negative-controls
    cp target/debug/blindstore target/debug/blindstore-controls
    cargo build -p blindstore-node -p blindstore-jepsen
}

mode=short
if [[ ${1:-} == --long ]]; then
    mode=long
    shift
fi

build_binaries
jepsen=target/debug/blindstore-jepsen

if [[ $mode == long ]]; then
    exec "$jepsen" --long "$@"
fi

"$jepsen" "$@"
# Each negative control must be reported invalid with the anomaly it causes.
for control in stale-reads:stale_read early-ack:lost skip-cas:fork; do
    "$jepsen" --binary target/debug/blindstore-controls \
        --control "${control%%:*}" --expect "${control##*:}" --hold 5 --quiet 4 "$@"
done
