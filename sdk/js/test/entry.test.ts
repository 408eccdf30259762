/**
 * The entry format against docs/test-vectors/entry-v1.json (the contract shared with the server
 * and the Python walkthrough), and the reader's checks against tampered copies.
 *
 * The imports name the SDK's entry functions as index.ts exports them, on purpose: this is
 * the public surface under test.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fromBase64Url, fromHex, toBase64Url, toHex } from "../lib/bytes.js";
import {
  ORDER_8_Y,
  type ParsedEntry,
  chainIdOf,
  chainIdentity,
  entryHashOf,
  entryMessage,
  genesisOf,
  importWriteKey,
  isSmallOrderPoint,
  parseWireEntry,
  signEntry,
  verifyEntry,
  verifyLinks,
} from "../lib/entry.js";
import { VerificationError } from "../lib/errors.js";

interface VectorEntry {
  index: number;
  prev: string;
  payload: string;
  payload_hash: string;
  payload_len: number;
  chunk_hashes: string[];
  message: string;
  signature: string;
  entry_hash: string;
}
interface VectorChain {
  zone: string;
  seed: string;
  public_key: string;
  chain_id: string;
  genesis: string;
  entries: VectorEntry[];
}

const vectors = JSON.parse(readFileSync(new URL("../../../docs/test-vectors/entry-v1.json", import.meta.url), "utf8")) as { chains: VectorChain[] };

function wireOf(entry: VectorEntry) {
  return {
    index: entry.index,
    prev: entry.prev,
    payload_hash: entry.payload_hash,
    payload: entry.payload,
    chunks: entry.chunk_hashes,
    signature: entry.signature,
    entry_hash: entry.entry_hash,
  };
}

test("the SDK reproduces every key, id, genesis, message, signature and entry hash of the vectors", async () => {
  assert.ok(vectors.chains.length >= 2);
  for (const chain of vectors.chains) {
    const key = await importWriteKey(fromHex(chain.seed));
    assert.equal(toBase64Url(key.publicKey), chain.public_key);
    const chainId = await chainIdOf(key.publicKey);
    assert.equal(toHex(chainId), chain.chain_id);
    assert.equal(toHex(await genesisOf(chainId)), chain.genesis);
    for (const entry of chain.entries) {
      const message = entryMessage({
        zone: chain.zone,
        chainId,
        index: entry.index,
        prev: fromHex(entry.prev),
        payloadHash: fromHex(entry.payload_hash),
        payloadLength: entry.payload_len,
        chunks: entry.chunk_hashes.map((hash) => fromHex(hash)),
      });
      assert.equal(toHex(message), entry.message, `message of entry ${entry.index}`);
      const signature = await signEntry(key, message);
      assert.equal(toBase64Url(signature), entry.signature, `signature of entry ${entry.index}`);
      assert.equal(toHex(await entryHashOf(message, signature)), entry.entry_hash);
    }
  }
});

test("the vectors verify as chains", async () => {
  for (const chain of vectors.chains) {
    const identity = await chainIdentity(chain.zone, chain.chain_id, fromBase64Url(chain.public_key));
    const entries = chain.entries.map((entry) => parseWireEntry(wireOf(entry)));
    verifyLinks(entries, 0, chain.genesis);
    for (const entry of entries) {
      await verifyEntry(identity, entry);
    }
  }
});

/** One tampering of an entry and the reason it must be refused with. */
const tamperings: [string, (entry: ParsedEntry) => ParsedEntry, VerificationError["reason"]][] = [
  ["payload byte", (e) => ({ ...e, payload: flip(e.payload) }), "bad_payload_hash"],
  ["payload and its hash", (e) => ({ ...e, payload: flip(e.payload), payloadHash: sha256Hex(flip(e.payload)) }), "bad_signature"],
  ["signature R", (e) => ({ ...e, signature: flip(e.signature, 0) }), "bad_signature"],
  ["signature S", (e) => ({ ...e, signature: flip(e.signature, 40) }), "bad_signature"],
  ["signature S + L (non-canonical)", (e) => ({ ...e, signature: withNonCanonicalS(e.signature) }), "bad_signature"],
  ["chunk list", (e) => ({ ...e, chunks: [...e.chunks, "00".repeat(32)] }), "bad_signature"],
  ["prev", (e) => ({ ...e, prev: "00".repeat(32) }), "bad_signature"],
  ["index", (e) => ({ ...e, index: e.index + 1 }), "bad_signature"],
  ["entry hash", (e) => ({ ...e, entryHash: "00".repeat(32) }), "bad_entry_hash"],
];

