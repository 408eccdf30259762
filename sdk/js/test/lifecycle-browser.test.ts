/**
 * A client's life in headless Chromium: `close()` lets go of every listener, channel,
 * IndexedDB connection and stream it made; remembered heads are in IndexedDB by default; the
 * live hub goes quiet in the back/forward cache and picks up where it was when the page comes
 * back; and more than 32 chains followed live all get their entries (two streams).
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Blindstore } from "../lib/index.js";
import { type BrowserSite, SDK_PAGE, STEP_MS, launchChromium, openSdkPage, startBrowserSite } from "./support/browser.js";
import { waitFor } from "./support/node.js";

let site: BrowserSite;

before(async () => {
  site = await startBrowserSite({ "index.html": SDK_PAGE, "away.html": "<!doctype html><title>away</title><p>Another page" });
});

after(async () => {
  await site?.stop();
});


/** Counts what a page makes and lets go of: window listeners, BroadcastChannels, IndexedDB connections. */
function instrument(): void {
  const w = window as any;
  const tally = { listeners: new Map<string, number>(), channels: 0, channelsClosed: 0, databases: 0, databasesClosed: 0 };
  w.tally = tally;
  const add = window.addEventListener.bind(window);
  const remove = window.removeEventListener.bind(window);
  const listening = new Set<unknown>();
  window.addEventListener = ((type: string, listener: any, options?: any) => {
    if (!listening.has(listener)) (listening.add(listener), tally.listeners.set(type, (tally.listeners.get(type) ?? 0) + 1));
    add(type, listener, options);
  }) as typeof window.addEventListener;
  window.removeEventListener = ((type: string, listener: any, options?: any) => {
    if (listening.delete(listener)) tally.listeners.set(type, tally.listeners.get(type)! - 1);
    remove(type, listener, options);
  }) as typeof window.removeEventListener;
  const Channel = window.BroadcastChannel;
  w.BroadcastChannel = class extends Channel {
    constructor(name: string) {
      super(name);
      tally.channels += 1;
    }
    override close(): void {
      tally.channelsClosed += 1;
      super.close();
    }
  };
  const open = indexedDB.open.bind(indexedDB);
  indexedDB.open = ((name: string, version?: number) => {
    const request = open(name, version);
    request.addEventListener("success", () => (tally.databases += 1));
    return request;
  }) as typeof indexedDB.open;
  const close = IDBDatabase.prototype.close;
  IDBDatabase.prototype.close = function (this: IDBDatabase) {
    tally.databasesClosed += 1;
    close.call(this);
  };
}

