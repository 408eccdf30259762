/**
 * Offline features in Node: reads answered from the verified entry cache when the network fails
 * (and a cached entry the server contradicts caught as a fork), and the outbox against the real
 * server — writes queued while the network is down, sent once and in order when it is back,
 * re-based after another writer's appends, and never duplicated when an answer is lost.
 *
 * Tests here repeat their set-up (a page, a context, a node) on purpose: each reads, and
 * fails, on its own.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  Blindstore,
  ChainKeys,
  type Entry,
  type FetchLike,
  ForkError,
  MemoryEntryStore,
  HttpError,
  MemoryOutboxStore,
  NetworkError,
  type OutboxEvent,
} from "../lib/index.js";
import { FakeServer } from "./support/fake-server.js";
import { type RunningNode, startNode, waitFor, zoneCreate } from "./support/node.js";

let node: RunningNode;

before(async () => {
  node = await startNode();
});

after(async () => {
  await node?.stop();
});

/** A fetch that fails like a lost network while `down`, and counts the appends that reach the server. */
function flakyNetwork(base: FetchLike = fetch) {
  const network = {
    down: false,
    appends: 0,
    /** Appends whose answer is thrown away after the server applied them. */
    dropAnswers: 0,
    /** Runs (once) before the next append reaches the server: another writer getting in first. */
    beforeAppend: undefined as (() => Promise<void>) | undefined,
    /** Appends answered, without reaching the server, with the 400 a server gives an entry it will never take. */
    refuseAppends: 0,
    fetch: (async (input: string, init?: RequestInit) => {
      if (network.down) {
        throw new TypeError("fetch failed (network down)");
      }
      const isAppend = init?.method === "POST" && input.endsWith("/entries");
      if (isAppend && network.refuseAppends > 0) {
        network.refuseAppends -= 1;
        const body = { error: { code: "bad_request", message: "entry refused (test)" } };
        return new Response(JSON.stringify(body), { status: 400, headers: { "content-type": "application/json" } });
      }
      if (isAppend) {
        network.appends += 1;
        const first = network.beforeAppend;
        network.beforeAppend = undefined;
        await first?.();
      }
      const response = await base(input, init);
      if (isAppend && network.dropAnswers > 0) {
        network.dropAnswers -= 1;
        await response.body?.cancel();
        throw new TypeError("fetch failed (connection reset before the answer)");
      }
      return response;
    }) as FetchLike,
  };
  return network;
}

const values = (entries: Entry[]) => entries.map((entry) => (entry.content.kind === "json" ? entry.content.value : entry.content.bytes));

async function readAll(keys: ChainKeys): Promise<Entry[]> {
  const reader = new Blindstore({ url: node.url, zone: "demo" }).openChain(keys);
  const entries: Entry[] = [];
  for await (const entry of reader.entries()) {
    entries.push(entry);
  }
  return entries;
}

