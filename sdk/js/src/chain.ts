/**
 * A handle on one chain: reads that verify everything the server serves, appends that encrypt
 * and sign, and live following. Created by `Blindstore` (client.ts).
 *
 * Every read is checked in three layers:
 * 1. each entry on its own: payload hash, strict signature under the key the chain id
 *    certifies, entry hash (entry.ts);
 * 2. each answer as a whole: consecutive indexes, `prev` links, no entries withheld where the
 *    server had to send them, `head` equal to the last entry's hash;
 * 3. against what this client verified before (the `HeadStore`): a shorter chain is a
 *    `RollbackError`, another hash at a remembered index a `ForkError`, and a read that starts
 *    past the remembered head fetches the entries in between so that it links up to it.
 *
 * A read that ends before the remembered head gets layers 1 and 2 and the rollback check, but
 * nothing links it to the remembered head; read through to the head (`entries()`) for that.
 */

import { type Bytes, fromBase64Url, fromHex, sha256, toBase64Url, toHex } from "./bytes.js";
import {
  type ChainIdentity,
  type LinkedEntry,
  type ParsedEntry,
  type WireEntry,
  type WriteKey,
  chainIdentity,
  entryHashOf,
  entryMessage,
  genesisOf,
  parseWireEntry,
  signEntry,
  verifyEntry,
  verifyLinks,
} from "./entry.js";
import type { EntryStore } from "./cache.js";
import {
  AbortedError,
  ConflictError,
  ForkError,
  InvalidInputError,
  NotExportableError,
  NetworkError,
  OutcomeUnknownError,
  ReadOnlyError,
  RollbackError,
  VerificationError,
} from "./errors.js";
import type { AppendOptions, AppendResult, ChainHead, Entry, ReadOptions, RetryOptions } from "./chain-types.js";
import { type EntryVerifier, type Subscription, type FollowOptions, followChain } from "./follow.js";
import type { CheckpointStore, FoldOptions } from "./checkpoint.js";
import { type Fold, foldChain } from "./fold.js";
import type { HeadStore } from "./heads.js";
import type { Outbox, QueuedWrite } from "./outbox.js";
import type { EntriesPage, SessionTokenSource, ZoneApi } from "./http.js";
import { ChainKeys, type ChainSecrets } from "./keys.js";
import { type EntryContent, PAYLOAD_OVERHEAD, decryptPayload, encryptPayload } from "./payload.js";

/** Entries per request: the server's cap. */
const PAGE_ENTRIES = 1000;
/** Extra chunks one entry may reference: the server's limit. */
const MAX_ENTRY_CHUNKS = 1024;

export type { AppendOptions, AppendResult, ChainHead, Entry, ReadOptions, RetryOptions };

/** What the client shares with its chain handles. Internal. */
export interface ClientContext {
  readonly api: ZoneApi;
  readonly heads: HeadStore;
  /** Verified entries kept for offline reads, when the app asked for it. */
  readonly entries: EntryStore | undefined;
  readonly locks: KeyedLock;
  /** The full client's outbox; none in a `BlindstoreReader`. */
  readonly outbox: Outbox | undefined;
  /** Aborted by the client's `close()`: every `follow` of its chains stops. */
  readonly closed: AbortSignal;
  /** Where `fold` keeps checkpoints unless told otherwise. */
  readonly checkpoints: CheckpointStore;
  readonly maxPayloadBytes: number;
  /** See `BlindstoreOptions.unsafeSkipVerification`. */
  readonly unsafeSkipVerification: boolean;
}

/** A verified run of consecutive entries and the chain's length and head as the server stated them. */
interface Segment {
  entries: ParsedEntry[];
  serverLength: number;
  serverHead: string;
  /** The remembered length when the request was sent (see `Observation.known`). */
  known: number | undefined;
}

/** What reconciling needs: entries, and the server's statement of length and head when it made one. */
interface Observation {
  entries: LinkedEntry[];
  stated: { length: number; head: string } | undefined;
  /**
   * The remembered length when the request was sent, when it was read then: an answer made
   * before this client (or another tab) verified more is older, not rolled back, as long as it
   * is not shorter than this. Undefined: compared with the remembered head as it is now.
   */
  known?: number | undefined;
}

