// The budget app held to a product bar, in headless Chromium against a real node: on a phone
// (375×812) and with the keyboard only — sign up (the tabs move with the arrow keys), add an
// expense, delete it and undo — with no serious or critical axe violation on any screen and
// nothing wider than the screen; a change the server refuses is shown with its reason and
// Retry (kept across a reload), and goes once space is made or it is taken; changes not sent survive a reload and are shown as
// waiting; the expenses show a loading state while they are read; a session ended elsewhere
// brings the login back with the reason. Screenshots in target/tmp/screenshots/budget/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { launchChromium as launch } from "../../../sdk/interop/browser.mjs";
import { Blindstore } from "../../../sdk/js/lib/index.js";
import { VIEWPORT, addExpense, shots, site, watch } from "./support/app.mjs";
import { seriousViolations } from "./support/axe.mjs";
import { startNode, zoneSet } from "./support/node.mjs";

const PHONE = { viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, hasTouch: true, isMobile: true };
const PASSWORD = "correct horse battery staple";

/** A screen's checks: no serious or critical axe violation, nothing wider than the viewport, a screenshot. */
async function screen(page, name) {
  assert.deepEqual(await seriousViolations(page), [], `${name}: no serious or critical axe violation`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `${name}: nothing wider than the screen (${overflow} px too wide)`);
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** Presses Tab until the focus is on an element matching `selector` (at most 60 times). */
async function tabTo(page, selector) {
  for (let i = 0; i < 60; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`Tab never reached ${selector}`);
}

const focused = (page) => page.evaluate(() => document.activeElement?.id ?? "");

test("on a phone, with the keyboard only: sign up, add, delete and undo; every screen accessible and within the screen", { timeout: 180_000 }, async () => {
  const node = await startNode(["--site", site]);
  await zoneSet(node, ["demo", "--writes", "accounts"]);
  const browser = await launch();
  const errors = [];
  try {
    const page = await (await browser.newContext(PHONE)).newPage();
    watch(page, errors);
    await page.goto(node.url);
    await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    await screen(page, "phone-log-in");

    // The tab list is one tab stop; the arrow keys choose the tab, which labels the panel.
    await tabTo(page, "#tab-login");
    await page.keyboard.press("ArrowRight");
    assert.equal(await focused(page), "tab-signup");
    assert.equal(await page.getAttribute("#tab-signup", "aria-selected"), "true");
    assert.equal(await page.getAttribute("#auth-panel", "aria-labelledby"), "tab-signup");
    assert.equal(await page.textContent("#auth-submit"), "Create account");
    await page.keyboard.press("Tab");
    assert.equal(await focused(page), "username", "from the tabs, Tab goes into the panel");
    await page.keyboard.type("phoebe");
    await page.keyboard.press("Tab");
    await page.keyboard.type(PASSWORD);
    await screen(page, "phone-sign-up");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await screen(page, "phone-month-empty");

    // An expense, typed: the date is this month's first day already.
    await tabTo(page, "#amount");
    await page.keyboard.type("12.50");
    await page.keyboard.press("Tab");
    await page.keyboard.type("Groceries");
    await page.keyboard.press("Tab");
    await page.keyboard.type("bread");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("#expenses tbody tr:not(.pending)").length === 1, null, { timeout: 15_000 });
    await screen(page, "phone-month");

    // Deleted from the keyboard; the focus goes to Undo, and Enter brings the expense back.
    await tabTo(page, 'button[aria-label^="Delete bread"]');
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("#expenses tbody tr").length === 0, null, { timeout: 10_000 });
    assert.equal(await focused(page), "undo");
    assert.match(await page.textContent("#undo-text"), /Deleted “bread” \(12\.50/);
    await screen(page, "phone-undo");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("#expenses tbody tr:not(.pending)").length === 1, null, { timeout: 15_000 });
    assert.equal(await page.isVisible("#undo-bar"), false);
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll("#expenses tbody tr").length === 1, null, { timeout: 30_000 });
    assert.match(await page.textContent("#expenses tbody tr"), /bread/, "the undone delete stays undone after a reload");

    // The account panel and its dialog, from the keyboard, on the phone too.
    await tabTo(page, "#account-open");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#account:not([hidden])");
    await screen(page, "phone-account");
    await tabTo(page, "#logout-all");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#everywhere-dialog[open]");
    await screen(page, "phone-everywhere-dialog");
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => !document.querySelector("#everywhere-dialog").open);
    assert.equal(await page.isVisible("#auth"), false, "Escape changed nothing");
    await tabTo(page, "#account-close");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#app:not([hidden])");
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await node.stop();
  }
});