test("reads answer from the entry cache when the network fails, and only with entries verified before", async () => {
  const network = flakyNetwork();
  const entryStore = new MemoryEntryStore();
  const store = new Blindstore({ url: node.url, zone: "demo", fetch: network.fetch, entryStore });
  const chain = await store.createChain();
  for (let n = 0; n < 6; n++) {
    await chain.appendJson({ n });
  }
  const reader = new Blindstore({ url: node.url, zone: "demo", fetch: network.fetch, entryStore: new MemoryEntryStore() }).openChain(
    await ChainKeys.fromJSON(JSON.parse(JSON.stringify(chain.keys.forReader()))),
  );
  assert.deepEqual(values(await reader.readRange(0, 4)), [{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]);
  network.down = true;
  assert.deepEqual(values(await reader.readFirst(2)), [{ n: 0 }, { n: 1 }]);
  assert.deepEqual(values(await reader.readLast(2)), [{ n: 2 }, { n: 3 }], "the newest entries it verified");
  assert.deepEqual(values(await reader.readRange(2, 10)), [{ n: 2 }, { n: 3 }]);
  const all: unknown[] = [];
  for await (const entry of reader.entries()) {
    all.push(entry.content.kind === "json" ? entry.content.value : undefined);
  }
  assert.equal(all.length, 4);
  await assert.rejects(reader.readRange(4, 2), NetworkError, "entries never verified are not made up");
  await assert.rejects(reader.readLast(1, { noCache: true }), NetworkError);
  // The writer cached its own appends.
  assert.deepEqual(values(await chain.readLast(1)), [{ n: 5 }]);
  network.down = false;
  assert.deepEqual(values(await reader.readLast(2)), [{ n: 4 }, { n: 5 }]);
});

test("a cached entry that the server later contradicts is a fork, even with no remembered head", async () => {
  const server = new FakeServer();
  const serving = { current: server };
  const fetchFake: FetchLike = (input, init) => serving.current.fetch(input, init);
  const chain = await new Blindstore({ url: "http://blindstore.test", zone: "demo", fetch: fetchFake }).createChain();
  for (let n = 0; n < 5; n++) {
    await chain.appendJson({ n });
  }
  const entryStore = new MemoryEntryStore();
  const readKeys = new Map([[0, chain.keys.readKey(0)!]]);
  await new Blindstore({ url: "http://blindstore.test", zone: "demo", fetch: fetchFake, entryStore }).openReadOnly({ chainId: chain.chainId, readKeys }).readRange(0, 3);
  // Another branch from entry 2 on, signed with the same key.
  const forked = server.fork();
  forked.chains.get(chain.chainId)!.entries.splice(2);
  const other = new Blindstore({ url: "http://blindstore.test", zone: "demo", fetch: forked.fetch }).openChain(chain.keys);
  for (let n = 0; n < 3; n++) {
    await other.appendJson({ branch: n });
  }
  serving.current = forked;
  // A new client (its remembered heads lost, say) that shares the cache.
  const reader = new Blindstore({ url: "http://blindstore.test", zone: "demo", fetch: fetchFake, entryStore }).openReadOnly({ chainId: chain.chainId, readKeys });
  await assert.rejects(reader.readRange(0, 5), { name: "ForkError", index: 2 });
  await assert.rejects(reader.readLast(4), ForkError);
  const unshared = new Blindstore({ url: "http://blindstore.test", zone: "demo", fetch: fetchFake }).openReadOnly({ chainId: chain.chainId, readKeys });
  assert.equal((await unshared.readRange(0, 5)).length, 5, "negative control: without the cache the branch is new to it");
});

test("outbox: three writes queued while the network is down are sent once, in order, when it is back", async () => {
  const network = flakyNetwork();
  const store = new Blindstore({ url: node.url, zone: "demo", fetch: network.fetch, outboxMinRetryMs: 20, outboxMaxRetryMs: 100 });
  const events: OutboxEvent[] = [];
  store.outbox.onChange((event) => events.push(event));
  const chain = await store.createChain();
  network.down = true;
  const writes = [0, 1, 2].map((n) => chain.enqueueJson({ n }));
  await Promise.all(writes.map((write) => write.queued));
  assert.equal((await store.outbox.pending()).length, 3);
  assert.deepEqual((await store.outbox.pending()).map((write) => write.id), writes.map((write) => write.id), "in order");
  await waitFor(() => events.some((event) => event.type === "retrying"), 10_000, "a retry");
  assert.equal(network.appends, 0, "nothing reached the server");
  network.down = false;
  store.outbox.flush();
  const results = await Promise.all(writes.map((write) => write.durable));
  assert.deepEqual(results.map((result) => result.index), [0, 1, 2]);
  assert.equal((await store.outbox.pending()).length, 0);
  const entries = await readAll(chain.keys);
  assert.deepEqual(values(entries), [{ n: 0 }, { n: 1 }, { n: 2 }]);
  assert.deepEqual(entries.map((entry) => entry.writeId), writes.map((write) => write.id), "each entry carries its write id");
  assert.equal(events.filter((event) => event.type === "sent").length, 3);
});

test("outbox: writes queued while another writer appended are re-based after its entries, none lost or doubled", async () => {
  const network = flakyNetwork();
  const store = new Blindstore({ url: node.url, zone: "demo", fetch: network.fetch, outboxMinRetryMs: 20, outboxMaxRetryMs: 100 });
  const chain = await store.createChain();
  await chain.appendJson({ from: "a", n: 0 });
  network.down = true;
  const writes = [1, 2].map((n) => chain.enqueueJson({ from: "a", n }));
  await Promise.all(writes.map((write) => write.queued));
  // The other writer (another device with the same keys) moves the chain on meanwhile.
  const otherDevice = new Blindstore({ url: node.url, zone: "demo" }).openChain(chain.keys);
  await otherDevice.appendJson({ from: "b", n: 0 });
  await otherDevice.appendJson({ from: "b", n: 1 });
  network.down = false;
  store.outbox.flush();
  const results = await Promise.all(writes.map((write) => write.durable));
  assert.deepEqual(results.map((result) => result.index), [3, 4]);
  assert.deepEqual(values(await readAll(chain.keys)), [
    { from: "a", n: 0 },
    { from: "b", n: 0 },
    { from: "b", n: 1 },
    { from: "a", n: 1 },
    { from: "a", n: 2 },
  ]);
});

test("outbox: an append whose answer is lost after the server applied it is found, not sent again", async () => {
  const network = flakyNetwork();
  const store = new Blindstore({ url: node.url, zone: "demo", fetch: network.fetch, outboxMinRetryMs: 20, outboxMaxRetryMs: 100, outboxStore: new MemoryOutboxStore() });
  const chain = await store.createChain();
  network.dropAnswers = 1;
  const first = chain.enqueueJson({ n: 0 });
  const result = await first.durable;
  assert.equal(result.index, 0);
  assert.equal(network.appends, 1, "the lost append was not repeated");
  const second = await chain.enqueueJson({ n: 1 }).durable;
  assert.equal(second.index, 1);
  const entries = await readAll(chain.keys);
  assert.deepEqual(values(entries), [{ n: 0 }, { n: 1 }]);
  assert.equal(entries[0]!.writeId, first.id);
  assert.equal(network.appends, 2);
});

test("outbox: a write re-sent after a conflict is looked for past entries under a read key this device lacks", async () => {
  const network = flakyNetwork();
  const store = new Blindstore({ url: node.url, zone: "demo", fetch: network.fetch, outboxMinRetryMs: 20, outboxMaxRetryMs: 100, outboxStore: new MemoryOutboxStore() });
  const chain = await store.createChain();
  await chain.appendJson({ n: 0 });
  // Just before the outbox's first send (at index 1), another device rotates the read key and
  // takes index 1 with an entry under the new key, which this device lacks. After the conflict,
  // the outbox looks for its write from index 1 on: it must pass over that entry, not give up.
  const other = new Blindstore({ url: node.url, zone: "demo" }).openChain(chain.keys);
  other.rotateReadKey();
  network.beforeAppend = async () => {
    await other.appendJson({ from: "other" });
  };
  const result = await chain.enqueueJson({ n: 2 }).durable;
  assert.equal(result.index, 2);
  assert.deepEqual(values(await readAll(other.keys)), [{ n: 0 }, { from: "other" }, { n: 2 }]);
});

test("outbox: a write the server refuses for good is kept with its reason, through a reload, until dropped", async () => {
  const zone = `refusing-${process.pid}`;
  await zoneCreate(node, zone);
  const network = flakyNetwork();
  const outboxStore = new MemoryOutboxStore();
  const options = { url: node.url, zone, fetch: network.fetch, outboxStore, outboxMinRetryMs: 20, outboxMaxRetryMs: 100 };
  const store = new Blindstore(options);
  const chain = await store.createChain();
  await chain.appendJson({ n: 0 });
  network.down = true;
  const write = chain.enqueueJson({ n: 1, note: "typed while offline" });
  await write.queued;
  // The zone is deleted while the write waits: the server will never take it.
  const token = readFileSync(join(node.dataDir, "admin-token"), "utf8").trim();
  const deleted = await fetch(`${node.url}/v1/admin/zones/${zone}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
  assert.equal(deleted.status, 200, await deleted.text());
  network.down = false;
  store.outbox.flush();
  await assert.rejects(write.durable, (error: unknown) => error instanceof HttpError && error.status === 404);
  assert.deepEqual(await store.outbox.pending(), [], "not waiting: it is not sent again unasked");
  const [refused] = await store.outbox.refused();
  assert.equal(refused?.id, write.id);
  assert.equal(refused?.reason.code, "unknown_zone");
  assert.deepEqual(refused?.content, { kind: "json", value: { n: 1, note: "typed while offline" } });
  store.close();

  // A reload: the write is still there, with what it says and why it was refused.
  const again = new Blindstore(options);
  again.openChain(chain.keys);
  const kept = await again.outbox.refused();
  assert.deepEqual(kept.map((w) => [w.id, w.reason.code, w.content]), [[write.id, "unknown_zone", { kind: "json", value: { n: 1, note: "typed while offline" } }]]);
  // Retried, the server refuses it again: still kept.
  const failed = new Promise<OutboxEvent>((resolve) => again.outbox.onChange((event) => event.type === "failed" && resolve(event)));
  assert.equal(await again.outbox.retry(), 1);
  assert.equal((await failed).type, "failed");
  assert.equal((await again.outbox.refused()).length, 1);
  // Dropped: gone for good.
  assert.equal(await again.outbox.drop(write.id), true);
  assert.deepEqual(await again.outbox.refused(), []);
  assert.equal(await again.outbox.drop(write.id), false);
  again.close();
});

test("outbox: a refused write retried is sent once, after the writes that went meanwhile, when its chain is open", async () => {
  const network = flakyNetwork();
  const outboxStore = new MemoryOutboxStore();
  const options = { url: node.url, zone: "demo", fetch: network.fetch, outboxStore, outboxMinRetryMs: 20, outboxMaxRetryMs: 100 };
  const store = new Blindstore(options);
  const events: OutboxEvent[] = [];
  store.outbox.onChange((event) => events.push(event));
  const chain = await store.createChain();
  network.refuseAppends = 1;
  const refused = chain.enqueueJson({ n: 1 });
  await assert.rejects(refused.durable, (error: unknown) => error instanceof HttpError && error.status === 400 && error.code === "bad_request");
  assert.deepEqual((await store.outbox.refused()).map((write) => [write.id, write.reason.code]), [[refused.id, "bad_request"]]);
  // Later writes are not held up by it.
  assert.equal((await chain.enqueueJson({ n: 2 }).durable).index, 0);
  assert.equal(events.filter((e) => e.type === "failed").length, 1);
  store.close();

  // The next page retries before it opens the chain: queued again, sent once the chain is open.
  const later = new Blindstore(options);
  assert.equal(await later.outbox.retry("no-such-write"), 0);
  assert.equal(await later.outbox.retry(), 1);
  const appends = network.appends;
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(network.appends, appends, "not sent before its chain is open");
  assert.deepEqual((await later.outbox.pending()).map((write) => write.id), [refused.id]);
  assert.deepEqual(await later.outbox.refused(), []);
  const sent = new Promise<OutboxEvent>((resolve) => later.outbox.onChange((event) => event.type === "sent" && event.id === refused.id && resolve(event)));
  later.openChain(chain.keys);
  const event = await sent;
  assert.equal(event.type === "sent" && event.result.index, 1);
  assert.deepEqual(await later.outbox.pending(), []);
  const entries = await readAll(chain.keys);
  assert.deepEqual(values(entries), [{ n: 2 }, { n: 1 }]);
  assert.equal(entries[1]!.writeId, refused.id);
  assert.equal(network.appends, appends + 1, "sent once");
  later.close();
});

test("outbox: a refused write retried or dropped in one tab is reported in the origin's other tabs", async () => {
  const network = flakyNetwork();
  // Tabs of one origin: the same outbox store (IndexedDB in a browser) and channel name. (Node
  // has no Web Locks, so only one tab at a time here holds the chain open with its write key.)
  const outboxStore = new MemoryOutboxStore();
  const options = { url: node.url, zone: "demo", fetch: network.fetch, outboxStore, outboxMinRetryMs: 20, outboxMaxRetryMs: 100 };
  const writer = new Blindstore(options);
  const chain = await writer.createChain();
  network.refuseAppends = 1;
  const write = chain.enqueueJson({ n: 1 });
  await assert.rejects(write.durable, (error: unknown) => error instanceof HttpError && error.status === 400);
  writer.close();
  const open = new Blindstore(options);
  const handle = open.openChain(chain.keys);
  const heard: OutboxEvent[] = [];
  open.outbox.onChange((event) => heard.push(event));
  const until = async (what: string, done: () => boolean | Promise<boolean>) => {
    for (let tries = 0; !(await done()); tries += 1) {
      assert.ok(tries < 200, `${what}: not within 10 s (heard ${JSON.stringify(heard.map((e) => e.type))})`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  // Retried in a tab that has not opened the chain: the tab that has hears it, and sends it.
  const other = new Blindstore(options);
  assert.deepEqual((await other.outbox.refused()).map((w) => w.id), [write.id]);
  const own: OutboxEvent[] = [];
  other.outbox.onChange((event) => own.push(event));
  assert.equal(await other.outbox.retry(write.id), 1);
  await until("the retried write sent by the tab with the chain open", () => heard.some((e) => e.type === "sent" && e.id === write.id));
  assert.ok(heard.some((e) => e.type === "queued" && e.id === write.id));
  const entries = await readAll(chain.keys);
  assert.deepEqual(entries.map((entry) => entry.writeId), [write.id]);
  assert.equal(network.appends, 1, "sent once");

  // Refused again (another write), then dropped in the other tab: reported there and here.
  network.refuseAppends = 1;
  const second = handle.enqueueJson({ n: 2 });
  await assert.rejects(second.durable, (error: unknown) => error instanceof HttpError && error.status === 400);
  assert.equal(await other.outbox.drop(second.id), true);
  assert.ok(own.some((e) => e.type === "dropped" && e.id === second.id && e.chainId === chain.chainId && e.pending === 0));
  await until("the drop reported in the tab with the chain open", () => heard.some((e) => e.type === "dropped" && e.id === second.id));
  assert.deepEqual(await open.outbox.refused(), []);
  open.close();
  other.close();
});

test("a read answered before this client's own append landed is older, not rolled back", async () => {
  // Reads of entries can be held on their way back, after the server made the answer.
  let hold: { answered: () => void; release: Promise<void> } | undefined;
  const held: FetchLike = (async (input: string, init?: RequestInit) => {
    const response = await fetch(input, init);
    const gate = (init?.method ?? "GET") === "GET" && input.includes("/entries?") ? hold : undefined;
    if (gate !== undefined) {
      hold = undefined;
      gate.answered();
      await gate.release;
    }
    return response;
  }) as FetchLike;
  const store = new Blindstore({ url: node.url, zone: "demo", fetch: held });
  const chain = await store.createChain();
  for (let n = 0; n < 5; n++) await chain.appendJson({ n });
  let release!: () => void;
  const answered = new Promise<void>((resolve) => (hold = { answered: resolve, release: new Promise<void>((done) => (release = done)) }));
  const reading = chain.readLast(2);
  await answered; // the server said: 5 entries
  await chain.appendJson({ n: 5 }); // this client now remembers 6
  release();
  assert.deepEqual(values(await reading), [{ n: 3 }, { n: 4 }], "the chain as it was when the read was answered");
  assert.equal((await chain.head()).length, 6);
  store.close();
});
