/**
 * Accounts against the real server (Node: no IndexedDB, so nothing is remembered on a device;
 * see accounts-browser.test.ts for that and for passkeys): OPAQUE registration and login, the
 * vault, password change, logouts, account deletion, a server that swaps envelopes, and a zone
 * whose writes need a session.
 */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  AccountExistsError,
  Blindstore,
  EscrowError,
  type FetchLike,
  HttpError,
  InvalidInputError,
  InvalidInviteError,
  InvalidLoginError,
  RateLimitedError,
  RegistrationClosedError,
  SessionExpiredError,
  accountIdOf,
  fromBase64Url,
  toBase64Url,
} from "../lib/index.js";
import { VAULT_ENVELOPE, openEnvelope, vaultKey, vaultKeyIdOf } from "../lib/escrow.js";
import { masterKeyOf, writeLegacyVault } from "./support/legacy.js";
import { type RunningNode, startNode, zoneInvite, zoneSet } from "./support/node.js";
import { strangerLoginStarts } from "./support/stranger.js";

/** Generous rate limits: the suite logs in far more often than a person would. */
const RATES = ["--login-rate-per-ip", "1000", "--login-rate-per-account", "1000", "--register-rate-per-ip", "1000"];

let node: RunningNode;

before(async () => {
  node = await startNode(RATES);
});

after(async () => {
  await node?.stop();
});

function client(options: { fetch?: FetchLike; url?: string } = {}): Blindstore {
  return new Blindstore({ url: options.url ?? node.url, zone: "demo", ...(options.fetch ? { fetch: options.fetch } : {}) });
}

const newUsername = () => `user-${randomBytes(6).toString("hex")}`;

test("register, then log in from another client with the same password and find the vault", async () => {
  const username = newUsername();
  const first = client();
  const session = await first.accounts.register({ username, password: "correct horse", label: "laptop" });
  assert.equal(session.username, username);
  assert.equal(session.accountId, await accountIdOf("demo", username));
  assert.notEqual(session.accountId, username, "the server is given a hash, not the username");
  assert.ok(session.expiresAt > Date.now());
  assert.equal(await session.vault.get("budget"), undefined);
  await session.vault.put("budget", { chain: "abc", n: 1 });
  await session.vault.put("theme", "dark");
  await session.vault.delete("theme");

  const second = await client().accounts.login({ username: `  ${username} `, password: "correct horse" });
  assert.equal(second.accountId, session.accountId, "usernames are trimmed");
  assert.deepEqual(await second.vault.get("budget"), { chain: "abc", n: 1 });
  assert.equal(await second.vault.get("theme"), undefined);
  assert.deepEqual(await second.vault.names(), ["budget"]);
});

test("a sign-up cut off before its vault was written is finished by the next login", async () => {
  const username = newUsername();
  // The network fails exactly when the new account's empty vault is being stored.
  const cutting: FetchLike = async (input, init) => {
    if (init?.method === "PUT" && input.endsWith("/auth/envelopes/vault")) {
      throw new TypeError("fetch failed (connection reset)");
    }
    return fetch(input, init);
  };
  await assert.rejects(client({ fetch: cutting }).accounts.register({ username, password: "correct horse" }));
  const session = await client().accounts.login({ username, password: "correct horse" });
  assert.equal(await session.vault.get("budget"), undefined);
  await session.vault.put("budget", { n: 1 });
  assert.deepEqual(await session.vault.get("budget"), { n: 1 });
});

test("a wrong password and an unknown username fail alike", async () => {
  const username = newUsername();
  await client().accounts.register({ username, password: "right" });
  const wrong = await client().accounts.login({ username, password: "wrong" }).catch((error: unknown) => error);
  const unknown = await client().accounts.login({ username: newUsername(), password: "right" }).catch((error: unknown) => error);
  assert.ok(wrong instanceof InvalidLoginError, String(wrong));
  assert.ok(unknown instanceof InvalidLoginError, String(unknown));
  assert.equal(wrong.code, "invalid_login");
  assert.equal(wrong.message, unknown.message);
  const cased = await client().accounts.login({ username: username.toUpperCase(), password: "right" }).catch((error: unknown) => error);
  assert.ok(cased instanceof InvalidLoginError, "usernames keep their case");
});

test("registering a taken username is an AccountExistsError", async () => {
  const username = newUsername();
  await client().accounts.register({ username, password: "one" });
  await assert.rejects(client().accounts.register({ username, password: "two" }), AccountExistsError);
  await client().accounts.login({ username, password: "one" });
});

