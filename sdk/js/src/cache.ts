/**
 * The verified entry cache: entries a client verified, kept in their wire form (still encrypted
 * and signed, exactly as the server served them), so that reads can answer offline.
 *
 * Only the SDK writes to it, and only entries that passed every check of a read (chain.ts); a
 * later read that the server answers differently at a cached index is a `ForkError`. Entries
 * are decrypted when read, never stored in plaintext.
 */

import type { WireEntry } from "./entry.js";

/**
 * Where verified entries are kept. `MemoryEntryStore` lives as long as the page;
 * `IndexedDbEntryStore` (browsers) keeps them across visits.
 */
export interface EntryStore {
  /** The cached entries `from`, `from + 1`, ... up to `count` of them, stopping at the first gap. */
  range(zone: string, chainId: string, from: number, count: number): Promise<WireEntry[]>;
  /** The last `count` entries of the run of consecutive entries that ends at the highest cached index. */
  last(zone: string, chainId: string, count: number): Promise<WireEntry[]>;
  /** Keeps verified entries (replacing any at the same indexes). */
  put(zone: string, chainId: string, entries: readonly WireEntry[]): Promise<void>;
}

/** An `EntryStore` in memory. */
export class MemoryEntryStore implements EntryStore {
  readonly #chains = new Map<string, Map<number, WireEntry>>();

  async range(zone: string, chainId: string, from: number, count: number): Promise<WireEntry[]> {
    const chain = this.#chains.get(`${zone}/${chainId}`);
    const entries: WireEntry[] = [];
    for (let index = from; entries.length < count; index++) {
      const entry = chain?.get(index);
      if (entry === undefined) {
        break;
      }
      entries.push(structuredClone(entry));
    }
    return entries;
  }

  async last(zone: string, chainId: string, count: number): Promise<WireEntry[]> {
    const chain = this.#chains.get(`${zone}/${chainId}`);
    if (chain === undefined || chain.size === 0) {
      return [];
    }
    const entries: WireEntry[] = [];
    for (let index = Math.max(...chain.keys()); entries.length < count && chain.has(index); index--) {
      entries.unshift(structuredClone(chain.get(index)!));
    }
    return entries;
  }

  async put(zone: string, chainId: string, entries: readonly WireEntry[]): Promise<void> {
    const key = `${zone}/${chainId}`;
    const chain = this.#chains.get(key) ?? new Map<number, WireEntry>();
    this.#chains.set(key, chain);
    for (const entry of entries) {
      chain.set(entry.index, structuredClone(entry));
    }
  }
}
