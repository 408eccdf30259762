/**
 * `chain.fold` against a real node (Node): a reload reads the checkpoint and the tail, not the
 * whole chain; a checkpoint that was changed, belongs to another fold version or chain, or that
 * the chain as served no longer holds, is not trusted; live entries fold on with `add`.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  Blindstore,
  type Chain,
  type Entry,
  type FetchLike,
  type FoldOptions,
  ForkError,
  InvalidInputError,
  MemoryCheckpointStore,
  RollbackError,
  VerificationError,
} from "../lib/index.js";
import { type RunningNode, startNode } from "./support/node.js";

let node: RunningNode;
let chain: Chain;
const ENTRIES = 250;

before(async () => {
  node = await startNode();
  chain = await new Blindstore({ url: node.url, zone: "demo" }).createChain();
  for (let n = 0; n < ENTRIES; n++) await chain.appendJson({ cents: n });
});

after(async () => {
  await node?.stop();
});

/** The sum of every entry's cents: the state a budget would fold. */
const total = (store: MemoryCheckpointStore, version = 1): FoldOptions<{ sum: number; count: number }> => ({
  name: "total",
  version,
  every: 100,
  store,
  initial: () => ({ sum: 0, count: 0 }),
  apply: (state, entry: Entry) => ({ sum: state.sum + ((entry.content as { value: { cents: number } }).value.cents ?? 0), count: state.count + 1 }),
});

/** A client that counts the entries the server sent it. */
function counting(fetchOverride?: FetchLike): { store: Blindstore; read: () => number } {
  let read = 0;
  const fetchImpl: FetchLike = async (input, init) => {
    const answer = await (fetchOverride ?? fetch)(input, init);
    const url = new URL(input);
    if (url.pathname.endsWith("/entries") && (init?.method ?? "GET") === "GET") {
      const from = Number(url.searchParams.get("from"));
      const limit = Number(url.searchParams.get("limit"));
      read += Math.max(0, Math.min(from + limit, lengthNow) - from);
    }
    return answer;
  };
  return { store: new Blindstore({ url: node.url, zone: "demo", fetch: fetchImpl }), read: () => read };
}
let lengthNow = ENTRIES;

const sumTo = (n: number) => (n * (n - 1)) / 2;

test("a reload folds from the checkpoint and reads only the entries after it", async () => {
  const checkpoints = new MemoryCheckpointStore();
  const first = counting();
  const fold = await first.store.openChain(chain.keys).fold(total(checkpoints));
  assert.deepEqual(fold.state, { sum: sumTo(ENTRIES), count: ENTRIES });
  assert.equal(fold.fromCheckpoint, 0);
  assert.equal(first.read(), ENTRIES);
  assert.equal((await checkpoints.get(`demo/${chain.chainId}/total`))?.index, ENTRIES, "a checkpoint was kept");

  for (let n = ENTRIES; n < ENTRIES + 5; n++) await chain.appendJson({ cents: n });
  lengthNow = ENTRIES + 5;
  const again = counting();
  const reloaded = await again.store.openChain(chain.keys).fold(total(checkpoints));
  assert.equal(reloaded.fromCheckpoint, ENTRIES);
  assert.equal(again.read(), 5, "only the tail was read");
  assert.deepEqual(reloaded.state, { sum: sumTo(ENTRIES + 5), count: ENTRIES + 5 });
  assert.equal(reloaded.next, ENTRIES + 5);

  // Live entries fold on, in order; one out of order is refused, one already folded passed over.
  const live: Entry[] = [];
  await chain.appendJson({ cents: 1000 });
  lengthNow += 1;
  for await (const entry of again.store.openChain(chain.keys).entries({ from: ENTRIES + 4 })) live.push(entry);
  assert.equal(reloaded.add(live[0]!), false, "an entry already folded");
  assert.equal(reloaded.add(live[1]!), true);
  assert.equal(reloaded.state.sum, sumTo(ENTRIES + 5) + 1000);
  assert.throws(() => reloaded.add({ ...live[1]!, index: live[1]!.index + 5 }), InvalidInputError);
});