test("concurrent vault writes from two devices both land", async () => {
  const username = newUsername();
  const a = await client().accounts.register({ username, password: "pw" });
  const b = await client().accounts.login({ username, password: "pw" });
  await Promise.all([
    ...Array.from({ length: 4 }, (_, n) => a.vault.put(`a${n}`, n)),
    ...Array.from({ length: 4 }, (_, n) => b.vault.put(`b${n}`, n)),
  ]);
  assert.deepEqual((await a.vault.names()).sort(), ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"]);
});

test("changing the password: the old one stops working, the vault stays, other sessions end", async () => {
  const username = newUsername();
  const bs = client();
  const session = await bs.accounts.register({ username, password: "old password" });
  await session.vault.put("keys", { secret: 42 });
  const other = await client().accounts.login({ username, password: "old password" });

  await assert.rejects(session.changePassword("not the old one", "new password"), InvalidLoginError);
  await session.changePassword("old password", "new password");

  await assert.rejects(client().accounts.login({ username, password: "old password" }), InvalidLoginError);
  const again = await client().accounts.login({ username, password: "new password" });
  assert.deepEqual(await again.vault.get("keys"), { secret: 42 });
  assert.deepEqual(await session.vault.get("keys"), { secret: 42 }, "the session that changed it goes on");
  await assert.rejects(other.vault.get("keys"), SessionExpiredError);

  // Keeping the other sessions is an option.
  await again.changePassword("new password", "newer password", { revokeOtherSessions: false });
  assert.deepEqual(await session.vault.get("keys"), { secret: 42 });
  await client().accounts.login({ username, password: "newer password" });
});

test("a password change seals the vault again under the next vault key; an older SDK's vault (version 1) is read, kept, then moved on", async () => {
  const username = newUsername();
  const account = await accountIdOf("demo", username);
  const registered = await client().accounts.register({ username, password: "old password" });
  await registered.vault.put("keys", { secret: 42 });
  const vaultOf = async (token: string) => vaultKeyIdOf((await accountApiEnvelope(token, VAULT_ENVELOPE)).data);
  assert.deepEqual(await vaultOf(registered.token), { version: 2, epoch: 0 }, "a new account's vault is version 2, epoch 0");

  // The account as an older SDK left it: a version 1 vault. It still opens, and writes keep it.
  await writeLegacyVault(node.url, "demo", account, "old password", { keys: { secret: 42 }, older: true });
  const session = await client().accounts.login({ username, password: "old password" });
  assert.equal(await session.vault.get("older"), true);
  await session.vault.put("more", 1);
  assert.deepEqual(await vaultOf(session.token), { version: 1, epoch: 0 }, "a write keeps the vault's key");

  // A password change moves it to the next key; the key of before opens nothing written since.
  const { masterKey } = await masterKeyOf(node.url, "demo", account, "old password");
  const place = { zone: "demo", account, name: VAULT_ENVELOPE };
  const keyOf = (version: 1 | 2, epoch: number) => vaultKey(masterKey, "demo", account, { version, epoch });
  const before = await accountApiEnvelope(session.token, VAULT_ENVELOPE);
  await session.changePassword("old password", "new password", { revokeOtherSessions: false });
  const after1 = await accountApiEnvelope(session.token, VAULT_ENVELOPE);
  assert.deepEqual(vaultKeyIdOf(after1.data), { version: 2, epoch: 0 });
  await assert.rejects(openEnvelope(await keyOf(1, 0), place, after1.data), EscrowError);
  assert.ok((await openEnvelope(await keyOf(2, 0), place, after1.data)).length > 0, "negative control: the new key opens it");
  assert.deepEqual(await session.vault.get("keys"), { secret: 42 });
  assert.deepEqual(await session.vault.names(), ["keys", "older", "more"]);

  await session.changePassword("new password", "newer password", { revokeOtherSessions: false });
  const after2 = await accountApiEnvelope(session.token, VAULT_ENVELOPE);
  assert.deepEqual(vaultKeyIdOf(after2.data), { version: 2, epoch: 1 });
  await assert.rejects(openEnvelope(await keyOf(2, 0), place, after2.data), EscrowError);
  // A session from before the changes holds the master key: it follows to the new key.
  assert.deepEqual(await registered.vault.get("keys"), { secret: 42 });

  // A server that serves the vault as it was before the changes, to a session that has seen the
  // newer key, is caught rather than read (or written back under the old key).
  let rollBack = false;
  const rolling: FetchLike = async (input, init) => {
    if (rollBack && (init?.method ?? "GET") === "GET" && input.endsWith("/auth/envelopes/vault")) {
      return new Response(JSON.stringify({ data: toBase64Url(before.data), version: before.version }), { status: 200, headers: { "content-type": "application/json" } });
    }
    return fetch(input, init);
  };
  const watching = await client({ fetch: rolling }).accounts.login({ username, password: "newer password" });
  assert.deepEqual(await watching.vault.get("keys"), { secret: 42 });
  rollBack = true;
  await assert.rejects(watching.vault.get("keys"), EscrowError);
  await assert.rejects(watching.vault.put("keys", "overwritten"), EscrowError);
});

/** An envelope as the server stores it, read with `token`. */
async function accountApiEnvelope(token: string, name: string): Promise<{ version: number; data: Uint8Array }> {
  const response = await fetch(`${node.url}/v1/zones/demo/auth/envelopes/${name}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { version: number; data: string };
  return { version: body.version, data: fromBase64Url(body.data) };
}

test("logout ends the session and the client stops sending it; logoutAll ends them all", async () => {
  const username = newUsername();
  const bs = client();
  const session = await bs.accounts.register({ username, password: "pw" });
  assert.equal(bs.accounts.session, session);
  await session.logout();
  assert.equal(bs.accounts.session, undefined);
  await assert.rejects(session.vault.get("x"), SessionExpiredError);

  const one = await client().accounts.login({ username, password: "pw" });
  const two = await client().accounts.login({ username, password: "pw" });
  await one.logoutAll();
  await assert.rejects(one.vault.get("x"), SessionExpiredError);
  await assert.rejects(two.vault.get("x"), SessionExpiredError);
});

test("a password change and log-out-everywhere say how many sessions ended and which passkeys stay; an unknown passkey to remove changes nothing", async () => {
  const username = newUsername();
  const session = await client().accounts.register({ username, password: "old password" });
  await client().accounts.login({ username, password: "old password" });

  const unknown = await session.changePassword("old password", "new password", { removePasskeys: ["AAAA"] }).catch((error: unknown) => error);
  assert.ok(unknown instanceof HttpError, String(unknown));
  assert.equal(unknown.status, 404);
  assert.equal(unknown.code, "unknown_passkey");
  await client().accounts.login({ username, password: "old password" }); // unchanged
  await assert.rejects(session.changePassword("old password", "new password", { removePasskeys: ["not base64url!"] }), InvalidInputError);

  // Two other sessions are live: the first login's and the one just above.
  assert.deepEqual(await session.changePassword("old password", "new password"), { revoked: 2, passkeys: [] });
  await client().accounts.login({ username, password: "new password" });
  assert.deepEqual(await session.logoutAll(), { revoked: 2, passkeys: [] });
  await assert.rejects(session.logoutAll(), SessionExpiredError, "a session that has ended cannot end the others");
});

test("a stranger's failed logins cannot lock out a client that logged in before; a new client gets RateLimitedError with Retry-After", async () => {
  // The default limits: 10 starts a minute per account and 30 per address, shared by every
  // client without a device token of the account; a device token gets 10 of its own.
  const limited = await startNode();
  try {
    const username = newUsername();
    const account = await accountIdOf("demo", username);
    const owner = new Blindstore({ url: limited.url, zone: "demo" });
    await (await owner.accounts.register({ username, password: "pw" })).logout();

    const flood = await strangerLoginStarts(limited.url, "demo", account, 200);
    assert.deepEqual(Object.keys(flood).sort(), ["200", "429"], JSON.stringify(flood));
    assert.ok(flood[429]! >= 180, `most of the stranger's attempts were refused: ${JSON.stringify(flood)}`);
    // The owner's client keeps its device token across the logout: its login, the step-up of a
    // password change (login/start) and the change's register/start are held to its own limit.
    const session = await owner.accounts.login({ username, password: "pw" });
    await session.changePassword("pw", "pw2");
    await owner.accounts.login({ username, password: "pw2" });

    await strangerLoginStarts(limited.url, "demo", account, 20);
    const refused = await new Blindstore({ url: limited.url, zone: "demo" }).accounts.login({ username, password: "pw2" }).catch((error: unknown) => error);
    assert.ok(refused instanceof RateLimitedError, String(refused));
    assert.equal(refused.status, 429);
    assert.equal(refused.code, "rate_limited");
    assert.ok(refused.retryAfter !== undefined && refused.retryAfter >= 1 && refused.retryAfter <= 60, `Retry-After: ${refused.retryAfter}`);
  } finally {
    await limited.stop();
  }
});

