/**
 * The chain entry format, version 1 (docs/entry-format.md): chain ids, the genesis, the signed
 * message, entry hashes, and the checks a reader applies to every entry a server serves.
 *
 * Everything here is pure computation over bytes; nothing talks to the network.
 */

import {
  type Bytes,
  bytesOf,
  concat,
  fromBase64Url,
  fromHex,
  sha256,
  toHex,
  u32,
  u64,
  u8,
  utf8,
} from "./bytes.js";
import { BinaryEntry } from "./entries-binary.js";
import { InvalidInputError, VerificationError } from "./errors.js";

const CHAIN_LABEL = utf8("blindstore/chain/v1\0");
const GENESIS_LABEL = utf8("blindstore/genesis/v1\0");
const ENTRY_LABEL = utf8("blindstore/entry/v1\0");

/** Ed25519 as WebCrypto names it. */
const ED25519 = { name: "Ed25519" } as const;

/**
 * The fixed DER prefix of a PKCS#8 Ed25519 private key (RFC 8410): WebCrypto imports a raw
 * 32-byte seed only wrapped in it.
 */
const PKCS8_ED25519_PREFIX = fromHex("302e020100300506032b657004220420");

/** Zone ids as the server accepts them; the message carries the length in one byte. */
const ZONE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** A chain's identity as a reader uses it: the id, and the key that id certifies. */
export interface ChainIdentity {
  readonly zone: string;
  /** Lowercase hex. */
  readonly chainId: string;
  readonly chainIdBytes: Bytes;
  /** Raw 32-byte Ed25519 public key; SHA-256 of the chain label and it is the chain id. */
  readonly publicKey: Bytes;
  /** `publicKey` imported for verification. */
  readonly verifyKey: CryptoKey;
}

/** The fields of one entry that the writer signs. */
export interface EntryFields {
  zone: string;
  chainId: Uint8Array;
  index: number;
  /** Entry hash of entry `index - 1`, or the genesis for entry 0. */
  prev: Uint8Array;
  /** SHA-256 of the payload. */
  payloadHash: Uint8Array;
  payloadLength: number;
  /** Hashes of the extra chunks the entry references, in order. */
  chunks: readonly Uint8Array[];
}

/** One entry as the server serves it (`GET .../entries`, the `entry` event). */
export interface WireEntry {
  index: number;
  prev: string;
  payload_hash: string;
  payload: string;
  chunks: string[];
  signature: string;
  entry_hash: string;
}

/** What links an entry into its chain. */
export interface LinkedEntry {
  index: number;
  /** Lowercase hex. */
  prev: string;
  entryHash: string;
}

/** One entry decoded from its wire form, not yet verified. */
export interface ParsedEntry {
  index: number;
  /** Lowercase hex, as are all hashes here. */
  prev: string;
  payloadHash: string;
  payload: Bytes;
  chunks: string[];
  signature: Bytes;
  entryHash: string;
}

/** `SHA-256("blindstore/chain/v1\0" || public_key)`. */
export async function chainIdOf(publicKey: Uint8Array): Promise<Bytes> {
  if (publicKey.length !== 32) {
    throw new InvalidInputError("an Ed25519 public key has 32 bytes");
  }
  return sha256(concat(CHAIN_LABEL, publicKey));
}

/** `SHA-256("blindstore/genesis/v1\0" || chain_id)`: the `prev` of entry 0. */
export async function genesisOf(chainId: Uint8Array): Promise<Bytes> {
  return sha256(concat(GENESIS_LABEL, chainId));
}

/** The exact byte string the writer signs for one entry. */
export function entryMessage(fields: EntryFields): Bytes {
  if (!ZONE_ID.test(fields.zone)) {
    throw new InvalidInputError(`zone id ${JSON.stringify(fields.zone)} is not [a-z0-9][a-z0-9-]{0,62}`);
  }
  for (const [name, value] of [
    ["chain id", fields.chainId],
    ["prev", fields.prev],
    ["payload hash", fields.payloadHash],
  ] as const) {
    if (value.length !== 32) {
      throw new InvalidInputError(`${name} must have 32 bytes`);
    }
  }
  if (fields.chunks.some((chunk) => chunk.length !== 32)) {
    throw new InvalidInputError("chunk hashes must have 32 bytes");
  }
  const zone = utf8(fields.zone);
  return concat(
    ENTRY_LABEL,
    u8(zone.length),
    zone,
    fields.chainId,
    u64(fields.index),
    fields.prev,
    fields.payloadHash,
    u64(fields.payloadLength),
    u32(fields.chunks.length),
    ...fields.chunks,
  );
}

