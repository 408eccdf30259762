/**
 * Accounts where only a browser can test them, in headless Chromium driven by playwright-core:
 * the session remembered in IndexedDB across reloads (with its vault key, non-extractable, and
 * never the master key), device keyrings, passkeys with a CDP virtual authenticator that
 * supports PRF — whose PRF output must never appear in any request — as logins and as step-ups,
 * removed by a password change or "log out everywhere", and the device token that keeps a
 * browser able to log in while a stranger exhausts the account's login limit. The page is served
 * by the node itself at http://localhost:PORT (a passkey relying party cannot be an IP address).
 * Fails, not skips, without Chromium (`$CHROMIUM`, else /usr/bin/chromium).
 *
 * Tests here repeat their set-up (a page, a context, a node) on purpose: each reads, and
 * fails, on its own.
 */

import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser, CDPSession, Page } from "playwright-core";
import { accountIdOf } from "../lib/index.js";
import { type RunningNode, startNode, zoneSet } from "./support/node.js";
import { launchChromium } from "./support/browser.js";
import { strangerLoginStarts } from "./support/stranger.js";

const TEST_DEADLINE_MS = 120_000;
const WAIT_MS = 15_000;
const RATES = ["--login-rate-per-ip", "1000", "--login-rate-per-account", "1000", "--register-rate-per-ip", "1000"];

const PAGE = `<!doctype html><meta charset="utf-8"><title>sdk accounts</title>
<script type="module">
import * as sdk from "./blindstore.js";
window.sdk = sdk;
window.client = () => new sdk.Blindstore({ url: location.origin, zone: "demo" });
// A record of the SDK's accounts store on this device, read as the SDK left it.
window.accountsRecord = (key) => new Promise((resolve, reject) => {
  const open = indexedDB.open(\`blindstore-accounts:\${location.origin}:demo\`);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const get = open.result.transaction("records").objectStore("records").get(key);
    get.onsuccess = () => resolve(get.result);
    get.onerror = () => reject(get.error);
  };
});
window.ready = true;
</script>`;

// The page's globals, as the evaluated functions below use them.
declare const sdk: typeof import("../lib/index.js");
declare function client(): import("../lib/index.js").Blindstore;
declare function accountsRecord(key: string): Promise<unknown>;

let node: RunningNode;
let site: string;
let base: string;
let browser: Browser;

before(async () => {
  site = mkdtempSync(join(tmpdir(), "blindstore-sdk-accounts-"));
  // The self-contained browser build: blindstore.js, reader.js and their chunks (OPAQUE's included).
  cpSync(new URL("../dist/browser", import.meta.url), site, { recursive: true });
  writeFileSync(join(site, "index.html"), PAGE);
  node = await startNode(["--site", site, ...RATES]);
  base = node.url.replace("127.0.0.1", "localhost");
  await zoneSet(node, "demo", ["--passkey-rp-id", "localhost", "--passkey-origin", base]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await node?.stop();
  rmSync(site, { recursive: true, force: true });
});

/** A fresh browser context (a profile with empty storage) with one page on the site at `origin`, its errors collected. */
async function openPage(origin = base): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext();
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await load(page, origin);
  return { page, errors };
}

async function load(page: Page, origin = base): Promise<void> {
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, null, { timeout: WAIT_MS });
}

const newUsername = () => `user-${Math.random().toString(36).slice(2)}`;

/**
 * CDP virtual authenticators for `page`: platform authenticators with resident keys, user
 * verification and PRF, approving every ceremony. Chromium keeps each credential (and its PRF
 * secret) inside the authenticator that made it, so a second authenticator stands for another
 * device, and removing one takes its passkeys away from the page.
 */
async function authenticators(page: Page): Promise<{ add(): Promise<string>; remove(id: string): Promise<void> }> {
  const cdp: CDPSession = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  return {
    add: async () =>
      (
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
        })
      ).authenticatorId,
    remove: async (authenticatorId) => {
      await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });
    },
  };
}

