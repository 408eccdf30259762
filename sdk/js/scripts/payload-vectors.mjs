// Writes the SDK's payload test vectors (docs/sdk-format.md), worked through with fixed keys and
// IVs, for other implementations to check themselves against; test/payload.test.ts checks that
// the SDK still produces exactly these bytes. Run with `npm run vectors` (builds first).
//
// - docs/test-vectors/payload-v2.json: payload version 2 (one chain key per chain and epoch), which
//   the SDK writes.
// - docs/test-vectors/payload-v1.json: payload version 1 (a key per entry), which the SDK still
//   reads, and file chunk encryption. Unchanged since version 1 was written; rewritten the same.

import { writeFileSync } from "node:fs";
import { sha256, toBase64Url, toHex, fromHex, utf8 } from "../lib/bytes.js";
import { chainIdOf, genesisOf, importWriteKey } from "../lib/entry.js";
import { additionalData, additionalDataV1, chainKeyBytes, entryKeyV1Bytes, sealPayload, sealPayloadV1 } from "../lib/payload.js";
import { chunkKeyMaterial, encryptChunk } from "../lib/files.js";

const outputV1 = new URL("../../../docs/test-vectors/payload-v1.json", import.meta.url);
const outputV2 = new URL("../../../docs/test-vectors/payload-v2.json", import.meta.url);

const filled = (byte, length) => new Uint8Array(length).fill(byte);
const sequence = (start, length) => Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);

async function chainOf(seedByte) {
  const { publicKey } = await importWriteKey(filled(seedByte, 32));
  const chainId = await chainIdOf(publicKey);
  return { chainId, genesis: await genesisOf(chainId) };
}

const demo = await chainOf(0x01);
const budget = await chainOf(0x07);

// Each case: where the payload goes, under which epoch and key, with which IV and content.
const cases = [
  {
    zone: "demo",
    chain: demo,
    index: 0,
    prev: demo.genesis,
    epoch: 0,
    readKey: filled(0x11, 32),
    iv: sequence(0, 12),
    content: { kind: "json", value: { expense: 12.5, note: "coffee" } },
  },
  {
    zone: "demo",
    chain: demo,
    index: 1,
    prev: fromHex("498537667365de2b84e646bcbf2d91d0ac0ad88425012be8aa2d4628b1d44429"),
    epoch: 0,
    readKey: filled(0x11, 32),
    iv: sequence(12, 12),
    content: { kind: "bytes", bytes: utf8("hello") },
  },
  {
    zone: "demo",
    chain: demo,
    index: 2,
    prev: fromHex("7962803a43dd43e46829d3360e47b4f9b18621600a6a65796ceed7d11e945b30"),
    epoch: 7,
    readKey: filled(0x22, 32),
    iv: sequence(24, 12),
    content: { kind: "bytes", bytes: new Uint8Array(0) },
  },
  {
    zone: "budget-app-2",
    chain: budget,
    index: 5,
    prev: sequence(0xa0, 32),
    epoch: 4294967295,
    readKey: sequence(0x40, 32),
    iv: filled(0xff, 12),
    content: { kind: "json", value: ["💶 unicode", null, true, 3] },
  },
];

const payloadsV1 = [];
const payloadsV2 = [];
for (const c of cases) {
  const place = { zone: c.zone, chainId: c.chain.chainId, index: c.index, prev: c.prev };
  const plaintext =
    c.content.kind === "json" ? new Uint8Array([2, ...utf8(JSON.stringify(c.content.value))]) : new Uint8Array([1, ...c.content.bytes]);
  const inputs = {
    zone: c.zone,
    chain_id: toHex(c.chain.chainId),
    index: c.index,
    prev: toHex(c.prev),
    key_epoch: c.epoch,
    read_key: toHex(c.readKey),
    iv: toHex(c.iv),
    content: c.content.kind === "json" ? { kind: "json", value: c.content.value } : { kind: "bytes", hex: toHex(c.content.bytes) },
    plaintext: toHex(plaintext),
  };
  const v1 = await sealPayloadV1(place, c.epoch, c.readKey, c.content, c.iv);
  payloadsV1.push({
    ...inputs,
    entry_key: toHex(await entryKeyV1Bytes(place, c.readKey)),
    additional_data: toHex(additionalDataV1(place, c.epoch)),
    payload: toBase64Url(v1),
    payload_hash: toHex(await sha256(v1)),
  });
  const v2 = await sealPayload(place, c.epoch, c.readKey, c.content, c.iv);
  payloadsV2.push({
    ...inputs,
    chain_key: toHex(await chainKeyBytes(c.readKey, c.chain.chainId, c.epoch)),
    additional_data: toHex(additionalData(place, c.epoch)),
    payload: toBase64Url(v2),
    payload_hash: toHex(await sha256(v2)),
  });
}

const fileKey = sequence(0x80, 32);
const fileId = sequence(0x10, 16);
const fileChunks = [utf8("first chunk, full size!"), utf8("second chunk, full size"), utf8("last")];
const chunks = [];
for (const [index, plaintext] of fileChunks.entries()) {
  const material = await chunkKeyMaterial(fileKey, fileId, index, fileChunks.length);
  const ciphertext = await encryptChunk(fileKey, fileId, index, fileChunks.length, plaintext);
  chunks.push({
    index,
    count: fileChunks.length,
    plaintext: toHex(plaintext),
    key: toHex(material.key),
    nonce: toHex(material.nonce),
    ciphertext: toHex(ciphertext),
    hash: toHex(await sha256(ciphertext)),
  });
}

const vectorsV1 = {
  format: "blindstore SDK payload v1 and file chunk v1 (docs/sdk-format.md)",
  notes:
    "Byte strings are lowercase hex, except payload (base64url, as an entry carries it). " +
    "entry_key and additional_data are intermediate values; an implementation must reproduce payload from the inputs " +
    "(zone, chain_id, index, prev, key_epoch, read_key, iv, plaintext) and decrypt it back. " +
    "File chunks: file_key and file_id are the file's; each chunk is chunk index of count.",
  payloads: payloadsV1,
  file: { file_key: toHex(fileKey), file_id: toHex(fileId), chunk_size: 23, size: 50, chunks },
};

const vectorsV2 = {
  format: "blindstore SDK payload v2 (docs/sdk-format.md)",
  notes:
    "Byte strings are lowercase hex, except payload (base64url, as an entry carries it). " +
    "chain_key (one per chain and key epoch) and additional_data are intermediate values; an implementation must " +
    "reproduce payload from the inputs (zone, chain_id, index, prev, key_epoch, read_key, iv, plaintext) and decrypt it back. " +
    "The inputs are those of payload-v1.json (docs/test-vectors).",
  payloads: payloadsV2,
};

for (const [output, vectors] of [
  [outputV1, vectorsV1],
  [outputV2, vectorsV2],
]) {
  writeFileSync(output, JSON.stringify(vectors, null, 2) + "\n");
  console.log(`wrote ${output.pathname}`);
}
