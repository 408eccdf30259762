/**
 * Payload and file chunk encryption against docs/test-vectors/payload-v1.json (written by
 * scripts/payload-vectors.mjs), and the typed errors of every way decryption can fail.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { bytesOf, fromBase64Url, fromHex, sha256, toHex, utf8 } from "../dist/bytes.js";
import { DecryptionError, MissingKeyError } from "../dist/errors.js";
import { chunkKeyMaterial, decryptChunk, encryptChunk } from "../dist/files.js";
import { type EntryContent, type PayloadPlace, additionalData, decryptPayload, encryptPayload, payloadKeyBytes, sealPayload } from "../dist/payload.js";

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
  entry_key: string;
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

const vectors = JSON.parse(readFileSync(new URL("../../../docs/test-vectors/payload-v1.json", import.meta.url), "utf8")) as {
  payloads: PayloadVector[];
  file: { file_key: string; file_id: string; chunks: ChunkVector[] };
};

function placeOf(vector: PayloadVector): PayloadPlace {
  return { zone: vector.zone, chainId: fromHex(vector.chain_id), index: vector.index, prev: fromHex(vector.prev) };
}

function contentOf(vector: PayloadVector): EntryContent {
  return vector.content.kind === "json" ? vector.content : { kind: "bytes", bytes: fromHex(vector.content.hex) };
}

test("the SDK reproduces every payload vector from its inputs and decrypts it back", async () => {
  assert.ok(vectors.payloads.length >= 4);
  for (const vector of vectors.payloads) {
    const place = placeOf(vector);
    const readKey = fromHex(vector.read_key);
    assert.equal(toHex(await payloadKeyBytes(place, readKey)), vector.entry_key);
    assert.equal(toHex(additionalData(place, vector.key_epoch)), vector.additional_data);
    const payload = await sealPayload(place, vector.key_epoch, readKey, contentOf(vector), fromHex(vector.iv));
    assert.equal(toHex(payload), toHex(fromBase64Url(vector.payload)), `payload at index ${vector.index}`);
    assert.equal(toHex(await sha256(payload)), vector.payload_hash);
    const opened = await decryptPayload(place, (epoch) => (epoch === vector.key_epoch ? readKey : undefined), payload);
    assert.equal(opened.epoch, vector.key_epoch);
    assert.deepEqual(opened.content, contentOf(vector));
  }
});

test("the SDK reproduces every file chunk vector and decrypts it back", async () => {
  const fileKey = fromHex(vectors.file.file_key);
  const fileId = fromHex(vectors.file.file_id);
  for (const chunk of vectors.file.chunks) {
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
  const fileKey = fromHex(vectors.file.file_key);
  const fileId = fromHex(vectors.file.file_id);
  const chunk = vectors.file.chunks[1]!;
  const ciphertext = fromHex(chunk.ciphertext);
  const otherId = fromHex(vectors.file.file_id.replace(/^../, "ff"));
  for (const [index, count, id] of [
    [0, chunk.count, fileId],
    [chunk.index, chunk.count - 1, fileId],
    [chunk.index, chunk.count + 1, fileId],
    [chunk.index, chunk.count, otherId],
  ] as const) {
    await assert.rejects(decryptChunk(fileKey, id, index, count, ciphertext), DecryptionError);
  }
});

test("a payload decrypts only at its own place and epoch", async () => {
  const vector = vectors.payloads[0]!;
  const place = placeOf(vector);
  const readKey = fromHex(vector.read_key);
  const payload = fromBase64Url(vector.payload);
  const keyFor = () => readKey;
  const elsewhere: PayloadPlace[] = [
    { ...place, zone: "other" },
    { ...place, chainId: fromHex(vectors.payloads[3]!.chain_id) },
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
  const flipped = new Uint8Array(payload);
  flipped[flipped.length - 1]! ^= 1;
  await assert.rejects(decryptPayload(place, keyFor, flipped), DecryptionError);
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

  const version2 = new Uint8Array(payload);
  version2[0] = 2;
  await assert.rejects(decryptPayload(place, () => readKey, version2), { name: "UnsupportedVersionError", format: "payload", version: 2 });
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

/** A payload whose plaintext is exactly `plaintext` (kind byte included), encrypted as v1 at epoch 0. */
async function sealRaw(place: PayloadPlace, readKey: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", await payloadKeyBytes(place, readKey), "AES-GCM", false, ["encrypt"]);
  const iv = new Uint8Array(12);
  const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: additionalData(place, 0) }, key, bytesOf(plaintext)));
  return Uint8Array.from([1, 0, 0, 0, 0, ...iv, ...ciphertext]);
}