/** Every request `page` sends, as text (URL, headers, body), to look for secrets in. */
function recordRequests(page: Page): string[] {
  const sent: string[] = [];
  page.on("request", (request) => sent.push(`${request.url()}\n${JSON.stringify(request.headers())}\n${request.postData() ?? ""}`));
  return sent;
}

/** The PRF output the page's authenticators give for credential `id` at the SDK's salt, in the encodings a leak could take. */
async function prfOutputOf(page: Page, id: string): Promise<string[]> {
  const prf = await page.evaluate(async (id) => {
    const assertion = (await navigator.credentials.get({
      publicKey: {
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        allowCredentials: [{ type: "public-key", id: sdk.fromBase64Url(id) }],
        userVerification: "required",
        extensions: { prf: { eval: { first: new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("blindstore/passkey-prf/v1"))) } } },
      },
    })) as PublicKeyCredential;
    const prf = new Uint8Array(assertion.getClientExtensionResults().prf!.results!.first as ArrayBuffer);
    return { b64url: sdk.toBase64Url(prf), hex: sdk.toHex(prf), b64: btoa(String.fromCharCode(...prf)) };
  }, id);
  return Object.values(prf);
}

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
  await (await authenticators(page)).add();
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

test("a passkey proves a step-up: a resumed session adds and removes passkeys with no password, and the PRF output is never sent", { timeout: TEST_DEADLINE_MS }, async () => {
  const { page, errors } = await openPage();
  const devices = await authenticators(page);
  const laptop = await devices.add();
  const sent = recordRequests(page);
  const username = newUsername();
  const first = await page.evaluate(async (username) => {
    const session = await client().accounts.register({ username, password: "pw" });
    await session.vault.put("secret", "kept");
    return (await session.addPasskey({ label: "laptop" })).id;
  }, username);
  const firstPrf = await prfOutputOf(page, first);

  // A resumed session has neither a step-up nor the master key; one passkey assertion gives both.
  await page.reload();
  await load(page);
  const proven = await page.evaluate(async () => {
    const session = (await client().accounts.resume())!;
    (window as unknown as { current: typeof session }).current = session;
    const before = await session.addPasskey({ label: "phone" }).then(
      () => "added",
      (error: { code: string }) => error.code,
    );
    const both = await session.stepUp({ password: "pw", passkey: true }).then(
      () => "proven",
      (error: { code: string }) => error.code,
    );
    const { expiresAt } = await session.stepUp({ passkey: true });
    return { before, both, expiresIn: expiresAt - Date.now() };
  });
  assert.equal(proven.before, "reauthentication_required");
  assert.equal(proven.both, "invalid_input", "a proof is the password or a passkey, not both");
  assert.ok(proven.expiresIn > 60_000 && proven.expiresIn <= 5 * 60_000, `the step-up lasts minutes (${proven.expiresIn} ms)`);

  // Another device's authenticator (the laptop's is gone, so no passkey of this account can be
  // asserted now): the session adds a passkey there and removes the laptop's on the strength of
  // the passkey proven above, with no password.
  await devices.remove(laptop);
  await devices.add();
  const added = await page.evaluate(async (first) => {
    const session = (window as unknown as { current: import("../lib/index.js").Session }).current;
    const { id } = await session.addPasskey({ label: "phone" });
    await session.removePasskey(first);
    return { id, labels: (await session.passkeys()).map((passkey) => passkey.label) };
  }, first);
  assert.deepEqual(added.labels, ["phone"]);
  const secondPrf = await prfOutputOf(page, added.id);

  // Resumed again: `{ passkey: true }` where `{ password }` goes, proven with the phone's passkey.
  await page.reload();
  await load(page);
  const removed = await page.evaluate(async (id) => {
    const session = (await client().accounts.resume())!;
    await session.removePasskey(id, { passkey: true });
    const envelopes = await fetch(`/v1/zones/demo/auth/envelopes`, { headers: { authorization: `Bearer ${session.token}` } }).then((r) => r.json());
    return {
      passkeys: (await session.passkeys()).length,
      envelopes: (envelopes as { envelopes: Array<{ name: string }> }).envelopes.map((e) => e.name).sort(),
      secret: await session.vault.get("secret"),
    };
  }, added.id);
  assert.deepEqual(removed, { passkeys: 0, envelopes: ["key-password", "vault"], secret: "kept" });

  const stepUps = sent.filter((request) => request.includes("/auth/passkeys/step-up"));
  assert.equal(stepUps.length, 2, "two passkey step-ups were sent");
  for (const request of stepUps) {
    const body = JSON.parse(request.slice(request.lastIndexOf("\n") + 1)) as { credential: { clientExtensionResults?: Record<string, unknown> } };
    assert.equal(body.credential.clientExtensionResults?.["prf"], undefined, "the step-up's credential carries no PRF results");
  }
  for (const encoding of [...firstPrf, ...secondPrf]) {
    assert.equal(sent.filter((request) => request.includes(encoding)).length, 0, `a PRF output (${encoding}) was sent`);
  }
  assert.deepEqual(errors, []);
  await page.context().close();
});

