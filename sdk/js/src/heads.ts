import { ForkError } from "./errors.js";

/**
 * What a client remembers of each chain it has verified, so that a server that later shows less
 * (a rollback) or something else (a fork) is caught.
 */

/** The newest point of a chain this client verified: `length` entries, the last one hashing to `head`. */
export interface RememberedHead {
  length: number;
  /** Entry hash of entry `length - 1` (lowercase hex). */
  head: string;
}

/**
 * Where a client keeps remembered heads. The client decides what to store, and only stores a
 * head that extends the one it loaded; since several clients (tabs) may share a store, `put`
 * keeps the stored head when it is longer than the new one, and throws a `ForkError` when it is
 * as long with another hash (two tabs shown different histories).
 * `MemoryHeadStore` forgets on reload; `IndexedDbHeadStore` (browsers) keeps them.
 */
export interface HeadStore {
  get(zone: string, chainId: string): Promise<RememberedHead | undefined>;
  put(zone: string, chainId: string, head: RememberedHead): Promise<void>;
}

/** A `HeadStore` in memory: protects one page's life, forgets on reload. */
export class MemoryHeadStore implements HeadStore {
  readonly #heads = new Map<string, RememberedHead>();

  async get(zone: string, chainId: string): Promise<RememberedHead | undefined> {
    const head = this.#heads.get(`${zone}/${chainId}`);
    return head === undefined ? undefined : { ...head };
  }

  async put(zone: string, chainId: string, head: RememberedHead): Promise<void> {
    const key = `${zone}/${chainId}`;
    const stored = this.#heads.get(key);
    checkSameHistory(stored, head);
    if (stored === undefined || stored.length < head.length) {
      this.#heads.set(key, { ...head });
    }
  }
}

/**
 * Throws a `ForkError` when `stored` and `incoming` are heads of the same length with different
 * hashes: another client sharing the store was shown another history.
 */
export function checkSameHistory(stored: RememberedHead | undefined, incoming: RememberedHead): void {
  if (stored !== undefined && stored.length === incoming.length && stored.head !== incoming.head) {
    throw new ForkError(incoming.length - 1, stored.head, incoming.head);
  }
}
