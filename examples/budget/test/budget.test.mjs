// The budget app as a new user meets it, in Debian's headless Chromium (playwright-core)
// against a real node started here with `serve --site site/`: sign up, add expenses, see the
// totals; a second tab updates live; a fresh browser (new storage) logs in and sees the same
// totals, then goes offline: the page still opens and shows them, and an expense added offline
// is sent once the network is back; a share link opens a read-only month in a third browser
// that cannot append; a passkey logs in. Screenshots go to $SCREENSHOTS (default target/tmp/screenshots/budget); the docs use
// them.
//
// Each test starts its own node and browser and repeats the set-up on purpose: it reads, and
// fails, on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
// Chromium as every browser test of the project launches it (sdk/interop, whose packages
// scripts/test.sh installs).
import { addPrfAuthenticator, launchChromium as launch } from "../../../sdk/interop/browser.mjs";
import { VIEWPORT, addExpense, enterHere, month, shots, site, totals, watch } from "./support/app.mjs";
import { axeViolations } from "./support/axe.mjs";
import { startNode, zoneSet } from "./support/node.mjs";

async function signUp(page, url, username, password) {
  await page.goto(url);
  await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
  await page.click("#tab-signup");
  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.screenshot({ path: join(shots, "budget-sign-up.png") });
  await page.click("#auth-submit");
  await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
}

