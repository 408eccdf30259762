#!/usr/bin/env bash
# Starts one Blindstore node serving the budget app (examples/budget) and prints its URL.
#
#   scripts/demo.sh            # http://localhost:8080
#   PORT=9000 scripts/demo.sh  # another port
#
# Needs the Rust toolchain and Node.js 20 with npm (the first run builds the node and the
# browser SDK). Data lives in ./blindstore-demo-data (delete it to start over). Ctrl-C stops.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${PORT:-8080}"
data="${DEMO_DATA:-./blindstore-demo-data}"

# The debug build: quick to make (the test command has usually made it already), and ample for
# one person trying the app.
cargo build --bin blindstore
bin=target/debug/blindstore
npm ci --prefix sdk/js --no-audit --no-fund --silent
node examples/budget/scripts/build.mjs

log=$(mktemp)
"$bin" serve --http-addr "127.0.0.1:$port" --data-dir "$data" --site examples/budget/site >"$log" &
node_pid=$!
trap 'kill "$node_pid" 2>/dev/null; wait "$node_pid" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 300); do
    grep -q "blindstore listening on" "$log" && break
    kill -0 "$node_pid" 2>/dev/null || { cat "$log"; echo "the node did not start" >&2; exit 1; }
    sleep 0.1
done
grep -q "blindstore listening on" "$log" || { echo "the node did not start within 30 s" >&2; exit 1; }

# Writes need an account; passkeys work on this origin (a passkey needs a domain name, so the
# app is opened at localhost rather than 127.0.0.1).
"$bin" zone set demo --url "http://127.0.0.1:$port" --data-dir "$data" --writes accounts \
    --passkey-rp-id localhost --passkey-origin "http://localhost:$port" >/dev/null

echo
echo "The budget app is running: http://localhost:$port/"
echo "(data in $data; Ctrl-C stops)"
wait "$node_pid"
