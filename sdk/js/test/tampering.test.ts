/**
 * The malicious-server suite: the SDK talks to real nodes through a proxy that tampers with
 * what they answer (test/support/tampering-proxy.ts). Every attack must be caught with its
 * typed error. The attack classes come from "End-to-End Encrypted Cloud Storage in the Wild: A
 * Broken Ecosystem" (Hofmeier, Truong, Paterson, CCS 2024) and the Nextcloud analysis (Albrecht
 * et al., 2024); README.md ("The malicious-server suite") maps each class to its test here.
 *
 * Negative control: with BLINDSTORE_SDK_NEGATIVE_CONTROL=1 every client is made with
 * `unsafeSkipVerification`, and every test in this file must then FAIL — run by
 * test/negative-control.test.ts, which checks exactly that.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  Blindstore,
  ChainKeys,
  type Entry,
  ForkError,
  MemoryHeadStore,
  fileManifestOf,
  RollbackError,
  VerificationError,
  fromBase64Url,
  toBase64Url,
} from "../lib/index.js";
import { sha256, toHex } from "../lib/bytes.js";
import { type RunningNode, startNode } from "./support/node.js";
import { type TamperingProxy, startProxy } from "./support/tampering-proxy.js";

const NEGATIVE_CONTROL = process.env["BLINDSTORE_SDK_NEGATIVE_CONTROL"] === "1";
const ADMIN = "tampering-suite-admin-token-0123";

let nodeA: RunningNode;
let nodeB: RunningNode;
let proxy: TamperingProxy;

before(async () => {
  [nodeA, nodeB] = await Promise.all([startNode(["--admin-token", ADMIN]), startNode(["--admin-token", ADMIN])]);
  const created = await fetch(`${nodeA.url}/v1/admin/zones/other`, { method: "PUT", headers: { authorization: `Bearer ${ADMIN}` } });
  assert.ok(created.ok, `creating zone other: ${created.status}`);
  proxy = await startProxy(nodeA.url);
});

after(async () => {
  await proxy?.close();
  await Promise.all([nodeA?.stop(), nodeB?.stop()]);
});

/** A client through the proxy (or straight to `url`); the negative control turns the checks off. */
function client(options: { url?: string; zone?: string; heads?: MemoryHeadStore } = {}): Blindstore {
  return new Blindstore({
    url: options.url ?? proxy.url,
    zone: options.zone ?? "demo",
    headStore: options.heads ?? new MemoryHeadStore(),
    unsafeSkipVerification: NEGATIVE_CONTROL,
  });
}

/** A fresh chain of `count` JSON entries written honestly (the proxy disarmed). */
async function chainOf(count: number, writer = client()) {
  proxy.doctor = undefined;
  proxy.upstream = nodeA.url;
  const chain = await writer.createChain();
  for (let i = 0; i < count; i++) await chain.appendJson({ n: i, note: `entry ${i}` });
  return chain;
}

async function readAll(chain: { entries(): AsyncGenerator<Entry> }): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const entry of chain.entries()) out.push(entry);
  return out;
}

/** Applies `change` to the entries of every entries answer. */
function doctorEntries(change: (entries: any[]) => void) {
  proxy.doctor = {
    json(path, method, body) {
      if (method === "GET" && /\/chains\/[0-9a-f]+\/entries/.test(path) && Array.isArray(body.entries)) {
        change(body.entries);
        return body;
      }
      return undefined;
    },
  };
}

function isVerification(reasons?: string[]) {
  return (error: unknown) => {
    assert.ok(error instanceof VerificationError, `expected a VerificationError, got ${String(error)}`);
    if (reasons) assert.ok(reasons.includes(error.reason), `reason ${error.reason}, expected one of ${reasons.join(", ")}`);
    return true;
  };
}

test("swapped payloads (integrity of content): another entry's ciphertext is refused", async () => {
  const chain = await chainOf(6);
  doctorEntries((entries) => {
    const a = entries.find((e) => e.index === 2);
    const b = entries.find((e) => e.index === 3);
    [a.payload, b.payload] = [b.payload, a.payload];
  });
  await assert.rejects(readAll(client().openChain(chain.keys)), isVerification(["bad_payload_hash"]));
});

test("reordered entries are refused", async () => {
  const chain = await chainOf(6);
  doctorEntries((entries) => {
    [entries[2], entries[3]] = [entries[3], entries[2]];
  });
  await assert.rejects(readAll(client().openChain(chain.keys)), isVerification());
});

test("a dropped entry (deletion in the middle) is refused", async () => {
  const chain = await chainOf(6);
  doctorEntries((entries) => {
    entries.splice(3, 1);
  });
  await assert.rejects(readAll(client().openChain(chain.keys)), isVerification());
});

