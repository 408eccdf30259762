/**
 * Accounts where only a browser can test them, in headless Chromium driven by playwright-core:
 * the session remembered in IndexedDB across reloads (with its vault key, non-extractable, and
 * never the master key), device keyrings, and passkeys with a CDP virtual authenticator that supports PRF — whose PRF output
 * must never appear in any request. The page is served by the node itself at
 * http://localhost:PORT (a passkey relying party cannot be an IP address). Fails, not skips,
 * without Chromium (`$CHROMIUM`, else /usr/bin/chromium).
 */

import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type Browser, type Page, chromium } from "playwright-core";
import { type RunningNode, startNode, zoneSet } from "./support/node.js";

const TEST_DEADLINE_MS = 120_000;
const WAIT_MS = 15_000;
const RATES = ["--login-rate-per-ip", "1000", "--login-rate-per-account", "1000", "--register-rate-per-ip", "1000"];

const PAGE = `<!doctype html><meta charset="utf-8"><title>sdk accounts</title>
<script type="module">
import * as sdk from "./blindstore.js";
window.sdk = sdk;
window.client = () => new sdk.Blindstore({ url: location.origin, zone: "demo" });
window.ready = true;
</script>`;

// The page's globals, as the evaluated functions below use them.
declare const sdk: typeof import("../dist/index.js");
declare function client(): import("../dist/index.js").Blindstore;

let node: RunningNode;
let site: string;
let base: string;
let browser: Browser;

before(async () => {
  site = mkdtempSync(join(tmpdir(), "blindstore-sdk-accounts-"));
  copyFileSync(new URL("../dist/blindstore.js", import.meta.url), join(site, "blindstore.js"));
  writeFileSync(join(site, "index.html"), PAGE);
  node = await startNode(["--site", site, ...RATES]);
  base = node.url.replace("127.0.0.1", "localhost");
  await zoneSet(node, "demo", ["--passkey-rp-id", "localhost", "--passkey-origin", base]);
  browser = await chromium.launch({
    executablePath: process.env["CHROMIUM"] || "/usr/bin/chromium",
    timeout: WAIT_MS,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
  await node?.stop();
  rmSync(site, { recursive: true, force: true });
});

/** A fresh browser context with one page on the site, its errors collected. */
async function openPage(): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext();
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await load(page);
  return { page, errors };
}

async function load(page: Page): Promise<void> {
  await page.goto(`${base}/`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, null, { timeout: WAIT_MS });
}

const newUsername = () => `user-${Math.random().toString(36).slice(2)}`;

test("a session is remembered across reloads with its vault key only, non-extractable, and forgotten once revoked", { timeout: TEST_DEADLINE_MS }, async () => {
  const { page, errors } = await openPage();
  const username = newUsername();
  await page.evaluate(async (username) => {
    const session = await client().accounts.register({ username, password: "pw" });
    await session.vault.put("n", 1);
  }, username);

  await page.reload();
  await load(page);
  const resumed = await page.evaluate(async () => {
    const bs = client();
    const session = await bs.accounts.resume();
    if (session === null) return null;
    const chain = await bs.createChain(); // with the resumed session's token
    await chain.appendJson({ ok: true });
    const record = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const open = indexedDB.open(`blindstore-accounts:${location.origin}:demo`);
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const get = open.result.transaction("records").objectStore("records").get("session");
        get.onsuccess = () => resolve(get.result);
        get.onerror = () => reject(get.error);
      };
    });
    // Whatever error a browser build names, the export must fail without giving key bytes
    // (keys-browser.test.ts tries every other way out).
    const exported = await crypto.subtle.exportKey("raw", record["vaultKey"] as CryptoKey).then(
      (bytes) => `exported ${bytes.byteLength} bytes`,
      () => "refused",
    );
    const addPasskey = await session.addPasskey().then(
      () => "added",
      (error: { code: string }) => error.code,
    );
    return {
      username: session.username,
      n: await session.vault.get("n"),
      fields: Object.keys(record).sort(),
      algorithm: (record["vaultKey"] as CryptoKey).algorithm.name,
      usages: [...(record["vaultKey"] as CryptoKey).usages].sort(),
      extractable: (record["vaultKey"] as CryptoKey).extractable,
      exported,
      addPasskey,
    };
  });
  assert.deepEqual(resumed, {
    username,
    n: 1,
    fields: ["accountId", "expiresAt", "sessionId", "token", "username", "v", "vaultEpoch", "vaultKey", "vaultVersion"],
    algorithm: "AES-GCM",
    usages: ["decrypt", "encrypt"],
    extractable: false,
    exported: "refused",
    addPasskey: "reauthentication_required",
  });

  // Revoked elsewhere: the next resume finds out, forgets it, and says so.
  await page.evaluate(async (username) => {
    const other = await client().accounts.login({ username, password: "pw" });
    await other.logoutAll();
  }, username);
  await page.reload();
  await load(page);
  assert.equal(await page.evaluate(async () => (await client().accounts.resume()) === null), true);

  // Logging out forgets the session on the device.
  await page.evaluate(async (username) => {
    await client().accounts.login({ username, password: "pw" });
  }, username);
  await page.reload();
  await load(page);
  assert.equal(await page.evaluate(async () => (await (await client().accounts.resume())?.logout()) === undefined), true);
  await page.reload();
  await load(page);
  assert.equal(await page.evaluate(async () => (await client().accounts.resume()) === null), true);
  assert.deepEqual(errors, []);
  await page.context().close();
});

