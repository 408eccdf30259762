// What the app's browser tests share: where screenshots go, the viewport, and the steps a user
// takes in the page (log in, add an expense, read the totals).
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** The app's files, served by the node under test. */
export const site = resolve(here, "../../site");
/** Screenshots: $SCREENSHOTS, else target/tmp/screenshots/budget; the docs use them. */
export const shots = process.env.SCREENSHOTS ?? resolve(here, "../../../../target/tmp/screenshots/budget");
mkdirSync(shots, { recursive: true });

export const VIEWPORT = { width: 1100, height: 760 };

/** This month, or the month `offsetDays` from now, as YYYY-MM. */
export function month(offsetDays = 0) {
  const d = new Date(Date.now() + offsetDays * 86_400_000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
}

/** Collects any uncaught error in the page into `errors` (a test then asserts there are none). */
export function watch(page, errors) {
  page.on("pageerror", (error) => errors.push(String(error)));
}

export async function addExpense(page, { day, amount, category, note }) {
  await page.fill("#date", `${month()}-${day}`);
  await page.fill("#amount", amount);
  await page.fill("#category", category);
  await page.fill("#note", note);
  const rows = await page.locator("#expenses tbody tr").count();
  await page.click("#save-expense");
  await page.waitForFunction((n) => document.querySelectorAll("#expenses tbody tr").length === n, rows + 1, { timeout: 10_000 });
}

/** The chart as {category: "12.34"}. */
export async function totals(page) {
  return page.$$eval("#chart .bar-row", (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.category, r.querySelector(".num").textContent])));
}

/** Signs up or logs in from the form the page shows now (no reload: the same page, the same client). */
export async function enterHere(page, username, password, { signUp = false } = {}) {
  await page.waitForSelector("#auth:not([hidden])", { timeout: 15_000 });
  await page.click(signUp ? "#tab-signup" : "#tab-login");
  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.click("#auth-submit");
  await page.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
}
