/**
 * The SDK against the real server: one node started from the built binary on port 0, used by
 * every test here, stopped by its pid at the end.
 *
 * Tests here repeat their set-up (a page, a context, a node) on purpose: each reads, and
 * fails, on its own.
 */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import {
  AbortedError,
  Blindstore,
  ChainKeys,
  ConflictError,
  type Entry,
  type FetchLike,
  MissingKeyError,
  ReadOnlyError,
  fileManifestOf,
} from "../lib/index.js";
import { type RunningNode, startNode, waitFor } from "./support/node.js";

let node: RunningNode;

before(async () => {
  node = await startNode();
});

after(async () => {
  await node?.stop();
});

function client(options: { fetch?: FetchLike } = {}): Blindstore {
  return new Blindstore({ url: node.url, zone: "demo", ...options });
}

/** A stream that ends after its first `limit` bytes, as a connection that breaks. */
function truncated(body: ReadableStream<Uint8Array>, limit: number): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let sent = 0;
  return new ReadableStream({
    async pull(controller) {
      const { value, done } = sent < limit ? await reader.read() : { value: undefined, done: true };
      if (done || value === undefined) {
        controller.close();
        await reader.cancel();
        return;
      }
      const part = value.subarray(0, limit - sent);
      sent += part.length;
      controller.enqueue(part);
    },
    async cancel() {
      await reader.cancel();
    },
  });
}

const values = (entries: Entry[]) => entries.map((entry) => (entry.content.kind === "json" ? entry.content.value : entry.content.bytes));

test("create a chain, append 20 JSON entries, read first, last, a range and all of it", async () => {
  const chain = await client().createChain();
  for (let n = 0; n < 20; n++) {
    const result = await chain.appendJson({ n, note: `expense ${n}` });
    assert.equal(result.index, n);
    assert.equal(result.length, n + 1);
  }
  // A fresh client that knows only the keys reads it back.
  const reader = client().openChain(await ChainKeys.fromJSON(JSON.parse(JSON.stringify(chain.keys))));
  assert.deepEqual(await reader.head(), { length: 20, head: (await reader.readLast(1))[0]!.entryHash });
  assert.deepEqual(values(await reader.readFirst(3)).map((v) => (v as { n: number }).n), [0, 1, 2]);
  assert.deepEqual(values(await reader.readLast(4)).map((v) => (v as { n: number }).n), [16, 17, 18, 19]);
  assert.deepEqual(values(await reader.readRange(7, 5)).map((v) => (v as { n: number }).n), [7, 8, 9, 10, 11]);
  assert.deepEqual((await reader.readRange(18, 10)).map((e) => e.index), [18, 19]);
  const all: Entry[] = [];
  for await (const entry of reader.entries()) {
    all.push(entry);
  }
  assert.deepEqual(all.map((e) => e.index), Array.from({ length: 20 }, (_, n) => n));
  assert.deepEqual(all[5]!.content, { kind: "json", value: { n: 5, note: "expense 5" } });

  // What the server stores is ciphertext: the plaintext appears nowhere in its answer.
  const raw = await (await fetch(`${node.url}/v1/zones/demo/chains/${chain.chainId}/entries?from=0&limit=20`)).json() as { entries: { payload: string }[] };
  for (const entry of raw.entries) {
    assert.ok(!Buffer.from(entry.payload, "base64url").toString("latin1").includes("expense"));
  }
});

test("bytes round-trip, and an empty chain reads as empty", async () => {
  const chain = await client().createChain();
  assert.deepEqual(await chain.readLast(5), []);
  assert.deepEqual(await chain.readFirst(5), []);
  assert.equal((await chain.head()).length, 0);
  const bytes = new Uint8Array(randomBytes(1000));
  await chain.appendBytes(bytes);
  assert.deepEqual((await chain.readFirst(1))[0]!.content, { kind: "bytes", bytes });
});