test("tampered copies of a vector entry fail verification, each for its reason", async () => {
  const chain = vectors.chains[0]!;
  const identity = await chainIdentity(chain.zone, chain.chain_id, fromBase64Url(chain.public_key));
  const original = parseWireEntry(wireOf(chain.entries[2]!));
  await verifyEntry(identity, original);
  for (const [what, tamper, reason] of tamperings) {
    await assert.rejects(verifyEntry(identity, tamper(original)), (error: unknown) => {
      assert.ok(error instanceof VerificationError, what);
      assert.equal(error.reason, reason, what);
      return true;
    });
  }
  // The same entry in another zone is another message: the signature does not carry over.
  const elsewhere = await chainIdentity("other-zone", chain.chain_id, fromBase64Url(chain.public_key));
  await assert.rejects(verifyEntry(elsewhere, original), { reason: "bad_signature" });
});

test("non-canonical S and small-order R are refused even by a lenient platform verifier", async (t) => {
  const chain = vectors.chains[0]!;
  const identity = await chainIdentity(chain.zone, chain.chain_id, fromBase64Url(chain.public_key));
  const original = parseWireEntry(wireOf(chain.entries[1]!));
  const withSignature = async (signature: Uint8Array<ArrayBuffer>) => ({
    ...original,
    signature,
    entryHash: toHex(await entryHashOf(await messageOf(chain, original), signature)),
  });
  // Stand in for a WebCrypto whose Ed25519 accepts whatever the strict checks must catch.
  t.mock.method(crypto.subtle, "verify", async () => true);
  await verifyEntry(identity, await withSignature(flip(original.signature, 40)));
  const withSmallOrderR = new Uint8Array(original.signature);
  withSmallOrderR.set(encode(1n, false), 0);
  for (const signature of [withNonCanonicalS(original.signature), withSmallOrderR]) {
    await assert.rejects(verifyEntry(identity, await withSignature(signature)), { reason: "bad_signature" });
  }
});

test("links: gaps, reordering and broken prev are refused", async () => {
  const chain = vectors.chains[0]!;
  const entries = chain.entries.map((entry) => parseWireEntry(wireOf(entry)));
  assert.throws(() => verifyLinks(entries, 0, "00".repeat(32)), { reason: "bad_link" });
  assert.throws(() => verifyLinks([entries[0]!, entries[2]!], 0, chain.genesis), { reason: "bad_index" });
  assert.throws(() => verifyLinks([entries[1]!, entries[0]!], 1, undefined), { reason: "bad_index" });
  assert.throws(() => verifyLinks(entries, 1, undefined), { reason: "bad_index" });
  assert.throws(() => verifyLinks([entries[0]!, { ...entries[1]!, prev: chain.genesis }], 0, chain.genesis), { reason: "bad_link" });
});

test("a public key must hash to the chain id and not be of small order", async () => {
  const [first, second] = vectors.chains;
  await assert.rejects(chainIdentity(first!.zone, first!.chain_id, fromBase64Url(second!.public_key)), { reason: "wrong_key" });
  const identity = new Uint8Array(32);
  identity[0] = 1;
  await assert.rejects(chainIdentity("demo", toHex(await chainIdOf(identity)), identity), { reason: "wrong_key" });
});

