/**
 * One live connection per origin, shared by every tab (`Blindstore.live()`).
 *
 * Tabs elect a leader with the Web Locks API (the lock `<name>/live-leader`; the browser hands it
 * to a waiting tab when the leader's tab closes). Without Web Locks, the tabs elect over the
 * BroadcastChannel alone: a tab that hears no leader for a while leads, and of two leaders the
 * one with the smaller tab id stays. The leader holds ONE event stream
 * (`GET /v1/zones/{zone}/events?chains=...`) for the union of the chains the tabs follow, opened
 * again (from the positions reached) whenever that set changes, and relays each raw event to
 * the other tabs over the BroadcastChannel `<name>/live`.
 *
 * No tab trusts another: each one verifies every relayed entry itself, with exactly the checks
 * of `chain.follow` (exact next index, `prev` link, signature, payload hash, remembered head).
 * An event before its next index is a duplicate and is dropped; one after it means the tab
 * missed some (a new leader started from another position, a message was lost), and the tab
 * reads the gap itself by a verified range read before going on. The leader's heartbeat states
 * where its stream stands on each chain, so a tab that starts behind it (it joined late, from an
 * older index) reads up to there without waiting for the next entry. So a change of leader
 * leaves neither gaps nor duplicates.
 */

import { randomBytes, toHex } from "./bytes.js";
import type { Chain, Entry } from "./chain.js";
import { HttpError, RollbackError, VerificationError, isTransient, retryDelayMs } from "./errors.js";
import { type EntryVerifier, type Subscription, sleep } from "./follow.js";
import type { ZoneApi } from "./http.js";
import { SseParser } from "./sse.js";

/** How often each tab says which chains it follows, and the leader that it leads. */
const HEARTBEAT_MS = 1_000;
/** A tab (or leader) not heard from for this long is gone. */
const SILENCE_MS = 4 * HEARTBEAT_MS;
/** Changes of the followed set within this window make one reconnection. */
const RECONNECT_DEBOUNCE_MS = 50;
/** Reconnect when the stream sent nothing (not even a keep-alive, every 15 s) for this long. */
const IDLE_TIMEOUT_MS = 45_000;
const MIN_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;
/** The server's limit of chains per stream: more chains are carried by more streams. */
export const MAX_CHAINS_PER_STREAM = 32;

export interface LiveOptions {
  api: ZoneApi;
  /** Names the lock and the channel: one per deployment and zone. */
  name: string;
}

export interface LiveFollowOptions {
  /** The first index to deliver (default 0). */
  from?: number;
  /** The entry hash of entry `from - 1`, when already verified (as `FollowOptions.prev`). */
  prev?: string;
  /** Each entry, in order, once, verified by this tab; the next waits for the returned promise. */
  onEntry: (entry: Entry) => void | Promise<void>;
  /** Called once when following stops for good (as `FollowOptions.onError`). */
  onError: (error: unknown) => void;
  signal?: AbortSignal;
}

/** Messages between tabs. Everything in them is checked by the receiver as if the server sent it. */
type Message =
  | { t: "want"; tab: string; chains: Record<string, number> }
  | { t: "bye"; tab: string }
  | { t: "leader"; tab: string; positions: Record<string, number> }
  | { t: "event"; chain: string; index: number; wire: unknown }
  | { t: "unavailable"; chain: string; length: unknown }
  | { t: "failed"; chains: string[]; status: number; code: string; message: string };

/** A tab's share of the origin's live connection. */
export class LiveHub {
  readonly #api: ZoneApi;
  readonly #name: string;
  readonly #tab = toHex(randomBytes(8));
  readonly #channel: BroadcastChannel | undefined;
  readonly #followers = new Map<string, Set<Follower>>();
  /** What each tab follows (this one included), with when it was last heard from. */
  readonly #wants = new Map<string, { chains: Record<string, number>; seen: number }>();
  readonly #closing = new AbortController();
  #leading = false;
  #leaderSeen = 0;
  #started = false;
  /** The leader's streams (one per 32 chains, in chain order), keyed by their chains. */
  readonly #streams = new Map<string, AbortController>();
  readonly #positions = new Map<string, number>();
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;

