// What the console's browser test does in a page as an operator would: sign in, pick a view,
// confirm a dialog; and what it watches for: uncaught errors and Content-Security-Policy
// violations (the page is served with a strict policy, and must never trip it).
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** Screenshots: $SCREENSHOTS, else target/tmp/screenshots/console; docs/operations.md shows
 * the ones made with SCREENSHOTS=docs/images/console. */
export const shots = resolve(process.env.SCREENSHOTS ?? resolve(here, "../../../../../target/tmp/screenshots/console"));
mkdirSync(shots, { recursive: true });

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 375, height: 812 };

/**
 * A new browser context whose pages report into `problems`: uncaught errors, console errors,
 * and every `securitypolicyviolation` event (listened to from before the page's own scripts).
 */
export async function watchedContext(browser, problems, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  context.on("page", (page) => watchPage(page, problems));
  return context;
}

function watchPage(page, problems) {
  page.on("pageerror", (error) => problems.push(`page error: ${error}`));
  page.on("console", (message) => {
    const text = message.text();
    // A refused token or a node taken down on purpose answers 401 or nothing: Chromium logs
    // the failed fetch as a console error; those are expected here, CSP reports never.
    if (/Content Security Policy|CSP violation/i.test(text)) problems.push(text);
    else if (message.type() === "error" && !/Failed to load resource|net::ERR_|Failed to fetch/.test(text)) problems.push(`console error: ${text}`);
  });
}

/** Opens the console at `base`/admin/ and signs in with `token`. */
export async function signIn(page, base, token) {
  await page.goto(`${base}/admin/`);
  await page.waitForSelector("#login:not([hidden])", { timeout: 10_000 });
  await page.fill("#token", token);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#app:not([hidden])", { timeout: 15_000 });
}

/** Chooses view `id` from the navigation, as a click would. */
export async function openView(page, id) {
  await page.click(`nav a[href="#${id}"]`);
  await page.waitForFunction((id) => document.querySelector(`nav a[aria-current="page"]`)?.getAttribute("href") === `#${id}`, id, { timeout: 5_000 });
}

/** Confirms the open dialog (after `prepare`, which fills its fields); waits for it to close. */
export async function confirmDialog(page, prepare = async () => {}) {
  await page.waitForSelector("dialog#confirm[open]", { timeout: 5_000 });
  await prepare();
  await page.click("dialog#confirm button[type=submit]");
  await page.waitForSelector("dialog#confirm:not([open])", { state: "attached", timeout: 30_000 });
}

/** The text of the cell of member `id`'s row under the column headed `column`. */
export async function memberCell(page, id, column) {
  return page.evaluate(
    ({ id, column }) => {
      const table = document.querySelector("table.members");
      if (!table) return null;
      const index = [...table.querySelectorAll("thead th")].findIndex((th) => th.textContent === column);
      const row = table.querySelector(`tbody tr[data-node="${id}"]`);
      return row && index >= 0 ? row.children[index].textContent : null;
    },
    { id, column },
  );
}