test("a device keyring: chains whose keys stay in IndexedDB, unreadable by the page", { timeout: TEST_DEADLINE_MS }, async () => {
  const { page, errors } = await openPage();
  const created = await page.evaluate(async () => {
    const chain = await client().accounts.deviceKeys("budget").createChain();
    await chain.appendJson({ n: 0 });
    await chain.appendJson({ n: 1 });
    let keys: string;
    try {
      keys = JSON.stringify(chain.keys);
    } catch (error) {
      keys = (error as { code: string }).code;
    }
    return { chainId: chain.chainId, keys };
  });
  assert.equal(created.keys, "not_exportable");

  await page.reload();
  await load(page);
  const reopened = await page.evaluate(async (chainId) => {
    const keyring = client().accounts.deviceKeys("budget");
    const chain = await keyring.openChain(chainId);
    if (chain === undefined) return null;
    await chain.appendJson({ n: 2 });
    const values = (await chain.readFirst(10)).map((entry) => (entry.content as { value: unknown }).value);
    const stored = await new Promise<{ signKey: CryptoKey; chainKeys: Map<number, CryptoKey> }>((resolve, reject) => {
      const open = indexedDB.open(`blindstore-device-keys:${location.origin}:demo`);
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const get = open.result.transaction("records").objectStore("records").get(`budget/${chainId}`);
        get.onsuccess = () => resolve(get.result);
        get.onerror = () => reject(get.error);
      };
    });
    // Each attempt must fail and give no key bytes; which error a browser build throws is
    // not the point (Chromium renamed it between builds).
    const tryExport = (key: CryptoKey, format: "pkcs8" | "raw") =>
      crypto.subtle.exportKey(format, key).then(
        (bytes) => `exported ${bytes.byteLength} bytes`,
        () => "refused",
      );
    const tryDeriveBits = (key: CryptoKey) =>
      crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: new Uint8Array(1) }, key, 256).then(
        (bits) => `derived ${bits.byteLength} bytes`,
        () => "refused",
      );
    return {
      values,
      list: await keyring.list(),
      otherKeyring: await client().accounts.deviceKeys("other").list(),
      signKey: await tryExport(stored.signKey, "pkcs8"),
      signKeyExtractable: stored.signKey.extractable,
      chainKey: await tryExport(stored.chainKeys.get(0)!, "raw"),
      chainKeyAlgorithm: stored.chainKeys.get(0)!.algorithm.name,
      chainKeyExtractable: stored.chainKeys.get(0)!.extractable,
      // Nor can other key bytes be derived from it.
      chainKeyBits: await tryDeriveBits(stored.chainKeys.get(0)!),
    };
  }, created.chainId);
  assert.deepEqual(reopened, {
    values: [{ n: 0 }, { n: 1 }, { n: 2 }],
    list: [created.chainId],
    otherKeyring: [],
    signKey: "refused",
    signKeyExtractable: false,
    chainKey: "refused",
    chainKeyAlgorithm: "AES-GCM",
    chainKeyExtractable: false,
    chainKeyBits: "refused",
  });
  assert.deepEqual(errors, []);
  await page.context().close();
});