  constructor(options: LiveOptions) {
    this.#api = options.api;
    this.#name = options.name;
    this.#channel = typeof BroadcastChannel === "undefined" ? undefined : new BroadcastChannel(`${options.name}/live`);
    this.#channel?.addEventListener("message", this.#onMessage);
    globalThis.addEventListener?.("pagehide", this.#onPageHide);
    globalThis.addEventListener?.("pageshow", this.#onPageShow);
  }

  readonly #onMessage = (event: MessageEvent) => this.#receive(event.data as Message);

  /**
   * A page going into the back/forward cache (`persisted`) keeps its followers: the connection
   * stops and the other tabs hear it leave, and `pageshow` brings it back, each follower going
   * on from where it was. A page that is really unloading closes.
   */
  readonly #onPageHide = (event: Event) => {
    if ((event as PageTransitionEvent).persisted !== true) {
      this.close();
      return;
    }
    this.#post({ t: "bye", tab: this.#tab });
    this.#stepDown();
    this.#away?.abort();
    clearInterval(this.#heartbeat);
    this.#started = false;
  };

  readonly #onPageShow = (event: Event) => {
    if ((event as PageTransitionEvent).persisted !== true || this.#started || this.#closing.signal.aborted || this.#followers.size === 0) {
      return;
    }
    // As a tab that just opened: into the election again, and tell the others what it follows.
    this.#start();
    this.#announce();
  };

  /** Aborted when this tab stops taking part (the page put away, or the hub closed): lets the leader lock go. */
  #away: AbortController | undefined;

  /** Whether this tab holds the connection now. */
  get leading(): boolean {
    return this.#leading;
  }

  /**
   * Follows `chain` live from `from` through the shared connection: every entry once, in order,
   * verified by this tab. The same contract as `chain.follow`.
   */
  follow(chain: Chain, options: LiveFollowOptions): Subscription {
    const from = options.from ?? 0;
    if (!Number.isSafeInteger(from) || from < 0) {
      throw new RangeError("from must be an integer in 0..2^53-1");
    }
    let finish!: () => void;
    const closed = new Promise<void>((resolve) => (finish = resolve));
    const follower: Follower = {
      chain,
      verifier: chain.verifier(),
      next: from,
      seen: from,
      prev: options.prev,
      queue: Promise.resolve(),
      options,
      stop: new AbortController(),
      finish,
    };
    const followers = this.#followers.get(chain.chainId) ?? new Set<Follower>();
    this.#followers.set(chain.chainId, followers);
    followers.add(follower);
    const close = () => {
      if (!follower.stop.signal.aborted) {
        follower.stop.abort();
        followers.delete(follower);
        if (followers.size === 0) {
          this.#followers.delete(chain.chainId);
        }
        this.#announce();
        // After the handler in flight, if any.
        void follower.queue.then(finish);
      }
    };
    options.signal?.addEventListener("abort", close, { once: true });
    follower.close = close;
    this.#start();
    this.#announce();
    return { close, closed };
  }

  /** Leaves: stops every follower of this tab, and the connection when this tab leads. */
  close(): void {
    if (this.#closing.signal.aborted) {
      return;
    }
    for (const followers of [...this.#followers.values()]) {
      for (const follower of [...followers]) {
        follower.close?.();
      }
    }
    this.#post({ t: "bye", tab: this.#tab });
    this.#closing.abort();
    this.#stepDown();
    clearInterval(this.#heartbeat);
    this.#channel?.removeEventListener("message", this.#onMessage);
    this.#channel?.close();
    globalThis.removeEventListener?.("pagehide", this.#onPageHide);
    globalThis.removeEventListener?.("pageshow", this.#onPageShow);
  }

  /** Joins the election and starts the heartbeat, once. */
  #start(): void {
    if (this.#started) {
      return;
    }
    this.#started = true;
    this.#heartbeat = setInterval(() => this.#beat(), HEARTBEAT_MS);
    const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
    if (this.#channel === undefined) {
      // Alone (no BroadcastChannel): nobody to share with.
      this.#lead();
    } else if (locks !== undefined) {
      // Asked for, then held, until this hub closes or the page goes into the back/forward cache.
      const away = new AbortController();
      this.#away = away;
      this.#closing.signal.addEventListener("abort", () => away.abort(), { once: true });
      locks
        .request(`${this.#name}/live-leader`, { signal: away.signal }, async () => {
          if (away.signal.aborted) {
            return;
          }
          this.#lead();
          // The browser also releases it when the tab goes.
          await new Promise<void>((resolve) => away.signal.addEventListener("abort", () => resolve(), { once: true }));
        })
        .catch(() => undefined);
    } else {
      this.#leaderSeen = Date.now();
    }
  }

  #beat(): void {
    this.#announce();
    if (this.#leading) {
      const positions = Object.fromEntries(this.#positions);
      this.#post({ t: "leader", tab: this.#tab, positions });
      this.#catchUp(positions);
      // Tabs that went silent (closed without a goodbye) no longer count.
      const now = Date.now();
      for (const [tab, want] of this.#wants) {
        if (tab !== this.#tab && now - want.seen > SILENCE_MS) {
          this.#wants.delete(tab);
          this.#scheduleReconnect();
        }
      }
    } else if (this.#lockless() && Date.now() - this.#leaderSeen > SILENCE_MS) {
      this.#lead();
    }
  }

  #lockless(): boolean {
    return this.#channel !== undefined && (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks === undefined;
  }

  /** Tells every tab (and this one's leader self) which chains this tab follows, from where. */
  #announce(): void {
    const chains: Record<string, number> = {};
    for (const [chainId, followers] of this.#followers) {
      chains[chainId] = Math.min(...[...followers].map((follower) => follower.seen));
    }
    this.#wants.set(this.#tab, { chains, seen: Date.now() });
    this.#post({ t: "want", tab: this.#tab, chains });
    if (this.#leading) {
      this.#scheduleReconnect();
    }
  }

  #receive(message: Message): void {
    switch (message.t) {
      case "want":
        this.#wants.set(message.tab, { chains: message.chains, seen: Date.now() });
        if (this.#leading) {
          this.#scheduleReconnect();
        }
        break;
      case "bye":
        this.#wants.delete(message.tab);
        if (this.#leading) {
          this.#scheduleReconnect();
        }
        break;
      case "leader":
        this.#leaderSeen = Date.now();
        if (this.#leading && this.#lockless() && message.tab < this.#tab) {
          this.#stepDown();
        }
        // A new leader learns what this tab follows at once.
        this.#announce();
        if (typeof message.positions === "object" && message.positions !== null) {
          this.#catchUp(message.positions);
        }
        break;
      case "event":
        this.#deliver(message.chain, message.index, message.wire);
        break;
      case "unavailable":
        this.#failChain(message.chain, (follower) => new RollbackError(follower.next, typeof message.length === "number" ? message.length : 0));
        break;
      case "failed":
        for (const chain of message.chains) {
          this.#failChain(chain, () => new HttpError(message.status, message.code, message.message, undefined));
        }
        break;
    }
  }

  #lead(): void {
    if (this.#closing.signal.aborted || this.#leading || !this.#started) {
      return;
    }
    this.#leading = true;
    this.#post({ t: "leader", tab: this.#tab, positions: {} });
    this.#scheduleReconnect();
  }