test("close() lets go of every listener, channel, IndexedDB connection and stream the client made", async () => {
  const context = await site.browser.newContext();
  try {
    const page = await openSdkPage(site, await context.newPage(), instrument);
    const streams = { opened: 0, ended: 0 };
    page.on("request", (request) => void (request.url().includes("/events") && (streams.opened += 1)));
    page.on("requestfinished", (request) => void (request.url().includes("/events") && (streams.ended += 1)));
    page.on("requestfailed", (request) => void (request.url().includes("/events") && (streams.ended += 1)));
    await page.evaluate(async () => {
      const sdk = (window as any).sdk;
      const store = new sdk.Blindstore({ url: location.origin, zone: "demo" });
      await store.accounts.register({ username: `closer-${Date.now()}`, password: "a long password" });
      const chain = await store.createChain();
      await store.accounts.session.vault.put("k", chain.keys);
      await chain.appendJson({ n: 0 });
      await (await chain.enqueueJson({ n: 1 })).durable;
      const direct = chain.follow({ onEntry: () => undefined, onError: () => undefined });
      const shared = store.live().follow(chain, { onEntry: () => undefined, onError: () => undefined });
      (window as any).closing = { store, direct, shared };
    });
    await waitFor(() => streams.opened >= 2, STEP_MS, "both event streams opened");
    const used = await page.evaluate(async () => {
      const { store, direct, shared } = (window as any).closing;
      const tally = (window as any).tally;
      const before = { channels: tally.channels, databases: tally.databases, listeners: Object.fromEntries(tally.listeners) };
      store.close();
      await Promise.all([direct.closed, shared.closed]);
      return { before, after: { ...tally, listeners: Object.fromEntries(tally.listeners) } };
    });
    // The browser reports an ended request to the test a moment after the page let go of it.
    await waitFor(() => streams.ended >= streams.opened, STEP_MS, `every event stream ended (${streams.ended} of ${streams.opened})`);
    // It did make them: the outbox's and the live hub's channels, the accounts and heads
    // databases, the online/pagehide/pageshow listeners.
    assert.ok(used.before.channels >= 2 && used.before.databases >= 2, JSON.stringify(used.before));
    assert.ok(used.before.listeners.online >= 1 && used.before.listeners.pagehide >= 1, JSON.stringify(used.before));
    assert.equal(used.after.channelsClosed, used.after.channels, "every channel closed");
    assert.equal(used.after.databasesClosed, used.after.databases, "every IndexedDB connection closed");
    // (The page's own listeners are the test driver's: only those the SDK adds count.)
    for (const type of ["online", "pagehide", "pageshow"]) assert.equal(used.after.listeners[type] ?? 0, 0, `${type} listeners left`);
    assert.ok(streams.opened >= 2, `both event streams opened (${streams.opened})`);
    assert.equal(streams.ended, streams.opened, "every event stream ended");
  } finally {
    await context.close();
  }
});

test("remembered heads are kept in IndexedDB by default: a reload still knows how far a chain went", async () => {
  const writer = new Blindstore({ url: site.node.url, zone: "demo" });
  const chain = await writer.createChain();
  for (let n = 0; n < 3; n++) await chain.appendJson({ n });
  const keys = JSON.parse(JSON.stringify(chain.keys.forReader()));
  const context = await site.browser.newContext();
  try {
    const page = await openSdkPage(site, await context.newPage());
    await page.evaluate(async (json) => {
      const sdk = (window as any).sdk;
      const store = new sdk.Blindstore({ url: location.origin, zone: "demo" }); // no headStore given
      await store.openChain(await sdk.ChainKeys.fromJSON(json)).readFirst(3);
      store.close();
    }, keys);
    await page.reload();
    await page.waitForFunction(() => (window as any).sdkReady === true);
    const remembered = await page.evaluate(async (chainId) => {
      const heads = await (window as any).sdk.IndexedDbHeadStore.open();
      return heads.get("demo", chainId);
    }, chain.chainId);
    assert.equal(remembered?.length, 3);
  } finally {
    await context.close();
  }
});

