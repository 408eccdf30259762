// Writes docs/test-vectors/payload-v1.json: the SDK's payload encryption and file chunk
// encryption (docs/sdk-format.md) worked through with fixed keys and IVs, for other
// implementations to check themselves against. test/payload.test.ts checks that the SDK still
// produces exactly these bytes. Run with `npm run vectors` (builds first).

import { writeFileSync } from "node:fs";
import { sha256, toBase64Url, toHex, fromHex, utf8 } from "../dist/bytes.js";
import { chainIdOf, genesisOf, importWriteKey } from "../dist/entry.js";
import { additionalData, payloadKeyBytes, sealPayload } from "../dist/payload.js";
import { chunkKeyMaterial, encryptChunk } from "../dist/files.js";

const output = new URL("../../../docs/test-vectors/payload-v1.json", import.meta.url);

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

const payloads = [];
for (const c of cases) {
  const place = { zone: c.zone, chainId: c.chain.chainId, index: c.index, prev: c.prev };
  const payload = await sealPayload(place, c.epoch, c.readKey, c.content, c.iv);
  const plaintext =
    c.content.kind === "json" ? new Uint8Array([2, ...utf8(JSON.stringify(c.content.value))]) : new Uint8Array([1, ...c.content.bytes]);
  payloads.push({
    zone: c.zone,
    chain_id: toHex(c.chain.chainId),
    index: c.index,
    prev: toHex(c.prev),
    key_epoch: c.epoch,
    read_key: toHex(c.readKey),
    iv: toHex(c.iv),
    content: c.content.kind === "json" ? { kind: "json", value: c.content.value } : { kind: "bytes", hex: toHex(c.content.bytes) },
    plaintext: toHex(plaintext),
    entry_key: toHex(await payloadKeyBytes(place, c.readKey)),
    additional_data: toHex(additionalData(place, c.epoch)),
    payload: toBase64Url(payload),
    payload_hash: toHex(await sha256(payload)),
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

const vectors = {
  format: "blindstore SDK payload v1 and file chunk v1 (docs/sdk-format.md)",
  notes:
    "Byte strings are lowercase hex, except payload (base64url, as an entry carries it). " +
    "entry_key and additional_data are intermediate values; an implementation must reproduce payload from the inputs " +
    "(zone, chain_id, index, prev, key_epoch, read_key, iv, plaintext) and decrypt it back. " +
    "File chunks: file_key and file_id are the file's; each chunk is chunk index of count.",
  payloads,
  file: { file_key: toHex(fileKey), file_id: toHex(fileId), chunk_size: 23, size: 50, chunks },
};

writeFileSync(output, JSON.stringify(vectors, null, 2) + "\n");
console.log(`wrote ${output.pathname}`);