test("follow live while appending: every entry once, in order", async () => {
  const writer = await client().createChain();
  await writer.appendJson({ n: 0 });
  const reader = client().openChain(writer.keys.forReader());
  const received: Entry[] = [];
  let failure: unknown;
  const subscription = reader.follow({
    from: 0,
    onEntry: (entry) => {
      received.push(entry);
    },
    onError: (error) => {
      failure = error;
    },
  });
  try {
    for (let n = 1; n < 15; n++) {
      await writer.appendJson({ n });
      // Let some appends land while the stream is idle, others back to back.
      if (n % 5 === 0) {
        await waitFor(() => received.length === n + 1 || failure !== undefined, 10_000, `entry ${n}`);
      }
    }
    await waitFor(() => received.length >= 15 || failure !== undefined, 10_000, "all 15 entries");
  } finally {
    subscription.close();
    await subscription.closed;
  }
  assert.equal(failure, undefined);
  assert.deepEqual(received.map((e) => e.index), Array.from({ length: 15 }, (_, n) => n));
  assert.deepEqual(values(received).map((v) => (v as { n: number }).n), Array.from({ length: 15 }, (_, n) => n));
});

test("following resumes after the stream breaks, from the entry after the last one verified", async () => {
  const writer = await client().createChain();
  for (let n = 0; n < 6; n++) {
    await writer.appendJson({ n });
  }
  const received: Entry[] = [];
  const connections: { from: string | null; received: number }[] = [];
  // The first two streams break after 700 bytes: about one entry and a half.
  const breaking: FetchLike = async (input, init) => {
    const response = await fetch(input, init);
    if (!input.includes("/events")) {
      return response;
    }
    connections.push({ from: new URL(input).searchParams.get("from"), received: received.length });
    return connections.length > 2 ? response : new Response(truncated(response.body!, 700), { status: response.status, headers: response.headers });
  };
  let failure: unknown;
  const subscription = client({ fetch: breaking })
    .openChain(writer.keys.forReader())
    .follow({ onEntry: (entry) => void received.push(entry), onError: (error) => (failure = error) });
  try {
    await waitFor(() => received.length >= 6 || failure !== undefined, 15_000, "the first six entries");
    await writer.appendJson({ n: 6 });
    await waitFor(() => received.length >= 7 || failure !== undefined, 15_000, "the live entry");
  } finally {
    subscription.close();
    await subscription.closed;
  }
  assert.equal(failure, undefined);
  assert.deepEqual(received.map((e) => e.index), [0, 1, 2, 3, 4, 5, 6]);
  assert.ok(connections.length >= 3, `${connections.length} connections`);
  for (const connection of connections) {
    assert.equal(connection.from, String(connection.received), "each connection resumes right after what was verified");
  }
});

test("an unknown chain is a 404 HttpError; an oversized entry is refused before sending", async () => {
  const keys = await ChainKeys.generate();
  const missing = client().openReadOnly({ chainId: keys.chainId, readKeys: new Map() });
  await assert.rejects(missing.readFirst(1), { name: "HttpError", status: 404, code: "unknown_chain" });
  const chain = await client().createChain();
  await assert.rejects(chain.appendBytes(new Uint8Array(64 * 1024)), { name: "InvalidInputError" });
  assert.equal((await chain.appendBytes(new Uint8Array(64 * 1024 - 34))).index, 0, "the largest content that fits");
});

test("two writers on one chain: the loser gets a ConflictError with the server's length and head, then retries", async () => {
  const first = await client().createChain();
  await first.appendJson({ by: "first" });
  const second = client().openChain(first.keys);
  await second.appendJson({ by: "second" });
  const conflict = await first.appendJson({ by: "first", late: true }).catch((error: unknown) => error);
  assert.ok(conflict instanceof ConflictError, String(conflict));
  assert.equal(conflict.status, 409);
  assert.equal(conflict.attemptedIndex, 1);
  assert.equal(conflict.length, 2);
  assert.equal(conflict.head, (await second.readLast(1))[0]!.entryHash);

  const result = await first.appendWithRetry(async (head) => {
    const unseen = await first.readRange(1, head.length - 1);
    return { kind: "json", value: { by: "first", after: values(unseen) } };
  });
  assert.equal(result.index, 2);
  assert.deepEqual(values(await second.readLast(1)), [{ by: "first", after: [{ by: "second" }] }]);
});