test("a password change and log-out-everywhere remove the passkeys chosen, in the same step, and list those kept", { timeout: TEST_DEADLINE_MS }, async () => {
  const { page, errors } = await openPage();
  const devices = await authenticators(page);
  const laptop = await devices.add();
  const username = newUsername();
  const laptopKey = await page.evaluate(async (username) => {
    const session = await client().accounts.register({ username, password: "old password" });
    (window as unknown as { current: typeof session }).current = session;
    return (await session.addPasskey({ label: "laptop" })).id;
  }, username);
  await devices.remove(laptop);
  await devices.add();
  const result = await page.evaluate(async (laptopKey) => {
    const session = (window as unknown as { current: import("../lib/index.js").Session }).current;
    const phoneKey = (await session.addPasskey({ label: "phone" })).id;
    const other = await client().accounts.login({ username: session.username, password: "old password" });
    const listed = (await session.passkeys()).map((passkey) => ({ id: passkey.id, label: passkey.label }));
    const changed = await session.changePassword("old password", "new password", { removePasskeys: [laptopKey] });
    const envelopeNames = async (token: string) =>
      ((await fetch(`/v1/zones/demo/auth/envelopes`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json())) as { envelopes: Array<{ name: string }> }).envelopes
        .map((e) => (e.name.startsWith("passkey-") ? "passkey-…" : e.name))
        .sort();
    const afterChange = await envelopeNames(session.token);
    const otherEnded = await other.vault.get("x").then(
      () => "live",
      (error: { code: string }) => error.code,
    );
    const ended = await session.logoutAll({ removePasskeys: [phoneKey] });
    const again = await client().accounts.login({ username: session.username, password: "new password" });
    return {
      phoneKey,
      listed,
      changed: { revoked: changed.revoked, kept: changed.passkeys.map((passkey) => [passkey.id, passkey.label]) },
      afterChange,
      otherEnded,
      ended,
      afterLogoutAll: { passkeys: await again.passkeys(), envelopes: await envelopeNames(again.token) },
      passkeyLogin: await client()
        .accounts.loginWithPasskey({ username: session.username })
        .then(
          () => "logged in",
          (error: { code: string }) => error.code,
        ),
    };
  }, laptopKey);
  assert.deepEqual(result.listed, [
    { id: laptopKey, label: "laptop" },
    { id: result.phoneKey, label: "phone" },
  ]);
  assert.deepEqual(result.changed, { revoked: 1, kept: [[result.phoneKey, "phone"]] });
  assert.deepEqual(result.afterChange, ["key-password", "passkey-…", "vault"], "the laptop passkey's envelope went with it");
  assert.equal(result.otherEnded, "invalid_session");
  assert.deepEqual(result.ended, { revoked: 1, passkeys: [] });
  assert.deepEqual(result.afterLogoutAll, { passkeys: [], envelopes: ["key-password", "vault"] });
  assert.equal(result.passkeyLogin, "invalid_login", "the phone's passkey, still in its authenticator, no longer logs in");
  assert.deepEqual(errors, []);
  await page.context().close();
});

