#!/usr/bin/env python3
"""Blindstore from the outside: only HTTP and Ed25519 (Python `cryptography`).

An independent implementation of the chain entry format (docs/entry-format.md) that
  1. checks docs/test-vectors/entry-v1.json,
  2. creates a zone and a chain, appends 100 entries (some referencing chunks), reads them
     back with from/limit and with last, and verifies payloads, signatures and hash links,
  3. checks that bad requests get the documented errors and change nothing.

Usage:
  scripts/walkthrough.py --url http://127.0.0.1:8080 --admin-token TOKEN
  scripts/walkthrough.py --spawn target/debug/blindstore   # starts its own node on a free port

Needs: python3 with `cryptography` (pip install cryptography).
"""

import argparse
import base64
import hashlib
import json
import os
import secrets
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = Path(__file__).resolve().parent.parent


# --- the entry format, docs/entry-format.md -------------------------------------------------

def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def raw_public_key(sk: Ed25519PrivateKey) -> bytes:
    return sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def chain_id(public_key: bytes) -> bytes:
    return sha256(b"blindstore/chain/v1\0" + public_key)


def genesis(cid: bytes) -> bytes:
    return sha256(b"blindstore/genesis/v1\0" + cid)


def signing_message(zone: str, cid: bytes, index: int, prev: bytes, payload: bytes, chunks: list) -> bytes:
    z = zone.encode()
    msg = b"blindstore/entry/v1\0" + bytes([len(z)]) + z + cid
    msg += struct.pack(">Q", index) + prev + sha256(payload) + struct.pack(">Q", len(payload))
    msg += struct.pack(">I", len(chunks)) + b"".join(chunks)
    return msg


def verify_chain(zone: str, public_key: bytes, entries: list, prev: bytes) -> bytes:
    """Checks payload hashes, signatures, entry hashes and links; returns the last hash."""
    pk = Ed25519PublicKey.from_public_bytes(public_key)
    cid = chain_id(public_key)
    for e in entries:
        payload = unb64url(e["payload"])
        check(bytes.fromhex(e["prev"]) == prev, f"entry {e['index']} links to the previous entry")
        check(sha256(payload).hex() == e["payload_hash"], f"entry {e['index']} payload hash")
        chunks = [bytes.fromhex(c) for c in e["chunks"]]
        msg = signing_message(zone, cid, e["index"], prev, payload, chunks)
        sig = unb64url(e["signature"])
        try:
            pk.verify(sig, msg)
        except InvalidSignature:
            fail(f"entry {e['index']} signature does not verify")
        check(sha256(msg + sig).hex() == e["entry_hash"], f"entry {e['index']} entry_hash")
        prev = bytes.fromhex(e["entry_hash"])
    return prev


# --- tiny HTTP client -----------------------------------------------------------------------