test("deleting the account: its password stops working and the username is free again", async () => {
  const username = newUsername();
  const session = await client().accounts.register({ username, password: "pw" });
  await session.vault.put("k", 1);
  await session.deleteAccount();
  await assert.rejects(client().accounts.login({ username, password: "pw" }), InvalidLoginError);
  const fresh = await client().accounts.register({ username, password: "other" });
  assert.equal(await fresh.vault.get("k"), undefined, "a new account starts with an empty vault");
});

/** Answers GETs of envelope `name` with `replacement` (a captured answer body) instead. */
function swapping(name: string, replacement: () => string): FetchLike {
  return async (input, init) => {
    if ((init?.method ?? "GET") === "GET" && input.endsWith(`/auth/envelopes/${name}`)) {
      return new Response(replacement(), { status: 200, headers: { "content-type": "application/json", etag: '"1"' } });
    }
    return fetch(input, init);
  };
}

/** The raw answer body of GET envelope `name` with `token`. */
async function envelopeBody(token: string, name: string): Promise<string> {
  const response = await fetch(`${node.url}/v1/zones/demo/auth/envelopes/${name}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200);
  return response.text();
}

test("a server that swaps envelopes between accounts or names is caught, never silently accepted", async () => {
  const mallory = await client().accounts.register({ username: newUsername(), password: "mallory" });
  const malloryVault = await envelopeBody(mallory.token, "vault");
  const malloryKey = await envelopeBody(mallory.token, "key-password");

  const alice = newUsername();
  const honest = await client().accounts.register({ username: alice, password: "alice" });
  await honest.vault.put("secret", "alice's");
  const aliceKey = await envelopeBody(honest.token, "key-password");

  // Another account's vault served as Alice's.
  const swappedVault = await client({ fetch: swapping("vault", () => malloryVault) }).accounts.login({ username: alice, password: "alice" });
  await assert.rejects(swappedVault.vault.get("secret"), EscrowError);
  await assert.rejects(swappedVault.vault.put("secret", "overwritten"), EscrowError);

  // Alice's own key-password envelope served under the name vault.
  const renamed = await client({ fetch: swapping("vault", () => aliceKey.replace('"key-password"', '"vault"')) }).accounts.login({
    username: alice,
    password: "alice",
  });
  await assert.rejects(renamed.vault.get("secret"), EscrowError);

  // Another account's wrapped key served as Alice's key-password.
  await assert.rejects(
    client({ fetch: swapping("key-password", () => malloryKey) }).accounts.login({ username: alice, password: "alice" }),
    EscrowError,
  );

  // Negative control: the same logins through an honest fetch open Alice's vault.
  const again = await client().accounts.login({ username: alice, password: "alice" });
  assert.equal(await again.vault.get("secret"), "alice's");
});

test("a zone whose writes need accounts: chains are created with a session, refused without", async () => {
  const own = await startNode(RATES);
  try {
    await zoneSet(own, "demo", ["--writes", "accounts"]);
    const anonymous = client({ url: own.url });
    await assert.rejects(anonymous.createChain(), (error: unknown) => error instanceof SessionExpiredError && error.status === 401);

    const bs = client({ url: own.url });
    const session = await bs.accounts.register({ username: newUsername(), password: "pw" });
    const chain = await bs.createChain();
    await chain.appendJson({ expense: 12.5 });
    const upload = await bs.prepareUpload(new Uint8Array(3000).fill(7), { name: "x.bin" });
    await upload.send();
    await upload.commit(chain);
    await session.vault.put("budget", chain.keys.toJSON());

    await session.logout();
    await assert.rejects(bs.createChain(), SessionExpiredError);

    // A session revoked elsewhere: the first refused request forgets it.
    const username = newUsername();
    const revoked = client({ url: own.url });
    await revoked.accounts.register({ username, password: "pw" });
    await (await client({ url: own.url }).accounts.login({ username, password: "pw" })).logoutAll();
    assert.notEqual(revoked.accounts.session, undefined);
    await assert.rejects(revoked.createChain(), SessionExpiredError);
    assert.equal(revoked.accounts.session, undefined);
  } finally {
    await own.stop();
  }
});

test("a zone that takes accounts by invite: sign-up needs a one-time code, and a closed zone takes none", async () => {
  const zone = "invited";
  const own = await startNode(RATES);
  try {
    const adminToken = readFileSync(join(own.dataDir, "admin-token"), "utf8").trim();
    const http = await fetch(`${own.url}/v1/admin/zones/${zone}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.ok(http.ok, `zone creation: ${http.status}`);
    await zoneSet(own, zone, ["--registration", "invite"]);
    const bs = new Blindstore({ url: own.url, zone });
    await assert.rejects(bs.accounts.register({ username: newUsername(), password: "pw" }), InvalidInviteError);
    const [code, other] = await zoneInvite(own, zone, 2);
    assert.ok(code && other);
    await assert.rejects(bs.accounts.register({ username: newUsername(), password: "pw", invite: "not-a-code" }), InvalidInviteError);
    const session = await bs.accounts.register({ username: newUsername(), password: "pw", invite: code });
    await session.vault.put("n", 1);
    await assert.rejects(bs.accounts.register({ username: newUsername(), password: "pw", invite: code }), InvalidInviteError, "a code works once");
    await zoneSet(own, zone, ["--registration", "closed"]);
    await assert.rejects(bs.accounts.register({ username: newUsername(), password: "pw", invite: other }), RegistrationClosedError);
    // Existing accounts keep working.
    const again = await bs.accounts.login({ username: session.username, password: "pw" });
    assert.equal(await again.vault.get("n"), 1);
  } finally {
    await own.stop();
  }
});
