/**
 * The self-contained browser build (dist/browser/) works without a bundler: its modules import
 * only each other, it reproduces an entry test vector and reads back what it encrypts, and
 * OPAQUE's WASM is in a chunk that only a dynamic import reaches.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { bytesOf, externalImports, files, onDemand, staticClosure } from "../scripts/browser-graph.mjs";

const bundleUrl = new URL("../dist/browser/blindstore.js", import.meta.url);
const WASM_MAGIC_BASE64 = "AGFzbQ"; // "\0asm", how the embedded WASM starts

test("the browser build imports only its own files, and OPAQUE only on demand", async () => {
  for (const entry of ["dist/browser/blindstore.js", "dist/browser/reader.js"]) {
    for (const file of staticClosure([entry])) {
      const source = bytesOf(file).toString("utf8");
      assert.doesNotMatch(source, /\brequire\(/, `no require in ${file}`);
      assert.ok(!source.includes(WASM_MAGIC_BASE64), `${file}, loaded with ${entry}, holds no WASM`);
    }
  }
  const withWasm = files.filter((file) => bytesOf(file).toString("utf8").includes(WASM_MAGIC_BASE64));
  assert.equal(withWasm.length, 1, "OPAQUE's WASM is in one file");
  assert.ok(onDemand(staticClosure(["dist/browser/blindstore.js"])).has(withWasm[0]!), "loaded on demand");
  assert.deepEqual(externalImports(), [], "nothing outside the build is imported");

  const sdk = await import(bundleUrl.href);
  for (const name of ["Blindstore", "Chain", "ChainKeys", "FileUpload", "MemoryHeadStore", "IndexedDbHeadStore", "VerificationError", "ForkError", "RollbackError", "Accounts", "Session", "DeviceKeyring", "EscrowError", "InvalidLoginError"]) {
    assert.equal(typeof sdk[name], "function", name);
  }
  const reader = await import(new URL("../dist/browser/reader.js", import.meta.url).href);
  assert.equal(typeof reader.BlindstoreReader, "function");
  assert.equal(reader.Blindstore, undefined, "the reader has no writing client");
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

test("the sizes in the README are the build's (within 5%)", () => {
  // scripts/sizes.mjs --check exits non-zero, naming the measured table, when they are not.
  execFileSync(process.execPath, [fileURLToPath(new URL("../scripts/sizes.mjs", import.meta.url)), "--check"], { stdio: "pipe" });
});