test("device tokens: after a stranger's 200 login attempts the browser that logged in before still logs in, by password or passkey; a fresh profile gets RateLimitedError", { timeout: TEST_DEADLINE_MS }, async () => {
  // A node with the default login limits (10 starts a minute per account, 30 per address, for
  // clients without a device token of the account; 10 for each device that has one).
  const limited = await startNode(["--site", site]);
  const origin = limited.url.replace("127.0.0.1", "localhost");
  await zoneSet(limited, "demo", ["--passkey-rp-id", "localhost", "--passkey-origin", origin]);
  try {
    const { page, errors } = await openPage(origin);
    await (await authenticators(page)).add();
    const username = newUsername();
    const account = await accountIdOf("demo", username);
    const kept = await page.evaluate(async (username) => {
      const bs = client();
      const session = await bs.accounts.register({ username, password: "pw" });
      await session.addPasskey({ label: "laptop" });
      await session.logout();
      // Kept across the logout: the device token is not a session.
      return accountsRecord(`device-token:${session.accountId}`);
    }, username);
    assert.equal(typeof kept, "string", "the device token is kept after logging out");

    const flood = await strangerLoginStarts(limited.url, "demo", account, 200);
    assert.ok((flood[429] ?? 0) >= 180, `most of the stranger's attempts were refused: ${JSON.stringify(flood)}`);
    const byPasskey = await page.evaluate(async (username) => {
      const session = await client().accounts.loginWithPasskey({ username });
      await session.logout();
      return "logged in";
    }, username);
    assert.equal(byPasskey, "logged in");
    await strangerLoginStarts(limited.url, "demo", account, 30);
    const byPassword = await page.evaluate(async (username) => (await client().accounts.login({ username, password: "pw" })).username, username);
    assert.equal(byPassword, username);

    // A browser that never logged in to the account waits with the strangers.
    const fresh = await openPage(origin);
    await strangerLoginStarts(limited.url, "demo", account, 30);
    const refused = await fresh.page.evaluate(async (username) => {
      const attempt = async (login: () => Promise<unknown>) =>
        login().then(
          () => ({ code: "logged in", typed: false, retryAfter: undefined as number | undefined }),
          (error: InstanceType<typeof sdk.RateLimitedError>) => ({ code: error.code, typed: error instanceof sdk.RateLimitedError, retryAfter: error.retryAfter }),
        );
      return {
        password: await attempt(() => client().accounts.login({ username, password: "pw" })),
        passkey: await attempt(() => client().accounts.loginWithPasskey({ username })),
      };
    }, username);
    for (const [how, outcome] of Object.entries(refused)) {
      assert.equal(outcome.code, "rate_limited", `${how}: ${JSON.stringify(outcome)}`);
      assert.equal(outcome.typed, true, `${how}: a RateLimitedError`);
      assert.ok(outcome.retryAfter !== undefined && outcome.retryAfter >= 1 && outcome.retryAfter <= 60, `${how}: Retry-After ${outcome.retryAfter}`);
    }

    // Deleting the account from the device that holds its token forgets the token too.
    const afterDeletion = await page.evaluate(async (username) => {
      const session = await client().accounts.login({ username, password: "pw" });
      await session.deleteAccount();
      return accountsRecord(`device-token:${session.accountId}`);
    }, username);
    assert.equal(afterDeletion, undefined);
    assert.deepEqual([...errors, ...fresh.errors], []);
    await page.context().close();
    await fresh.page.context().close();
  } finally {
    await limited.stop();
  }
});
