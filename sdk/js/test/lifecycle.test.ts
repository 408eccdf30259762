/**
 * A client's life against a real node (Node): session events (login, logout, revoked, expired),
 * the outbox waiting through an ended session and resuming at the next login of the same
 * account, the server's Retry-After honoured by the SDK's own retries, AbortSignal on accounts
 * and the vault, and `close()`. The browser side (IndexedDB, channels, listeners, the
 * back/forward cache, more than 32 chains live) is lifecycle-browser.test.ts.
 */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import {
  AbortedError,
  Blindstore,
  type FetchLike,
  type OutboxEvent,
  RateLimitedError,
  type SessionChange,
  SessionExpiredError,
} from "../lib/index.js";
import { type RunningNode, startNode, zoneSet } from "./support/node.js";

const RATES = ["--login-rate-per-ip", "1000", "--login-rate-per-account", "1000", "--register-rate-per-ip", "1000"];
let node: RunningNode;

before(async () => {
  node = await startNode(RATES);
  await zoneSet(node, "demo", ["--writes", "accounts"]);
});

after(async () => {
  await node?.stop();
});

const newUsername = () => `user-${randomBytes(6).toString("hex")}`;

function client(options: { fetch?: FetchLike } = {}): Blindstore {
  return new Blindstore({ url: node.url, zone: "demo", outboxMinRetryMs: 20, outboxMaxRetryMs: 200, ...options });
}

