// First paint of a budget with many expenses, without and with the fold's checkpoint, in
// headless Chromium against a real node: the time from navigation to the expenses on screen
// (the app's `budget:expenses-shown` mark) for a returning user whose session is remembered.
//
//   node scripts/first-paint.mjs [--expenses 10000]
//
// It writes the expenses as the app does (one entry each, spread over the months up to this
// one), logs in once, then reloads: once with this browser's checkpoints deleted (the whole
// chain is read, verified, decrypted and folded), and once with the checkpoint the app kept
// (only the entries after it). It prints both, and the entries each read. $BLINDSTORE_BIN picks
// the binary (default: the debug build; use a release build for figures worth recording).
import { pathToFileURL } from "node:url";
import { launchChromium } from "../../../sdk/interop/browser.mjs";
import { Blindstore } from "../../../sdk/js/lib/index.js";
import { site } from "../test/support/app.mjs";
import { startNode } from "../test/support/node.mjs";

const CATEGORIES = ["Groceries", "Rent", "Transport", "Eating out", "Health", "Fun"];
const PASSWORD = "correct horse battery staple";

/** Writes `count` expenses for a new user; returns the user's name. */
async function seed(url, count, log) {
  const store = new Blindstore({ url, zone: "demo" });
  const username = `saver-${Date.now()}`;
  const session = await store.accounts.register({ username, password: PASSWORD });
  const chain = await store.createChain();
  await session.vault.put("budget", { chain: chain.keys.toJSON(), shares: {} });
  const now = new Date();
  const started = Date.now();
  for (let i = 0; i < count; i++) {
    // About 100 expenses a month, the newest this month.
    const back = Math.floor((count - 1 - i) / 100);
    const when = new Date(now.getFullYear(), now.getMonth() - back, 1 + (i % 28));
    const date = `${when.getFullYear()}-${String(when.getMonth() + 1).padStart(2, "0")}-${String(when.getDate()).padStart(2, "0")}`;
    await chain.appendJson({ t: "add", id: `e${i}`, date, cents: 100 + ((i * 37) % 9000), category: CATEGORIES[i % CATEGORIES.length], note: `expense ${i}` });
    if ((i + 1) % 1000 === 0) log(`  ${i + 1} expenses written (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  store.close();
  return username;
}

/** Opens the app again in `page` and waits for the expenses: the mark's time and what was read. */
async function reload(page, url, entriesRead) {
  entriesRead.length = 0;
  await page.goto(url);
  await page.waitForFunction(() => performance.getEntriesByName("budget:expenses-shown").length > 0, null, { timeout: 300_000 });
  const mark = await page.evaluate(() => {
    const entry = performance.getEntriesByName("budget:expenses-shown")[0];
    return { ms: entry.startTime, ...entry.detail };
  });
  return { ...mark, pages: entriesRead.length, rows: await page.locator("#expenses tbody tr").count() };
}

/** Measures; returns { before, after } ({ ms, entries, fromCheckpoint, pages, rows }). */
export async function measure({ expenses = 10_000, log = console.log } = {}) {
  const node = await startNode(["--site", site, "--login-rate-per-ip", "1000", "--register-rate-per-ip", "1000"]);
  const browser = await launchChromium();
  try {
    log(`writing ${expenses} expenses…`);
    const username = await seed(node.url, expenses, log);
    const page = await (await browser.newContext({ viewport: { width: 1100, height: 760 } })).newPage();
    const entriesRead = [];
    page.on("request", (request) => {
      if (/\/chains\/[0-9a-f]+\/entries\?from=/.test(request.url())) entriesRead.push(request.url());
    });
    await page.goto(node.url);
    await page.waitForSelector("#auth:not([hidden])", { timeout: 30_000 });
    await page.click("#tab-login");
    await page.fill("#username", username);
    await page.fill("#password", PASSWORD);
    await page.click("#auth-submit");
    await page.waitForSelector("#app:not([hidden])", { timeout: 300_000 });
    // Without a checkpoint: this browser's are deleted (from a page of the origin where the app
    // does not run, so nothing holds the database open); the session stays remembered.
    await page.goto(`${node.url}/no-app-here`);
    await page.evaluate(
      () =>
        new Promise((done, fail) => {
          const request = indexedDB.deleteDatabase("blindstore-checkpoints");
          request.onsuccess = done;
          request.onerror = () => fail(request.error);
          request.onblocked = () => fail(new Error("the checkpoint database is held open"));
        }),
    );
    const before = await reload(page, node.url, entriesRead);
    const after = await reload(page, node.url, entriesRead);
    return { before, after };
  } finally {
    await browser.close();
    await node.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf("--expenses");
  const expenses = at > 0 ? Number(process.argv[at + 1]) : 10_000;
  const { before, after } = await measure({ expenses });
  const row = (what, r) => `| ${what} | ${r.ms.toFixed(0)} ms | ${r.entries - r.fromCheckpoint} | ${r.pages} | ${r.rows} |`;
  console.log(`\nFirst paint of a budget with ${expenses} expenses (Chromium, a remembered session):\n`);
  console.log("| reload | expenses shown after | entries read and folded | entry pages fetched | rows this month |");
  console.log("|---|---:|---:|---:|---:|");
  console.log(row("without a checkpoint (before)", before));
  console.log(row("with the fold's checkpoint (after)", after));
  console.log(`\n${(before.ms / after.ms).toFixed(1)}× faster with the checkpoint`);
}
