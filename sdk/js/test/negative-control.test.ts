/**
 * The malicious-server suite's negative control: the same suite (tampering.test.ts) run with the
 * SDK's checks switched off (`unsafeSkipVerification`, via BLINDSTORE_SDK_NEGATIVE_CONTROL=1)
 * must fail every one of its tests — each attack then goes unnoticed or is reported as something
 * else — which shows the suite catches attacks because of the checks, and can fail.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

test("with the SDK's checks off, every test of the malicious-server suite fails", { timeout: 300_000 }, () => {
  const suite = fileURLToPath(new URL("./tampering.test.js", import.meta.url));
  // A run of its own (the runner refuses to nest when it sees its own context variable).
  const env: NodeJS.ProcessEnv = { ...process.env, BLINDSTORE_SDK_NEGATIVE_CONTROL: "1" };
  delete env["NODE_TEST_CONTEXT"];
  const run = spawnSync(process.execPath, ["--test", "--test-reporter=tap", suite], {
    env,
    encoding: "utf8",
    timeout: 280_000,
  });
  const results = [...run.stdout.matchAll(/^(not ok|ok) \d+ - (.*)$/gm)].map(([, outcome, name]) => ({ outcome, name }));
  assert.ok(results.length >= 14, `the suite ran ${results.length} tests:\n${run.stdout}\n${run.stderr}`);
  const passed = results.filter((r) => r.outcome === "ok").map((r) => r.name);
  assert.deepEqual(passed, [], "these tests passed with the checks off, so they cannot prove the checks work");
  assert.notEqual(run.status, 0);
});
