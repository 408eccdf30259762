#!/usr/bin/env bash
# Benchmarks Blindstore against etcd (consensus writes, linearizable reads), nginx (static
# files) and the disk (fsynced writes) on 127.0.0.1, in one run, and prints a markdown table.
# The method is described at the top of crates/blindstore-bench/src/main.rs.
#
#   scripts/bench.sh                 release build; 2 s warm-up + 8 s per row (about 6 minutes)
#   scripts/bench.sh --quick         debug build, few clients, 0.5 s per row: a smoke check that
#                                    fails only if a load had errors or did nothing
#   scripts/bench.sh --out FILE      also write the report to FILE (e.g. for docs/performance.md)
#   scripts/bench.sh --only append,read   only some groups of rows (append, read, put, get, disk)
#
# Needs etcd 3.4 (/usr/bin/etcd, Debian's etcd-server), nginx (/usr/sbin/nginx, nginx-light)
# and protoc (protobuf-compiler, to build the etcd client); installs them with apt when missing.
# Every server it starts is stopped (by pid) and its data removed when it ends, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  [[ $arg == --quick ]] && quick=1
done

missing=()
[[ -x /usr/bin/etcd ]] || missing+=(etcd-server)
[[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v protoc > /dev/null || missing+=(protobuf-compiler)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} ..."
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  # The packages would start system-wide etcd and nginx services: keep them from doing so
  # (exit 101 from policy-rc.d), unless the machine already has a policy.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" > /dev/null
    "${sudo[@]}" chmod +x "$policy"
    own_policy=1
    trap '"${sudo[@]}" rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y -qq "${missing[@]}" > /dev/null ||
    { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${missing[@]}" > /dev/null; }
  if ((own_policy)); then
    "${sudo[@]}" rm -f "$policy"
    trap - EXIT
  fi
fi

target=${CARGO_TARGET_DIR:-target}
if ((quick)); then
  cargo build -p blindstore-node --bin blindstore
  cargo build -p blindstore-bench
  exec "$target/debug/blindstore-bench" --blindstore "$target/debug/blindstore" "$@"
else
  cargo build --release -p blindstore-node -p blindstore-bench
  exec "$target/release/blindstore-bench" --blindstore "$target/release/blindstore" "$@"
fi