test("a refused change shows its reason and Retry; waiting changes survive a reload; loading and an ended session are said", { timeout: 240_000 }, async () => {
  const node = await startNode(["--site", site, "--login-rate-per-ip", "1000"]);
  await zoneSet(node, ["demo", "--writes", "accounts"]);
  const browser = await launch();
  const errors = [];
  try {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    watch(page, errors);
    await page.goto(node.url);
    await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    await page.click("#tab-signup");
    await page.fill("#username", "quentin");
    await page.fill("#password", PASSWORD);
    await page.click("#auth-submit");
    await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await addExpense(page, { day: "02", amount: "5", category: "Fun", note: "cinema" });
    await page.waitForFunction(() => document.querySelectorAll("#expenses tbody tr.pending").length === 0, null, { timeout: 15_000 });

    // The zone is full: the server refuses the next change. It is shown, with why, and kept.
    await zoneSet(node, ["demo", "--max-entries", "1"]);
    await page.fill("#date", (await page.inputValue("#date")).slice(0, 8) + "04");
    await page.fill("#amount", "7");
    await page.fill("#category", "Transport");
    await page.fill("#note", "bus");
    await page.click("#save-expense");
    await page.waitForSelector("#outbox-problem:not([hidden])", { timeout: 15_000 });
    assert.match(await page.textContent("#outbox-problem-text"), /not sent: .*storage for this zone is full/);
    assert.match(await page.textContent("#expenses tbody tr.pending"), /bus.*not sent/);
    await screen(page, "budget-not-sent");

    // A reload keeps it, shown as waiting, and the server's refusal is said again.
    await page.reload();
    await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await page.waitForFunction(() => /bus/.test(document.querySelector("#expenses tbody tr.pending")?.textContent ?? ""), null, { timeout: 15_000 });
    await page.waitForSelector("#outbox-problem:not([hidden])", { timeout: 15_000 });

    // Space is made; Retry sends it, once.
    await zoneSet(node, ["demo", "--max-entries", "1000"]);
    await page.click("#outbox-retry");
    await page.waitForFunction(() => document.querySelectorAll("#expenses tbody tr.pending").length === 0, null, { timeout: 15_000 });
    assert.equal(await page.isVisible("#outbox-problem"), false);
    assert.equal(await page.locator("#expenses tbody tr").count(), 2);

    // A change the server will never take (answered here as a server refuses a bad entry): it is
    // kept, said with why, still there after a reload, and Retry sends it once it is taken.
    const refuse = async (route) => {
      if (route.request().method() !== "POST") return route.continue();
      await route.fulfill({ status: 400, contentType: "application/json", body: JSON.stringify({ error: { code: "bad_request", message: "The entry was refused." } }) });
    };
    await page.route("**/chains/*/entries", refuse);
    await addExpense(page, { day: "05", amount: "9", category: "Transport", note: "parking" });
    await page.waitForFunction(() => /parking.*not saved/.test(document.querySelector("#expenses tbody tr.pending")?.textContent ?? ""), null, { timeout: 15_000 });
    assert.match(await page.textContent("#outbox-problem-text"), /^Not saved: .*The entry was refused\./);
    await page.reload();
    await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await page.waitForFunction(() => /parking.*not saved/.test(document.querySelector("#expenses tbody tr.pending")?.textContent ?? ""), null, { timeout: 15_000 });
    assert.match(await page.textContent("#outbox-problem-text"), /^Not saved: .*The entry was refused\./);
    await screen(page, "budget-not-saved-after-reload");
    await page.unroute("**/chains/*/entries", refuse);
    await page.click("#outbox-retry");
    await page.waitForFunction(() => document.querySelectorAll("#expenses tbody tr.pending").length === 0, null, { timeout: 15_000 });
    assert.equal(await page.isVisible("#outbox-problem"), false);
    assert.equal(await page.locator("#expenses tbody tr").count(), 3);

    // One the user gives up on: Discard, confirmed, forgets it — also after a reload, and in
    // another tab showing it, without a reload there.
    await page.route("**/chains/*/entries", refuse);
    await addExpense(page, { day: "05", amount: "4", category: "Transport", note: "toll" });
    await page.waitForSelector("#outbox-discard:not([hidden])", { timeout: 15_000 });
    await page.unroute("**/chains/*/entries", refuse);
    const tab = await context.newPage();
    watch(tab, errors);
    await tab.goto(node.url);
    await tab.waitForFunction(() => /toll.*not saved/.test(document.querySelector("#expenses tbody tr.pending")?.textContent ?? ""), null, { timeout: 30_000 });
    page.once("dialog", (dialog) => void dialog.accept());
    await page.click("#outbox-discard");
    await page.waitForFunction(() => document.querySelector("#outbox-problem").hidden, null, { timeout: 15_000 });
    assert.equal(await page.locator("#expenses tbody tr").count(), 3);
    await tab.waitForFunction(() => document.querySelectorAll("#expenses tbody tr.pending").length === 0 && document.querySelector("#outbox-problem").hidden, null, { timeout: 15_000 });
    assert.equal(await tab.locator("#expenses tbody tr").count(), 3);
    await tab.close();
    await page.reload();
    await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    assert.equal(await page.locator("#expenses tbody tr").count(), 3);
    assert.equal(await page.isVisible("#outbox-problem"), false);

    // Offline: a change waits, is shown as waiting after a reload, and goes when back online.
    await page.evaluate(() => navigator.serviceWorker.ready);
    await context.setOffline(true);
    await addExpense(page, { day: "06", amount: "3", category: "Fun", note: "offline coffee" });
    await page.reload();
    await page.waitForFunction(() => /offline coffee.*waiting to be sent/.test(document.querySelector("#expenses tbody tr.pending")?.textContent ?? ""), null, { timeout: 30_000 });
    await screen(page, "budget-waiting-after-reload");
    await context.setOffline(false);
    await page.waitForFunction(() => document.querySelectorAll("#expenses tbody tr.pending").length === 0, null, { timeout: 30_000 });
    assert.equal(await page.locator("#expenses tbody tr").count(), 4);

    // Loading: while the chain is read the page says so (reads held back here for a moment).
    await page.route("**/entries?from=*", async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await route.continue();
    });
    await page.reload();
    await page.waitForSelector("#loading:not([hidden])", { timeout: 15_000 });
    assert.equal(await page.textContent("#loading-text"), "Loading your expenses…");
    assert.equal(await page.getAttribute("#main", "aria-busy"), "true");
    await screen(page, "budget-loading");
    await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    assert.equal(await page.isVisible("#loading"), false);
    await page.unroute("**/entries?from=*");

    // Ended on another device: the next request finds out, and the login comes back, saying so.
    const other = new Blindstore({ url: node.url, zone: "demo" });
    await (await other.accounts.login({ username: "quentin", password: PASSWORD })).logoutAll();
    await page.click("#account-open");
    await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    assert.match(await page.textContent("#auth-notice"), /Your session was ended\. Log in again/);
    assert.equal(await page.inputValue("#username"), "quentin");
    await screen(page, "budget-session-ended");
    await page.fill("#password", PASSWORD);
    await page.click("#auth-submit");
    await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    assert.equal(await page.locator("#expenses tbody tr").count(), 4);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await node.stop();
  }
});