export class Chain {
  readonly zone: string;
  /** Lowercase hex. */
  readonly chainId: string;
  readonly #context: ClientContext;
  #keys: ChainSecrets;
  #identity: Promise<ChainIdentity> | undefined;
  #writeKey: Promise<WriteKey> | undefined;
  /** Where this handle's next append goes; unset until known from a verified read. */
  #tip: ChainHead | undefined;

  /** Internal: use `Blindstore.createChain`, `openChain` or `openReadOnly`. */
  constructor(context: ClientContext, keys: ChainSecrets, tip?: ChainHead) {
    this.#context = context;
    this.zone = context.api.zone;
    this.chainId = keys.chainId;
    this.#keys = keys;
    this.#tip = tip;
  }

  /**
   * The keys this handle holds (after `rotateReadKey`, the rotated ones). Persist them. A chain
   * opened from a device keyring has none to give: `NotExportableError`.
   */
  get keys(): ChainKeys {
    if (!(this.#keys instanceof ChainKeys)) {
      throw new NotExportableError(`chain ${this.chainId} is held by device keys, which never leave this device`);
    }
    return this.#keys;
  }

  /** Whether this handle holds the write key. */
  get writable(): boolean {
    return this.#keys.writable;
  }

  /**
   * Internal (the outbox, which seals queued writes under the chain key): the keys this handle
   * holds, raw (`ChainKeys`) or as kept non-extractable `CryptoKey`s (a device keyring).
   */
  secrets(): ChainSecrets {
    return this.#keys;
  }

  /**
   * Internal (the outbox): a handle on this chain whose requests send the session token of
   * `sessionToken`, whatever the client's session becomes meanwhile.
   */
  withSessionToken(sessionToken: SessionTokenSource): Chain {
    return new Chain({ ...this.#context, api: this.#context.api.withSessionToken(sessionToken) }, this.#keys, this.#tip);
  }

  /** The zone's largest entry payload, as the client was told. */
  get maxPayloadBytes(): number {
    return this.#context.maxPayloadBytes;
  }

  /**
   * Queues an append in the client's outbox (outbox.ts): `queued` settles once the write is
   * stored (encrypted), `durable` once the server acknowledged it. It is sent when the network
   * allows, in order with this chain's other queued writes, exactly once.
   */
  enqueue(content: EntryContent): QueuedWrite {
    const outbox = this.#context.outbox;
    if (outbox === undefined) {
      throw new ReadOnlyError(this.chainId);
    }
    return outbox.enqueue(this, content);
  }

  /** `enqueue` of a JSON value. */
  enqueueJson(value: unknown): QueuedWrite {
    return this.enqueue({ kind: "json", value });
  }

  /**
   * The chain's length and head as the server states them, checked against the remembered head:
   * shorter is a `RollbackError`, equally long with another head a `ForkError`. A longer chain is
   * the server's claim until its entries are read.
   */
  async head(options: ReadOptions = {}): Promise<ChainHead> {
    const known = await this.#knownLength();
    const info = await this.#context.api.getChain(this.chainId, options.signal);
    if (!this.#context.unsafeSkipVerification) {
      await chainIdentity(this.zone, this.chainId, decodeField(() => fromBase64Url(info.public_key, 32)));
    }
    await this.#reconcile({ entries: [], stated: { length: info.length, head: info.head }, known }, options.signal);
    return { length: info.length, head: info.head };
  }

  /** The first `count` entries (fewer when the chain is shorter). */
  async readFirst(count: number, options: ReadOptions = {}): Promise<Entry[]> {
    return this.readRange(0, count, options);
  }

  /** Up to `count` entries from index `from`. */
  async readRange(from: number, count: number, options: ReadOptions = {}): Promise<Entry[]> {
    checkIndex(from, "from");
    checkIndex(count, "count");
    if (count === 0) {
      return [];
    }
    const genesis = from === 0 ? await this.#genesis() : undefined;
    return this.#readOrCached(
      () => this.#fetchRange(from, count, genesis, options.signal),
      (store) => store.range(this.zone, this.chainId, from, count),
      options,
    );
  }

  /** The last `count` entries, linked to the remembered head (the entries between are fetched). */
  async readLast(count: number, options: ReadOptions = {}): Promise<Entry[]> {
    checkIndex(count, "count");
    if (count === 0) {
      return [];
    }
    return this.#readOrCached(
      () => this.#fetchLast(count, options.signal),
      (store) => store.last(this.zone, this.chainId, count),
      options,
    );
  }

  /**
   * Every entry from `from` (default 0) to the end, page by page, each page verified and linked
   * to the one before. Ends at the end of the chain as it is when the last page is read; with an
   * entry cache, a page the network cannot fetch is read from the cache (then it ends there).
   */
  async *entries(options: ReadOptions & { from?: number; prev?: string } = {}): AsyncGenerator<Entry, void, undefined> {
    let next = options.from ?? 0;
    checkIndex(next, "from");
    let prev = next === 0 ? await this.#genesis() : options.prev;
    for (;;) {
      let segment: Segment;
      try {
        segment = await this.#fetchRange(next, PAGE_ENTRIES, prev, options.signal);
        await this.#reconcile(observed(segment), options.signal);
      } catch (error) {
        if (options.noCache) {
          throw error;
        }
        yield* await this.#cached(error, (store) => store.range(this.zone, this.chainId, next, Number.MAX_SAFE_INTEGER), prev);
        return;
      }
      await this.#keep(segment.entries);
      yield* await this.#decryptAll(segment.entries);
      const last = segment.entries.at(-1);
      if (last === undefined || last.index + 1 >= segment.serverLength) {
        return;
      }
      next = last.index + 1;
      prev = last.entryHash;
    }
  }

  /**
   * Folds the chain into the app's state (`apply` on each entry in order), starting from the
   * fold's last checkpoint kept on this device when there is one — sealed under the chain's key,
   * bound to the index and head hash it covers, and checked against the chain as served — so a
   * reload reads only the entries after it. Keep folding live entries with `fold.add(entry)`;
   * checkpoints are kept every `every` entries. See `FoldOptions`.
   */
  async fold<S>(options: FoldOptions<S>): Promise<Fold<S>> {
    return foldChain(this, options, this.#context.checkpoints, await this.#genesis());
  }

  /** Appends a JSON value (encrypted). */
  async appendJson(value: unknown, options: AppendOptions = {}): Promise<AppendResult> {
    return this.append({ kind: "json", value }, options);
  }

  /** Appends bytes (encrypted). */
  async appendBytes(bytes: Uint8Array, options: AppendOptions = {}): Promise<AppendResult> {
    return this.append({ kind: "bytes", bytes }, options);
  }

  /**
   * Encrypts `content` under the current read-key epoch, signs it as the next entry and appends
   * it. Throws `ReadOnlyError` without the write key; `ConflictError` when another writer took
   * the index (nothing appended: re-read, decide, retry — or use `appendWithRetry`);
   * `OutcomeUnknownError` when the answer was lost (read to find out).
   */
  async append(content: EntryContent, options: AppendOptions = {}): Promise<AppendResult> {
    if (!this.#keys.writable) {
      throw new ReadOnlyError(this.chainId);
    }
    const chunks = checkChunkList(options.chunks ?? []);
    // One append at a time per chain in this client: each needs the one before's hash.
    return this.#context.locks.run(`append/${this.zone}/${this.chainId}`, async () => {
      const tip = await this.#currentTip(options.signal);
      const keys = this.#keys;
      const chainKey = await keys.chainKey(keys.epoch);
      if (chainKey === undefined) {
        throw new InvalidInputError(`no key for the current epoch ${keys.epoch}`);
      }
      const chainIdBytes = fromHex(this.chainId, 32);
      const prev = fromHex(tip.head, 32);
      const payload = await encryptPayload({ zone: this.zone, chainId: chainIdBytes, index: tip.length, prev }, keys.epoch, chainKey, content, options.writeId);
      if (payload.length > this.#context.maxPayloadBytes) {
        throw new InvalidInputError(
          `the encrypted payload has ${payload.length} bytes, more than the zone's ${this.#context.maxPayloadBytes} ` +
            `(${this.#context.maxPayloadBytes - PAYLOAD_OVERHEAD} for the content): store large data as a file`,
        );
      }
      // Imported once per handle: the write key never changes (rotation changes read keys only).
      this.#writeKey ??= this.#keys.signingKey();
      const writeKey = await this.#writeKey;
      const message = entryMessage({
        zone: this.zone,
        chainId: chainIdBytes,
        index: tip.length,
        prev,
        payloadHash: await sha256(payload),
        payloadLength: payload.length,
        chunks: chunks.map((chunk) => fromHex(chunk, 32)),
      });
      const signature = await signEntry(writeKey, message);
      const entryHash = toHex(await entryHashOf(message, signature));
      let answer;
      try {
        answer = await this.#context.api.append(
          this.chainId,
          { index: tip.length, prev: tip.head, payload: toBase64Url(payload), chunks: [...chunks], signature: toBase64Url(signature) },
          options.signal,
        );
      } catch (error) {
        if (error instanceof ConflictError || error instanceof OutcomeUnknownError || error instanceof AbortedError) {
          // The chain is not where this handle thought, or may not be: learn it again next time.
          this.#tip = undefined;
        }
        throw error;
      }
      if (answer.index !== tip.length || answer.entry_hash !== entryHash) {
        this.#tip = undefined;
        throw new VerificationError("bad_entry_hash", `the server acknowledged ${answer.entry_hash}, but the entry hashes to ${entryHash}`, tip.length);
      }
      this.#tip = { length: tip.length + 1, head: entryHash };
      // This client made the entry on a verified head, so the entry is verified too.
      await this.#reconcile(
        { entries: [{ index: tip.length, prev: tip.head, entryHash }], stated: { length: answer.length, head: entryHash } },
        options.signal,
      );
      await this.#context.entries?.put(this.zone, this.chainId, [
        {
          index: tip.length,
          prev: tip.head,
          payload_hash: toHex(await sha256(payload)),
          payload: toBase64Url(payload),
          chunks: [...chunks],
          signature: toBase64Url(signature),
          entry_hash: entryHash,
        },
      ]);
      return { index: tip.length, entryHash, length: answer.length };
    });
  }

  /**
   * Runs `build` with the chain's current (verified) length and head and appends what it returns;
   * when another writer got there first, learns the new head and runs `build` again, up to
   * `maxAttempts` times (then the last `ConflictError` is thrown). `build` typically reads the
   * entries it has not seen yet and decides what to write given them.
   */
  async appendWithRetry(
    build: (head: ChainHead, attempt: number) => EntryContent | Promise<EntryContent>,
    options: RetryOptions = {},
  ): Promise<AppendResult> {
    const maxAttempts = options.maxAttempts ?? 5;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new InvalidInputError("maxAttempts must be a positive integer");
    }
    if (!this.writable) {
      throw new ReadOnlyError(this.chainId);
    }
    for (let attempt = 1; ; attempt++) {
      const content = await build(await this.#currentTip(options.signal), attempt);
      try {
        return await this.append(content, options);
      } catch (error) {
        if (!(error instanceof ConflictError) || attempt >= maxAttempts) {
          throw error;
        }
      }
    }
  }

  /**
   * Switches this handle to a new read key for entries appended from now on and returns the new
   * keys, which the caller must persist (and give to the readers that keep access).
   */
  rotateReadKey(): ChainKeys {
    if (!this.writable) {
      throw new ReadOnlyError(this.chainId);
    }
    const rotated = this.keys.rotateReadKey();
    this.#keys = rotated;
    return rotated;
  }

  /**
   * Follows the chain live from index `from` (default 0): every entry once, in order, verified
   * and decrypted, across reconnections. See `FollowOptions`.
   */
  follow(options: FollowOptions): Subscription {
    const closed = this.#context.closed;
    const signal = options.signal === undefined ? closed : AbortSignal.any([options.signal, closed]);
    return followChain({ ...this.verifier(), openEvents: (from, signal) => this.#context.api.openEvents(this.chainId, from, signal) }, { ...options, signal });
  }

  /**
   * Internal: the checks a follower applies to this chain's streamed entries, for followers
   * whose events arrive another way (the shared live connection, live.ts).
   */
  verifier(): EntryVerifier {
    return {
      hashBefore: (index, signal) => this.#hashBefore(index, signal),
      accept: (wire, index, prev) => this.#acceptStreamed(wire, index, prev),
      unsafeSkipVerification: this.#context.unsafeSkipVerification,
    };
  }

  // ---- reading ----

  /**
   * A verified read, reconciled and kept in the entry cache; when the network fails and there is
   * a cache, the entries it holds for the read instead.
   */
  async #readOrCached(
    read: () => Promise<Segment>,
    cachedRead: (store: EntryStore) => Promise<WireEntry[]>,
    options: ReadOptions,
  ): Promise<Entry[]> {
    let segment: Segment;
    try {
      segment = await read();
      await this.#reconcile(observed(segment), options.signal);
    } catch (error) {
      if (options.noCache) {
        throw error;
      }
      return this.#cached(error, cachedRead, undefined);
    }
    await this.#keep(segment.entries);
    return this.#decryptAll(segment.entries);
  }

  /**
   * The cached entries `cachedRead` finds, decrypted, when `error` is a network failure and the
   * client has a cache; otherwise (or when the cache holds none) `error` again. The cache only
   * ever received verified entries; their links are checked again (to `prev` when given), which
   * catches a store mixed up between chains without needing the network.
   */
  async #cached(error: unknown, cachedRead: (store: EntryStore) => Promise<WireEntry[]>, prev: string | undefined): Promise<Entry[]> {
    const store = this.#context.entries;
    if (!(error instanceof NetworkError) || store === undefined) {
      throw error;
    }
    const entries = (await cachedRead(store)).map(parseWireEntry);
    const first = entries[0];
    if (first === undefined) {
      throw error;
    }
    verifyLinks(entries, first.index, prev ?? (first.index === 0 ? await this.#genesis() : undefined));
    return this.#decryptAll(entries);
  }

  /** Keeps verified (and reconciled) entries in the entry cache, when there is one. */
  async #keep(entries: ParsedEntry[]): Promise<void> {
    if (this.#context.entries === undefined || this.#context.unsafeSkipVerification || entries.length === 0) {
      return;
    }
    await this.#context.entries.put(this.zone, this.chainId, entries.map(wireOf));
  }

  /** A cached entry at an index the server now serves with another hash is a fork. */
  async #checkCached(entries: LinkedEntry[]): Promise<void> {
    const first = entries[0];
    if (this.#context.entries === undefined || first === undefined) {
      return;
    }
    for (const cached of await this.#context.entries.range(this.zone, this.chainId, first.index, entries.length)) {
      const seen = entries[cached.index - first.index]!;
      if (seen.entryHash !== cached.entry_hash) {
        throw new ForkError(cached.index, cached.entry_hash, seen.entryHash);
      }
    }
  }

  /** Verified entries `from`..`from + count - 1` (fewer at the end), in pages. */
  async #fetchRange(from: number, count: number, prev: string | undefined, signal: AbortSignal | undefined): Promise<Segment> {
    const known = await this.#knownLength();
    const entries: ParsedEntry[] = [];
    let next = from;
    let expectedPrev = prev;
    let page: EntriesPage | undefined;
    // Each round either adds at least one entry or stops, so this ends.
    while (entries.length < count) {
      const limit = Math.min(count - entries.length, PAGE_ENTRIES);
      page = await this.#context.api.readEntries(this.chainId, { from: next, limit }, signal);
      const parsed = page.entries.map(parseWireEntry);
      await this.#verifyRangePage(parsed, page, next, limit, expectedPrev);
      entries.push(...parsed);
      const last = parsed.at(-1);
      if (last === undefined || last.index + 1 >= page.length) {
        break;
      }
      next = last.index + 1;
      expectedPrev = last.entryHash;
    }
    return { entries, serverLength: page?.length ?? 0, serverHead: page?.head ?? (await this.#genesis()), known };
  }

  /** The verified last `count` entries, reaching back with range reads when one answer is not enough. */
  async #fetchLast(count: number, signal: AbortSignal | undefined): Promise<Segment> {
    const known = await this.#knownLength();
    const page = await this.#context.api.readEntries(this.chainId, { last: Math.min(count, PAGE_ENTRIES) }, signal);
    const parsed = page.entries.map(parseWireEntry);
    const first = parsed[0]?.index ?? page.length;
    await this.#verifyPageEntries(parsed, first, first === 0 ? await this.#genesis() : undefined);
    if (!this.#context.unsafeSkipVerification) {
      if (parsed.length > Math.min(count, PAGE_ENTRIES)) {
        throw new VerificationError("bad_index", `asked for the last ${count} entries, got ${parsed.length}`);
      }
      if (first + parsed.length !== page.length || (page.length > 0 && parsed.length === 0)) {
        throw new VerificationError("withheld", `the chain has ${page.length} entries, but the last ones sent end at ${first + parsed.length - 1}`);
      }
      await this.#checkHead(parsed, page);
    }
    const wanted = Math.min(count, page.length);
    if (parsed.length >= wanted) {
      return { entries: parsed, serverLength: page.length, serverHead: page.head, known };
    }
    // The byte cap (or the 1000-entry cap) cut the answer: fetch the older part by range.
    const start = page.length - wanted;
    const older = await this.#fetchRange(start, first - start, start === 0 ? await this.#genesis() : undefined, signal);
    if (!this.#context.unsafeSkipVerification) {
      if (older.entries.length !== first - start) {
        throw new VerificationError("withheld", `entries ${start}..${first - 1} were not sent`);
      }
      verifyLinks([older.entries.at(-1)!, parsed[0]!], first - 1, undefined);
    }
    return { entries: [...older.entries, ...parsed], serverLength: page.length, serverHead: page.head, known };
  }

  /** Checks one answer of a range read: its entries, and that it sent what it had to. */
  async #verifyRangePage(parsed: ParsedEntry[], page: EntriesPage, from: number, limit: number, prev: string | undefined): Promise<void> {
    await this.#verifyPageEntries(parsed, from, prev);
    if (this.#context.unsafeSkipVerification) {
      return;
    }
    const end = from + parsed.length;
    if (parsed.length > limit || (parsed.length > 0 && end > page.length)) {
      throw new VerificationError("bad_index", `asked for ${limit} entries from ${from} of ${page.length}, got ${parsed.length}`);
    }
    if (page.next !== undefined && page.next !== end) {
      throw new VerificationError("bad_index", `the answer ends at ${end - 1} but says the next is ${page.next}`);
    }
    if (end < Math.min(from + limit, page.length) && (page.next === undefined || parsed.length === 0)) {
      throw new VerificationError("withheld", `the chain has ${page.length} entries, but the answer from ${from} stops at ${end}`);
    }
    await this.#checkHead(parsed, page);
  }

  /** Entry checks and links of one run of parsed entries. */
  async #verifyPageEntries(parsed: ParsedEntry[], from: number, prev: string | undefined): Promise<void> {
    if (this.#context.unsafeSkipVerification) {
      return;
    }
    verifyLinks(parsed, from, prev);
    const identity = await this.#chainIdentity();
    await Promise.all(parsed.map((entry) => verifyEntry(identity, entry)));
  }

  /** When an answer holds the chain's last entry (or the chain is empty), its `head` must be that entry's hash. */
  async #checkHead(parsed: ParsedEntry[], page: EntriesPage): Promise<void> {
    const last = parsed.at(-1);
    const expected = page.length === 0 ? await this.#genesis() : last?.index === page.length - 1 ? last.entryHash : undefined;
    if (expected !== undefined && page.head !== expected) {
      throw new VerificationError("bad_head", `the answer's head ${page.head} is not its last entry's hash ${expected}`);
    }
  }

  /**
   * Checks a verified segment against the remembered head and remembers the new one. Serialized
   * per chain, so that two reads in flight cannot each pass against a head the other replaces.
   */
  async #reconcile(observation: Observation, signal: AbortSignal | undefined): Promise<void> {
    if (this.#context.unsafeSkipVerification) {
      return;
    }
    const { heads, locks } = this.#context;
    await locks.run(`head/${this.zone}/${this.chainId}`, async () => {
      const remembered = await heads.get(this.zone, this.chainId);
      const { entries, stated } = observation;
      await this.#checkCached(entries);
      const last = entries.at(-1);
      if (remembered !== undefined) {
        if (stated !== undefined && stated.length < remembered.length) {
          // Shorter than what was verified before the request was sent: rolled back. Only
          // shorter than what was verified while it was on its way (this client's own append,
          // another tab's read): an answer made before, which links on below like any read
          // that ends before the remembered head.
          const before = observation.known;
          if (before === undefined || stated.length < before) {
            throw new RollbackError(remembered.length, stated.length);
          }
        }
        if (stated !== undefined && stated.length === remembered.length && stated.head !== remembered.head) {
          throw new ForkError(remembered.length - 1, remembered.head, stated.head);
        }
        if (last !== undefined) {
          await this.#linkToRemembered(entries, remembered.length - 1, remembered.head, signal);
        }
      }
      if (last !== undefined && last.index + 1 > (remembered?.length ?? 0)) {
        await heads.put(this.zone, this.chainId, { length: last.index + 1, head: last.entryHash });
      }
    });
  }

  /** The remembered length of this chain now (undefined: none, or verification is off). */
  async #knownLength(): Promise<number | undefined> {
    if (this.#context.unsafeSkipVerification) {
      return undefined;
    }
    return (await this.#context.heads.get(this.zone, this.chainId))?.length ?? 0;
  }

  /** Checks that `entries` continue (or contain) the remembered entry `index` with hash `hash`. */
  async #linkToRemembered(entries: LinkedEntry[], index: number, hash: string, signal: AbortSignal | undefined): Promise<void> {
    const first = entries[0]!;
    const last = entries.at(-1)!;
    if (index >= first.index && index <= last.index) {
      const actual = entries[index - first.index]!.entryHash;
      if (actual !== hash) {
        throw new ForkError(index, hash, actual);
      }
    } else if (index === first.index - 1) {
      if (first.prev !== hash) {
        throw new ForkError(index, hash, first.prev);
      }
    } else if (index < first.index - 1) {
      // The read starts past the remembered head: fetch what lies between, or a fork could hide there.
      const gap = await this.#fetchRange(index + 1, first.index - index - 1, undefined, signal);
      if (gap.entries.length !== first.index - index - 1) {
        throw new VerificationError("withheld", `entries ${index + 1}..${first.index - 1} were not sent`);
      }
      if (gap.entries[0]!.prev !== hash) {
        throw new ForkError(index, hash, gap.entries[0]!.prev);
      }
      verifyLinks([...gap.entries, first], index + 1, hash);
    }
    // A read that ends before the remembered head cannot be linked to it without reading on.
  }

  /** The verified hash of entry `index - 1`, the `prev` of entry `index` (the genesis for 0). */
  async #hashBefore(index: number, signal: AbortSignal): Promise<string> {
    if (index === 0) {
      return this.#genesis();
    }
    const segment = await this.#fetchRange(index - 1, 1, index === 1 ? await this.#genesis() : undefined, signal);
    await this.#reconcile(observed(segment), signal);
    const entry = segment.entries[0];
    if (entry === undefined) {
      // A follower asked to start past the end of the chain.
      throw new InvalidInputError(`the chain has ${segment.serverLength} entries: cannot follow from ${index}`);
    }
    return entry.entryHash;
  }

  /** Verifies one entry from the live stream as the successor of `prev` at `index`, and decrypts it. */
  async #acceptStreamed(wire: unknown, index: number, prev: string): Promise<Entry> {
    const entry = parseWireEntry(wire);
    await this.#verifyPageEntries([entry], index, prev);
    if (this.#context.unsafeSkipVerification) {
      return this.#decrypt(entry);
    }
    // The stream states no length: an old entry replayed is no rollback, but it is checked
    // against the remembered head all the same.
    await this.#reconcile({ entries: [entry], stated: undefined }, undefined);
    await this.#keep([entry]);
    return this.#decrypt(entry);
  }

  /**
   * Where the next append goes: the newer of this handle's own tip and the remembered head
   * (which reads and following advance), else a verified read of the last entry.
   */
  async #currentTip(signal: AbortSignal | undefined): Promise<ChainHead> {
    const tip = this.#tip ?? (await this.#syncTip(signal));
    if (this.#context.unsafeSkipVerification) {
      return { ...tip };
    }
    const remembered = await this.#context.heads.get(this.zone, this.chainId);
    if (remembered !== undefined && remembered.length > tip.length) {
      this.#tip = { length: remembered.length, head: remembered.head };
    }
    return { ...this.#tip! };
  }

  /** Learns the chain's head by a verified read of its last entry. */
  async #syncTip(signal: AbortSignal | undefined): Promise<ChainHead> {
    const segment = await this.#fetchLast(1, signal);
    await this.#reconcile(observed(segment), signal);
    this.#tip = { length: segment.serverLength, head: segment.entries.at(-1)?.entryHash ?? (await this.#genesis()) };
    return this.#tip;
  }

  async #decryptAll(entries: ParsedEntry[]): Promise<Entry[]> {
    return Promise.all(entries.map((entry) => this.#decrypt(entry)));
  }

  async #decrypt(entry: ParsedEntry): Promise<Entry> {
    const keys = this.#keys;
    const { epoch, content, writeId } = await decryptPayload(
      { zone: this.zone, chainId: fromHex(this.chainId, 32), index: entry.index, prev: fromHex(entry.prev, 32) },
      keys,
      entry.payload,
    );
    const decrypted: Entry = { index: entry.index, entryHash: entry.entryHash, prev: entry.prev, chunks: entry.chunks, keyEpoch: epoch, content };
    if (writeId !== undefined) {
      decrypted.writeId = toBase64Url(writeId);
    }
    return decrypted;
  }

  /** The chain's identity: from the write key when this handle has it, else from the server's key, checked against the id. */
  async #chainIdentity(): Promise<ChainIdentity> {
    if (this.#identity === undefined) {
      this.#identity = this.#loadIdentity();
      // A failed load (network) must not stick.
      this.#identity.catch(() => {
        this.#identity = undefined;
      });
    }
    return this.#identity;
  }

  async #loadIdentity(): Promise<ChainIdentity> {
    if (this.#keys.writable) {
      this.#writeKey ??= this.#keys.signingKey();
      return chainIdentity(this.zone, this.chainId, (await this.#writeKey).publicKey);
    }
    const info = await this.#context.api.getChain(this.chainId);
    return chainIdentity(this.zone, this.chainId, decodeField(() => fromBase64Url(info.public_key, 32)));
  }

  async #genesis(): Promise<string> {
    return toHex(await genesisOf(fromHex(this.chainId, 32)));
  }
}

