#!/usr/bin/env bash
# Runs every test of Blindstore:
#   - the gateway's dependencies: no Raft, no LMDB; and only the Raft core names openraft;
#   - the Rust workspace (accounts are also checked against the browser's OPAQUE library,
#     @serenity-kit/opaque, run by Node, and passkeys in headless Chromium): unit tests, openraft's storage test suite on the LMDB stores, the
#     entry-format test vectors, HTTP API tests, and multi-process tests of the real binary
#     (kill -9 durability, racing writers, garbage collection);
#   - the walkthrough: an independent Python client (HTTP + Ed25519 only) that checks the test
#     vectors, appends and verifies 100 entries, and checks every documented rejection;
#   - the browser SDK (sdk/js): its unit tests, tests against a real node and in headless
#     Chromium, the malicious-server suite and its negative control, the packed package
#     installed in a fresh directory and used from Node and a Vite build, and the README's quick
#     start typed in order; then the budget app (examples/budget) as a user meets it, in
#     headless Chromium, and the Vite example (examples/notes) built;
#   - the admin console (crates/blindstore-web/console) in headless Chromium against a real
#     cluster with a gateway;
#   - the benchmark's quick mode (scripts/bench.sh --quick: every load against Blindstore, etcd
#     and nginx for half a second; it checks that each did work without errors, never timings);
#   - the fault-injection verification's short mode and its three negative controls
#     (scripts/jepsen.sh; docs/reliability.md).
# Needs: the Rust toolchain with libssl-dev and pkg-config, Node.js 20 with npm (the npm
# registry for `npm ci` and for the package tests' `npm install` of Vite), Debian's chromium at /usr/bin/chromium (or $CHROMIUM), python3 with
# `cryptography` (pip install cryptography), root with iproute2 and nftables for the
# fault-injection runs; protoc (Debian's protobuf-compiler) to build the benchmark's etcd client,
# and etcd-server and nginx-light, which scripts/bench.sh installs with apt when missing;
# Debian's pebble (the ACME test server) for the automatic-certificate test.
set -euo pipefail
cd "$(dirname "$0")/.."

# The gateway must not link Raft or LMDB (docs/ARCHITECTURE.md).
if cargo tree -p blindstore-gateway -e normal --prefix none | grep -E '^(openraft|heed|blindstore-storage|blindstore-cluster) '; then
    echo "blindstore-gateway links Raft or LMDB (see above)" >&2
    exit 1
fi
# Only the Raft core names openraft (docs/ARCHITECTURE.md): no other crate depends on it
# directly, and the crates below the core (those that do not depend on blindstore-raft) do not
# link it at all.
crates=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin)["packages"]))')
for crate in $crates; do
    [ "$crate" = blindstore-raft ] && continue
    if cargo tree -p "$crate" -e normal,dev --depth 1 --prefix none | grep -E '^openraft '; then
        echo "$crate depends on openraft directly; only blindstore-raft may (see above)" >&2
        exit 1
    fi
    tree=$(cargo tree -p "$crate" -e normal,dev --prefix none)
    if grep -qE '^openraft ' <<<"$tree" && ! grep -qE '^blindstore-raft ' <<<"$tree"; then
        echo "$crate links openraft without the Raft core" >&2
        exit 1
    fi
done
# The browser libraries the interoperability tests run under Node (sdk/interop), and
# playwright-core, which drives Chromium for the passkey test; the browser SDK (sdk/js), whose
# build the Rust suite checks entries against.
npm ci --prefix sdk/interop --no-audit --no-fund --silent
npm ci --prefix sdk/js --no-audit --no-fund --silent
npm run --prefix sdk/js --silent build
cargo build --workspace --bins
cargo test --workspace
python3 scripts/walkthrough.py --spawn target/debug/blindstore
# The browser SDK's own suite (unit tests, a real node, headless Chromium, the malicious-server
# suite and its negative control), then the budget app in headless Chromium.
export BLINDSTORE_BIN="$PWD/target/debug/blindstore"
npm test --prefix sdk/js
# The API reference generated from the types must build without warnings.
npm run --prefix sdk/js --silent docs
npm ci --prefix examples/budget --no-audit --no-fund --silent
npm test --prefix examples/budget
# The second example, a Vite project on the package (its own test, in the SDK's suite, installs
# the packed tarball in a fresh directory; this builds it as it stands in the repository).
npm ci --prefix examples/notes --no-audit --no-fund --silent
npm run --prefix examples/notes --silent build
# The admin console: its metrics arithmetic, its committed build, and a walk through every view
# in headless Chromium against three nodes and a gateway.
npm ci --prefix crates/blindstore-web/console --no-audit --no-fund --silent
npm test --prefix crates/blindstore-web/console
scripts/bench.sh --quick
scripts/jepsen.sh