/** Copies the first `count` entries of a chain from node A to node B, byte for byte. */
async function copyToB(chainId: string, count: number): Promise<void> {
  const info = await fetch(`${nodeA.url}/v1/zones/demo/chains/${chainId}`).then((r) => r.json());
  const created = await fetch(`${nodeB.url}/v1/zones/demo/chains`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ public_key: info.public_key }),
  });
  assert.ok(created.ok, `creating the copy: ${created.status}`);
  const page = await fetch(`${nodeA.url}/v1/zones/demo/chains/${chainId}/entries?from=0&limit=${count}`).then((r) => r.json());
  for (const entry of page.entries) {
    const copied = await fetch(`${nodeB.url}/v1/zones/demo/chains/${chainId}/entries`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ index: entry.index, prev: entry.prev, payload: entry.payload, chunks: entry.chunks, signature: entry.signature }),
    });
    assert.ok(copied.ok, `copying entry ${entry.index}: ${copied.status} ${await copied.text()}`);
  }
}

test("a rolled-back chain (entries withheld after they were shown) is refused", async () => {
  const chain = await chainOf(4);
  // Node B keeps the chain as it was at 4 entries; node A goes on to 6.
  await copyToB(chain.chainId, 4);
  await chain.appendJson({ n: 4 });
  await chain.appendJson({ n: 5 });
  const heads = new MemoryHeadStore();
  assert.equal((await readAll(client({ heads }).openChain(chain.keys))).length, 6);
  proxy.upstream = nodeB.url;
  try {
    // A consistent older state, every entry genuine: only the remembered head shows the loss.
    await assert.rejects(client({ heads }).openChain(chain.keys).readLast(2), (error: unknown) => error instanceof RollbackError);
  } finally {
    proxy.upstream = nodeA.url;
  }
});

test("an entry signed by another key (injected or replayed from another chain) is refused", async () => {
  const chain = await chainOf(4);
  const other = await chainOf(4);
  const foreign = await fetch(`${nodeA.url}/v1/zones/demo/chains/${other.chainId}/entries?from=0&limit=10`).then((r) => r.json());
  doctorEntries((entries) => {
    entries[2] = { ...foreign.entries[2] };
  });
  await assert.rejects(readAll(client().openChain(chain.keys)), isVerification());
});

test("an entry replayed from another zone (same chain key) is refused", async () => {
  const keys = await ChainKeys.generate();
  proxy.doctor = undefined;
  const here = await client().createChain(keys);
  const there = await client({ zone: "other" }).createChain(keys);
  for (let i = 0; i < 3; i++) {
    await here.appendJson({ zone: "demo", n: i });
    await there.appendJson({ zone: "other", n: i });
  }
  const foreign = await fetch(`${nodeA.url}/v1/zones/other/chains/${keys.chainId}/entries?from=0&limit=10`).then((r) => r.json());
  doctorEntries((entries) => {
    entries.splice(0, entries.length, ...foreign.entries);
  });
  await assert.rejects(readAll(client().openChain(keys)), isVerification(["bad_signature"]));
});

test("a substituted public key (what a share-link reader is told) is refused", async () => {
  const chain = await chainOf(3);
  const impostor = await ChainKeys.generate();
  const impostorChain = await client().createChain(impostor);
  const impostorKey = (await fetch(`${nodeA.url}/v1/zones/demo/chains/${impostorChain.chainId}`).then((r) => r.json())).public_key;
  proxy.doctor = {
    json(_path, _method, body) {
      if (typeof body.public_key === "string") return { ...body, public_key: impostorKey };
      return undefined;
    },
  };
  // The link's reader holds the chain id and read key only; the key comes from the server.
  const reader = client().openChain(chain.keys.forReader());
  await assert.rejects(readAll(reader), isVerification(["wrong_key"]));
});

test("a truncated list of a file's chunks is refused", async () => {
  proxy.doctor = undefined;
  const writer = client();
  const chain = await writer.createChain();
  const data = new Uint8Array(3 * 1024 * 1024 + 77).map((_, i) => (i * 31) & 0xff);
  await writer.uploadFile(chain, data, { name: "scan.bin", chunkSize: 1024 * 1024 });
  doctorEntries((entries) => {
    for (const entry of entries) if (entry.chunks.length > 1) entry.chunks.pop();
  });
  await assert.rejects(readAll(client().openChain(chain.keys)), isVerification());
});

