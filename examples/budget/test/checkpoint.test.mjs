// A budget kept for years stays fast to open: the app folds its chain with the SDK's
// checkpoints, so a returning user's reload reads the checkpoint and the newest entries, not the
// whole chain. scripts/first-paint.mjs measures it (10,000 expenses by default); here with
// 1,500, and the test holds what the measure shows: the same expenses on screen, all entries
// read without a checkpoint, none with it. The times are printed, never asserted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { measure } from "../scripts/first-paint.mjs";

test("a reload with the fold's checkpoint reads none of 1,500 old entries and shows the same month", { timeout: 300_000 }, async () => {
  const { before, after } = await measure({ expenses: 1500, log: () => undefined });
  console.log(`first paint, 1,500 expenses: ${before.ms.toFixed(0)} ms without a checkpoint, ${after.ms.toFixed(0)} ms with it`);
  assert.equal(before.fromCheckpoint, 0);
  assert.equal(before.entries, 1500);
  assert.equal(after.fromCheckpoint, 1500, "the reload started from the checkpoint");
  assert.equal(after.entries - after.fromCheckpoint, 0, "and folded no old entry again");
  assert.equal(after.rows, before.rows, "the same month on screen");
  assert.equal(after.rows, 100);
});
