/**
 * The outbox: appends queued while offline (or just not sent yet), kept encrypted in an
 * `OutboxStore`, and sent in order per chain whenever the network lets them through.
 *
 * A write is encrypted and signed when it is sent, at the chain's head as it is then (the entry
 * format binds the index and `prev`, so a write queued at one head cannot be sent at another):
 * after a conflict the next attempt re-reads the head and re-encrypts at the new index. Each
 * write carries a random write id inside its encrypted payload (plaintext kind 3,
 * docs/sdk-format.md); before sending again after an attempt whose outcome is unknown (lost
 * answer, network error, page closed mid-request), the outbox reads the chain from the index of
 * its first attempt and looks for that id, so a write is never appended twice.
 *
 * A queued write belongs to the account whose session queued it (or to none, queued without a
 * session): it is sent only while that account's session is the client's, with that session's
 * token, and waits through other accounts' sessions; a logout may discard it instead.
 *
 * At rest a queued write is sealed with AES-256-GCM under the chain key of its epoch (the key
 * that encrypts the chain's payloads, with other additional data); the store never holds
 * plaintext. Sending is serialized per chain across tabs with the Web Locks API when it exists.
 */

import { type Bytes, bytesOf, concat, fromBase64Url, fromHex, randomBytes, toBase64Url, u8, utf8 } from "./bytes.js";
import type { AppendResult, ChainHandle, Entry } from "./chain-types.js";
import {
  BlindstoreError,
  ConflictError,
  DecryptionError,
  ForkError,
  HttpError,
  InvalidInputError,
  MissingKeyError,
  ReadOnlyError,
  RollbackError,
  UnsupportedVersionError,
  VerificationError,
  WriteDiscardedError,
  isTransient,
  retryDelayMs,
} from "./errors.js";
import type { SessionTokenSource } from "./http.js";
import type { ChainSecrets } from "./keys.js";
import { type EntryContent, PAYLOAD_OVERHEAD, WRITE_ID_BYTES, WRITE_ID_OVERHEAD, decodeContent, encodeContent } from "./payload.js";

// Domain-separation labels, one per format and version as entry.ts has its own, on purpose.
const SEAL_LABEL = utf8("blindstore/outbox/v2\0");
const SEAL_LABEL_V1 = utf8("blindstore/outbox/v1\0");
const RECORD_VERSION = 2;
const IV_BYTES = 12;
const DEFAULT_MIN_RETRY_MS = 500;
const DEFAULT_MAX_RETRY_MS = 30_000;

/** One queued write as an `OutboxStore` keeps it (docs/sdk-format.md, "Outbox records"). */
export interface OutboxRecord {
  /** 2; records of version 1 (older SDKs) are still sent. */
  v: 1 | 2;
  /** The write id: 16 random bytes, base64url; also the record's key. */
  id: string;
  zone: string;
  /** Lowercase hex. */
  chainId: string;
  /** Enqueue order within the store; records of a chain are sent in this order. */
  seq: number;
  /** The read-key epoch the content is sealed under. */
  epoch: number;
  /** 12 bytes, base64url. */
  iv: string;
  /** AES-256-GCM of the encoded content (kind byte and body), base64url. */
  sealed: string;
  /** The chain's length before the first attempt to send: any copy that landed is at or after it. */
  tried?: number;
  /**
   * Version 2: the account id of the session that queued the write; absent when it was queued
   * without a session. Version 1 records name no account.
   */
  account?: string;
  /**
   * Set when the write was refused for good — by the server (a 4xx other than 401, 403, 409,
   * 429), or by this client (it cannot send it: a key epoch the handle lacks) — with the error's
   * code and message. A refused write is kept, not sent, until `outbox.retry` clears this or
   * `outbox.drop` removes it.
   */
  refused?: { code: string; message: string };
}

/** Where queued writes are kept. `MemoryOutboxStore` (tests, Node); `IndexedDbOutboxStore` (browsers). */
export interface OutboxStore {
  add(record: OutboxRecord): Promise<void>;
  /** The zone's records, in `seq` order. */
  list(zone: string): Promise<OutboxRecord[]>;
  update(record: OutboxRecord): Promise<void>;
  remove(id: string): Promise<void>;
}