test("malformed wire entries are refused, never read as absent", () => {
  const wire = wireOf(vectors.chains[0]!.entries[1]!);
  for (const bad of [
    null,
    { ...wire, index: -1 },
    { ...wire, index: 2 ** 53 },
    { ...wire, prev: wire.prev.toUpperCase() },
    { ...wire, payload: wire.payload + "=" },
    { ...wire, signature: wire.signature.slice(1) },
    { ...wire, chunks: "none" },
    { ...wire, entry_hash: undefined },
  ]) {
    assert.throws(() => parseWireEntry(bad), { reason: "malformed" }, JSON.stringify(bad));
  }
});

// ---- small-order points, checked on the curve itself ----

const P = 2n ** 255n - 19n;
const D = mod(-121665n * inverse(121666n));

function mod(a: bigint): bigint {
  return ((a % P) + P) % P;
}
function power(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = mod(result * b);
    b = mod(b * b);
  }
  return result;
}
function inverse(a: bigint): bigint {
  return power(a, P - 2n);
}
/** x for y on -x² + y² = 1 + d·x²·y², with the given sign; undefined when y is not on the curve. */
function recoverX(y: bigint, negative: boolean): bigint | undefined {
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  const x2 = mod(u * inverse(v));
  let x = power(x2, (P + 3n) / 8n);
  if (mod(x * x) !== x2) {
    x = mod(x * power(2n, (P - 1n) / 4n));
  }
  if (mod(x * x) !== x2) {
    return undefined;
  }
  return (x & 1n) === BigInt(negative) ? x : mod(-x);
}
function add([x1, y1]: [bigint, bigint], [x2, y2]: [bigint, bigint]): [bigint, bigint] {
  const t = mod(D * x1 * x2 * y1 * y2);
  return [mod((x1 * y2 + y1 * x2) * inverse(1n + t)), mod((y1 * y2 + x1 * x2) * inverse(1n - t))];
}
function order(point: [bigint, bigint]): number {
  let current = point;
  for (let n = 1; n <= 8; n++) {
    if (current[0] === 0n && current[1] === 1n) return n;
    current = add(current, point);
  }
  return Infinity;
}
function encode(y: bigint, signBit: boolean): Uint8Array {
  const out = new Uint8Array(32);
  let value = y | (signBit ? 1n << 255n : 0n);
  for (let i = 0; i < 32; i++, value >>= 8n) out[i] = Number(value & 0xffn);
  return out;
}

test("the small-order check knows exactly the eight torsion points, in every encoding", () => {
  const orders = new Map<bigint, number>();
  for (const y of [0n, 1n, P - 1n, ORDER_8_Y, P - ORDER_8_Y]) {
    for (const negative of [false, true]) {
      const x = recoverX(y, negative);
      assert.notEqual(x, undefined, `y = ${y} is on the curve`);
      orders.set(y, order([x!, y]));
      assert.ok(isSmallOrderPoint(encode(y, negative)));
    }
  }
  assert.deepEqual([...orders.values()], [4, 1, 2, 8, 8]);
  // Non-canonical encodings (y + p) of the small y values.
  assert.ok(isSmallOrderPoint(encode(P, false)));
  assert.ok(isSmallOrderPoint(encode(P + 1n, true)));
  for (const chain of vectors.chains) {
    assert.equal(isSmallOrderPoint(fromBase64Url(chain.public_key)), false);
  }
});

function flip(data: Uint8Array, index = 0): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(data);
  copy[index]! ^= 1;
  return copy;
}

function withNonCanonicalS(signature: Uint8Array): Uint8Array<ArrayBuffer> {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]!);
  const copy = new Uint8Array(signature);
  let value = s + L;
  for (let i = 32; i < 64; i++, value >>= 8n) copy[i] = Number(value & 0xffn);
  return copy;
}

async function messageOf(chain: VectorChain, entry: ParsedEntry): Promise<Uint8Array> {
  return entryMessage({
    zone: chain.zone,
    chainId: fromHex(chain.chain_id),
    index: entry.index,
    prev: fromHex(entry.prev),
    payloadHash: fromHex(entry.payloadHash),
    payloadLength: entry.payload.length,
    chunks: entry.chunks.map((hash) => fromHex(hash)),
  });
}

function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