test("a checkpoint changed, of another fold version or another chain, is not used", async () => {
  const checkpoints = new MemoryCheckpointStore();
  const client = new Blindstore({ url: node.url, zone: "demo" });
  await (await client.openChain(chain.keys).fold(total(checkpoints))).save();
  const key = `demo/${chain.chainId}/total`;
  const good = (await checkpoints.get(key))!;
  const expected = { sum: sumTo(lengthNow - 1) + 1000, count: lengthNow };

  const flipped = structuredClone(good);
  flipped.sealed[5]! ^= 1;
  await checkpoints.put(key, flipped);
  let fold = await client.openChain(chain.keys).fold(total(checkpoints));
  assert.equal(fold.fromCheckpoint, 0, "a changed checkpoint is folded again from the start");
  assert.deepEqual(fold.state, expected);

  await checkpoints.put(key, { ...good, index: good.index - 1 });
  fold = await client.openChain(chain.keys).fold(total(checkpoints));
  assert.equal(fold.fromCheckpoint, 0, "its index is bound to it");

  await checkpoints.put(key, good);
  fold = await client.openChain(chain.keys).fold(total(checkpoints, 2));
  assert.equal(fold.fromCheckpoint, 0, "another version's checkpoint is not used");

  const other = await client.createChain();
  await other.appendJson({ cents: 7 });
  await checkpoints.put(`demo/${other.chainId}/total`, good);
  fold = await client.openChain(other.keys).fold(total(checkpoints));
  assert.equal(fold.fromCheckpoint, 0, "another chain's checkpoint is not used");
  assert.deepEqual(fold.state, { sum: 7, count: 1 });
});

test("a server that no longer holds what the checkpoint covers is caught", async () => {
  const checkpoints = new MemoryCheckpointStore();
  await (await new Blindstore({ url: node.url, zone: "demo" }).openChain(chain.keys).fold(total(checkpoints))).save();
  const covered = (await checkpoints.get(`demo/${chain.chainId}/total`))!.index;
  // The chain's record as a lying server would state it: shorter, or as long with another head.
  const lying = (change: (info: { length: number; head: string }) => void): FetchLike => async (input, init) => {
    const answer = await fetch(input, init);
    if (new URL(input).pathname.endsWith(`/chains/${chain.chainId}`) && (init?.method ?? "GET") === "GET") {
      const info = await answer.json();
      change(info);
      return new Response(JSON.stringify(info), { status: 200, headers: { "content-type": "application/json" } });
    }
    return answer;
  };
  const shorter = new Blindstore({ url: node.url, zone: "demo", fetch: lying((info) => (info.length = covered - 3)) });
  await assert.rejects(shorter.openChain(chain.keys).fold(total(checkpoints)), RollbackError);
  const forked = new Blindstore({ url: node.url, zone: "demo", fetch: lying((info) => (info.head = "ab".repeat(32))) });
  await assert.rejects(forked.openChain(chain.keys).fold(total(checkpoints)), ForkError);
});

test("follow from a fold's head links its first entry to that head, with no read of the entry before", async () => {
  const checkpoints = new MemoryCheckpointStore();
  const reads: string[] = [];
  const watching: FetchLike = async (input, init) => {
    if (new URL(input).pathname.endsWith("/entries")) reads.push(new URL(input).searchParams.get("from") ?? "");
    return fetch(input, init);
  };
  const client = new Blindstore({ url: node.url, zone: "demo", fetch: watching });
  const fold = await client.openChain(chain.keys).fold(total(checkpoints));
  reads.length = 0;
  const got: number[] = [];
  const followed = client.openChain(chain.keys).follow({ from: fold.next, prev: fold.head, onEntry: (entry) => void (fold.add(entry), got.push(entry.index)), onError: (error) => assert.fail(String(error)) });
  await chain.appendJson({ cents: 1 });
  lengthNow += 1;
  while (got.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  followed.close();
  assert.deepEqual(reads, [], "the entry before was not read");
  assert.equal(fold.next, lengthNow);

  // A `prev` that is not the entry before: the first entry does not link, and following stops.
  let failure: unknown;
  const wrong = client.openChain(chain.keys).follow({ from: 0, prev: "ab".repeat(32), onEntry: () => undefined, onError: (error) => (failure = error) });
  await wrong.closed;
  assert.ok(failure instanceof VerificationError, String(failure));
});