class Api:
    def __init__(self, url: str, admin_token: str):
        self.url = url.rstrip("/")
        self.admin_token = admin_token

    def call(self, method: str, path: str, body=None, raw: bytes = None, admin=False):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if body is not None:
            req.add_header("content-type", "application/json")
        if admin:
            req.add_header("authorization", f"Bearer {self.admin_token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def json(self, method, path, body=None, admin=False, expect=(200,)):
        status, raw, _ = self.call(method, path, body=body, admin=admin)
        check(status in expect, f"{method} {path} -> {status} (expected {expect}): {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def error(self, method, path, body=None, raw=None):
        status, data, _ = self.call(method, path, body=body, raw=raw)
        return status, json.loads(data)


# --- checks ---------------------------------------------------------------------------------

PASSED = 0


def check(cond: bool, what: str):
    global PASSED
    if not cond:
        fail(what)
    PASSED += 1


def fail(what: str):
    print(f"FAIL: {what}", file=sys.stderr)
    print(f"{PASSED} passed, 1 failed")
    sys.exit(1)


def check_vectors():
    vectors = json.loads((ROOT / "docs/test-vectors/entry-v1.json").read_text())
    n = 0
    for chain in vectors["chains"]:
        sk = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(chain["seed"]))
        pk = raw_public_key(sk)
        check(b64url(pk) == chain["public_key"], "vector public key")
        cid = chain_id(pk)
        check(cid.hex() == chain["chain_id"], "vector chain id")
        check(genesis(cid).hex() == chain["genesis"], "vector genesis")
        prev = genesis(cid)
        for e in chain["entries"]:
            payload = unb64url(e["payload"])
            chunks = [sha256(unb64url(c)) for c in e["chunks"]]
            check([c.hex() for c in chunks] == e["chunk_hashes"], "vector chunk hashes")
            msg = signing_message(chain["zone"], cid, e["index"], prev, payload, chunks)
            check(msg.hex() == e["message"], f"vector message {e['index']}")
            sig = sk.sign(msg)  # Ed25519 is deterministic
            check(b64url(sig) == e["signature"], f"vector signature {e['index']}")
            check(sha256(msg + sig).hex() == e["entry_hash"], f"vector entry hash {e['index']}")
            prev = sha256(msg + sig)
            n += 1
    print(f"test vectors: {n} entries match an independent implementation")


def walkthrough(api: Api):
    zone = "walkthrough-" + secrets.token_hex(4)
    z = api.json("PUT", f"/v1/admin/zones/{zone}", admin=True, expect=(201,))
    check(z["zone"] == zone, "zone created")
    api.json("PUT", f"/v1/admin/zones/{zone}", admin=True, expect=(200,))

    sk = Ed25519PrivateKey.generate()
    pk = raw_public_key(sk)
    cid = chain_id(pk)
    chain = api.json("POST", f"/v1/zones/{zone}/chains", {"public_key": b64url(pk)}, expect=(201,))
    check(chain == {"chain_id": cid.hex(), "public_key": b64url(pk), "length": 0, "head": genesis(cid).hex()},
          "new chain: id from the key, empty, head = genesis")

    entries_path = f"/v1/zones/{zone}/chains/{cid.hex()}/entries"
    sent = []
    prev = genesis(cid)
    for i in range(100):
        payload = secrets.token_bytes(1 + (i * 37) % 300)
        chunks = []
        if i % 10 == 3:  # upload a chunk first, then reference it
            blob = secrets.token_bytes(2000)
            h = sha256(blob)
            status, _, _ = api.call("PUT", f"/v1/zones/{zone}/chunks/{h.hex()}", raw=blob)
            check(status == 201, "chunk stored")
            chunks = [h]
        msg = signing_message(zone, cid, i, prev, payload, chunks)
        sig = sk.sign(msg)
        r = api.json("POST", entries_path, {
            "index": i, "prev": prev.hex(), "payload": b64url(payload),
            "chunks": [c.hex() for c in chunks], "signature": b64url(sig),
        }, expect=(201,))
        entry_hash = sha256(msg + sig)
        check(r == {"index": i, "entry_hash": entry_hash.hex(), "length": i + 1}, f"append {i} acknowledged")
        sent.append(payload)
        prev = entry_hash
    head = prev

    # Read back in pages with from/limit, following `next`.
    got, start = [], 0
    while True:
        page = api.json("GET", f"{entries_path}?from={start}&limit=30")
        check(page["length"] == 100 and page["head"] == head.hex(), "page carries length and head")
        got.extend(page["entries"])
        if "next" not in page:
            break
        start = page["next"]
    check([e["index"] for e in got] == list(range(100)), "from/limit: every index once, in order")
    check([unb64url(e["payload"]) for e in got] == sent, "payloads byte-identical")
    check(verify_chain(zone, pk, got, genesis(cid)) == head, "signatures and hash links verify")

    last = api.json("GET", f"{entries_path}?last=7")
    check([e["index"] for e in last["entries"]] == list(range(93, 100)), "last=7")
    check(verify_chain(zone, pk, last["entries"], bytes.fromhex(got[92]["entry_hash"])) == head, "last verifies")
    print("walkthrough: 100 entries appended, read back and verified")
    return zone, sk, pk, cid, head


def rejections(api: Api, zone, sk, pk, cid, head):
    entries_path = f"/v1/zones/{zone}/chains/{cid.hex()}/entries"
    usage_before = api.json("GET", f"/v1/admin/zones/{zone}", admin=True)

    def entry(index, prev, payload=b"x", chunks=(), key=sk):
        msg = signing_message(zone, cid, index, prev, payload, list(chunks))
        return {"index": index, "prev": prev.hex(), "payload": b64url(payload),
                "chunks": [c.hex() for c in chunks], "signature": b64url(key.sign(msg))}

    status, body = api.error("POST", entries_path, entry(42, head))
    check(status == 409 and body["error"]["code"] == "index_conflict", "wrong index -> 409")
    check(body["length"] == 100 and body["head"] == head.hex(), "409 carries length and head")

    status, body = api.error("POST", entries_path, entry(100, head, key=Ed25519PrivateKey.generate()))
    check(status == 400 and body["error"]["code"] == "bad_signature", "foreign-key signature -> 400")
    bad = entry(100, head)
    sig = bytearray(unb64url(bad["signature"]))
    sig[0] ^= 1
    bad["signature"] = b64url(bytes(sig))
    status, body = api.error("POST", entries_path, bad)
    check(status == 400 and body["error"]["code"] == "bad_signature", "bad signature -> 400")

    status, body = api.error("POST", entries_path, entry(100, head, payload=os.urandom(64 * 1024 + 1)))
    check(status == 413 and body["error"]["code"] == "payload_too_large", "oversized payload -> 413")

    blob = b"some bytes"
    status, body = api.error("PUT", f"/v1/zones/{zone}/chunks/{sha256(b'other').hex()}", raw=blob)
    check(status == 400 and body["error"]["code"] == "hash_mismatch", "chunk with mismatching hash -> 400")

    api.json("PUT", f"/v1/admin/zones/{zone}-other", admin=True, expect=(201, 200))
    status, body = api.error("GET", f"/v1/zones/{zone}-other/chains/{cid.hex()}/entries")
    check(status == 404 and body["error"]["code"] == "unknown_chain", "chain read through another zone -> 404")

    status, body = api.error("POST", entries_path, entry(100, head, chunks=[sha256(b"never uploaded")]))
    check(status == 400 and body["error"]["code"] == "missing_chunk", "missing referenced chunk -> 400")

    chain = api.json("GET", f"/v1/zones/{zone}/chains/{cid.hex()}")
    check(chain["length"] == 100 and chain["head"] == head.hex(), "rejections changed no chain")
    check(api.json("GET", f"/v1/admin/zones/{zone}", admin=True) == usage_before, "rejections changed no usage")
    print("rejections: every bad request got its documented error and changed nothing")


def spawn(binary: str):
    data_dir = tempfile.mkdtemp(prefix="blindstore-walkthrough-")
    proc = subprocess.Popen([binary, "serve", "--http-addr", "127.0.0.1:0", "--data-dir", data_dir],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "warn"})
    for line in proc.stdout:
        if line.startswith("blindstore listening on "):
            url = line.split()[-1]
            break
    else:
        raise SystemExit("blindstore exited before listening")
    token = Path(data_dir, "admin-token").read_text().strip()
    return proc, url, token


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--admin-token", help="defaults to the contents of ./blindstore-data/admin-token")
    p.add_argument("--spawn", metavar="BINARY", help="start a node of this binary on a free port")
    args = p.parse_args()

    check_vectors()
    proc = None
    if args.spawn:
        proc, url, token = spawn(args.spawn)
    else:
        url = args.url
        token = args.admin_token or Path("blindstore-data/admin-token").read_text().strip()
    try:
        api = Api(url, token)
        rejections(api, *walkthrough(api))
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"{PASSED} passed, 0 failed")


if __name__ == "__main__":
    main()
