/**
 * The single-file browser bundle (dist/blindstore.js) is self-contained and works: it imports
 * nothing, and it reproduces an entry test vector and reads back what it encrypts.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const bundleUrl = new URL("../dist/blindstore.js", import.meta.url);

test("the bundle imports nothing and exposes the API", async () => {
  const source = readFileSync(bundleUrl, "utf8");
  assert.doesNotMatch(source, /^\s*import\s/m, "no import statements left");
  assert.doesNotMatch(source, /\brequire\(/, "no require");
  const sdk = await import(bundleUrl.href);
  for (const name of ["Blindstore", "Chain", "ChainKeys", "FileUpload", "MemoryHeadStore", "IndexedDbHeadStore", "VerificationError", "ForkError", "RollbackError", "Accounts", "Session", "DeviceKeyring", "EscrowError", "InvalidLoginError"]) {
    assert.equal(typeof sdk[name], "function", name);
  }
});

test("the bundle reproduces an entry vector and decrypts what it encrypts", async () => {
  const sdk = await import(bundleUrl.href);
  const vectors = JSON.parse(readFileSync(new URL("../../../docs/test-vectors/entry-v1.json", import.meta.url), "utf8"));
  const chain = vectors.chains[0];
  const entry = chain.entries[1];
  const key = await sdk.importWriteKey(sdk.fromHex(chain.seed));
  const message = sdk.entryMessage({
    zone: chain.zone,
    chainId: sdk.fromHex(chain.chain_id),
    index: entry.index,
    prev: sdk.fromHex(entry.prev),
    payloadHash: sdk.fromHex(entry.payload_hash),
    payloadLength: entry.payload_len,
    chunks: [],
  });
  assert.equal(sdk.toBase64Url(await sdk.signEntry(key, message)), entry.signature);

  const place = { zone: "demo", chainId: sdk.fromHex(chain.chain_id), index: 3, prev: sdk.fromHex(entry.prev) };
  const readKey = new Uint8Array(32).fill(5);
  const payload = await sdk.encryptPayload(place, 0, readKey, { kind: "json", value: { ok: true } });
  assert.deepEqual((await sdk.decryptPayload(place, () => readKey, payload)).content, { kind: "json", value: { ok: true } });
});
