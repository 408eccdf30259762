#!/usr/bin/env bash
# A local three-node Blindstore cluster on 127.0.0.1, for trying it out.
#
#   scripts/cluster.sh start    build (release) if needed, start three nodes, print the status
#   scripts/cluster.sh status   blindstore cluster status against node 1
#   scripts/cluster.sh stop     stop the nodes this script started (SIGTERM, by pid)
#
# Nodes serve HTTP on 127.0.0.1:9001-9003 and node-to-node gRPC on 127.0.0.1:9101-9103; data,
# logs and pids live in ./cluster-data (CLUSTER_DIR to change). All nodes share one admin token,
# kept in ./cluster-data/admin-token. Starting again after a stop restarts the same cluster.
# WITH_GATEWAY=1 also starts a gateway (no data, caches chunks) on 127.0.0.1:9000. NODES=4 (or
# more) starts further nodes that join: beyond the voters, storage-only members.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${CLUSTER_DIR:-./cluster-data}
BIN=${BLINDSTORE_BIN:-target/release/blindstore}
NODES=${NODES:-3}

http_port() { echo $((9000 + $1)); }
rpc_port() { echo $((9100 + $1)); }

wait_healthy() {
  local url=$1 deadline=$((SECONDS + 60))
  until curl -fsS "$url/v1/health" > /dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "node at $url did not become healthy within 60 s; see $DIR/*.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

running() { [[ -f "$DIR/n$1.pid" ]] && kill -0 "$(cat "$DIR/n$1.pid")" 2> /dev/null; }

admin_token() {
  if [[ ! -f "$DIR/admin-token" ]]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$DIR/admin-token")
  fi
  cat "$DIR/admin-token"
}

start() {
  if [[ ! -x "$BIN" ]]; then
    echo "building $BIN ..."
    cargo build --release --bin blindstore
  fi
  mkdir -p "$DIR"
  local token
  token=$(admin_token)
  for i in $(seq 1 $NODES); do
    if running "$i"; then
      echo "node $i already running (pid $(cat "$DIR/n$i.pid"))"
      continue
    fi
    local args=(serve --data-dir "$DIR/n$i" --http-addr "127.0.0.1:$(http_port "$i")"
      --rpc-addr "127.0.0.1:$(rpc_port "$i")" --admin-token "$token")
    if ((i > 1)); then
      args+=(--join "127.0.0.1:$(rpc_port 1)" --join-token "$(cat "$DIR/n1/join-token")")
    fi
    # The gateway runs on this host: members believe its X-Forwarded-For and exempt it from
    # the per-address connection share (docs/operations.md, Gateways).
    if [[ "${WITH_GATEWAY:-0}" == 1 ]]; then
      args+=(--trusted-proxies 127.0.0.1)
    fi
    "$BIN" "${args[@]}" >> "$DIR/n$i.log" 2>&1 &
    echo $! > "$DIR/n$i.pid"
    wait_healthy "http://127.0.0.1:$(http_port "$i")"
    echo "node $i: http://127.0.0.1:$(http_port "$i") (pid $!)"
  done
  if [[ "${WITH_GATEWAY:-0}" == 1 ]] && ! running gw; then
    "$BIN" serve --role gateway --data-dir "$DIR/gw" --http-addr 127.0.0.1:9000 --admin-token "$token" \
      --join "127.0.0.1:$(rpc_port 1)" --gateway-token "$(cat "$DIR/n1/gateway-token")" >> "$DIR/gw.log" 2>&1 &
    echo $! > "$DIR/ngw.pid"
    wait_healthy "http://127.0.0.1:9000"
    echo "gateway: http://127.0.0.1:9000 (pid $!)"
  fi
  status
}

status() {
  "$BIN" cluster status --url "http://127.0.0.1:$(http_port 1)" --admin-token "$(cat "$DIR/admin-token")"
}

stop() {
  for i in gw $(seq 1 $NODES); do
    if running "$i"; then
      local pid
      pid=$(cat "$DIR/n$i.pid")
      kill -TERM "$pid"
      while kill -0 "$pid" 2> /dev/null; do sleep 0.1; done
      echo "node $i stopped"
    fi
    rm -f "$DIR/n$i.pid"
  done
}

case "${1:-}" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|status|stop" >&2
    exit 2
    ;;
esac
