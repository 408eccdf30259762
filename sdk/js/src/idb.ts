/**
 * A `HeadStore` in IndexedDB: remembered heads survive reloads, so a server that rolls a chain
 * back between two visits is still caught. Browsers only; `open` throws
 * `UnsupportedEnvironmentError` where there is no `indexedDB` (Node).
 */

import { UnsupportedEnvironmentError } from "./errors.js";
import { type HeadStore, MemoryHeadStore, type RememberedHead, checkSameHistory } from "./heads.js";

const STORE = "heads";

export class IndexedDbHeadStore implements HeadStore {
  readonly #db: IDBDatabase;

  private constructor(db: IDBDatabase) {
    this.#db = db;
  }

  /** Opens (creating when needed) the database `name`. */
  static async open(name = "blindstore-heads"): Promise<IndexedDbHeadStore> {
    if (typeof indexedDB === "undefined") {
      throw new UnsupportedEnvironmentError("IndexedDB is not available here");
    }
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore(STORE);
    };
    return new IndexedDbHeadStore(await settled(request));
  }

  async get(zone: string, chainId: string): Promise<RememberedHead | undefined> {
    const stored = await settled(this.#db.transaction(STORE, "readonly").objectStore(STORE).get(`${zone}/${chainId}`));
    return isHead(stored) ? { length: stored.length, head: stored.head } : undefined;
  }

  async put(zone: string, chainId: string, head: RememberedHead): Promise<void> {
    // Read and write in one transaction, so that two tabs cannot shorten each other's head.
    const transaction = this.#db.transaction(STORE, "readwrite");
    const store = transaction.objectStore(STORE);
    const key = `${zone}/${chainId}`;
    const stored: unknown = await settled(store.get(key));
    if (!isHead(stored) || stored.length < head.length) {
      store.put({ length: head.length, head: head.head }, key);
    }
    await new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
    checkSameHistory(isHead(stored) ? stored : undefined, head);
  }

  close(): void {
    this.#db.close();
  }
}

/**
 * A store opened on first use: `open()` where there is IndexedDB, else — or when the browser
 * refuses it — `memory()`, which then protects the page's life only.
 */
export class LazyStore<T> {
  readonly #open: () => Promise<T>;
  readonly #memory: () => T;
  #store: Promise<T> | undefined;

  constructor(open: () => Promise<T>, memory: () => T) {
    this.#open = open;
    this.#memory = memory;
  }

  opened(): Promise<T> {
    this.#store ??= typeof indexedDB === "undefined" ? Promise.resolve(this.#memory()) : this.#open().catch(() => this.#memory());
    return this.#store;
  }

  /** Closes what was opened, if it can be closed; a later use opens it again. */
  close(): void {
    const store = this.#store;
    this.#store = undefined;
    void store?.then((opened) => (opened as { close?: () => void }).close?.());
  }
}

/**
 * The head store a client uses when given none: `IndexedDbHeadStore` (database
 * `blindstore-heads`) where there is IndexedDB, opened on first use, so that rollback and fork
 * protection holds across reloads without the app asking; in memory where there is none (Node)
 * or where the browser refuses to open it (then it protects the page's life only).
 */
export class DefaultHeadStore implements HeadStore {
  readonly #store = new LazyStore<HeadStore>(() => IndexedDbHeadStore.open(), () => new MemoryHeadStore());

  async get(zone: string, chainId: string): Promise<RememberedHead | undefined> {
    return (await this.#store.opened()).get(zone, chainId);
  }

  async put(zone: string, chainId: string, head: RememberedHead): Promise<void> {
    await (await this.#store.opened()).put(zone, chainId, head);
  }

  /** Closes the IndexedDB connection, if one was opened; a later use opens it again. */
  close(): void {
    this.#store.close();
  }
}

function settled<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function isHead(value: unknown): value is RememberedHead {
  const head = value as Partial<RememberedHead> | undefined;
  return typeof head?.length === "number" && typeof head.head === "string";
}