/** An `OutboxStore` in memory: queued writes are lost with the page. */
export class MemoryOutboxStore implements OutboxStore {
  readonly #records = new Map<string, OutboxRecord>();

  async add(record: OutboxRecord): Promise<void> {
    this.#records.set(record.id, structuredClone(record));
  }

  async list(zone: string): Promise<OutboxRecord[]> {
    return [...this.#records.values()].filter((record) => record.zone === zone).sort((a, b) => a.seq - b.seq).map((record) => structuredClone(record));
  }

  async update(record: OutboxRecord): Promise<void> {
    if (this.#records.has(record.id)) {
      this.#records.set(record.id, structuredClone(record));
    }
  }

  async remove(id: string): Promise<void> {
    this.#records.delete(id);
  }
}

/** A write handed to the outbox. */
export interface QueuedWrite {
  /** The write id (base64url); the entry carries it as `Entry.writeId`. */
  id: string;
  /** Settles once the write is in the outbox store (it survives a reload from then on). */
  queued: Promise<void>;
  /** Settles once the server acknowledged the write, or rejects when it refused it for good (`refused()` keeps it) or it was discarded. */
  durable: Promise<AppendResult>;
}

/** A write still waiting in the outbox. */
export interface PendingWrite {
  id: string;
  chainId: string;
  /** The account it belongs to (undefined: queued without a session). */
  account: string | undefined;
  /** Whether an attempt to send it was made (it may have landed; the outbox checks before resending). */
  tried: boolean;
  /**
   * What it writes, decrypted, when its chain is open in this client (`openChain` or
   * `createChain` since the page loaded): an app shows its waiting changes after a reload.
   */
  content?: EntryContent;
}

/** A write the server refused for good, kept until the app retries or drops it. */
export interface RefusedWrite extends PendingWrite {
  /** Why: the error's code (the server's, such as `bad_request`, `unknown_zone`, `payload_too_large`; or the client's) and message. */
  reason: { code: string; message: string };
}

/** What the outbox reports to `onChange` listeners. */
export type OutboxEvent =
  /** A write was queued: a new one, or a refused one retried (here or in another tab). */
  | { type: "queued"; id: string; chainId: string; pending: number }
  | { type: "sent"; id: string; chainId: string; result: AppendResult; pending: number }
  | { type: "retrying"; chainId: string; error: unknown; delayMs: number; pending: number }
  /**
   * The write was refused for good (by the server: a 4xx other than 401, 403, 409 and 429; or
   * it cannot be sent from this client): it is kept, listed by `refused()` with the reason, and
   * not sent until `retry()`; or it was discarded at its account's logout
   * (`WriteDiscardedError`) and is gone. `durable` rejects either way.
   */
  | { type: "failed"; id: string; chainId: string; error: unknown; pending: number }
  /** A refused write was forgotten by `drop()`, here or in another tab of the origin. */
  | { type: "dropped"; id: string; chainId: string; pending: number }
  /**
   * The server misbehaved (a `VerificationError`, `ForkError`, `RollbackError`) or refused the
   * session (401, 403): the chain's writes stay queued, and sending stops until `flush()` or the
   * next enqueue.
   */
  | { type: "stopped"; chainId: string; error: unknown; pending: number };

/**
 * Whose writes may be sent now: the current session's account (undefined without a session) and
 * the token to send them with. Internal (the client gives it from `accounts`).
 */
export interface OutboxOwner {
  account: string | undefined;
  token: SessionTokenSource;
}

export interface OutboxOptions {
  store: OutboxStore;
  zone: string;
  /** Whose writes may be sent now (default: no account, no token). */
  owner?: () => OutboxOwner;
  /** Names the cross-tab send lock: one per deployment and zone. */
  lockPrefix: string;
  /** First delay after a network failure (default 500 ms), doubling up to `maxRetryMs` (default 30 s). */
  minRetryMs?: number;
  maxRetryMs?: number;
}

/** The client's outbox (`Blindstore.outbox`). */
export class Outbox {
  readonly #store: OutboxStore;
  readonly #zone: string;
  readonly #lockPrefix: string;
  readonly #minRetryMs: number;
  readonly #maxRetryMs: number;
  readonly #owner: () => OutboxOwner;
  /** Chain handles able to send: the outbox sends a chain's writes once the app opened it with its write key. */
  readonly #chains = new Map<string, ChainHandle>();
  readonly #draining = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  readonly #waiters = new Map<string, { resolve: (result: AppendResult) => void; reject: (error: unknown) => void }>();
  readonly #listeners = new Set<(event: OutboxEvent) => void>();
  /** The next backoff delay of each chain that failed to send. */
  readonly #delays = new Map<string, number>();
  /** Tells the origin's other tabs which writes were sent, so that their `durable` settles too. */
  readonly #channel: BroadcastChannel | undefined;
  #wake = new AbortController();
  #seq = 0;
  #closed = false;
  readonly #online = () => this.flush();
  /** Accounts logging out: their writes are not sent, whoever the owner says is current. */
  readonly #held = new Set<string>();

