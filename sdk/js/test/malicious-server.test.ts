/**
 * A server that lies: rollbacks, forks (also hidden behind a longer chain), withheld entries,
 * tampered entries, a wrong key, a lying event stream. Each must be caught with its typed error;
 * the same answers pass with `unsafeSkipVerification` (the negative control), which shows that
 * the checks, not the fake, catch them.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Blindstore,
  type Chain,
  ChainKeys,
  ConflictError,
  type Entry,
  ForkError,
  MemoryHeadStore,
  RollbackError,
  VerificationError,
  toBase64Url,
} from "../lib/index.js";
import { FakeServer, flipBase64Url } from "./support/fake-server.js";

const URL_BASE = "http://blindstore.test";

/** A writer's chain of `count` JSON entries on a fake server, and a reader with its own memory. */
async function setup(count = 10) {
  const server = new FakeServer();
  const serving = { current: server };
  const fetch = (input: string, init?: RequestInit) => serving.current.fetch(input, init);
  const writer = new Blindstore({ url: URL_BASE, zone: "demo", fetch });
  const chain = await writer.createChain();
  for (let n = 0; n < count; n++) {
    await chain.appendJson({ n });
  }
  const readKeys = new Map([[0, chain.keys.readKey(0)!]]);
  const heads = new MemoryHeadStore();
  const readerClient = new Blindstore({ url: URL_BASE, zone: "demo", fetch, headStore: heads });
  const reader = readerClient.openReadOnly({ chainId: chain.chainId, readKeys });
  const unsafe = new Blindstore({ url: URL_BASE, zone: "demo", fetch, unsafeSkipVerification: true }).openReadOnly({ chainId: chain.chainId, readKeys });
  return { server, serving, fetch, chain, heads, reader, unsafe, entries: () => server.chains.get(chain.chainId)!.entries };
}

/** Another branch: the history up to `keep` entries, then `extra` different entries by the same key. */
async function branch(server: FakeServer, keys: ChainKeys, keep: number, extra: number): Promise<FakeServer> {
  const other = server.fork();
  other.chains.get(keys.chainId)!.entries.length = keep;
  const writer = new Blindstore({ url: URL_BASE, zone: "demo", fetch: other.fetch }).openChain(keys);
  for (let n = 0; n < extra; n++) {
    await writer.appendJson({ branch: n });
  }
  return other;
}

const values = (entries: Entry[]) => entries.map((entry) => (entry.content.kind === "json" ? entry.content.value : entry.content.bytes));

test("an honest server's entries read back verified, and the reader remembers the head", async () => {
  const { reader, heads, chain, entries } = await setup();
  assert.deepEqual(values(await reader.readFirst(3)), [{ n: 0 }, { n: 1 }, { n: 2 }]);
  assert.deepEqual(values(await reader.readLast(2)), [{ n: 8 }, { n: 9 }]);
  assert.deepEqual(values(await reader.readRange(4, 2)), [{ n: 4 }, { n: 5 }]);
  assert.deepEqual(await reader.readRange(4, 0), []);
  assert.deepEqual(values(await reader.readRange(8, 100)), [{ n: 8 }, { n: 9 }]);
  assert.deepEqual(await reader.readRange(10, 5), []);
  assert.deepEqual(await heads.get("demo", chain.chainId), { length: 10, head: entries()[9]!.entry_hash });
  assert.deepEqual(await reader.head(), { length: 10, head: entries()[9]!.entry_hash });
});

test("a rollback is caught by every read once a longer chain was seen", async () => {
  const { reader, unsafe, entries } = await setup();
  await reader.readLast(1);
  entries().length = 7;
  for (const read of [() => reader.head(), () => reader.readLast(2), () => reader.readFirst(3), () => reader.readRange(8, 5)]) {
    await assert.rejects(read(), (error: unknown) => {
      assert.ok(error instanceof RollbackError);
      assert.equal(error.rememberedLength, 10);
      assert.equal(error.serverLength, 7);
      return true;
    });
  }
  assert.equal((await unsafe.readLast(2)).length, 2, "negative control: unchecked, the rollback passes");
});

test("a fork at the remembered length is caught", async () => {
  const { server, serving, chain, reader, unsafe } = await setup();
  await reader.readLast(1);
  serving.current = await branch(server, chain.keys, 5, 5);
  await assert.rejects(reader.head(), ForkError);
  await assert.rejects(reader.readLast(3), { name: "ForkError", index: 9 });
  await assert.rejects(reader.readRange(0, 10), { name: "ForkError", index: 9 });
  assert.deepEqual(values(await unsafe.readLast(1)), [{ branch: 4 }], "negative control");
});

