#!/usr/bin/env bash
# Rolling upgrade test: a 3-node cluster of an older revision's build, under the fault-injection
# clients' load (appends, reads, chunk uploads), has its nodes replaced one at a time with the
# current build — followers first, then the leader, each stopped with SIGTERM as an operator
# does, left down for --hold seconds (6 by default: the leader's absence forces an election)
# and started again on its data dir. The run is valid if the checker finds no anomaly (no
# acknowledged write lost, no fork, no stale read), no append goes unacknowledged for longer
# than one election (--max-write-gap, 5 s by default), and the cluster's version moves to the
# current build's level once every node runs it.
#
#   scripts/upgrade-test.sh OLD_REV [blindstore-jepsen arguments]
#   e.g. scripts/upgrade-test.sh 9945216
#        scripts/upgrade-test.sh v0.1.0 --seed 7 --max-write-gap 4
#
# OLD_REV is any git revision (it must build and take `serve`'s flags of today). It is checked
# out in a worktree under target/upgrade/ and built there, sharing target/ (dependencies are
# built once). Needs: root (network namespaces, nftables), iproute2 and nftables, the Rust
# toolchain. Results: target/jepsen/<time>-<seed>/ (report.txt, results.json, history, logs).
# A few minutes: two debug builds, then about a minute of clients.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: scripts/upgrade-test.sh OLD_REV [blindstore-jepsen arguments]" >&2
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "scripts/upgrade-test.sh: needs root (network namespaces and nftables)" >&2
    exit 2
fi
old_rev=$1
shift
root=$PWD
commit=$(git rev-parse --verify --quiet "$old_rev^{commit}") || {
    echo "scripts/upgrade-test.sh: $old_rev is not a revision of this repository" >&2
    exit 2
}
short=${commit:0:10}
mkdir -p target/upgrade
worktree=$PWD/target/upgrade/worktree-$short
old_binary=$PWD/target/upgrade/blindstore-$short

if [[ ! -x $old_binary ]]; then
    cleanup() { git worktree remove --force "$worktree" 2>/dev/null || true; }
    trap cleanup EXIT
    git worktree add --detach --force "$worktree" "$commit" >/dev/null
    echo "building $short (the older build) in $worktree"
    (cd "$worktree" && CARGO_TARGET_DIR="$root/target" cargo build -p blindstore-node)
    cp target/debug/blindstore "$old_binary"
    cleanup
    trap - EXIT
fi

echo "building the current revision"
cargo build -p blindstore-node -p blindstore-jepsen
exec target/debug/blindstore-jepsen --binary "$old_binary" --upgrade-to target/debug/blindstore "$@"