test("a chunk with other bytes, or another chunk of the file in its place, is refused", async () => {
  proxy.doctor = undefined;
  const writer = client();
  const chain = await writer.createChain();
  const data = new Uint8Array(2 * 1024 * 1024 + 5).map((_, i) => (i * 7) & 0xff);
  await writer.uploadFile(chain, data, { name: "photo.jpg", chunkSize: 1024 * 1024 });
  const [entry] = await chain.readLast(1);
  const manifest = fileManifestOf(entry!)!;
  const [first, second] = manifest.chunks as string[];
  const secondBytes = new Uint8Array(await (await fetch(`${nodeA.url}/v1/zones/demo/chunks/${second}`)).arrayBuffer());
  for (const swap of [
    (body: Uint8Array) => body.map((b, i) => (i === 100 ? b ^ 1 : b)),
    () => secondBytes,
  ]) {
    proxy.doctor = { bytes: (path, body) => (path.endsWith(first!) ? swap(body) : undefined) };
    const reader = client();
    await assert.rejects(reader.downloadFile(manifest), isVerification(["bad_chunk_hash"]));
  }
});

test("a downgraded payload format version is refused", async () => {
  const chain = await chainOf(3);
  doctorEntries((entries) => {
    const payload = fromBase64Url(entries[1].payload);
    // Version 2 relabelled as version 1, the older format readers still accept.
    payload[0] = 1;
    entries[1].payload = toBase64Url(payload);
  });
  await assert.rejects(readAll(client().openChain(chain.keys)), isVerification(["bad_payload_hash"]));
});

test("a downgrade that also rewrites the payload hash breaks the signature", async () => {
  const chain = await chainOf(3);
  const rewritten = new Map<number, string>();
  for (const entry of await fetch(`${nodeA.url}/v1/zones/demo/chains/${chain.chainId}/entries?from=0&limit=10`).then((r) => r.json()).then((p) => p.entries)) {
    const payload = fromBase64Url(entry.payload);
    payload[0] = 1;
    rewritten.set(entry.index, toBase64Url(payload));
  }
  const hashes = new Map<number, string>();
  for (const [index, payload] of rewritten) hashes.set(index, toHex(await sha256(fromBase64Url(payload))));
  doctorEntries((entries) => {
    for (const entry of entries) {
      entry.payload = rewritten.get(entry.index);
      entry.payload_hash = hashes.get(entry.index);
    }
  });
  await assert.rejects(readAll(client().openChain(chain.keys)), isVerification(["bad_signature"]));
});

test("a fork shown after a failover to a node with another history is refused", async () => {
  const keys = await ChainKeys.generate();
  proxy.doctor = undefined;
  proxy.upstream = nodeA.url;
  // The same chain on two nodes that never agreed (a split brain): different entries.
  const onA = await client({ url: nodeA.url }).createChain(keys);
  const onB = await client({ url: nodeB.url }).createChain(keys);
  for (let i = 0; i < 4; i++) await onA.appendJson({ node: "A", n: i });
  for (let i = 0; i < 6; i++) await onB.appendJson({ node: "B", n: i });
  const heads = new MemoryHeadStore();
  assert.equal((await readAll(client({ heads }).openChain(keys))).length, 4);
  proxy.upstream = nodeB.url;
  try {
    await assert.rejects(client({ heads }).openChain(keys).readLast(2), (error: unknown) => error instanceof ForkError);
  } finally {
    proxy.upstream = nodeA.url;
  }
});

test("a fork shown to two tabs of one browser (sharing remembered heads) is refused", async () => {
  const keys = await ChainKeys.generate();
  proxy.doctor = undefined;
  const onA = await client({ url: nodeA.url }).createChain(keys);
  const onB = await client({ url: nodeB.url }).createChain(keys);
  for (let i = 0; i < 3; i++) await onA.appendJson({ tab: 1, n: i });
  for (let i = 0; i < 3; i++) await onB.appendJson({ tab: 2, n: i });
  // Both tabs remember heads in the same store (IndexedDB in a browser); the server shows each
  // tab a different history of the same length.
  const shared = new MemoryHeadStore();
  const first = client({ url: nodeA.url, heads: shared }).openChain(keys);
  assert.equal((await readAll(first)).length, 3);
  const second = client({ url: nodeB.url, heads: shared }).openChain(keys);
  await assert.rejects(second.readLast(3), (error: unknown) => error instanceof ForkError);
});

test("a lying resume position on the live stream is refused", async () => {
  const chain = await chainOf(3);
  // The stream skips the entry the client asked to resume from.
  let dropped = false;
  proxy.doctor = {
    event(_path, block) {
      if (!dropped && block.includes("event: entry")) {
        dropped = true;
        return null;
      }
      return block;
    },
  };
  const reader = client().openChain(chain.keys);
  const failure = new Promise<unknown>((resolve) => {
    const subscription = reader.follow({
      from: 3,
      onEntry: () => {},
      onError: (error) => {
        subscription.close();
        resolve(error);
      },
    });
    setTimeout(() => {
      subscription.close();
      resolve(new Error("the follower accepted the stream"));
    }, 20_000).unref();
  });
  const writer = client({ url: nodeA.url }).openChain(chain.keys);
  await writer.appendJson({ n: 3 });
  await writer.appendJson({ n: 4 });
  const error = await failure;
  isVerification(["bad_index"])(error);
});