test("the live hub sleeps in the back/forward cache and picks up where it was when the page comes back", async () => {
  const writer = new Blindstore({ url: site.node.url, zone: "demo" });
  const chain = await writer.createChain();
  await chain.appendJson({ n: 0 });
  const keys = JSON.parse(JSON.stringify(chain.keys.forReader()));
  // Playwright's Chromium has no back/forward cache; this one has it, as people's browsers do.
  const browser = await launchChromium({ backForwardCache: true });
  try {
    const page = await openSdkPage(site, await browser.newPage());
    let open = 0;
    page.on("request", (request) => void (request.url().includes("/events?") && (open += 1)));
    page.on("requestfailed", (request) => void (request.url().includes("/events?") && (open -= 1)));
    page.on("requestfinished", (request) => void (request.url().includes("/events?") && (open -= 1)));
    await page.evaluate(async (json) => {
      const w = window as any;
      w.shows = [];
      window.addEventListener("pageshow", (event) => void w.shows.push(event.persisted));
      const store = new w.sdk.Blindstore({ url: location.origin, zone: "demo" });
      const got: number[] = (w.got = []);
      store.live().follow(store.openChain(await w.sdk.ChainKeys.fromJSON(json)), { onEntry: (entry: any) => void got.push(entry.content.value.n), onError: (error: unknown) => (w.failed = String(error)) });
    }, keys);
    await page.waitForFunction(() => (window as any).got.length === 1);
    assert.equal(open, 1);
    // Away to another page: this one goes into the back/forward cache, its stream stops.
    await page.goto(`${site.node.url}/away.html`);
    await waitUntil(() => open === 0, "the stream to stop");
    await chain.appendJson({ n: 1 });
    await chain.appendJson({ n: 2 });
    // Back: the page as it was (not loaded again: `got` is still there), and the same followers
    // go on from where they were, nothing missed or doubled.
    await page.goBack({ waitUntil: "commit" });
    await page.waitForFunction(() => (window as any).got?.length === 3);
    assert.deepEqual(await page.evaluate(() => (window as any).shows), [true], "restored from the back/forward cache");
    await chain.appendJson({ n: 3 });
    await page.waitForFunction(() => (window as any).got.length === 4);
    assert.deepEqual(await page.evaluate(() => (window as any).got), [0, 1, 2, 3]);
    assert.equal(await page.evaluate(() => (window as any).failed), undefined);
    assert.equal(open, 1, "one stream again");
    // A page really unloading (not persisted) closes the hub for good, as before.
    await page.evaluate(() => window.dispatchEvent(new PageTransitionEvent("pagehide", { persisted: false })));
    await waitUntil(() => open === 0, "the stream to stop for good");
  } finally {
    await browser.close();
  }
});

test("more than 32 chains followed live: every one gets its entries, over more than one stream", async () => {
  const writer = new Blindstore({ url: site.node.url, zone: "demo" });
  const chains = [];
  for (let i = 0; i < 40; i++) chains.push(await writer.createChain());
  const keys = chains.map((chain) => JSON.parse(JSON.stringify(chain.keys.forReader())));
  const context = await site.browser.newContext();
  try {
    const page = await openSdkPage(site, await context.newPage());
    const streams: string[] = [];
    page.on("request", (request) => void (request.url().includes("/events?") && streams.push(request.url())));
    await page.evaluate(async (all) => {
      const sdk = (window as any).sdk;
      const store = new sdk.Blindstore({ url: location.origin, zone: "demo" });
      const got: Record<string, number> = ((window as any).got = {});
      for (const json of all) {
        const chain = store.openChain(await sdk.ChainKeys.fromJSON(json));
        store.live().follow(chain, { onEntry: () => void (got[chain.chainId] = (got[chain.chainId] ?? 0) + 1), onError: (error: unknown) => ((window as any).failed = String(error)) });
      }
    }, keys);
    for (const chain of chains) await chain.appendJson({ hello: chain.chainId });
    await page.waitForFunction((count) => Object.keys((window as any).got).length === count, chains.length, { timeout: STEP_MS });
    assert.equal(await page.evaluate(() => (window as any).failed), undefined);
    const open = streams.slice(-2).map((url) => new URL(url).searchParams.get("chains")!.split(",").length);
    assert.deepEqual(open.sort((a, b) => a - b), [8, 32], `the last two streams carry 32 and 8 chains (${streams.length} opened)`);
  } finally {
    await context.close();
  }
});

test("a device keyring's chain creation takes an AbortSignal", async () => {
  const context = await site.browser.newContext();
  try {
    const page = await openSdkPage(site, await context.newPage());
    const outcome = await page.evaluate(async () => {
      const sdk = (window as any).sdk;
      const store = new sdk.Blindstore({ url: location.origin, zone: "demo" });
      const keyring = store.accounts.deviceKeys("abort");
      const stopped = await keyring.createChain({ signal: AbortSignal.abort() }).then(
        () => "created",
        (error: any) => error.code,
      );
      const made = await keyring.createChain();
      await made.appendJson({ ok: true });
      return { stopped, opened: (await keyring.openChain(made.chainId, { signal: new AbortController().signal }))?.chainId === made.chainId };
    });
    assert.deepEqual(outcome, { stopped: "aborted", opened: true });
  } finally {
    await context.close();
  }
});

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + STEP_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