test("a file of ~3 MiB: upload half, resume in a new client sending only the missing chunks, download equal bytes", async () => {
  const data = new Uint8Array(randomBytes(3 * 1024 * 1024 + 1234));
  const puts: string[] = [];
  const counting: FetchLike = async (input, init) => {
    if (init?.method === "PUT" && input.includes("/chunks/")) {
      puts.push(input.slice(input.lastIndexOf("/") + 1));
    }
    return fetch(input, init);
  };

  // Session 1: prepare, send two chunks, then the page "closes".
  const chain = await client().createChain();
  const upload = await client({ fetch: counting }).prepareUpload(new Blob([data], { type: "application/x-test" }), { name: "big.bin" });
  assert.equal(upload.state.chunks.length, 4);
  let persisted = "";
  const stop = new AbortController();
  await assert.rejects(
    upload.send({
      concurrency: 1,
      signal: stop.signal,
      onState: (state) => {
        persisted = JSON.stringify(state);
        if (state.uploaded.length === 2) stop.abort();
      },
    }),
    AbortedError,
  );
  const saved = JSON.parse(persisted);
  assert.equal(saved.uploaded.length, 2);
  assert.equal(puts.length, 2);

  // Session 2: a new client from the persisted state.
  puts.length = 0;
  const progress: number[] = [];
  const resumed = client({ fetch: counting }).resumeUpload(saved, data);
  await resumed.send({ onProgress: (done, total) => progress.push(done / total) });
  assert.equal(puts.length, 2, "only the two missing chunks were sent");
  assert.ok(puts.every((hash) => !saved.uploaded.includes(hash)));
  assert.ok(resumed.complete);
  assert.deepEqual(progress.at(-1), 1);
  assert.ok(progress[0]! > 0.5 && progress[0]! < 1, `resumed at ${progress[0]}`);
  const committed = await resumed.commit(client().openChain(chain.keys));

  // A reader finds the file in the chain and downloads it.
  const reader = client().openChain(chain.keys.forReader());
  const [entry] = await reader.readLast(1);
  assert.equal(entry!.index, committed.index);
  assert.deepEqual(entry!.chunks, saved.chunks);
  const manifest = fileManifestOf(entry!)!;
  assert.equal(manifest.name, "big.bin");
  assert.equal(manifest.media_type, "application/x-test");
  assert.equal(manifest.size, data.length);
  const downloaded: number[] = [];
  const bytes = await client().downloadFile(manifest, { onProgress: (done) => downloaded.push(done) });
  assert.ok(Buffer.from(bytes).equals(Buffer.from(data)));
  assert.equal(downloaded.at(-1), data.length);
});

test("uploadFile in one go, an empty file, and a download chunk by chunk", async () => {
  const store = client();
  const chain = await store.createChain();
  const data = new Uint8Array(randomBytes(70_000));
  const small = await store.uploadFile(chain, data, { name: "small.bin", chunkSize: 32_768 });
  assert.equal(small.manifest.chunks.length, 3);
  const empty = await store.uploadFile(chain, new Uint8Array(0), { name: "empty.txt", mediaType: "text/plain" });
  assert.deepEqual(empty.manifest.chunks, []);

  const [first, second] = await chain.readFirst(2);
  const parts: Uint8Array[] = [];
  for await (const part of store.fileChunks(fileManifestOf(first!)!)) {
    parts.push(part);
  }
  assert.deepEqual(parts.map((part) => part.length), [32_768, 32_768, 70_000 - 65_536]);
  assert.ok(Buffer.concat(parts).equals(Buffer.from(data)));
  assert.equal((await store.downloadFile(fileManifestOf(second!)!)).length, 0);
  assert.equal(fileManifestOf({ ...first!, content: { kind: "json", value: { note: "not a file" } } }), undefined);
});

