/**
 * What a client's chain handles share (`ClientContext`), built the same way for the full client
 * (`Blindstore`) and the reading one (`BlindstoreReader`).
 */

import { KeyedLock, type ClientContext } from "./chain.js";
import type { EntryStore } from "./cache.js";
import type { CheckpointStore } from "./checkpoint.js";
import { InvalidInputError } from "./errors.js";
import type { HeadStore } from "./heads.js";
import { type FetchLike, type SessionTokenSource, ZoneApi } from "./http.js";
import type { Outbox } from "./outbox.js";

/** The options both clients take. */
export interface CommonOptions {
  /** Where the API is served, e.g. `https://budget.example.com` or `http://127.0.0.1:8080`. */
  url: string;
  /** The zone (one per app). */
  zone: string;
  /** The `fetch` to use (default: the global one). Wrap it to log, count or add headers. */
  fetch?: FetchLike;
  /**
   * Where the last verified head of each chain is remembered, so that a rollback or fork the
   * server shows later is caught. Default: IndexedDB where there is one (browsers), in memory
   * (forgotten when the process ends) elsewhere; `new MemoryHeadStore()` to keep nothing.
   */
  headStore?: HeadStore;
  /** Deadline of each request in milliseconds (default 30 s; event streams excepted). */
  timeoutMs?: number;
  /**
   * Keeps verified entries (still encrypted) so that reads answer from it when the network
   * fails (default: none; in browsers `await IndexedDbEntryStore.open()`).
   */
  entryStore?: EntryStore;
  /**
   * Where `chain.fold` keeps checkpoints (default: IndexedDB where there is one, opened on first
   * use; memory elsewhere).
   */
  checkpointStore?: CheckpointStore;
}

/** The API client of a zone, with the session hooks of the full client. */
export function zoneApi(
  options: CommonOptions,
  session: { token: SessionTokenSource; onRejected?: (token: string) => void },
): ZoneApi {
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
    throw new InvalidInputError("timeoutMs must be a positive integer");
  }
  return new ZoneApi({
    baseUrl: options.url,
    zone: options.zone,
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    sessionToken: session.token,
    timeoutMs,
    onSessionRejected: session.onRejected,
  });
}

/** The context of a client's chain handles. */
export function clientContext(
  api: ZoneApi,
  options: CommonOptions & { maxPayloadBytes?: number; unsafeSkipVerification?: boolean },
  headStore: HeadStore,
  outbox: Outbox | undefined,
  closed: AbortSignal,
  checkpoints: CheckpointStore,
): ClientContext {
  const maxPayloadBytes = options.maxPayloadBytes ?? 64 * 1024;
  if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 1) {
    throw new InvalidInputError("maxPayloadBytes must be a positive integer");
  }
  return {
    api,
    heads: headStore,
    entries: options.entryStore,
    locks: new KeyedLock(),
    outbox,
    closed,
    checkpoints,
    maxPayloadBytes,
    unsafeSkipVerification: options.unsafeSkipVerification ?? false,
  };
}