/** `SHA-256(message || signature)`: the entry's hash, the `prev` of the next entry. */
export async function entryHashOf(message: Uint8Array, signature: Uint8Array): Promise<Bytes> {
  return sha256(concat(message, signature));
}

/** An Ed25519 write key: the private key for signing and its raw public key. */
export interface WriteKey {
  readonly signKey: CryptoKey;
  readonly publicKey: Bytes;
}

/** Imports a 32-byte Ed25519 seed (the private key as RFC 8032 defines it) for signing. */
export async function importWriteKey(seed: Uint8Array): Promise<WriteKey> {
  if (seed.length !== 32) {
    throw new InvalidInputError("an Ed25519 seed has 32 bytes");
  }
  // Extractable only so that the public key can be read from the JWK export; the seed itself
  // is held by the caller anyway.
  const signKey = await crypto.subtle.importKey(
    "pkcs8",
    concat(PKCS8_ED25519_PREFIX, seed),
    ED25519,
    true,
    ["sign"],
  );
  const jwk = await crypto.subtle.exportKey("jwk", signKey);
  if (jwk.x === undefined) {
    throw new Error("WebCrypto exported an Ed25519 key without its public part");
  }
  return { signKey, publicKey: fromBase64Url(jwk.x, 32) };
}

/** Signs an entry message. Ed25519 is deterministic: the same key and message give the same signature. */
export async function signEntry(key: WriteKey, message: Uint8Array): Promise<Bytes> {
  return new Uint8Array(await crypto.subtle.sign(ED25519, key.signKey, bytesOf(message)));
}

/**
 * The identity of chain `chainId` (hex) in `zone` whose key the server says is `publicKey`.
 * Throws `VerificationError("wrong_key")` when the key does not hash to the id, or is one of the
 * small-order keys under which signatures can be forged.
 */
export async function chainIdentity(zone: string, chainId: string, publicKey: Uint8Array): Promise<ChainIdentity> {
  if (publicKey.length !== 32 || toHex(await chainIdOf(publicKey)) !== chainId) {
    throw new VerificationError("wrong_key", `the public key does not hash to chain id ${chainId}`);
  }
  if (isSmallOrderPoint(publicKey)) {
    throw new VerificationError("wrong_key", "the chain's public key is a small-order point");
  }
  const verifyKey = await crypto.subtle.importKey("raw", bytesOf(publicKey), ED25519, true, ["verify"]);
  return { zone, chainId, chainIdBytes: fromHex(chainId, 32), publicKey: bytesOf(publicKey), verifyKey };
}

/**
 * Decodes an entry from the server's JSON. Throws `VerificationError("malformed")` on anything not
 * shaped as documented; a value that does not decode is never treated as absent.
 */
export function parseWireEntry(value: unknown): ParsedEntry {
  if (value instanceof BinaryEntry) {
    return value.parsed;
  }
  if (typeof value !== "object" || value === null) {
    throw new VerificationError("malformed", "an entry is not a JSON object");
  }
  const wire = value as Record<string, unknown>;
  const index = wire["index"];
  if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0) {
    throw new VerificationError("malformed", "an entry's index is not an integer in 0..2^53-1");
  }
  try {
    const chunks = wire["chunks"];
    if (!Array.isArray(chunks)) {
      throw new SyntaxError("chunks is not an array");
    }
    return {
      index,
      prev: hashField(wire["prev"]),
      payloadHash: hashField(wire["payload_hash"]),
      payload: fromBase64Url(stringField(wire["payload"])),
      chunks: chunks.map(hashField),
      signature: fromBase64Url(stringField(wire["signature"]), 64),
      entryHash: hashField(wire["entry_hash"]),
    };
  } catch (error) {
    throw new VerificationError("malformed", `entry is malformed: ${(error as Error).message}`, index);
  }
}

