// The budget app's account panel, in Debian's headless Chromium against a real node: passkeys
// added from three devices (each browser context its own virtual authenticator with PRF), a
// password change that removes the passkey ticked, "log out everywhere" that removes another and
// says which can still log in, and the password dialog the app shows whenever the SDK needs a
// fresh proof (a wrong password in it is said so, a passkey can stand in). The panel and its
// dialogs pass axe-core's WCAG A/AA checks. Screenshots go beside the other budget ones.
//
// Each test starts its own node and browser and repeats the set-up on purpose: it reads, and
// fails, on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { addPrfAuthenticator, launchChromium as launch } from "../../../sdk/interop/browser.mjs";
import { VIEWPORT, addExpense, enterHere, shots, site, totals, watch } from "./support/app.mjs";
import { axeViolations } from "./support/axe.mjs";
import { startNode, zoneSet } from "./support/node.mjs";

const USER = "erin";
const FIRST = "first password, long";
const SECOND = "second password, longer";

/** The passkeys the panel lists, by name. */
async function listedPasskeys(page) {
  return page.$$eval("#passkey-list li .name", (names) => names.map((n) => n.textContent));
}

/** Opens the account panel and waits for its list of passkeys (the button is busy until then). */
async function openAccount(page) {
  await page.click("#account-open");
  await page.waitForSelector("#account:not([hidden])", { timeout: 15_000 });
  await page.waitForSelector("#account-open:not([disabled])", { timeout: 15_000 });
}

/** A device: a browser profile of its own, with its own authenticator, on the app. */
async function device(browser, origin, errors) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  watch(page, errors);
  await addPrfAuthenticator(context, page);
  await page.goto(origin);
  return page;
}

/** Adds a passkey named `name` from the panel (a session that logged in just now needs no dialog). */
async function addPasskey(page, name) {
  await page.fill("#passkey-label", name);
  await page.click("#add-passkey");
  await page.waitForSelector(`#passkey-list li:has-text("${name}")`, { timeout: 30_000 });
}

async function assertAccessible(page, selector) {
  assert.deepEqual(await axeViolations(page, selector), [], `axe finds no accessibility problem in ${selector}`);
}