test("passkeys: add one, log in with it on a device that remembers nothing, remove it; the PRF output is never sent", { timeout: TEST_DEADLINE_MS }, async () => {
  const { page, errors } = await openPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      ctap2Version: "ctap2_1",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      hasPrf: true,
    },
  });
  const sent: string[] = [];
  page.on("request", (request) => sent.push(`${request.url()}\n${JSON.stringify(request.headers())}\n${request.postData() ?? ""}`));

  const username = newUsername();
  const added = await page.evaluate(async (username) => {
    const session = await client().accounts.register({ username, password: "pw" });
    await session.vault.put("secret", "kept in the vault");
    const { id } = await session.addPasskey({ label: "laptop" });
    return { id, list: await session.passkeys() };
  }, username);
  assert.equal(added.list.length, 1);
  assert.equal(added.list[0]!.id, added.id);
  assert.equal(added.list[0]!.label, "laptop");

  // Another device: Chromium's virtual authenticator keeps each credential's PRF secret to
  // itself (CDP cannot copy it to another authenticator), so the device that remembers
  // nothing is this tab with its storage wiped, the authenticator staying.
  await page.evaluate(async () => {
    for (const database of await indexedDB.databases()) indexedDB.deleteDatabase(database.name!);
  });
  await page.reload();
  await load(page);
  const loggedIn = await page.evaluate(
    async ({ username, id }) => {
      const bs = client();
      const before = await bs.accounts.resume();
      const session = await bs.accounts.loginWithPasskey({ username, label: "passkey login" });
      const secret = await session.vault.get("secret");
      // What the authenticator's PRF gives for this credential: must appear in no request.
      const assertion = (await navigator.credentials.get({
        publicKey: {
          challenge: crypto.getRandomValues(new Uint8Array(32)),
          allowCredentials: [{ type: "public-key", id: sdk.fromBase64Url(id) }],
          userVerification: "required",
          extensions: { prf: { eval: { first: new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("blindstore/passkey-prf/v1"))) } } },
        },
      })) as PublicKeyCredential;
      const prf = new Uint8Array(assertion.getClientExtensionResults().prf!.results!.first as ArrayBuffer);
      await session.removePasskey(id);
      const envelope = await fetch(`/v1/zones/demo/auth/envelopes`, { headers: { authorization: `Bearer ${session.token}` } }).then((r) => r.json());
      const again = await client()
        .accounts.loginWithPasskey({ username })
        .then(
          () => "logged in",
          (error: { code: string }) => error.code,
        );
      return {
        resumedBefore: before === null ? null : "session",
        secret,
        passkeysAfter: (await session.passkeys()).length,
        envelopes: (envelope as { envelopes: Array<{ name: string }> }).envelopes.map((e) => e.name).sort(),
        again,
        prf: { b64url: sdk.toBase64Url(prf), hex: sdk.toHex(prf), b64: btoa(String.fromCharCode(...prf)) },
      };
    },
    { username, id: added.id },
  );
  assert.equal(loggedIn.resumedBefore, null, "the wiped device remembers no session");
  assert.equal(loggedIn.secret, "kept in the vault");
  assert.equal(loggedIn.passkeysAfter, 0);
  assert.deepEqual(loggedIn.envelopes, ["key-password", "vault"], "removing the passkey removed its envelope");
  assert.equal(loggedIn.again, "invalid_login");
  assert.ok(sent.length > 10, `requests were recorded (${sent.length})`);
  for (const encoding of Object.values(loggedIn.prf)) {
    assert.equal(sent.filter((request) => request.includes(encoding)).length, 0, `the PRF output (${encoding}) was sent`);
  }

  await zoneSet(node, "demo", ["--no-passkeys"]);
  try {
    const off = await page.evaluate(async (username) =>
      client()
        .accounts.loginWithPasskey({ username })
        .then(
          () => "logged in",
          (error: { code: string }) => error.code,
        ),
    username);
    assert.equal(off, "passkeys_off");
  } finally {
    await zoneSet(node, "demo", ["--passkey-rp-id", "localhost", "--passkey-origin", base]);
  }
  assert.deepEqual(errors, []);
  await page.context().close();
});
