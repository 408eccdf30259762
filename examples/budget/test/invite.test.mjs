// Sign-up in a zone that takes accounts by invitation, in Debian's headless Chromium against a
// real node: without a code (or with a wrong one) the app says an invitation is needed and no
// account is made; with the code the administrator printed, the account is created; the same
// code does not work twice. The sign-up form with its invite field passes axe-core's checks.
//
// Each test starts its own node and browser and repeats the set-up on purpose: it reads, and
// fails, on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { launchChromium as launch } from "../../../sdk/interop/browser.mjs";
import { VIEWPORT, shots, site, watch } from "./support/app.mjs";
import { axeViolations } from "./support/axe.mjs";
import { startNode, zoneInvite, zoneSet } from "./support/node.mjs";

async function signUp(page, username, invite) {
  await page.click("#tab-signup");
  await page.fill("#username", username);
  await page.fill("#password", "a long enough password");
  await page.fill("#invite", invite);
  await page.click("#auth-submit");
}

test("sign-up by invitation: no account without a valid code, one account per code", { timeout: 180_000 }, async () => {
  const node = await startNode(["--site", site]);
  await zoneSet(node, ["demo", "--registration", "invite"]);
  const [code] = await zoneInvite(node, "demo", 1);
  assert.ok(code, "the CLI printed a code");
  const browser = await launch();
  const errors = [];
  try {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    watch(page, errors);
    await page.goto(node.url);
    await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    assert.equal(await page.isVisible("#invite"), false, "logging in asks for no code");
    await page.click("#tab-signup");
    assert.equal(await page.isVisible("#invite"), true, "signing up offers the invite field");
    assert.deepEqual(await axeViolations(page, "html"), [], "axe finds no accessibility problem");

    for (const wrong of ["", "not-a-code"]) {
      await signUp(page, "frank", wrong);
      await page.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
      assert.match(await page.textContent("#error"), /takes new accounts by invitation/);
      assert.equal(await page.isVisible("#app"), false);
    }
    await page.screenshot({ path: join(shots, "budget-invite-needed.png") });
    await signUp(page, "frank", code);
    await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await page.screenshot({ path: join(shots, "budget-invited.png") });
    await context.close();

    // The code is used up.
    const other = await browser.newContext({ viewport: VIEWPORT });
    const second = await other.newPage();
    watch(second, errors);
    await second.goto(node.url);
    await second.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    await signUp(second, "grace", code);
    await second.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
    assert.match(await second.textContent("#error"), /each code works once/);
    await other.close();
    assert.deepEqual(errors, [], "no script errors in the page");
  } finally {
    await browser.close();
    await node.stop();
  }
});
