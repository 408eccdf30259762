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
 * keeps the stored head when it is at least as long as the new one.
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
    if (stored === undefined || stored.length < head.length) {
      this.#heads.set(key, { ...head });
    }
  }
}