/** Runs functions one after another per key; different keys run concurrently. */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    const result = before.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.#tails.get(key) === tail) {
        this.#tails.delete(key);
      }
    }
  }
}

/** An entry back in the form the server serves it, for the entry cache. */
function wireOf(entry: ParsedEntry): WireEntry {
  return {
    index: entry.index,
    prev: entry.prev,
    payload_hash: entry.payloadHash,
    payload: toBase64Url(entry.payload),
    chunks: [...entry.chunks],
    signature: toBase64Url(entry.signature),
    entry_hash: entry.entryHash,
  };
}

function observed(segment: Segment): Observation {
  return { entries: segment.entries, stated: { length: segment.serverLength, head: segment.serverHead }, known: segment.known };
}

function checkIndex(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidInputError(`${name} must be an integer in 0..2^53-1`);
  }
}

function checkChunkList(chunks: readonly string[]): string[] {
  if (chunks.length > MAX_ENTRY_CHUNKS) {
    throw new InvalidInputError(`an entry references at most ${MAX_ENTRY_CHUNKS} chunks`);
  }
  for (const chunk of chunks) {
    try {
      fromHex(chunk, 32);
    } catch {
      throw new InvalidInputError(`chunk hash ${JSON.stringify(chunk)} is not 64 lowercase hex digits`);
    }
  }
  return [...chunks];
}

function decodeField(decode: () => Bytes): Bytes {
  try {
    return decode();
  } catch (error) {
    throw new VerificationError("malformed", `the server sent a malformed key: ${(error as Error).message}`);
  }
}