test("a read-only handle cannot append, and after a key rotation reads nothing it lacks keys for", async () => {
  const writer = await client().createChain();
  await writer.appendJson({ secret: "old 0" });
  await writer.appendJson({ secret: "old 1" });
  const reader = client().openReadOnly({ chainId: writer.chainId, readKeys: new Map([[0, writer.keys.readKey(0)!]]) });
  assert.equal(reader.writable, false);
  await assert.rejects(reader.appendJson({ forged: true }), ReadOnlyError);
  await assert.rejects(reader.appendWithRetry(() => ({ kind: "json", value: 1 })), ReadOnlyError);
  assert.throws(() => reader.rotateReadKey(), ReadOnlyError);

  const rotated = writer.rotateReadKey();
  assert.equal(rotated.epoch, 1);
  await writer.appendJson({ secret: "new 2" });
  await writer.appendJson({ secret: "new 3" });

  assert.deepEqual(values(await reader.readFirst(2)), [{ secret: "old 0" }, { secret: "old 1" }]);
  await assert.rejects(reader.readLast(2), (error: unknown) => {
    assert.ok(error instanceof MissingKeyError);
    assert.equal(error.epoch, 1);
    assert.equal(error.index, 2);
    return true;
  });
  let followError: unknown;
  const subscription = reader.follow({ from: 2, onEntry: () => assert.fail("no entry is readable"), onError: (error) => (followError = error) });
  const timeout = setTimeout(() => subscription.close(), 10_000);
  await subscription.closed;
  clearTimeout(timeout);
  assert.ok(followError instanceof MissingKeyError, String(followError));

  // A reader given the new key reads on; the writer's own persisted keys carry both epochs.
  const upgraded = client().openChain(writer.keys.forReader());
  assert.deepEqual(values(await upgraded.readLast(2)), [{ secret: "new 2" }, { secret: "new 3" }]);
  assert.deepEqual((await upgraded.readRange(0, 4)).map((e) => e.keyEpoch), [0, 0, 1, 1]);
});

test("entries travel in the binary form, a JSON-only server reads alike, and a tampered binary answer is refused", async () => {
  const chain = await client().createChain();
  for (let n = 0; n < 12; n++) {
    await chain.appendJson({ n });
  }
  const keys = await ChainKeys.fromJSON(JSON.parse(JSON.stringify(chain.keys)));
  const kinds: string[] = [];
  const recording: FetchLike = async (input, init) => {
    const response = await fetch(input, init);
    if (String(input).includes("/entries?")) {
      kinds.push(response.headers.get("content-type") ?? "");
    }
    return response;
  };
  const binary = await client({ fetch: recording }).openChain(keys).readRange(0, 12);
  assert.deepEqual(values(binary).map((v) => (v as { n: number }).n), Array.from({ length: 12 }, (_, n) => n));
  const allAre = (kind: string): boolean => kinds.length > 0 && kinds.every((k) => k === kind);
  assert.ok(allAre("application/vnd.blindstore.entries"), kinds.join());

  kinds.length = 0;
  const jsonOnly: FetchLike = async (input, init) => {
    const headers = { ...(init?.headers as Record<string, string>), accept: "application/json" };
    return recording(input, { ...init, headers });
  };
  const viaJson = await client({ fetch: jsonOnly }).openChain(keys).readRange(0, 12);
  assert.deepEqual(viaJson.map((e) => e.entryHash), binary.map((e) => e.entryHash));
  assert.ok(allAre("application/json"), kinds.join());

  // One payload byte changed in flight: the entry no longer verifies.
  const tampering: FetchLike = async (input, init) => {
    const response = await fetch(input, init);
    if (!String(input).includes("/entries?")) {
      return response;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    bytes[bytes.length - 200] ^= 1;
    return new Response(bytes, { status: 200, headers: response.headers });
  };
  await assert.rejects(client({ fetch: tampering }).openChain(keys).readRange(0, 12), (error: Error) => error.name === "VerificationError");

  // An answer cut short, or with bytes after its last entry, is malformed, never read in part.
  for (const change of [(b: Uint8Array) => b.slice(0, b.length - 1), (b: Uint8Array) => Uint8Array.from([...b, 0])]) {
    const damaging: FetchLike = async (input, init) => {
      const response = await fetch(input, init);
      const bytes = new Uint8Array(await response.arrayBuffer());
      const body = String(input).includes("/entries?") ? change(bytes) : bytes;
      return new Response(body, { status: response.status, headers: response.headers });
    };
    await assert.rejects(
      client({ fetch: damaging }).openChain(keys).readRange(0, 12),
      (error: Error & { kind?: string }) => error.name === "VerificationError" && /binary entries/.test(error.message),
    );
  }
});