/** What `onSessionChange` reported, as short strings. */
function recorder(store: Blindstore): string[] {
  const seen: string[] = [];
  store.accounts.onSessionChange((change: SessionChange) => {
    seen.push(change.type === "login" ? `login:${change.how}:${change.session.username}` : change.type === "logout" ? `logout:${change.username}` : `ended:${change.reason}:${change.username}`);
  });
  return seen;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("onSessionChange reports sign-up, logout, login, a session revoked elsewhere and one that expired", async () => {
  const username = newUsername();
  const store = client();
  const seen = recorder(store);
  const session = await store.accounts.register({ username, password: "pw" });
  await session.logout();
  await store.accounts.login({ username, password: "pw" });
  assert.deepEqual(seen, [`login:password:${username}`, `logout:${username}`, `login:password:${username}`]);

  // Ended on another device: the next request this client makes finds out and says so.
  await (await client().accounts.login({ username, password: "pw" })).logoutAll();
  await assert.rejects(store.accounts.session!.vault.get("x"), SessionExpiredError);
  assert.deepEqual(seen.slice(3), [`ended:revoked:${username}`]);
  assert.equal(store.accounts.session, undefined);

  // Its time running out is told when it happens, without a request: sessions last 30 days, so
  // the client's clock is moved to 300 ms before the end for this login.
  const realNow = Date.now;
  const ttlMs = 30 * 24 * 3600 * 1000;
  Date.now = () => realNow() + ttlMs - 300;
  try {
    await store.accounts.login({ username, password: "pw" });
  } finally {
    Date.now = realNow;
  }
  await until(() => seen.length === 5, "the expiry");
  assert.deepEqual(seen.slice(4), [`login:password:${username}`]);
  Date.now = () => realNow() + ttlMs;
  try {
    await until(() => seen.length === 6, "the expiry event");
  } finally {
    Date.now = realNow;
  }
  assert.deepEqual(seen.slice(5), [`ended:expired:${username}`]);
  store.close();
});

test("after a session ends, the outbox keeps the account's writes and sends them at its next login", async () => {
  const username = newUsername();
  let offline = false;
  const flaky: FetchLike = async (input, init) => {
    if (offline && init?.method === "POST" && String(input).endsWith("/entries")) throw new TypeError("fetch failed");
    return fetch(input, init);
  };
  const store = client({ fetch: flaky });
  const seen = recorder(store);
  await store.accounts.register({ username, password: "pw" });
  const session = store.accounts.session!;
  const chain = await store.createChain();
  await chain.appendJson({ n: 0 });

  // Two writes queued while appends fail; meanwhile the session is ended on another device,
  // and this client learns it (any refused request tells it).
  offline = true;
  const writes = [1, 2].map((n) => chain.enqueueJson({ n }));
  await Promise.all(writes.map((write) => write.queued));
  await (await client().accounts.login({ username, password: "pw" })).logoutAll();
  await assert.rejects(session.vault.get("x"), SessionExpiredError);
  assert.deepEqual(seen, [`login:password:${username}`, `ended:revoked:${username}`]);

  // The network is back: without the account's session nothing of its goes out.
  offline = false;
  let settled = false;
  void Promise.all(writes.map((write) => write.durable)).then(() => (settled = true));
  store.outbox.flush();
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(settled, false, "nothing is sent without the account's session");
  assert.equal((await chain.head()).length, 1);
  assert.equal((await store.outbox.pending()).length, 0, "the ended account's writes are not shown to whoever comes next");

  // The same account logs in again: its writes go, in order, once — no flush() needed.
  await store.accounts.login({ username, password: "pw" });
  const results = await Promise.all(writes.map((write) => write.durable));
  assert.deepEqual(
    results.map((result) => result.index),
    [1, 2],
  );
  const values = [];
  for await (const entry of client().openChain(chain.keys).entries()) values.push((entry.content as { value: unknown }).value);
  assert.deepEqual(values, [{ n: 0 }, { n: 1 }, { n: 2 }]);
  store.close();
});

test("a 429's Retry-After is honoured by the outbox and by follow, and every 429 is a RateLimitedError", async () => {
  const username = newUsername();
  const appends: number[] = [];
  let refuseAppends = 1;
  let refuseEvents = 1;
  const eventsOpened: number[] = [];
  const limiting: FetchLike = async (input, init) => {
    const url = String(input);
    const refused = (code: string) =>
      new Response(JSON.stringify({ error: { code, message: "slow down" } }), { status: 429, headers: { "retry-after": "1", "content-type": "application/json" } });
    if (init?.method === "POST" && /\/chains\/[0-9a-f]+\/entries$/.test(url)) {
      appends.push(Date.now());
      if (refuseAppends-- > 0) return refused("rate_limited");
    }
    if (url.includes("/events")) {
      eventsOpened.push(Date.now());
      if (refuseEvents-- > 0) return refused("too_many_subscriptions");
    }
    return fetch(input, init);
  };
  const store = client({ fetch: limiting });
  await store.accounts.register({ username, password: "pw" });
  const chain = await store.createChain();
  const events: OutboxEvent[] = [];
  store.outbox.onChange((event) => events.push(event));
  const write = chain.enqueueJson({ n: 0 });
  assert.equal((await write.durable).index, 0);
  assert.equal(appends.length, 2);
  // A timer may fire a millisecond or so early by the wall clock: 900 ms still tells Retry-After
  // (1 s) from the outbox's own 20 ms backoff; the delay it chose is checked exactly below.
  assert.ok(appends[1]! - appends[0]! >= 900, `the retry waited ${appends[1]! - appends[0]!} ms, the outbox's own backoff being 20 ms`);
  const retrying = events.find((event) => event.type === "retrying");
  assert.ok(retrying?.type === "retrying" && retrying.delayMs >= 1000, JSON.stringify(retrying));
  const refusal = retrying.error as RateLimitedError;
  assert.ok(refusal instanceof RateLimitedError && refusal.retryAfter === 1);

  // follow: refused with another 429 code, it waits as asked, then delivers.
  const got: number[] = [];
  const subscription = chain.follow({ onEntry: (entry) => void got.push(entry.index), onError: (error) => assert.fail(String(error)) });
  await until(() => got.length === 1, "the followed entry", 15_000);
  subscription.close();
  assert.ok(eventsOpened.length >= 2 && eventsOpened[1]! - eventsOpened[0]! >= 900, `follow waited ${eventsOpened[1]! - eventsOpened[0]!} ms`);
  store.close();
});

test("an AbortSignal stops account operations and vault calls, and an aborted login leaves no session", async () => {
  const username = newUsername();
  await client().accounts.register({ username, password: "pw" });

  const aborted = AbortSignal.abort();
  const store = client();
  const seen = recorder(store);
  await assert.rejects(store.accounts.login({ username, password: "pw" }, { signal: aborted }), AbortedError);
  assert.equal(store.accounts.session, undefined);

  // Stopped after the server made the session: the client ends it rather than leave it.
  const controller = new AbortController();
  let loggedOut = false;
  const watching: FetchLike = async (input, init) => {
    const url = String(input);
    const answer = await fetch(input, init);
    if (url.endsWith("/auth/login/finish")) controller.abort();
    if (url.endsWith("/auth/logout")) loggedOut = answer.ok;
    return answer;
  };
  const watched = client({ fetch: watching });
  await assert.rejects(watched.accounts.login({ username, password: "pw" }, { signal: controller.signal }), AbortedError);
  assert.equal(watched.accounts.session, undefined);
  assert.ok(loggedOut, "the session the aborted login made was ended");

  const session = await store.accounts.login({ username, password: "pw" });
  await assert.rejects(session.vault.put("a", 1, { signal: aborted }), AbortedError);
  await assert.rejects(session.vault.get("a", { signal: aborted }), AbortedError);
  await assert.rejects(session.passkeys({ signal: aborted }), AbortedError);
  assert.equal(await session.vault.get("a"), undefined, "the aborted put wrote nothing");
  await assert.rejects(session.logout({ signal: aborted }), AbortedError);
  assert.equal(store.accounts.session, session, "an aborted logout leaves the session");
  assert.deepEqual(seen, [`login:password:${username}`]);
  store.close();
});

test("close() stops the outbox and the session timer; queued writes stay for the next client", async () => {
  const username = newUsername();
  const store = client();
  await store.accounts.register({ username, password: "pw" });
  const chain = await store.createChain();
  const seen = recorder(store);
  store.close();
  const write = chain.enqueueJson({ late: true });
  await write.queued; // stored, but a closed client sends nothing
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal((await chain.head()).length, 0);
  store.outbox.flush();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal((await chain.head()).length, 0);
  assert.deepEqual(seen, [], "listeners are dropped at close");
});