  constructor(options: OutboxOptions) {
    this.#store = options.store;
    this.#zone = options.zone;
    this.#lockPrefix = options.lockPrefix;
    this.#minRetryMs = options.minRetryMs ?? DEFAULT_MIN_RETRY_MS;
    this.#maxRetryMs = options.maxRetryMs ?? DEFAULT_MAX_RETRY_MS;
    this.#owner = options.owner ?? (() => ({ account: undefined, token: () => undefined }));
    // Coming back online is the moment to try again, whatever the backoff says.
    globalThis.addEventListener?.("online", this.#online);
    if (typeof BroadcastChannel !== "undefined") {
      this.#channel = new BroadcastChannel(`${options.lockPrefix}/outbox`);
      // In Node the channel would keep the process alive for nothing.
      (this.#channel as { unref?: () => void }).unref?.();
      this.#channel.addEventListener("message", (event: MessageEvent) => void this.#heard(event.data as OutboxNotice));
    }
  }

  /**
   * The writes waiting that belong to the current session's account (without a session: those
   * queued without one), in the order they will be sent (per chain). Other accounts' writes wait
   * unseen until their account logs in again.
   */
  async pending(): Promise<PendingWrite[]> {
    return Promise.all((await this.#waiting()).map((record) => this.#describe(record)));
  }

  /**
   * The current account's writes the server refused for good, with its reason, kept (sealed,
   * as waiting writes are) so that nothing the user wrote is lost: `retry` sends them again,
   * `drop` forgets them. They are not in `pending()` and not sent until retried.
   */
  async refused(): Promise<RefusedWrite[]> {
    const writes: RefusedWrite[] = [];
    for (const record of await this.#mine()) {
      if (record.refused !== undefined) {
        writes.push({ ...(await this.#describe(record)), reason: { ...record.refused } });
      }
    }
    return writes;
  }

  /**
   * Queues refused writes again (`id`: that one; else every one of the current account) and
   * starts sending: each goes after the chain's writes already sent, at the head as it is then.
   * Returns how many were queued again.
   */
  async retry(id?: string): Promise<number> {
    let again = 0;
    for (const record of await this.#mine()) {
      if (record.refused === undefined || (id !== undefined && record.id !== id)) {
        continue;
      }
      const cleared = await this.#changeRefused(record.chainId, record.id, async (now) => {
        delete now.refused;
        await this.#store.update(now);
      });
      if (cleared) {
        again += 1;
        this.#delays.delete(record.chainId);
        this.#emit({ type: "queued", id: record.id, chainId: record.chainId, pending: (await this.#waiting()).length });
        this.#tell({ id: record.id, chainId: record.chainId, change: "retried" });
        // Sent once this client can: when its chain is open with its write key (now, or later).
        if (this.#chains.has(record.chainId)) {
          this.#kick(record.chainId);
        }
      }
    }
    return again;
  }

  /**
   * Forgets a refused write of the current account for good; false when there is none with
   * that id. Reported as `dropped`, here and in the origin's other tabs.
   */
  async drop(id: string): Promise<boolean> {
    const record = (await this.#mine()).find((candidate) => candidate.id === id && candidate.refused !== undefined);
    if (record === undefined) {
      return false;
    }
    const removed = await this.#changeRefused(record.chainId, id, () => this.#store.remove(id));
    if (removed) {
      this.#emit({ type: "dropped", id, chainId: record.chainId, pending: (await this.#waiting()).length });
      this.#tell({ id, chainId: record.chainId, change: "dropped" });
    }
    return removed;
  }

  /**
   * Applies `change` to refused write `id` as the store holds it now, under its chain's send
   * lock; false when it is no longer refused there (retried or dropped by another tab meanwhile).
   */
  async #changeRefused(chainId: string, id: string, change: (record: OutboxRecord) => Promise<void>): Promise<boolean> {
    return withLock(`${this.#lockPrefix}/outbox/${chainId}`, async () => {
      const now = (await this.#store.list(this.#zone)).find((candidate) => candidate.id === id);
      if (now?.refused === undefined) {
        return false;
      }
      await change(now);
      return true;
    });
  }

  async #describe(record: OutboxRecord): Promise<PendingWrite> {
    const chain = this.#chains.get(record.chainId);
    const content = chain === undefined ? undefined : await unseal(chain.secrets(), record).catch(() => undefined);
    return { id: record.id, chainId: record.chainId, account: record.account, tried: record.tried !== undefined, ...(content === undefined ? {} : { content }) };
  }

  /**
   * Forgets every queued write of `account` (undefined: those queued without a session), never
   * to be sent: their `durable` rejects with `WriteDiscardedError`, here and in the origin's
   * other tabs. Waits for a send in progress on the same chain (in any tab) to end first, so a
   * write is either sent before this or never. Returns how many were discarded. Internal:
   * `session.logout({ queuedWrites: "discard" })`.
   */
  async discard(account: string | undefined): Promise<number> {
    const chains = new Set((await this.#store.list(this.#zone)).filter((record) => ownedBy(record, account)).map((record) => record.chainId));
    let discarded = 0;
    for (const chainId of chains) {
      const removed = await withLock(`${this.#lockPrefix}/outbox/${chainId}`, async () => {
        const records = (await this.#store.list(this.#zone)).filter((record) => record.chainId === chainId && ownedBy(record, account));
        for (const record of records) {
          await this.#store.remove(record.id);
        }
        return records;
      });
      for (const record of removed) {
        const error = new WriteDiscardedError(record.id);
        this.#settle(record.id, undefined, error);
        this.#emit({ type: "failed", id: record.id, chainId, error, pending: (await this.#waiting()).length });
        this.#tell({ id: record.id, chainId, error: { code: error.code, message: error.message } });
      }
      discarded += removed.length;
    }
    return discarded;
  }

  /**
   * Stops sending `account`'s writes, which stay queued, and waits for a send of them in
   * progress (in any tab) to end: after this, none is sent until `release(account)`. Internal:
   * a logout holds its account's writes before it ends the session, so that none goes out after
   * the logout — not even with the ended session's token, which an append does not need.
   */
  async hold(account: string): Promise<void> {
    this.#held.add(account);
    const chains = new Set((await this.#store.list(this.#zone)).filter((record) => ownedBy(record, account)).map((record) => record.chainId));
    for (const chainId of chains) {
      // A sender holds the chain's lock while it sends: taking it waits for that send to end.
      await withLock(`${this.#lockPrefix}/outbox/${chainId}`, async () => undefined);
    }
  }

  /** Lets `account`'s writes be sent again (its session goes on, or it logged in again). Internal. */
  release(account: string): void {
    this.#held.delete(account);
  }

  /** Calls `listener` on every change of the outbox; returns the function that stops it. */
  onChange(listener: (event: OutboxEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Stops sending and lets go of the page: the `online` listener, the channel to other tabs,
   * the listeners. Writes still waiting stay in the store for the next client (a reload);
   * `durable` promises of writes not sent yet never settle.
   */
  close(): void {
    this.#closed = true;
    globalThis.removeEventListener?.("online", this.#online);
    this.#channel?.close();
    this.#listeners.clear();
    this.#wake.abort();
  }

  /** Tries every waiting write now rather than after its backoff. */
  flush(): void {
    if (this.#closed) {
      return;
    }
    this.#wake.abort();
    this.#wake = new AbortController();
    for (const chainId of this.#chains.keys()) {
      this.#kick(chainId);
    }
  }

  /** Internal (`Chain.enqueue`): seals and stores the write, then starts sending. */
  enqueue(chain: ChainHandle, content: EntryContent): QueuedWrite {
    if (!chain.writable) {
      throw new ReadOnlyError(chain.chainId);
    }
    const id = toBase64Url(randomBytes(WRITE_ID_BYTES));
    const plaintext = encodeContent(content);
    const durable = new Promise<AppendResult>((resolve, reject) => this.#waiters.set(id, { resolve, reject }));
    // A caller that only watches `queued` must not get an unhandled rejection from `durable`.
    durable.catch(() => undefined);
    const queued = (async () => {
      if (plaintext.length - 1 + PAYLOAD_OVERHEAD + WRITE_ID_OVERHEAD > chain.maxPayloadBytes) {
        throw new InvalidInputError(`the content does not fit in one entry's ${chain.maxPayloadBytes} bytes: store large data as a file`);
      }
      const record = await seal(chain, id, Date.now() * 1000 + (this.#seq++ % 1000), plaintext, this.#owner().account);
      await this.#store.add(record);
      this.register(chain);
      this.#emit({ type: "queued", id, chainId: chain.chainId, pending: (await this.#waiting()).length });
      this.#kick(chain.chainId);
    })();
    queued.catch((error: unknown) => this.#settle(id, undefined, error));
    return { id, queued, durable };
  }

  /** Internal (the client, for each writable handle): lets the outbox send this chain's writes, and starts. */
  register(chain: ChainHandle): void {
    if (!chain.writable || chain.zone !== this.#zone) {
      return;
    }
    this.#chains.set(chain.chainId, chain);
    this.#kick(chain.chainId);
  }

  /** Starts sending a chain's writes, or makes the running sender look again when it is done. */
  #kick(chainId: string): void {
    if (this.#closed) {
      return;
    }
    if (this.#draining.has(chainId)) {
      this.#again.add(chainId);
      return;
    }
    const run = (async () => {
      for (;;) {
        this.#again.delete(chainId);
        // The lock is held while sending, not while waiting to retry: another tab may be online.
        const outcome = await withLock(`${this.#lockPrefix}/outbox/${chainId}`, () => this.#drain(chainId));
        if (this.#closed) {
          return;
        }
        if (outcome !== "done" && outcome !== "stopped") {
          await sleepUnlessWoken(outcome.retryInMs, this.#wake.signal);
        } else if (!this.#again.has(chainId)) {
          return;
        }
      }
    })().finally(() => this.#draining.delete(chainId));
    this.#draining.set(chainId, run);
  }

  /**
   * Sends the chain's writes one by one, in order, until none is left ("done"), a network
   * failure ("retry", after a backoff), or an error that keeps them queued ("stopped").
   */
  async #drain(chainId: string): Promise<"done" | "stopped" | { retryInMs: number }> {
    for (;;) {
      if (this.#closed) {
        return "done";
      }
      // Asked afresh for each write: the session may have changed since the last one.
      const owner = this.#owner();
      if (owner.account !== undefined && this.#held.has(owner.account)) {
        return "done";
      }
      // Listed afresh each time: another tab may have sent some while this one waited for the lock.
      const record = (await this.#store.list(this.#zone)).find((candidate) => candidate.chainId === chainId && candidate.refused === undefined && ownedBy(candidate, owner.account));
      if (record === undefined) {
        return "done";
      }
      const handle = this.#chains.get(chainId);
      if (handle === undefined) {
        return "done"; // not opened here: its writes go once the app opens the chain
      }
      // Every request for this write carries the owner's token as it is now: a later login of
      // another account cannot lend it its session.
      const chain = handle.withSessionToken(owner.token);
      try {
        const result = await this.#deliver(chain, record);
        await this.#store.remove(record.id);
        this.#delays.delete(chainId);
        this.#settle(record.id, result, undefined);
        this.#emit({ type: "sent", id: record.id, chainId, result, pending: (await this.#waiting()).length });
        this.#tell({ id: record.id, chainId, result });
      } catch (error) {
        if (keepsQueued(error)) {
          this.#emit({ type: "stopped", chainId, error, pending: (await this.#waiting()).length });
          return "stopped";
        }
        if (!isTransient(error)) {
          // Kept, with why, for the app to show and retry or drop: never sent again unasked.
          const reason = { code: codeOf(error), message: String((error as Error)?.message ?? error) };
          record.refused = reason;
          await this.#store.update(record);
          this.#settle(record.id, undefined, error);
          this.#emit({ type: "failed", id: record.id, chainId, error, pending: (await this.#waiting()).length });
          this.#tell({ id: record.id, chainId, error: reason });
          continue;
        }
        // The backoff doubles up to its cap; a server that asked for longer (Retry-After) gets it.
        const backoffMs = this.#delays.get(chainId) ?? this.#minRetryMs;
        this.#delays.set(chainId, Math.min(backoffMs * 2, this.#maxRetryMs));
        const delayMs = retryDelayMs(error, backoffMs);
        this.#emit({ type: "retrying", chainId, error, delayMs, pending: (await this.#waiting()).length });
        return { retryInMs: delayMs };
      }
    }
  }

  #tell(notice: OutboxNotice): void {
    try {
      this.#channel?.postMessage(notice);
    } catch {
      // Other tabs learn it from `pending()` then.
    }
  }

  /**
   * Another tab sent, discarded, retried or dropped a write: settle this tab's `durable` for it,
   * if it has one, and report it.
   */
  async #heard(notice: OutboxNotice): Promise<void> {
    if (typeof notice?.id !== "string" || typeof notice.chainId !== "string") {
      return;
    }
    const pending = (await this.#waiting()).length;
    if (notice.change === "dropped") {
      this.#emit({ type: "dropped", id: notice.id, chainId: notice.chainId, pending });
    } else if (notice.change === "retried") {
      this.#emit({ type: "queued", id: notice.id, chainId: notice.chainId, pending });
      // Sent by whichever tab holds the chain open first; the chain's lock keeps it to one.
      if (this.#chains.has(notice.chainId)) {
        this.#kick(notice.chainId);
      }
    } else if (typeof notice.result?.index === "number") {
      const chain = this.#chains.get(notice.chainId);
      // The other tab's word is checked: the entry it names must carry this write id.
      const landed = this.#waiters.has(notice.id) && chain !== undefined ? await carries(chain, notice.result.index, notice.id).catch(() => undefined) : undefined;
      if (landed !== undefined) {
        this.#settle(notice.id, landed, undefined);
        this.#emit({ type: "sent", id: notice.id, chainId: notice.chainId, result: landed, pending });
      }
    } else if (notice.error !== undefined) {
      const error =
        notice.error.code === "write_discarded" ? new WriteDiscardedError(notice.id) : new BlindstoreError(notice.error.code, notice.error.message);
      this.#settle(notice.id, undefined, error);
      this.#emit({ type: "failed", id: notice.id, chainId: notice.chainId, error, pending });
    }
  }

  /**
   * Appends one queued write exactly once: before any attempt after the first, looks for its
   * write id among the entries from the index of the first attempt on; after a conflict,
   * `append` re-reads the head and the content is encrypted and signed again at the new index.
   */
  async #deliver(chain: ChainHandle, record: OutboxRecord): Promise<AppendResult> {
    const content = await unseal(chain.secrets(), record);
    const writeId = fromBase64Url(record.id, WRITE_ID_BYTES);
    for (;;) {
      if (record.tried === undefined) {
        record.tried = (await chain.head()).length;
        await this.#store.update(record);
      } else {
        const landed = await findWrite(chain, record.tried, record.id);
        if (landed !== undefined) {
          return landed;
        }
      }
      try {
        return await chain.append(content, { writeId });
      } catch (error) {
        if (!(error instanceof ConflictError)) {
          throw error;
        }
      }
    }
  }

  #settle(id: string, result: AppendResult | undefined, error: unknown): void {
    const waiter = this.#waiters.get(id);
    this.#waiters.delete(id);
    if (result !== undefined) {
      waiter?.resolve(result);
    } else {
      waiter?.reject(error);
    }
  }

  /** The records of the current owner, refused ones included. */
  async #mine(): Promise<OutboxRecord[]> {
    const { account } = this.#owner();
    return (await this.#store.list(this.#zone)).filter((record) => ownedBy(record, account));
  }

  /** The current owner's records still to be sent (not refused). */
  async #waiting(): Promise<OutboxRecord[]> {
    return (await this.#mine()).filter((record) => record.refused === undefined);
  }

  #emit(event: OutboxEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is the app's to report; it must not stop the outbox.
      }
    }
  }
}

/**
 * What one tab tells the others about a write: sent (`result`), refused or discarded (`error`),
 * or a refused one retried or dropped (`change`). A receiver checks a claimed result by reading
 * the entry. A tab running an SDK that does not know `change` ignores the notice.
 */
interface OutboxNotice {
  id: string;
  chainId: string;
  result?: AppendResult;
  error?: { code: string; message: string };
  change?: "retried" | "dropped";
}

function codeOf(error: unknown): string {
  return error instanceof BlindstoreError ? error.code : "failed";
}

/**
 * Errors that stop sending without dropping the write: the server cannot be trusted (it may be
 * hiding the chain's real state), or the session is missing or expired (the app signs in again).
 */
function keepsQueued(error: unknown): boolean {
  if (error instanceof HttpError) {
    return error.status === 401 || error.status === 403;
  }
  return error instanceof VerificationError || error instanceof ForkError || error instanceof RollbackError;
}

/**
 * The entry that carries write `id`, among the chain's entries from `from` on (verified reads,
 * never the cache). Entries this handle cannot decrypt (another writer's, under a read-key epoch
 * it lacks) are passed over: the write was sealed under an epoch the handle holds, so it is not
 * among them.
 */
async function findWrite(chain: ChainHandle, from: number, id: string): Promise<AppendResult | undefined> {
  const { length } = await chain.head();
  let next = from;
  while (next < length) {
    let page: Entry[];
    let after: number;
    try {
      page = await chain.readRange(next, Math.min(FIND_PAGE, length - next), { noCache: true });
      if (page.length === 0) {
        return undefined;
      }
      after = next + page.length;
    } catch (error) {
      const index = unopenedIndex(error);
      if (index === undefined || index < next) {
        throw error;
      }
      // The entries before the one that does not open, then on past it.
      page = index > next ? await chain.readRange(next, index - next, { noCache: true }) : [];
      after = index + 1;
    }
    const found = page.find((entry) => entry.writeId === id);
    if (found !== undefined) {
      return { index: found.index, entryHash: found.entryHash, length: found.index + 1 };
    }
    next = after;
  }
  return undefined;
}

/** The index of the entry a verified read could not decrypt, if that is why it failed. */
function unopenedIndex(error: unknown): number | undefined {
  return error instanceof MissingKeyError || error instanceof DecryptionError ? error.index : undefined;
}

/** Entries read per page while looking for a write. */
const FIND_PAGE = 100;

/** Whether entry `index` (read verified, never from the cache) carries write `id`. */
async function carries(chain: ChainHandle, index: number, id: string): Promise<AppendResult | undefined> {
  const [entry] = await chain.readRange(index, 1, { noCache: true });
  return entry?.writeId === id ? { index, entryHash: entry.entryHash, length: index + 1 } : undefined;
}

/**
 * Whether `record` is `account`'s. A version 1 record (an older SDK's) names no account: it goes
 * with whichever session is current when its chain is sent, as it did then.
 */
function ownedBy(record: OutboxRecord, account: string | undefined): boolean {
  return record.v === 1 || record.account === account;
}

async function seal(chain: ChainHandle, id: string, seq: number, plaintext: Bytes, account: string | undefined): Promise<OutboxRecord> {
  const secrets = chain.secrets();
  const key = await secrets.chainKey(secrets.epoch);
  if (key === undefined) {
    throw new InvalidInputError(`chain ${chain.chainId} has no key for its current epoch ${secrets.epoch}`);
  }
  const iv = randomBytes(IV_BYTES);
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: sealAad(chain.zone, chain.chainId, id, account) }, key, bytesOf(plaintext));
  const record: OutboxRecord = {
    v: RECORD_VERSION,
    id,
    zone: chain.zone,
    chainId: chain.chainId,
    seq,
    epoch: secrets.epoch,
    iv: toBase64Url(iv),
    sealed: toBase64Url(new Uint8Array(sealed)),
  };
  if (account !== undefined) {
    record.account = account;
  }
  return record;
}

async function unseal(secrets: ChainSecrets, record: OutboxRecord): Promise<EntryContent> {
  let key: CryptoKey | undefined;
  let aad: Bytes;
  if (record.v === RECORD_VERSION) {
    key = await secrets.chainKey(record.epoch);
    aad = sealAad(record.zone, record.chainId, record.id, record.account);
  } else if (record.v === 1) {
    // An older SDK's record: its key derives from the raw read key, which only `ChainKeys` hold.
    const readKey = secrets.readKey(record.epoch);
    key = readKey === undefined ? undefined : await sealKeyV1(readKey, record.chainId, record.id);
    aad = sealAadV1(record.zone, record.chainId, record.id);
  } else {
    throw new UnsupportedVersionError("outbox_record", record.v);
  }
  if (key === undefined) {
    throw new InvalidInputError(`queued write ${record.id} is sealed under key epoch ${record.epoch}, which this handle lacks`);
  }
  const plaintext = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64Url(record.iv, IV_BYTES), additionalData: aad }, key, fromBase64Url(record.sealed));
  return decodeContent(new Uint8Array(plaintext));
}

/** "blindstore/outbox/v2\0" || u8(len zone) || zone || chain_id || write_id || u8(len account) || account. */
function sealAad(zone: string, chainId: string, id: string, account: string | undefined): Bytes {
  const zoneBytes = utf8(zone);
  const accountBytes = utf8(account ?? "");
  if (accountBytes.length > 255) {
    throw new InvalidInputError("an account id is at most 255 bytes");
  }
  return concat(SEAL_LABEL, u8(zoneBytes.length), zoneBytes, fromHex(chainId, 32), fromBase64Url(id, WRITE_ID_BYTES), u8(accountBytes.length), accountBytes);
}

async function sealKeyV1(readKey: Uint8Array, chainId: string, id: string): Promise<CryptoKey> {
  // Derived for this record only, never kept.
  const ikm = await crypto.subtle.importKey("raw", bytesOf(readKey), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: fromHex(chainId, 32), info: concat(SEAL_LABEL_V1, fromBase64Url(id, WRITE_ID_BYTES)) },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["decrypt"],
  );
}

function sealAadV1(zone: string, chainId: string, id: string): Bytes {
  const zoneBytes = utf8(zone);
  return concat(SEAL_LABEL_V1, u8(zoneBytes.length), zoneBytes, fromHex(chainId, 32), fromBase64Url(id, WRITE_ID_BYTES));
}

/** Runs `task` holding the Web Lock `name` (across the origin's tabs), or just runs it where there are no Web Locks. */
export async function withLock<T>(name: string, task: () => Promise<T>): Promise<T> {
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
  if (locks === undefined) {
    return task();
  }
  return locks.request(name, task) as Promise<T>;
}

function sleepUnlessWoken(ms: number, wake: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      wake.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    wake.addEventListener("abort", done, { once: true });
  });
}