/**
 * Checks one entry on its own: its payload hash, its signature (strictly: canonical S, no
 * small-order R) under the chain's key, and its entry hash. Links between entries are checked
 * by `verifyLinks`. Throws `VerificationError`.
 */
export async function verifyEntry(identity: ChainIdentity, entry: ParsedEntry): Promise<void> {
  if (toHex(await sha256(entry.payload)) !== entry.payloadHash) {
    throw new VerificationError("bad_payload_hash", "the payload does not hash to payload_hash", entry.index);
  }
  const message = entryMessage({
    zone: identity.zone,
    chainId: identity.chainIdBytes,
    index: entry.index,
    prev: fromHex(entry.prev, 32),
    payloadHash: fromHex(entry.payloadHash, 32),
    payloadLength: entry.payload.length,
    chunks: entry.chunks.map((chunk) => fromHex(chunk, 32)),
  });
  if (!(await verifySignatureStrictly(identity, message, entry.signature))) {
    throw new VerificationError("bad_signature", "the signature does not verify under the chain's key", entry.index);
  }
  if (toHex(await entryHashOf(message, entry.signature)) !== entry.entryHash) {
    throw new VerificationError("bad_entry_hash", "entry_hash is not the hash of the message and signature", entry.index);
  }
}

/**
 * Checks that `entries` are consecutive from `firstIndex` and hash-linked, the first one to
 * `prev` when it is known (the entry hash before `firstIndex`, or the genesis when it is 0).
 * Throws `VerificationError("bad_index" | "bad_link")`.
 */
export function verifyLinks(entries: readonly LinkedEntry[], firstIndex: number, prev: string | undefined): void {
  let expectedPrev = prev;
  entries.forEach((entry, offset) => {
    if (entry.index !== firstIndex + offset) {
      throw new VerificationError("bad_index", `expected entry ${firstIndex + offset}, got ${entry.index}`, entry.index);
    }
    if (expectedPrev !== undefined && entry.prev !== expectedPrev) {
      throw new VerificationError("bad_link", `prev is ${entry.prev}, expected ${expectedPrev}`, entry.index);
    }
    expectedPrev = entry.entryHash;
  });
}

/** The group order L of Ed25519, little-endian: a canonical signature has S < L. */
const GROUP_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;
const FIELD_PRIME = 2n ** 255n - 19n;
/**
 * The y-coordinate of one point of order 8; the others of order 8 have it or its negation, and
 * the remaining small-order points have y = 0 (order 4), 1 (the identity) or -1 (order 2).
 * test/entry.test.ts checks these on the curve.
 */
export const ORDER_8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;
const SMALL_ORDER_Y = new Set([0n, 1n, FIELD_PRIME - 1n, ORDER_8_Y, FIELD_PRIME - ORDER_8_Y]);

function littleEndian(data: Uint8Array): bigint {
  let value = 0n;
  for (let i = data.length - 1; i >= 0; i--) {
    value = (value << 8n) | BigInt(data[i]!);
  }
  return value;
}

/**
 * Whether a 32-byte Edwards point encoding is one of the eight points of small order, in any
 * encoding (the sign bit ignored, y taken modulo p as lenient decoders do).
 */
export function isSmallOrderPoint(encoded: Uint8Array): boolean {
  const y = littleEndian(encoded) & ((1n << 255n) - 1n);
  return SMALL_ORDER_Y.has(y % FIELD_PRIME);
}

/**
 * Ed25519 verification as strict as the server's (ed25519-dalek `verify_strict`): WebCrypto
 * implementations differ on edge cases, so the checks they may skip are made here first.
 */
async function verifySignatureStrictly(identity: ChainIdentity, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (signature.length !== 64) {
    return false;
  }
  if (littleEndian(signature.subarray(32)) >= GROUP_ORDER) {
    return false;
  }
  if (isSmallOrderPoint(signature.subarray(0, 32))) {
    return false;
  }
  return crypto.subtle.verify(ED25519, identity.verifyKey, bytesOf(signature), bytesOf(message));
}

function stringField(value: unknown): string {
  if (typeof value !== "string") {
    throw new SyntaxError("expected a string");
  }
  return value;
}

function hashField(value: unknown): string {
  const text = stringField(value);
  fromHex(text, 32);
  return text;
}