test("the account panel: passkeys added with the password asked again, a password change and log-out-everywhere that remove the passkeys ticked and list those kept", { timeout: 240_000 }, async () => {
  const node = await startNode(["--site", site]);
  const origin = node.url.replace("127.0.0.1", "localhost");
  await zoneSet(node, ["demo", "--writes", "accounts", "--passkey-rp-id", "localhost", "--passkey-origin", origin]);
  const browser = await launch();
  const errors = [];
  try {
    // The laptop signs up and adds an expense; after a reload the session is resumed, without the
    // proof a new login carries, so adding a passkey asks for the password.
    const laptop = await device(browser, origin, errors);
    await assertAccessible(laptop, "html");
    await enterHere(laptop, USER, FIRST, { signUp: true });
    await addExpense(laptop, { day: "02", amount: "12", category: "Books", note: "novel" });
    await assertAccessible(laptop, "html");
    await laptop.reload();
    await laptop.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await openAccount(laptop);
    assert.equal(await laptop.isVisible("#passkeys-empty"), true, "no passkeys yet");
    await assertAccessible(laptop, "html");

    await laptop.fill("#passkey-label", "laptop");
    await laptop.click("#add-passkey");
    await laptop.waitForSelector("#proof-dialog[open]", { timeout: 15_000 });
    assert.match(await laptop.textContent("#proof-why"), /Adding a passkey needs your password again/);
    assert.equal(await laptop.isVisible("#proof-passkey"), false, "no passkey to use instead yet");
    assert.equal(await laptop.evaluate(() => document.activeElement?.id), "proof-password", "the dialog puts the focus in the password field");
    await laptop.fill("#proof-password", "not the password");
    await laptop.click("#proof-confirm");
    await laptop.waitForSelector("#proof-dialog[open] #proof-error:not([hidden])", { timeout: 30_000 });
    assert.equal(await laptop.textContent("#proof-error"), "That password is wrong.");
    await assertAccessible(laptop, "#proof-dialog");
    await laptop.screenshot({ path: join(shots, "budget-account-proof.png") });
    await laptop.fill("#proof-password", FIRST);
    await laptop.click("#proof-confirm");
    await laptop.waitForSelector('#passkey-list li:has-text("laptop")', { timeout: 30_000 });
    assert.match(await laptop.textContent("#account-notice"), /The passkey “laptop” was added/);

    // Cancelling the dialog is said, not silent, and changes nothing.
    await laptop.reload();
    await laptop.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await openAccount(laptop);
    await laptop.click('#passkey-list li:has-text("laptop") button');
    await laptop.waitForSelector("#proof-dialog[open]", { timeout: 15_000 });
    await laptop.click("#proof-cancel");
    await laptop.waitForSelector("#account-notice:not([hidden])", { timeout: 15_000 });
    assert.equal(await laptop.textContent("#account-notice"), "Removing a passkey was cancelled. Nothing changed.");
    assert.deepEqual(await listedPasskeys(laptop), ["laptop"]);

    // A phone and a tablet log in with the password (a fresh proof: no dialog) and add theirs.
    const phone = await device(browser, origin, errors);
    await enterHere(phone, USER, FIRST);
    await openAccount(phone);
    await addPasskey(phone, "phone");
    const tablet = await device(browser, origin, errors);
    await enterHere(tablet, USER, FIRST);
    await openAccount(tablet);
    await addPasskey(tablet, "tablet");
    assert.equal(await tablet.isVisible("#proof-dialog"), false);

    // The laptop changes the password and removes the phone's passkey in the same step.
    await laptop.reload();
    await laptop.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await openAccount(laptop);
    assert.deepEqual(await listedPasskeys(laptop), ["laptop", "phone", "tablet"]);
    assert.deepEqual(await laptop.$$eval("#password-passkeys label", (labels) => labels.map((l) => l.textContent)), ["laptop", "phone", "tablet"]);
    await laptop.fill("#current-password", FIRST);
    await laptop.fill("#new-password", SECOND);
    await laptop.check('#password-passkeys label:has-text("phone") input');
    await assertAccessible(laptop, "#account");
    await laptop.screenshot({ path: join(shots, "budget-account.png"), fullPage: true });
    await laptop.click("#change-password");
    await laptop.waitForSelector("#account-notice:not([hidden])", { timeout: 30_000 });
    assert.equal(
      await laptop.textContent("#account-notice"),
      "Your password was changed; 2 sessions ended elsewhere. Passkeys that can still log in: laptop, tablet.",
    );
    assert.deepEqual(await listedPasskeys(laptop), ["laptop", "tablet"]);
    await laptop.screenshot({ path: join(shots, "budget-account-changed.png"), fullPage: true });

    // The phone's session ended, and its passkey no longer logs in; the old password neither.
    await phone.reload();
    await phone.waitForSelector("#auth:not([hidden])", { timeout: 30_000 });
    await phone.fill("#username", USER);
    await phone.click("#passkey-login");
    await phone.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
    // The server no longer offers it: the phone holds no passkey of the account now.
    assert.match(await phone.textContent("#error"), /this device holds none for your account/);
    await phone.fill("#password", FIRST);
    await phone.click("#auth-submit");
    await phone.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
    assert.match(await phone.textContent("#error"), /Wrong username or password/);

    // The tablet's session ended too; it logs in with the new password.
    await tablet.reload();
    await enterHere(tablet, USER, SECOND);

    // Log out everywhere, removing the tablet's passkey: the resumed laptop has no fresh proof,
    // and proves its own passkey instead of typing the password.
    await laptop.reload();
    await laptop.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    await openAccount(laptop);
    await laptop.click("#logout-all");
    await laptop.waitForSelector("#everywhere-dialog[open]", { timeout: 15_000 });
    assert.deepEqual(await laptop.$$eval("#everywhere-passkeys label", (labels) => labels.map((l) => l.textContent)), ["laptop", "tablet"]);
    await laptop.check('#everywhere-passkeys label:has-text("tablet") input');
    await assertAccessible(laptop, "#everywhere-dialog");
    await laptop.screenshot({ path: join(shots, "budget-logout-everywhere.png") });
    await laptop.click("#everywhere-confirm");
    await laptop.waitForSelector("#proof-dialog[open]", { timeout: 15_000 });
    assert.match(await laptop.textContent("#proof-why"), /Logging out everywhere needs your password again/);
    await laptop.click("#proof-passkey");
    await laptop.waitForSelector("#auth:not([hidden]) #auth-notice:not([hidden])", { timeout: 30_000 });
    assert.equal(await laptop.textContent("#auth-notice"), "You were logged out everywhere (2 sessions ended). Passkeys that can still log in: laptop.");
    assert.equal(await laptop.isVisible("#account"), false);
    await assertAccessible(laptop, "html");
    await laptop.screenshot({ path: join(shots, "budget-logged-out-everywhere.png") });

    // The tablet is logged out, and its passkey refused; the laptop's passkey, kept, logs in.
    await tablet.reload();
    await tablet.waitForSelector("#auth:not([hidden])", { timeout: 30_000 });
    await tablet.fill("#username", USER);
    await tablet.click("#passkey-login");
    await tablet.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
    assert.match(await tablet.textContent("#error"), /this device holds none for your account/);
    await laptop.fill("#username", USER);
    await laptop.click("#passkey-login");
    await laptop.waitForSelector("#app:not([hidden])", { timeout: 30_000 });
    assert.deepEqual(await totals(laptop), { Books: "12.00" });

    // A passkey login is a fresh proof: removing the last passkey asks nothing.
    await openAccount(laptop);
    await laptop.click('#passkey-list li:has-text("laptop") button');
    await laptop.waitForSelector("#passkeys-empty:not([hidden])", { timeout: 30_000 });
    assert.equal(await laptop.isVisible("#proof-dialog"), false);
    assert.equal(await laptop.textContent("#account-notice"), "The passkey “laptop” was removed.");
    assert.equal(await laptop.isVisible("#password-passkeys"), false, "nothing to tick when there are no passkeys");
    await assertAccessible(laptop, "#account");
    assert.equal(await laptop.isVisible("#error"), false);
    assert.deepEqual(errors, [], "no uncaught errors in any page");
  } finally {
    await browser.close();
    await node.stop();
  }
});