  #stepDown(): void {
    this.#leading = false;
    clearTimeout(this.#reconnectTimer);
    for (const stop of this.#streams.values()) {
      stop.abort();
    }
    this.#streams.clear();
  }

  #scheduleReconnect(): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#reconnect(), RECONNECT_DEBOUNCE_MS);
  }

  /** Opens the stream again when the union of followed chains changed (the leader only). */
  #reconnect(): void {
    if (!this.#leading) {
      return;
    }
    const union = new Map<string, number>();
    for (const want of this.#wants.values()) {
      for (const [chain, next] of Object.entries(want.chains)) {
        union.set(chain, Math.min(next, union.get(chain) ?? Number.MAX_SAFE_INTEGER));
      }
    }
    for (const chain of [...this.#positions.keys()]) {
      if (!union.has(chain)) {
        this.#positions.delete(chain);
      }
    }
    for (const chain of union.keys()) {
      // A chain a stream carried goes on where it stood; a new one starts where its furthest-behind tab is.
      if (!this.#positions.has(chain)) {
        this.#positions.set(chain, union.get(chain)!);
      }
    }
    // The chains in order, 32 to a stream: a stream whose chains did not change keeps going.
    const sorted = [...union.keys()].sort();
    const groups = new Map<string, string[]>();
    for (let at = 0; at < sorted.length; at += MAX_CHAINS_PER_STREAM) {
      const chains = sorted.slice(at, at + MAX_CHAINS_PER_STREAM);
      groups.set(chains.join(","), chains);
    }
    for (const [key, stop] of this.#streams) {
      if (!groups.has(key)) {
        stop.abort();
        this.#streams.delete(key);
      }
    }
    for (const [key, chains] of groups) {
      if (!this.#streams.has(key)) {
        const stop = new AbortController();
        this.#streams.set(key, stop);
        void this.#runStream(chains, stop.signal);
      }
    }
  }

  /** One of the leader's connections, reconnecting (from the positions reached) until stopped. */
  async #runStream(wanted: string[], stop: AbortSignal): Promise<void> {
    let chains = wanted;
    let failures = 0;
    let retryMs = MIN_RETRY_MS;
    let lastError: unknown;
    while (!stop.aborted) {
      const connection = new AbortController();
      const onStop = () => connection.abort();
      stop.addEventListener("abort", onStop, { once: true });
      let idle: ReturnType<typeof setTimeout> | undefined;
      const touch = () => {
        clearTimeout(idle);
        idle = setTimeout(() => connection.abort(), IDLE_TIMEOUT_MS);
      };
      try {
        touch();
        const cursors = chains.map((chainId) => ({ chainId, from: this.#positions.get(chainId) ?? 0 }));
        const response = await this.#api.openZoneEvents(cursors, connection.signal);
        const reader = response.body!.getReader();
        const parser = new SseParser();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done || stop.aborted) {
              break;
            }
            touch();
            for (const event of parser.push(decoder.decode(value, { stream: true }))) {
              this.#relay(event.event, event.data);
            }
          }
        } finally {
          retryMs = parser.retryMs ?? retryMs;
          await reader.cancel().catch(() => undefined);
        }
        failures = 0;
        lastError = undefined;
      } catch (error) {
        if (stop.aborted) {
          return;
        }
        lastError = error;
        if (error instanceof HttpError && !isTransient(error)) {
          // One unknown chain refuses the whole stream: fail the followers of that chain only.
          const refused = error.status === 404 ? await this.#unknownChains(chains, stop) : chains;
          this.#broadcast({ t: "failed", chains: refused, status: error.status, code: error.code, message: error.message });
          chains = chains.filter((chain) => !refused.includes(chain));
          if (chains.length === 0) {
            return;
          }
        }
        failures += 1;
      } finally {
        clearTimeout(idle);
        stop.removeEventListener("abort", onStop);
      }
      await sleep(retryDelayMs(lastError, Math.min(retryMs * 2 ** Math.min(failures, 10), MAX_RETRY_MS)), stop);
    }
  }

  /** Which of `chains` the server does not know (all of them when it knows none: an unknown zone). */
  async #unknownChains(chains: string[], stop: AbortSignal): Promise<string[]> {
    const unknown: string[] = [];
    for (const chain of chains) {
      try {
        await this.#api.getChain(chain, stop);
      } catch (error) {
        if (error instanceof HttpError && error.status === 404) {
          unknown.push(chain);
        }
      }
    }
    return unknown.length === 0 ? chains : unknown;
  }

  /** Passes one event of the stream on, unverified (every tab verifies it), and notes the position. */
  #relay(kind: string, data: string): void {
    let value: { chain?: unknown; index?: unknown; length?: unknown };
    try {
      value = JSON.parse(data) as typeof value;
    } catch {
      return;
    }
    if (typeof value.chain !== "string") {
      return;
    }
    if (kind === "entry" && typeof value.index === "number") {
      this.#positions.set(value.chain, Math.max(this.#positions.get(value.chain) ?? 0, value.index + 1));
      this.#broadcast({ t: "event", chain: value.chain, index: value.index, wire: value });
    } else if (kind === "unavailable") {
      this.#broadcast({ t: "unavailable", chain: value.chain, length: value.length });
    }
  }

  /** Posts to the other tabs and handles it here too (a channel does not echo to its sender). */
  #broadcast(message: Message): void {
    this.#post(message);
    this.#receive(message);
  }

  #post(message: Message): void {
    try {
      this.#channel?.postMessage(message);
    } catch {
      // A closed channel: this hub is closing.
    }
  }

  #deliver(chainId: string, index: number, wire: unknown): void {
    for (const follower of this.#followers.get(chainId) ?? []) {
      if (Number.isSafeInteger(index)) {
        follower.seen = Math.max(follower.seen, index + 1);
      }
      follower.queue = follower.queue.then(() => this.#accept(follower, index, wire));
    }
  }

  /** Followers behind the leader's stream (they started from an older index) read up to where it stands. */
  #catchUp(positions: Record<string, unknown>): void {
    for (const [chainId, position] of Object.entries(positions)) {
      if (typeof position !== "number" || !Number.isSafeInteger(position)) {
        continue;
      }
      for (const follower of this.#followers.get(chainId) ?? []) {
        if (follower.seen < position) {
          follower.seen = position;
          follower.queue = follower.queue.then(() => this.#guarded(follower, () => this.#readUpTo(follower, position, false)));
        }
      }
    }
  }

  #failChain(chainId: string, error: (follower: Follower) => unknown): void {
    for (const follower of [...(this.#followers.get(chainId) ?? [])]) {
      follower.queue = follower.queue.then(() => this.#fail(follower, error(follower)));
    }
  }

  /** Verifies and delivers one relayed entry to one follower: drops a duplicate, reads a gap first. */
  async #accept(follower: Follower, index: number, wire: unknown): Promise<void> {
    if (!Number.isSafeInteger(index) || index < follower.next) {
      return;
    }
    await this.#guarded(follower, async () => {
      await this.#readUpTo(follower, index, true);
      follower.prev ??= await follower.verifier.hashBefore(follower.next, follower.stop.signal);
      await this.#hand(follower, await follower.verifier.accept(wire, index, follower.prev));
    });
  }

  /**
   * Reads and delivers (verified, linked to the last entry delivered) the entries before `end`
   * that the follower has not had. `complete`: they must all exist (an event at `end` came);
   * otherwise what the chain has is enough (`end` is another tab's word).
   */
  async #readUpTo(follower: Follower, end: number, complete: boolean): Promise<void> {
    const signal = follower.stop.signal;
    if (end <= follower.next) {
      return;
    }
    follower.prev ??= await follower.verifier.hashBefore(follower.next, signal);
    const gap = await follower.chain.readRange(follower.next, end - follower.next, { signal, noCache: true });
    if ((complete && gap.length !== end - follower.next) || (gap.length > 0 && gap[0]!.prev !== follower.prev)) {
      throw new VerificationError("withheld", `entries ${follower.next}..${end - 1} could not be read in order`);
    }
    for (const entry of gap) {
      await this.#hand(follower, entry);
    }
  }

  /** Runs one step of a follower; a failure that reconnecting cannot mend stops it. */
  async #guarded(follower: Follower, step: () => Promise<void>): Promise<void> {
    if (follower.stop.signal.aborted) {
      return;
    }
    try {
      await step();
    } catch (error) {
      if (follower.stop.signal.aborted) {
        return;
      }
      if (error instanceof HandlerFailure) {
        this.#fail(follower, error.error);
      } else if (!isTransient(error)) {
        this.#fail(follower, error);
      } else {
        // A transient failure (reading a gap, say) drops this step: the next event or heartbeat reads again.
        follower.seen = follower.next;
      }
    }
  }

  async #hand(follower: Follower, entry: Entry): Promise<void> {
    if (follower.stop.signal.aborted) {
      return;
    }
    try {
      await follower.options.onEntry(entry);
    } catch (error) {
      throw new HandlerFailure(error);
    }
    follower.next = entry.index + 1;
    follower.prev = entry.entryHash;
  }

  #fail(follower: Follower, error: unknown): void {
    if (follower.stop.signal.aborted) {
      return;
    }
    follower.close?.();
    follower.options.onError(error);
  }
}

interface Follower {
  chain: Chain;
  verifier: EntryVerifier;
  /** The next index to deliver, and the hash of the entry before it once known. */
  next: number;
  /** The index after the last one this tab received or asked for (entries may still be in the queue). */
  seen: number;
  prev: string | undefined;
  /** Entries are handled one after another. */
  queue: Promise<void>;
  options: LiveFollowOptions;
  stop: AbortController;
  finish: () => void;
  close?: () => void;
}

/** An error thrown by the caller's `onEntry`: it ends following, whatever it is. */
class HandlerFailure {
  constructor(readonly error: unknown) {}
}

