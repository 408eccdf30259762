/**
 * Remembered heads shared by several clients (tabs): a longer head wins, and two heads of the
 * same length with different hashes — two tabs shown different histories — are a fork.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { ForkError, MemoryHeadStore } from "../lib/index.js";

const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);

test("a shared head store keeps the longest head and refuses another hash at the same length", async () => {
  const store = new MemoryHeadStore();
  await store.put("demo", "chain", { length: 5, head: A });
  await store.put("demo", "chain", { length: 5, head: A });
  await assert.rejects(store.put("demo", "chain", { length: 5, head: B }), (error: unknown) => {
    assert.ok(error instanceof ForkError);
    assert.equal(error.index, 4);
    return true;
  });
  await store.put("demo", "chain", { length: 3, head: C });
  assert.deepEqual(await store.get("demo", "chain"), { length: 5, head: A });
  await store.put("demo", "chain", { length: 6, head: C });
  assert.deepEqual(await store.get("demo", "chain"), { length: 6, head: C });
});
