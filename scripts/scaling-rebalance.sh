#!/usr/bin/env bash
# How fast chunks move to a storage-only member (docs/scaling.md): a 3-node cluster (release
# build, scripts/cluster.sh, in a temporary directory) takes CHUNKS chunks of SIZE bytes, then
# a fourth node joins as a learner; the script polls the new member's health until its chunk
# count holds still for 25 s (more than two repair intervals) and nothing is under-replicated,
# and prints how long the moves took.
#
#   scripts/scaling-rebalance.sh                 4,000 chunks of 64 KiB
#   CHUNKS=20000 SIZE=16384 scripts/scaling-rebalance.sh
#
# Uses ports 9001-9004 and 9101-9104 on 127.0.0.1; stops the nodes it started when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
CHUNKS=${CHUNKS:-4000}
SIZE=${SIZE:-65536}
CLUSTER_DIR=$(mktemp -d)
export CLUSTER_DIR
trap 'NODES=4 scripts/cluster.sh stop > /dev/null; rm -rf "$CLUSTER_DIR"' EXIT

scripts/cluster.sh start > /dev/null
TOKEN=$(cat "$CLUSTER_DIR/admin-token")
curl -fsS -X PUT -H "authorization: Bearer $TOKEN" http://127.0.0.1:9001/v1/admin/zones/scale > /dev/null
echo "uploading $CHUNKS chunks of $SIZE bytes ..."
python3 - "$CHUNKS" "$SIZE" <<'PY'
import hashlib, http.client, os, sys
count, size = int(sys.argv[1]), int(sys.argv[2])
conns = [http.client.HTTPConnection("127.0.0.1", 9001 + i) for i in range(3)]
for i in range(count):
    data = os.urandom(size)
    conn = conns[i % 3]
    conn.request("PUT", f"/v1/zones/scale/chunks/{hashlib.sha256(data).hexdigest()}", body=data)
    response = conn.getresponse()
    response.read()
    if response.status not in (200, 201):
        sys.exit(f"upload {i}: HTTP {response.status}")
PY

held() {
  curl -fsS "http://127.0.0.1:$1/v1/health" | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h["chunks_held"], h["under_replicated"])'
}
echo "before: node 1, 2, 3 hold $(held 9001 | cut -d' ' -f1), $(held 9002 | cut -d' ' -f1), $(held 9003 | cut -d' ' -f1) chunks"
start=$(date +%s.%N)
NODES=4 scripts/cluster.sh start > /dev/null
last=-1
still=0
for _ in $(seq 1 1200); do
  read -r now under < <(held 9004)
  under1=$(held 9001 | cut -d' ' -f2)
  if [[ $now == "$last" && $under == 0 && $under1 == 0 && $now -gt 0 ]]; then
    still=$((still + 1))
    ((still >= 50)) && break
  else
    still=0
  fi
  last=$now
  sleep 0.5
done
end=$(date +%s.%N)
python3 - "$start" "$end" "$last" "$SIZE" <<'PY'
import sys
start, end, held, size = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
secs = end - start - 25.0  # the 50 polls (two repair intervals) that confirmed it held still
print(f"node 4 (storage-only) holds {held} chunks after {secs:.1f} s: "
      f"{held / secs:.0f} chunks/s, {held * size / secs / 2**20:.1f} MiB/s (join included)")
PY
echo "after: node 1, 2, 3, 4 hold $(held 9001 | cut -d' ' -f1), $(held 9002 | cut -d' ' -f1), $(held 9003 | cut -d' ' -f1), $(held 9004 | cut -d' ' -f1) chunks"