test("a fork hidden behind a longer chain is found by fetching the entries in between", async () => {
  const { server, serving, chain, reader, unsafe, fetch } = await setup();
  await reader.readLast(1);
  const forked = await branch(server, chain.keys, 5, 10);
  serving.current = forked;
  const requestsBefore = forked.requests.length;
  await assert.rejects(reader.readLast(2), (error: unknown) => {
    assert.ok(error instanceof ForkError);
    assert.equal(error.index, 9);
    assert.equal(error.expected, server.chains.get(chain.chainId)!.entries[9]!.entry_hash);
    return true;
  });
  assert.ok(
    forked.requests.slice(requestsBefore).some((request) => request.includes("from=10")),
    "the gap 10..12 was fetched",
  );
  assert.equal((await unsafe.readLast(2)).length, 2, "negative control");
  // A client that never saw the first branch has nothing to compare with (trust on first use).
  const stranger = new Blindstore({ url: URL_BASE, zone: "demo", fetch }).openReadOnly({
    chainId: chain.chainId,
    readKeys: new Map([[0, chain.keys.readKey(0)!]]),
  });
  assert.equal((await stranger.readLast(2)).length, 2);
});

test("an honest continuation is linked through the gap and remembered", async () => {
  const { chain, reader, heads, entries } = await setup();
  await reader.readFirst(2);
  for (let n = 10; n < 14; n++) {
    await chain.appendJson({ n });
  }
  assert.deepEqual(values(await reader.readLast(1)), [{ n: 13 }]);
  assert.deepEqual(await heads.get("demo", chain.chainId), { length: 14, head: entries()[13]!.entry_hash });
});

test("withheld entries are caught; an answer cut short with `next` is followed", async () => {
  const { server, reader, unsafe } = await setup();
  server.doctorPage = (page, query) => {
    if (query.has("last")) page.entries.pop();
  };
  await assert.rejects(reader.readLast(3), { name: "VerificationError", reason: "withheld" });
  assert.equal((await unsafe.readLast(3)).length, 2, "negative control");

  server.doctorPage = (page) => {
    page.entries.length = Math.min(page.entries.length, 3);
  };
  await assert.rejects(reader.readFirst(10), { reason: "withheld" });

  server.doctorPage = (page) => {
    if (page.entries.length > 3) {
      page.entries.length = 3;
      page.next = page.entries[2]!.index + 1;
    }
  };
  const requestsBefore = server.requests.length;
  assert.deepEqual(values(await reader.readFirst(10)), Array.from({ length: 10 }, (_, n) => ({ n })));
  assert.equal(server.requests.length - requestsBefore, 4, "four pages of at most three");
});

test("tampered, reordered, dropped entries and a false head are refused", async () => {
  const { server, reader, unsafe } = await setup();
  const cases: [string, (entries: { payload: string; signature: string; index: number }[], page: { head: string }) => void, string][] = [
    ["payload", (entries) => (entries[1]!.payload = flipBase64Url(entries[1]!.payload, 20)), "bad_payload_hash"],
    ["signature", (entries) => (entries[1]!.signature = flipBase64Url(entries[1]!.signature, 40)), "bad_signature"],
    ["order", (entries) => entries.reverse(), "bad_index"],
    ["a dropped entry", (entries) => entries.splice(1, 1), "bad_index"],
    ["head", (_, page) => (page.head = "00".repeat(32)), "bad_head"],
  ];
  for (const [what, doctor, reason] of cases) {
    server.doctorPage = (page) => doctor(page.entries, page);
    await assert.rejects(reader.readLast(3), { name: "VerificationError", reason }, what);
  }
  server.doctorPage = (page) => (page.entries[1]!.signature = flipBase64Url(page.entries[1]!.signature, 40));
  assert.equal((await unsafe.readLast(3)).length, 3, "negative control: a forged signature passes unchecked");
});

test("a public key that does not match the chain id is refused", async () => {
  const { server, reader } = await setup(1);
  const other = await ChainKeys.generate();
  const { importWriteKey } = await import("../lib/entry.js");
  server.doctorPublicKey = toBase64Url((await importWriteKey(other.writeKey!)).publicKey);
  await assert.rejects(reader.readFirst(1), { name: "VerificationError", reason: "wrong_key" });
  await assert.rejects(reader.head(), { reason: "wrong_key" });
});

/** Follows `chain` from `from` until `onError` or `expected` entries; returns what happened. */
async function follow(chain: Chain, from: number, expected: number): Promise<{ indexes: number[]; error: unknown }> {
  const indexes: number[] = [];
  let error: unknown;
  const subscription = chain.follow({
    from,
    onEntry: (entry) => {
      indexes.push(entry.index);
      if (indexes.length === expected) subscription.close();
    },
    onError: (cause) => {
      error = cause;
    },
  });
  const timeout = setTimeout(() => subscription.close(), 5000);
  await subscription.closed;
  clearTimeout(timeout);
  return { indexes, error };
}

test("following: an honest stream delivers each entry once, in order", async () => {
  const { reader } = await setup(6);
  assert.deepEqual(await follow(reader, 2, 4), { indexes: [2, 3, 4, 5], error: undefined });
});

