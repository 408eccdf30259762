/**
 * Payload encryption against docs/test-vectors/payload-v2.json (what the SDK writes) and
 * docs/test-vectors/payload-v1.json (what older SDKs wrote, still read; with the file chunk
 * vectors), both written by scripts/payload-vectors.mjs, and the typed errors of every way
 * decryption can fail.
 */

import assert from "node:assert/strict";
import { createCipheriv, hkdfSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { bytesOf, fromBase64Url, fromHex, sha256, toHex, utf8 } from "../lib/bytes.js";
import { DecryptionError, MissingKeyError } from "../lib/errors.js";
import { chunkKeyMaterial, decryptChunk, encryptChunk } from "../lib/files.js";
import {
  type EntryContent,
  type PayloadPlace,
  additionalData,
  additionalDataV1,
  chainKeyBytes,
  decryptPayload,
  encryptPayload,
  entryKeyV1Bytes,
  sealPayload,
  sealPayloadV1,
} from "../lib/payload.js";

interface PayloadVector {
  zone: string;
  chain_id: string;
  index: number;
  prev: string;
  key_epoch: number;
  read_key: string;
  iv: string;
  content: { kind: "json"; value: unknown } | { kind: "bytes"; hex: string };
  plaintext: string;
  /** Version 1: the entry's key. */
  entry_key?: string;
  /** Version 2: the chain key of the epoch. */
  chain_key?: string;
  additional_data: string;
  payload: string;
  payload_hash: string;
}
interface ChunkVector {
  index: number;
  count: number;
  plaintext: string;
  key: string;
  nonce: string;
  ciphertext: string;
  hash: string;
}

const vectors = JSON.parse(readFileSync(new URL("../../../docs/test-vectors/payload-v2.json", import.meta.url), "utf8")) as { payloads: PayloadVector[] };
const vectorsV1 = JSON.parse(readFileSync(new URL("../../../docs/test-vectors/payload-v1.json", import.meta.url), "utf8")) as {
  payloads: PayloadVector[];
  file: { file_key: string; file_id: string; chunks: ChunkVector[] };
};

function placeOf(vector: PayloadVector): PayloadPlace {
  return { zone: vector.zone, chainId: fromHex(vector.chain_id), index: vector.index, prev: fromHex(vector.prev) };
}

function contentOf(vector: PayloadVector): EntryContent {
  return vector.content.kind === "json" ? vector.content : { kind: "bytes", bytes: fromHex(vector.content.hex) };
}

test("the SDK reproduces every version 2 payload vector from its inputs and decrypts it back", async () => {
  assert.ok(vectors.payloads.length >= 4);
  for (const vector of vectors.payloads) {
    const place = placeOf(vector);
    const readKey = fromHex(vector.read_key);
    assert.equal(toHex(await chainKeyBytes(readKey, place.chainId, vector.key_epoch)), vector.chain_key);
    assert.equal(toHex(additionalData(place, vector.key_epoch)), vector.additional_data);
    const payload = await sealPayload(place, vector.key_epoch, readKey, contentOf(vector), fromHex(vector.iv));
    assert.equal(payload[0], 2);
    assert.equal(toHex(payload), toHex(fromBase64Url(vector.payload)), `payload at index ${vector.index}`);
    assert.equal(toHex(await sha256(payload)), vector.payload_hash);
    const opened = await decryptPayload(place, (epoch) => (epoch === vector.key_epoch ? readKey : undefined), payload);
    assert.equal(opened.epoch, vector.key_epoch);
    assert.deepEqual(opened.content, contentOf(vector));
  }
});

test("version 2 vectors follow the documented formulas (node:crypto HKDF and AES-256-GCM, not WebCrypto)", async () => {
  for (const vector of vectors.payloads) {
    const chainId = Buffer.from(vector.chain_id, "hex");
    const epoch = Buffer.alloc(4);
    epoch.writeUInt32BE(vector.key_epoch);
    const info = Buffer.concat([Buffer.from("blindstore/chain-key/v2\0"), chainId, epoch]);
    const key = Buffer.from(hkdfSync("sha256", Buffer.from(vector.read_key, "hex"), chainId, info, 32));
    assert.equal(key.toString("hex"), vector.chain_key);
    const zone = Buffer.from(vector.zone);
    const index = Buffer.alloc(8);
    index.writeBigUInt64BE(BigInt(vector.index));
    const aad = Buffer.concat([Buffer.from("blindstore/payload/v2\0"), Buffer.of(zone.length), zone, chainId, index, Buffer.from(vector.prev, "hex"), epoch]);
    assert.equal(aad.toString("hex"), vector.additional_data);
    const cipher = createCipheriv("aes-256-gcm", key, Buffer.from(vector.iv, "hex"));
    cipher.setAAD(aad);
    const sealed = Buffer.concat([cipher.update(Buffer.from(vector.plaintext, "hex")), cipher.final(), cipher.getAuthTag()]);
    const payload = Buffer.concat([Buffer.of(2), epoch, Buffer.from(vector.iv, "hex"), sealed]);
    assert.equal(toHex(payload), toHex(fromBase64Url(vector.payload)));
  }
});

test("version 1 payloads (older SDKs) are still read, and their vectors still reproduced", async () => {
  assert.ok(vectorsV1.payloads.length >= 4);
  for (const vector of vectorsV1.payloads) {
    const place = placeOf(vector);
    const readKey = fromHex(vector.read_key);
    assert.equal(toHex(await entryKeyV1Bytes(place, readKey)), vector.entry_key);
    assert.equal(toHex(additionalDataV1(place, vector.key_epoch)), vector.additional_data);
    const payload = fromBase64Url(vector.payload);
    assert.equal(toHex(await sealPayloadV1(place, vector.key_epoch, readKey, contentOf(vector), fromHex(vector.iv))), toHex(payload));
    const opened = await decryptPayload(place, (epoch) => (epoch === vector.key_epoch ? readKey : undefined), payload);
    assert.equal(opened.epoch, vector.key_epoch);
    assert.deepEqual(opened.content, contentOf(vector));
  }
});

test("one chain key serves every entry of its chain and epoch; a version 1 key serves one entry", async () => {
  const vector = vectors.payloads[0]!;
  const place = placeOf(vector);
  const readKey = fromHex(vector.read_key);
  const chainKey = await crypto.subtle.importKey("raw", await chainKeyBytes(readKey, place.chainId, 0), "AES-GCM", false, ["encrypt", "decrypt"]);
  const later = { ...place, index: 41, prev: new Uint8Array(32).fill(7) };
  const payload = await encryptPayload(later, 0, chainKey, { kind: "json", value: "same key" });
  assert.deepEqual((await decryptPayload(later, () => readKey, payload)).content, { kind: "json", value: "same key" });
  // Keys that give only a chain key read version 2 and not version 1, and the other way round.
  const chainOnly = { chainKey: async () => chainKey, entryKeyV1: async () => undefined };
  assert.deepEqual((await decryptPayload(later, chainOnly, payload)).content, { kind: "json", value: "same key" });
  const v1 = await sealPayloadV1(place, 0, readKey, { kind: "json", value: 1 }, fromHex(vector.iv));
  const missing = await decryptPayload(place, chainOnly, v1).catch((error: unknown) => error);
  assert.ok(missing instanceof MissingKeyError);
});

test("the SDK reproduces every file chunk vector and decrypts it back", async () => {
  const fileKey = fromHex(vectorsV1.file.file_key);
  const fileId = fromHex(vectorsV1.file.file_id);
  for (const chunk of vectorsV1.file.chunks) {
    const material = await chunkKeyMaterial(fileKey, fileId, chunk.index, chunk.count);
    assert.equal(toHex(material.key), chunk.key);
    assert.equal(toHex(material.nonce), chunk.nonce);
    const ciphertext = await encryptChunk(fileKey, fileId, chunk.index, chunk.count, fromHex(chunk.plaintext));
    assert.equal(toHex(ciphertext), chunk.ciphertext);
    assert.equal(toHex(await sha256(ciphertext)), chunk.hash);
    assert.equal(toHex(await decryptChunk(fileKey, fileId, chunk.index, chunk.count, ciphertext)), chunk.plaintext);
  }
});

test("a chunk does not decrypt at another position, in a shorter file, or in another file", async () => {
  const fileKey = fromHex(vectorsV1.file.file_key);
  const fileId = fromHex(vectorsV1.file.file_id);
  const chunk = vectorsV1.file.chunks[1]!;
  const ciphertext = fromHex(chunk.ciphertext);
  const otherId = fromHex(vectorsV1.file.file_id.replace(/^../, "ff"));
  for (const [index, count, id] of [
    [0, chunk.count, fileId],
    [chunk.index, chunk.count - 1, fileId],
    [chunk.index, chunk.count + 1, fileId],
    [chunk.index, chunk.count, otherId],
  ] as const) {
    await assert.rejects(decryptChunk(fileKey, id, index, count, ciphertext), DecryptionError);
  }
});

test("a payload decrypts only at its own place, epoch and version", async () => {
  for (const set of [vectors, vectorsV1]) {
    const vector = set.payloads[0]!;
    const place = placeOf(vector);
    const readKey = fromHex(vector.read_key);
    const payload = fromBase64Url(vector.payload);
    const keyFor = () => readKey;
    const elsewhere: PayloadPlace[] = [
      { ...place, zone: "other" },
      { ...place, chainId: fromHex(set.payloads[3]!.chain_id) },
      { ...place, index: place.index + 1 },
      { ...place, prev: new Uint8Array(32) },
    ];
    for (const other of elsewhere) {
      await assert.rejects(decryptPayload(other, keyFor, payload), DecryptionError);
    }
    // The epoch is authenticated: relabelling the payload under another epoch fails too.
    const relabelled = new Uint8Array(payload);
    relabelled[4] = 1;
    await assert.rejects(decryptPayload(place, keyFor, relabelled), DecryptionError);
    // So is the version: a payload read as the other version does not open.
    const otherVersion = new Uint8Array(payload);
    otherVersion[0] = payload[0] === 2 ? 1 : 2;
    await assert.rejects(decryptPayload(place, keyFor, otherVersion), DecryptionError);
    const flipped = new Uint8Array(payload);
    flipped[flipped.length - 1]! ^= 1;
    await assert.rejects(decryptPayload(place, keyFor, flipped), DecryptionError);
  }
});

test("unknown versions and kinds, missing keys and short payloads raise typed errors", async () => {
  const vector = vectors.payloads[2]!;
  const place = placeOf(vector);
  const readKey = fromHex(vector.read_key);
  const payload = fromBase64Url(vector.payload);

  const missing = await decryptPayload(place, () => undefined, payload).catch((error: unknown) => error);
  assert.ok(missing instanceof MissingKeyError);
  assert.equal(missing.epoch, vector.key_epoch);
  assert.equal(missing.index, vector.index);

  for (const version of [0, 3, 255]) {
    const unknown = new Uint8Array(payload);
    unknown[0] = version;
    await assert.rejects(decryptPayload(place, () => readKey, unknown), { name: "UnsupportedVersionError", format: "payload", version });
  }
  await assert.rejects(decryptPayload(place, () => readKey, new Uint8Array(0)), DecryptionError);
  await assert.rejects(decryptPayload(place, () => readKey, payload.slice(0, 20)), DecryptionError);

  // Authentic plaintexts of an unknown kind, of the JSON kind but not JSON, and with no kind.
  const unknownKind = await sealRaw(place, readKey, Uint8Array.of(9, 1, 2));
  await assert.rejects(decryptPayload(place, () => readKey, unknownKind), { name: "UnsupportedVersionError", format: "payload kind" });
  const notJson = await sealRaw(place, readKey, Uint8Array.of(2, ...utf8("{nope")));
  await assert.rejects(decryptPayload(place, () => readKey, notJson), DecryptionError);
  const empty = await sealRaw(place, readKey, new Uint8Array(0));
  await assert.rejects(decryptPayload(place, () => readKey, empty), DecryptionError);
});

test("a write id travels inside the encrypted payload (kind 3), around a bytes or JSON body", async () => {
  const vector = vectors.payloads[0]!;
  const place = placeOf(vector);
  const readKey = fromHex(vector.read_key);
  const writeId = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  for (const content of [{ kind: "json", value: { n: 1 } }, { kind: "bytes", bytes: Uint8Array.of(7, 8) }] as EntryContent[]) {
    const payload = await encryptPayload(place, 0, readKey, content, writeId);
    const opened = await decryptPayload(place, () => readKey, payload);
    assert.deepEqual(opened.content, content);
    assert.deepEqual(opened.writeId, writeId);
  }
  assert.equal((await decryptPayload(place, () => readKey, fromBase64Url(vector.payload))).writeId, undefined);
  await assert.rejects(encryptPayload(place, 0, readKey, { kind: "json", value: 1 }, new Uint8Array(15)), { name: "InvalidInputError" });
  // Nested or cut short: refused, not read as something else.
  const nested = await sealRaw(place, readKey, Uint8Array.of(3, ...writeId, 3, ...writeId, 2, ...utf8("1")));
  await assert.rejects(decryptPayload(place, () => readKey, nested), DecryptionError);
  const short = await sealRaw(place, readKey, Uint8Array.of(3, ...writeId));
  await assert.rejects(decryptPayload(place, () => readKey, short), DecryptionError);
});

test("encryption uses a fresh IV every time", async () => {
  const vector = vectors.payloads[0]!;
  const place = placeOf(vector);
  const readKey = fromHex(vector.read_key);
  const first = await encryptPayload(place, 0, readKey, { kind: "json", value: 1 });
  const second = await encryptPayload(place, 0, readKey, { kind: "json", value: 1 });
  assert.notEqual(toHex(first.slice(5, 17)), toHex(second.slice(5, 17)));
});

/** A payload whose plaintext is exactly `plaintext` (kind byte included), encrypted as version 2 at epoch 0. */
async function sealRaw(place: PayloadPlace, readKey: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", await chainKeyBytes(readKey, place.chainId, 0), "AES-GCM", false, ["encrypt"]);
  const iv = new Uint8Array(12);
  const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: additionalData(place, 0) }, key, bytesOf(plaintext)));
  return Uint8Array.from([2, 0, 0, 0, 0, ...iv, ...ciphertext]);
}
