/**
 * The shared live connection in Node, against the real server: with no Web Locks here, the hub
 * leads alone after hearing no leader, follows several chains on one stream, and a chain the
 * server does not know fails its own followers only.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Blindstore, ChainKeys, type FetchLike, HttpError } from "../lib/index.js";
import { type RunningNode, startNode, waitFor } from "./support/node.js";

let node: RunningNode;

before(async () => {
  node = await startNode();
});

after(async () => {
  await node?.stop();
});

test("one stream for several chains; an unknown chain fails alone", async () => {
  const streams: string[] = [];
  const counting: FetchLike = (input, init) => {
    if (new URL(input).pathname.endsWith("/events")) streams.push(input);
    return fetch(input, init);
  };
  const writer = new Blindstore({ url: node.url, zone: "demo" });
  const chains = [await writer.createChain(), await writer.createChain()];
  const store = new Blindstore({ url: node.url, zone: "demo", fetch: counting });
  const hub = store.live();
  try {
    const got = new Map<string, number[]>();
    const errors: unknown[] = [];
    for (const chain of chains) {
      const reader = store.openChain(await ChainKeys.fromJSON(JSON.parse(JSON.stringify(chain.keys.forReader()))));
      got.set(chain.chainId, []);
      hub.follow(reader, { onEntry: (entry) => void got.get(chain.chainId)!.push(entry.index), onError: (error) => errors.push(error) });
    }
    const stranger = store.openChain(await ChainKeys.generate());
    let strangerError: unknown;
    hub.follow(stranger, { onEntry: () => assert.fail("an unknown chain has no entries"), onError: (error) => (strangerError = error) });
    for (const chain of chains) {
      await chain.appendJson({ n: 0 });
      await chain.appendJson({ n: 1 });
    }
    await waitFor(() => chains.every((chain) => got.get(chain.chainId)!.length === 2), 20_000, "both chains' entries");
    assert.ok(strangerError instanceof HttpError && strangerError.status === 404, `the unknown chain failed: ${String(strangerError)}`);
    assert.deepEqual(errors, []);
    assert.ok(hub.leading);
    await chains[0]!.appendJson({ n: 2 });
    await waitFor(() => got.get(chains[0]!.chainId)!.length === 3, 10_000, "a later entry");
    assert.deepEqual(got.get(chains[0]!.chainId), [0, 1, 2]);
    assert.ok(streams.at(-1)!.includes(chains[0]!.chainId) && streams.at(-1)!.includes(chains[1]!.chainId), "the last stream carries both chains");
    assert.ok(!streams.at(-1)!.includes(stranger.chainId), "and not the unknown one");
  } finally {
    hub.close();
  }
});
