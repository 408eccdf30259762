#!/usr/bin/env bash
# Runs every test of Blindstore:
#   - the Rust workspace: unit tests, openraft's storage test suite on the LMDB stores, the
#     entry-format test vectors, HTTP API tests, and multi-process tests of the real binary
#     (kill -9 durability, racing writers, garbage collection);
#   - the walkthrough: an independent Python client (HTTP + Ed25519 only) that checks the test
#     vectors, appends and verifies 100 entries, and checks every documented rejection;
#   - the fault-injection verification's short mode and its three negative controls
#     (scripts/jepsen.sh; docs/reliability.md).
# Needs: the Rust toolchain, python3 with `cryptography` (pip install cryptography), root with
# iproute2 and nftables for the fault-injection runs.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins
cargo test --workspace
python3 scripts/walkthrough.py --spawn target/debug/blindstore
scripts/jepsen.sh