test("a user signs up, adds expenses, and finds them everywhere: a second tab live, a fresh browser, a read-only share link, a passkey", { timeout: 240_000 }, async () => {
  const node = await startNode(["--site", site]);
  // Passkeys need a domain name: the page is loaded from localhost, not 127.0.0.1.
  const origin = node.url.replace("127.0.0.1", "localhost");
  // As scripts/demo.sh runs it: writes need an account; passkeys on.
  await zoneSet(node, ["demo", "--writes", "accounts", "--passkey-rp-id", "localhost", "--passkey-origin", origin]);
  const browser = await launch();
  const errors = [];
  try {
    // Sign up and add expenses.
    const first = await browser.newContext({ viewport: VIEWPORT });
    const page = await first.newPage();
    watch(page, errors);
    await signUp(page, origin, "alice", "correct horse battery staple");
    for (const hidden of ["#share-box", "#readonly-note", "#error", "#auth"]) {
      assert.equal(await page.isVisible(hidden), false, `${hidden} is hidden in the owner's view`);
    }
    await addExpense(page, { day: "03", amount: "42.50", category: "Groceries", note: "market" });
    await addExpense(page, { day: "05", amount: "900", category: "Rent", note: "flat" });
    await addExpense(page, { day: "07", amount: "12.25", category: "Groceries", note: "bakery, \"fresh\"" });
    assert.deepEqual(await totals(page), { Rent: "900.00", Groceries: "54.75" });
    assert.match(await page.textContent("#month-total"), /954\.75/);

    // A second tab of the same browser resumes the session and sees the next expense live.
    const second = await first.newPage();
    watch(second, errors);
    await second.goto(origin);
    await second.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    assert.deepEqual(await totals(second), { Rent: "900.00", Groceries: "54.75" });
    const started = Date.now();
    await addExpense(page, { day: "09", amount: "30", category: "Transport", note: "train" });
    await second.waitForFunction(() => document.querySelector('#chart [data-category="Transport"]'), null, { timeout: 5_000 });
    const liveMs = Date.now() - started;
    assert.ok(liveMs < 5_000, `the second tab saw the expense after ${liveMs} ms`);

    // Edit and delete are new entries too.
    await page.click('#expenses tbody tr:has-text("train") button:has-text("Edit")');
    await page.fill("#amount", "35");
    await page.click("#save-expense");
    await page.waitForFunction(() => document.querySelector('#chart [data-category="Transport"] .num')?.textContent === "35.00", null, { timeout: 10_000 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(shots, "budget-month.png"), fullPage: true });

    // CSV export of the month.
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
    const csv = await (await download.createReadStream()).toArray();
    const text = Buffer.concat(csv).toString("utf8");
    assert.match(text, /^date,category,amount,note\r\n/);
    assert.ok(text.includes(`${month()}-07,Groceries,12.25,"bakery, ""fresh"""`), text);
    // The edit is on the server before this browser goes (its outbox goes with it).
    await page.waitForFunction(() => document.querySelector("#status").textContent === "online" && document.querySelectorAll("#expenses tbody tr.pending").length === 0, null, { timeout: 30_000 });
    await first.close();

    // A fresh browser (no storage) logs in with the password and sees the same totals.
    const fresh = await browser.newContext({ viewport: VIEWPORT });
    const again = await fresh.newPage();
    watch(again, errors);
    await again.goto(origin);
    await again.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    await again.fill("#username", "alice");
    await again.fill("#password", "wrong password!");
    await again.click("#auth-submit");
    await again.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
    assert.match(await again.textContent("#error"), /Wrong username or password/);
    await again.fill("#password", "correct horse battery staple");
    await again.click("#auth-submit");
    await again.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    assert.deepEqual(await totals(again), { Rent: "900.00", Groceries: "54.75", Transport: "35.00" });
    await again.screenshot({ path: join(shots, "budget-fresh-login.png"), fullPage: true });

    // Offline: the page reopens (its files from the service worker, the expenses from the SDK's
    // verified cache, the keys from the vault's sealed copy), and a new expense waits in the
    // outbox until the server answers.
    await again.evaluate(() => navigator.serviceWorker.ready);
    await fresh.setOffline(true);
    await again.reload();
    await again.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    assert.deepEqual(await totals(again), { Rent: "900.00", Groceries: "54.75", Transport: "35.00" });
    await addExpense(again, { day: "10", amount: "4.50", category: "Coffee", note: "offline" });
    // The status follows the outbox's event (after a read of the outbox): waited for, not read at once.
    await again.waitForFunction(() => document.querySelector("#status").textContent === "queued (1)", null, { timeout: 10_000 });
    assert.equal(await again.locator('#expenses tbody tr.pending:has-text("offline")').count(), 1);
    await again.screenshot({ path: join(shots, "budget-offline.png"), fullPage: true });
    assert.deepEqual(await axeViolations(again, "html"), [], "the page offline, with a queued change, passes axe");
    await fresh.setOffline(false);
    await again.waitForFunction(() => document.querySelector("#status").textContent === "online", null, { timeout: 30_000 });
    await again.waitForFunction(() => document.querySelectorAll("#expenses tbody tr.pending").length === 0, null, { timeout: 10_000 });

    // Share the month: a third browser opens the link, read-only.
    await again.click("#share-month");
    await again.waitForSelector("#share-box:not([hidden])", { timeout: 15_000 });
    const link = await again.inputValue("#share-link");
    assert.match(link, /#share=[A-Za-z0-9_-]+$/);
    const shareRequests = [];
    const viewer = await browser.newContext({ viewport: VIEWPORT });
    const view = await viewer.newPage();
    watch(view, errors);
    view.on("request", (r) => shareRequests.push(r.url()));
    await view.goto(link);
    await view.waitForSelector("#readonly-note:not([hidden])", { timeout: 15_000 });
    assert.equal(await view.isVisible("#share-box"), false, "no share box in the shared view");
    await view.waitForFunction(() => document.querySelectorAll("#chart .bar-row").length === 4, null, { timeout: 15_000 });
    assert.deepEqual(await totals(view), { Rent: "900.00", Groceries: "54.75", Transport: "35.00", Coffee: "4.50" });
    assert.equal(await view.isVisible("#expense-form"), false, "no editor in the shared view");
    const fragment = link.split("#share=")[1];
    assert.ok(!shareRequests.some((u) => u.includes(fragment)), "the read key never reaches the server");
    // The link holds no write key: the SDK refuses to append with it.
    const refused = await view.evaluate(async (fragment) => {
      const { Blindstore, ChainKeys } = await import("./sdk/blindstore.js");
      const keys = await ChainKeys.fromJSON(JSON.parse(atob(fragment.replaceAll("-", "+").replaceAll("_", "/"))));
      const chain = new Blindstore({ url: location.origin, zone: "demo" }).openChain(keys);
      try {
        await chain.appendJson({ t: "month", month: "1999-01", expenses: [] });
        return "appended";
      } catch (error) {
        return error.code;
      }
    }, fragment);
    assert.equal(refused, "read_only");
    // The shared month follows the owner's changes live.
    await addExpense(again, { day: "11", amount: "8", category: "Fun", note: "cinema" });
    await view.waitForFunction(() => document.querySelector('#chart [data-category="Fun"]'), null, { timeout: 10_000 });
    await view.screenshot({ path: join(shots, "budget-shared.png"), fullPage: true });
    assert.deepEqual(await axeViolations(view, "html"), [], "the read-only view passes axe");
    await viewer.close();
    await fresh.close();

    // A passkey: added while logged in, then used to log in after logging out.
    const keyed = await browser.newContext({ viewport: VIEWPORT });
    const withKey = await keyed.newPage();
    watch(withKey, errors);
    await addPrfAuthenticator(keyed, withKey);
    await withKey.goto(origin);
    await withKey.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    await withKey.fill("#username", "alice");
    await withKey.fill("#password", "correct horse battery staple");
    await withKey.click("#auth-submit");
    await withKey.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await withKey.click("#account-open");
    await withKey.waitForSelector("#account:not([hidden])", { timeout: 15_000 });
    await withKey.fill("#passkey-label", "laptop");
    await withKey.click("#add-passkey");
    await withKey.waitForSelector('#passkey-list li:has-text("laptop")', { timeout: 30_000 });
    await withKey.click("#logout");
    await withKey.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    await withKey.fill("#username", "alice");
    await withKey.click("#passkey-login");
    await withKey.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    assert.equal((await totals(withKey)).Rent, "900.00");
    await keyed.close();

    assert.deepEqual(errors, [], "no uncaught errors in any page");
  } finally {
    await browser.close();
    await node.stop();
  }
});

test("changes queued by one user are never sent with another's session: kept for their next login, or discarded at logout", { timeout: 180_000 }, async () => {
  const node = await startNode(["--site", site]);
  await zoneSet(node, ["demo", "--writes", "accounts"]);
  const browser = await launch();
  const errors = [];
  try {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    watch(page, errors);
    // Every append the page sends: to which chain, with which session.
    const appends = [];
    page.on("request", (request) => {
      const match = /\/chains\/([0-9a-f]{64})\/entries$/.exec(new URL(request.url()).pathname);
      if (request.method() === "POST" && match) appends.push({ chain: match[1], token: request.headers()["authorization"] });
    });
    const blockAppends = () => page.route("**/chains/*/entries", (route) => (route.request().method() === "POST" ? route.abort("internetdisconnected") : route.continue()));
    const unblockAppends = () => page.unroute("**/chains/*/entries");
    const lengthOf = async (chain) => (await (await fetch(`${node.url}/v1/zones/demo/chains/${chain}`)).json()).length;

    // Carol adds an expense that cannot reach the server, and logs out: the app asks.
    await signUp(page, node.url, "carol", "carol's password");
    await blockAppends();
    await addExpense(page, { day: "04", amount: "25", category: "Books", note: "queued" });
    await page.waitForFunction(() => document.querySelector("#status").textContent === "queued (1)", null, { timeout: 10_000 });
    for (const until = Date.now() + 10_000; appends.length === 0; ) {
      assert.ok(Date.now() < until, "the outbox tried to send the expense");
      await page.waitForTimeout(50);
    }
    const carolChain = appends[0].chain;
    await page.click("#logout");
    await page.waitForSelector("#logout-dialog[open]", { timeout: 10_000 });
    assert.match(await page.textContent("#logout-pending"), /1 change you made has not reached the server yet/);
    await page.screenshot({ path: join(shots, "budget-logout-pending.png") });
    assert.deepEqual(await axeViolations(page, "#logout-dialog"), [], "the logout dialog passes axe");
    await page.click("#logout-keep");
    await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });

    // Dave signs up in the same page; appends get through again. His expense is sent, Carol's waits.
    await unblockAppends();
    await enterHere(page, "dave", "dave's password", { signUp: true });
    await addExpense(page, { day: "06", amount: "7", category: "Coffee", note: "dave's" });
    await page.waitForFunction(() => document.querySelector("#status").textContent === "online" && document.querySelectorAll("#expenses tbody tr.pending").length === 0, null, { timeout: 30_000 });
    assert.ok(appends.some((a) => a.chain !== carolChain), "Dave's expense was sent");
    await page.waitForTimeout(1500);
    assert.deepEqual(await totals(page), { Coffee: "7.00" }, "Dave sees only his expense");
    const daveTokens = new Set(appends.filter((a) => a.chain !== carolChain).map((a) => a.token));
    assert.equal(appends.filter((a) => a.chain === carolChain && (a.token === undefined || daveTokens.has(a.token))).length, 0, "nothing of Carol's went with Dave's session, or with none");
    assert.equal(await lengthOf(carolChain), 0, "Carol's expense waited");

    // Dave logs out (nothing pending: no question); Carol logs in and her expense is sent.
    await page.click("#logout");
    await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    assert.equal(await page.isVisible("#logout-dialog"), false);
    await enterHere(page, "carol", "carol's password");
    await page.waitForFunction(() => document.querySelector("#status").textContent === "online", null, { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector('#chart [data-category="Books"]'), null, { timeout: 10_000 });
    assert.deepEqual(await totals(page), { Books: "25.00" });
    assert.equal(await lengthOf(carolChain), 1);
    assert.equal(appends.filter((a) => a.chain === carolChain && (a.token === undefined || daveTokens.has(a.token))).length, 0, "nothing of Carol's went with Dave's session, or with none");

    // Discarded at logout: never sent, not even at the next login.
    await blockAppends();
    await addExpense(page, { day: "08", amount: "99", category: "Gadgets", note: "discard me" });
    await page.click("#logout");
    await page.waitForSelector("#logout-dialog[open]", { timeout: 10_000 });
    await page.click("#logout-discard");
    await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
    await unblockAppends();
    await enterHere(page, "carol", "carol's password");
    await page.waitForFunction(() => document.querySelector("#status").textContent === "online", null, { timeout: 30_000 });
    await page.waitForTimeout(1000);
    assert.deepEqual(await totals(page), { Books: "25.00" });
    assert.equal(await lengthOf(carolChain), 1);
    assert.equal(await page.isVisible("#error"), false, "a discarded change is no error");
    assert.deepEqual(errors, [], "no uncaught errors in the page");
  } finally {
    await browser.close();
    await node.stop();
  }
});
