/**
 * Following a chain live over its event stream (`GET .../chains/{id}/events`, docs/web.md).
 *
 * The follower asks for the stream from the index after the last entry it verified, on every
 * (re)connection, and checks that each event is exactly that next index and links to the entry
 * before: a server that resumes at the wrong place, skips, repeats or reorders is caught, not
 * trusted. Reading goes through `fetch` in browsers and Node alike (see sse.ts).
 */

import type { Entry } from "./chain-types.js";
import { NetworkError, RollbackError, VerificationError, isTransient, retryDelayMs } from "./errors.js";
import { SseParser } from "./sse.js";

export interface FollowOptions {
  /** The first index to deliver (default 0). */
  from?: number;
  /**
   * The entry hash of entry `from - 1`, when the caller verified it already (a fold's `head`):
   * the first entry must link to it, and the follower need not read that entry to learn it.
   */
  prev?: string;
  /**
   * Called with each entry, in order, once; the next one waits until the returned promise
   * settles. If it throws, following stops and `onError` gets the error.
   */
  onEntry: (entry: Entry) => void | Promise<void>;
  /**
   * Called once when following stops for good: the server misbehaved (`VerificationError`,
   * `RollbackError`, `ForkError`), an entry cannot be decrypted (`MissingKeyError`,
   * `DecryptionError`), the chain is unknown (`HttpError` 404), or `onEntry` threw. Lost
   * connections are not errors: the follower reconnects and resumes by itself.
   */
  onError: (error: unknown) => void;
  /** Stops following when aborted (as `Subscription.close` does). */
  signal?: AbortSignal;
  /**
   * Reconnect when nothing at all (not even a keep-alive comment, sent every 15 s) arrived for
   * this long. Default 45 s.
   */
  idleTimeoutMs?: number;
}

/** A running follower. */
export interface Subscription {
  /** Stops following; no `onEntry` call starts after this. */
  close(): void;
  /** Settles when following has stopped (closed, or after `onError`). Never rejects. */
  readonly closed: Promise<void>;
}

/** What a chain handle gives its follower. */
export interface FollowSource extends EntryVerifier {
  /** Opens the event stream from index `from`; non-2xx answers throw typed errors. */
  openEvents(from: number, signal: AbortSignal): Promise<Response>;
}

/** How a follower checks a chain's streamed entries, wherever they come from. */
export interface EntryVerifier {
  /** The verified hash of the entry before `index` (the genesis for 0). */
  hashBefore(index: number, signal: AbortSignal): Promise<string>;
  /** Verifies a streamed entry as entry `index` following `prev`, and decrypts it. */
  accept(wire: unknown, index: number, prev: string): Promise<Entry>;
  /** See `BlindstoreOptions.unsafeSkipVerification`: the stream's positions go unchecked too. */
  unsafeSkipVerification?: boolean;
}

const DEFAULT_IDLE_TIMEOUT_MS = 45_000;
/** Delay before reconnecting after a clean end, until the server says otherwise (`retry:`). */
const DEFAULT_RETRY_MS = 1_000;
/** Longest delay between reconnection attempts after repeated failures. */
const MAX_RETRY_MS = 30_000;

export function followChain(source: FollowSource, options: FollowOptions): Subscription {
  const from = options.from ?? 0;
  if (!Number.isSafeInteger(from) || from < 0) {
    throw new RangeError("from must be an integer in 0..2^53-1");
  }
  const controller = new AbortController();
  if (options.signal !== undefined) {
    if (options.signal.aborted) {
      controller.abort();
    }
    options.signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  const closed = run(source, options, from, controller.signal);
  return { close: () => controller.abort(), closed };
}

/** An error thrown by the caller's `onEntry`: it ends following, whatever it is. */
class HandlerFailure {
  constructor(readonly error: unknown) {}
}

async function run(source: FollowSource, options: FollowOptions, from: number, stop: AbortSignal): Promise<void> {
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  let next = from;
  let prev: string | undefined = options.prev;
  let retryMs = DEFAULT_RETRY_MS;
  let failures = 0;
  let lastError: unknown;
  while (!stop.aborted) {
    const connection = new AbortController();
    const onStop = () => connection.abort();
    stop.addEventListener("abort", onStop, { once: true });
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const touch = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => connection.abort(), idleTimeoutMs);
    };
    try {
      prev ??= await source.hashBefore(next, connection.signal);
      touch();
      const response = await source.openEvents(next, connection.signal);
      if (response.body === null) {
        throw new NetworkError("the event stream has no body");
      }
      const parser = new SseParser();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      try {
        stream: for (;;) {
          const { value, done } = await reader.read().catch((error: unknown) => {
            throw new NetworkError("the event stream broke off", { cause: error });
          });
          if (done) {
            break;
          }
          touch();
          for (const event of parser.push(decoder.decode(value, { stream: true }))) {
            if (stop.aborted) {
              return;
            }
            if (event.event === "entry") {
              if (event.id !== String(next) && source.unsafeSkipVerification !== true) {
                throw new VerificationError("bad_index", `the stream sent id ${String(event.id)} where entry ${next} was due`, next);
              }
              const entry = await source.accept(parseJson(event.data), next, prev);
              try {
                await options.onEntry(entry);
              } catch (error) {
                throw new HandlerFailure(error);
              }
              next += 1;
              prev = entry.entryHash;
              failures = 0;
            } else if (event.event === "unavailable") {
              // The stream was asked to start right after an entry already verified, so a chain
              // too short for that position has lost entries.
              const length = (parseJson(event.data) as { length?: unknown }).length;
              if (typeof length !== "number") {
                throw new VerificationError("malformed", "an unavailable event without the chain's length");
              }
              throw new RollbackError(next, length);
            } else if (event.event === "end") {
              // The node is stopping: reconnect (possibly to another node) and resume.
              break stream;
            }
          }
        }
      } finally {
        retryMs = parser.retryMs ?? retryMs;
        await reader.cancel().catch(() => undefined);
      }
    } catch (error) {
      if (stop.aborted) {
        return;
      }
      if (error instanceof HandlerFailure) {
        options.onError(error.error);
        return;
      }
      if (!isTransient(error)) {
        options.onError(error);
        return;
      }
      failures += 1;
      lastError = error;
    } finally {
      clearTimeout(idleTimer);
      stop.removeEventListener("abort", onStop);
    }
    // The server's delay after a clean end or a first failure, doubling with each further one
    // (and never shorter than a Retry-After it sent).
    await sleep(retryDelayMs(lastError, Math.min(retryMs * 2 ** Math.min(Math.max(failures - 1, 0), 10), MAX_RETRY_MS)), stop);
    lastError = undefined;
  }
}


function parseJson(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw new VerificationError("malformed", "an event's data is not JSON");
  }
}

export function sleep(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    stop.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      stop.removeEventListener("abort", done);
      resolve();
    }
  });
}