test("following: a stream that resumes at the wrong place, repeats or rolls back is refused", async () => {
  const { server, chain, reader } = await setup(8);
  const wire = server.chains.get(chain.chainId)!.entries;
  const event = (id: number, entry = wire[id]!) => `event: entry\nid: ${id}\ndata: ${JSON.stringify(entry)}\n\n`;

  server.doctorEvents = () => event(5) + event(6);
  let outcome = await follow(reader, 3, 10);
  assert.deepEqual(outcome.indexes, []);
  assert.ok(outcome.error instanceof VerificationError && outcome.error.reason === "bad_index", String(outcome.error));

  server.doctorEvents = () => event(3) + event(3);
  outcome = await follow(reader, 3, 10);
  assert.deepEqual(outcome.indexes, [3]);
  assert.equal((outcome.error as VerificationError).reason, "bad_index");

  server.doctorEvents = () => event(3, wire[4]);
  outcome = await follow(reader, 3, 10);
  assert.equal((outcome.error as VerificationError).reason, "bad_index");

  server.doctorEvents = () => `event: entry\nid: 4\ndata: ${JSON.stringify(wire[3])}\n\n`;
  outcome = await follow(reader, 3, 10);
  assert.equal((outcome.error as VerificationError).reason, "bad_index", "an id that is not the entry's index");

  server.doctorEvents = () => event(3, { ...wire[3]!, prev: wire[1]!.entry_hash });
  outcome = await follow(reader, 3, 10);
  assert.equal((outcome.error as VerificationError).reason, "bad_link");

  server.doctorEvents = (from) => `event: unavailable\ndata: ${JSON.stringify({ code: "position_unavailable", from, length: 2 })}\n\n`;
  outcome = await follow(reader, 3, 10);
  assert.ok(outcome.error instanceof RollbackError);
  assert.equal(outcome.error.serverLength, 2);
});

test("following: a silent stream, or one that never answers, is dropped and resumed", async () => {
  const { server, reader } = await setup(3);
  let connections = 0;
  server.stalledEventRequests = 1;
  server.doctorEvents = () => (++connections === 1 ? "" : undefined);
  const indexes: number[] = [];
  let failure: unknown;
  const subscription = reader.follow({
    idleTimeoutMs: 100,
    onEntry: (entry) => {
      indexes.push(entry.index);
      if (indexes.length === 3) subscription.close();
    },
    onError: (error) => (failure = error),
  });
  // The expected path takes about 1.3 s (two idle timeouts and a reconnect); a cap with room for a loaded machine.
  const timeout = setTimeout(() => subscription.close(), 20_000);
  await subscription.closed;
  clearTimeout(timeout);
  assert.equal(failure, undefined);
  assert.deepEqual(indexes, [0, 1, 2]);
  assert.equal(connections, 2);
  assert.equal(server.requests.filter((request) => request.includes("/events")).length, 3);
});

test("an appender that loses the race gets a ConflictError with the server's view, and appendWithRetry recovers", async () => {
  const { chain, fetch, entries } = await setup(3);
  const second = new Blindstore({ url: URL_BASE, zone: "demo", fetch }).openChain(chain.keys);
  await second.appendJson({ from: "second" });
  await assert.rejects(chain.appendJson({ from: "first" }), (error: unknown) => {
    assert.ok(error instanceof ConflictError);
    assert.equal(error.length, 4);
    assert.equal(error.head, entries()[3]!.entry_hash);
    assert.equal(error.attemptedIndex, 3);
    return true;
  });
  // The other writer strikes again while the first attempt is being built.
  const seen: number[] = [];
  const result = await chain.appendWithRetry(async (head, attempt) => {
    seen.push(head.length);
    if (attempt === 1) {
      await second.appendJson({ from: "second", again: true });
    }
    return { kind: "json", value: { from: "first", after: head.length } };
  });
  assert.deepEqual(seen, [4, 5]);
  assert.equal(result.index, 5);
  assert.equal(entries().length, 6);
  await assert.rejects(
    chain.appendWithRetry(async () => {
      await second.appendJson({ spoiler: true });
      return { kind: "json", value: "never" };
    }, { maxAttempts: 2 }),
    ConflictError,
  );
});

test("a writer that has read the other writer's entries appends after them without a conflict", async () => {
  const { chain, fetch, server } = await setup(2);
  const second = new Blindstore({ url: URL_BASE, zone: "demo", fetch }).openChain(chain.keys);
  await second.appendJson({ from: "second" });
  await chain.readLast(1);
  const requestsBefore = server.requests.length;
  assert.equal((await chain.appendJson({ from: "first" })).index, 3);
  assert.equal(server.requests.length - requestsBefore, 1, "one request: the append itself");
});

test("the session token goes out as a bearer token", async () => {
  const server = new FakeServer();
  const client = new Blindstore({ url: URL_BASE, zone: "demo", fetch: server.fetch, sessionToken: async () => "tok-123" });
  await client.createChain();
  assert.equal(server.headers.at(-1)!.get("authorization"), "Bearer tok-123");
});
