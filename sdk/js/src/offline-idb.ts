/**
 * The offline stores in IndexedDB (browsers): the verified entry cache, the outbox and
 * resumable uploads, in one database (default "blindstore-offline") shared by the origin's tabs.
 * `open` throws `UnsupportedEnvironmentError` where there is no `indexedDB` (Node).
 */

import type { EntryStore } from "./cache.js";
import type { WireEntry } from "./entry.js";
import { UnsupportedEnvironmentError } from "./errors.js";
import type { OutboxRecord, OutboxStore } from "./outbox.js";
import type { FileData } from "./files.js";
import { type UploadRecord, type UploadStore, newDeviceKey } from "./uploads.js";

const DB_VERSION = 1;
const ENTRIES = "entries";
const OUTBOX = "outbox";
const UPLOADS = "uploads";
const UPLOAD_DATA = "upload-data";
const DEVICE_KEYS = "device-keys";
const UPLOAD_KEY = "uploads";

/** The largest index an entry can have: the upper bound of a chain's key range. */
const MAX_INDEX = Number.MAX_SAFE_INTEGER;

/** Opens (creating when needed) the offline database `name`. */
export async function openOfflineDb(name = "blindstore-offline"): Promise<IDBDatabase> {
  if (typeof indexedDB === "undefined") {
    throw new UnsupportedEnvironmentError("IndexedDB is not available here");
  }
  const request = indexedDB.open(name, DB_VERSION);
  request.onupgradeneeded = () => {
    const db = request.result;
    // Entries keyed [zone, chain id, index], so that a chain's entries are one ordered key range.
    db.createObjectStore(ENTRIES);
    db.createObjectStore(OUTBOX, { keyPath: "id" }).createIndex("zone-seq", ["zone", "seq"]);
    db.createObjectStore(UPLOADS, { keyPath: "id" });
    db.createObjectStore(UPLOAD_DATA);
    db.createObjectStore(DEVICE_KEYS);
  };
  return settled(request);
}

/** The verified entry cache in IndexedDB. */
export class IndexedDbEntryStore implements EntryStore {
  constructor(private readonly db: IDBDatabase) {}

  /** Closes the database connection (a store the app opened is the app's to close). */
  close(): void {
    this.db.close();
  }

  static async open(name?: string): Promise<IndexedDbEntryStore> {
    return new IndexedDbEntryStore(await openOfflineDb(name));
  }

  async range(zone: string, chainId: string, from: number, count: number): Promise<WireEntry[]> {
    const store = this.db.transaction(ENTRIES, "readonly").objectStore(ENTRIES);
    const found = (await settled(store.getAll(IDBKeyRange.bound([zone, chainId, from], [zone, chainId, MAX_INDEX]), Math.min(count, 2 ** 32 - 1)))) as WireEntry[];
    return consecutive(found, from);
  }

  async last(zone: string, chainId: string, count: number): Promise<WireEntry[]> {
    const store = this.db.transaction(ENTRIES, "readonly").objectStore(ENTRIES);
    const entries: WireEntry[] = [];
    const cursor = store.openCursor(IDBKeyRange.bound([zone, chainId, 0], [zone, chainId, MAX_INDEX]), "prev");
    await new Promise<void>((resolve, reject) => {
      cursor.onerror = () => reject(cursor.error);
      cursor.onsuccess = () => {
        const at = cursor.result;
        const entry = at?.value as WireEntry | undefined;
        // Stop at the first gap: the run must be consecutive.
        if (at === null || entry === undefined || entries.length >= count || (entries.length > 0 && entry.index !== entries[0]!.index - 1)) {
          resolve();
          return;
        }
        entries.unshift(entry);
        at.continue();
      };
    });
    return entries;
  }

  async put(zone: string, chainId: string, entries: readonly WireEntry[]): Promise<void> {
    const transaction = this.db.transaction(ENTRIES, "readwrite");
    const store = transaction.objectStore(ENTRIES);
    for (const entry of entries) {
      store.put(entry, [zone, chainId, entry.index]);
    }
    await completed(transaction);
  }
}

/** The outbox in IndexedDB: queued writes survive reloads and are shared by the origin's tabs. */
export class IndexedDbOutboxStore implements OutboxStore {
  constructor(private readonly db: IDBDatabase) {}

  /** Closes the database connection (a store the app opened is the app's to close). */
  close(): void {
    this.db.close();
  }

  static async open(name?: string): Promise<IndexedDbOutboxStore> {
    return new IndexedDbOutboxStore(await openOfflineDb(name));
  }

  async add(record: OutboxRecord): Promise<void> {
    const transaction = this.db.transaction(OUTBOX, "readwrite");
    transaction.objectStore(OUTBOX).add(record);
    await completed(transaction);
  }

  async list(zone: string): Promise<OutboxRecord[]> {
    const index = this.db.transaction(OUTBOX, "readonly").objectStore(OUTBOX).index("zone-seq");
    return (await settled(index.getAll(IDBKeyRange.bound([zone, -Infinity], [zone, Infinity])))) as OutboxRecord[];
  }

  async update(record: OutboxRecord): Promise<void> {
    // Only a record still queued is updated: another tab may have sent and removed it.
    const transaction = this.db.transaction(OUTBOX, "readwrite");
    const store = transaction.objectStore(OUTBOX);
    if ((await settled(store.getKey(record.id))) !== undefined) {
      store.put(record);
    }
    await completed(transaction);
  }

  async remove(id: string): Promise<void> {
    const transaction = this.db.transaction(OUTBOX, "readwrite");
    transaction.objectStore(OUTBOX).delete(id);
    await completed(transaction);
  }
}

/** Resumable uploads in IndexedDB, with the data itself (IndexedDB keeps a copy of a `Blob`). */
export class IndexedDbUploadStore implements UploadStore {
  #key: Promise<CryptoKey> | undefined;

  constructor(private readonly db: IDBDatabase) {}

  /** Closes the database connection (a store the app opened is the app's to close). */
  close(): void {
    this.db.close();
  }

  static async open(name?: string): Promise<IndexedDbUploadStore> {
    return new IndexedDbUploadStore(await openOfflineDb(name));
  }

  async putData(id: string, data: FileData): Promise<void> {
    const transaction = this.db.transaction(UPLOAD_DATA, "readwrite");
    transaction.objectStore(UPLOAD_DATA).put(data, id);
    await completed(transaction);
  }

  async putState(record: UploadRecord): Promise<void> {
    const transaction = this.db.transaction(UPLOADS, "readwrite");
    transaction.objectStore(UPLOADS).put(record);
    await completed(transaction);
  }

  async list(zone: string): Promise<Array<UploadRecord & { data: FileData }>> {
    const transaction = this.db.transaction([UPLOADS, UPLOAD_DATA], "readonly");
    const records = ((await settled(transaction.objectStore(UPLOADS).getAll())) as UploadRecord[]).filter((record) => record.zone === zone);
    const found: Array<UploadRecord & { data: FileData }> = [];
    for (const record of records) {
      const data = (await settled(transaction.objectStore(UPLOAD_DATA).get(record.id))) as FileData | undefined;
      if (data !== undefined) {
        found.push({ ...record, data });
      }
    }
    return found;
  }

  async remove(id: string): Promise<void> {
    const transaction = this.db.transaction([UPLOADS, UPLOAD_DATA], "readwrite");
    transaction.objectStore(UPLOADS).delete(id);
    transaction.objectStore(UPLOAD_DATA).delete(id);
    await completed(transaction);
  }

  deviceKey(): Promise<CryptoKey> {
    this.#key ??= this.#loadKey();
    this.#key.catch(() => {
      this.#key = undefined;
    });
    return this.#key;
  }

  /** The stored device key, or a new one stored; `add` fails if another tab stored one first, and then that one is used. */
  async #loadKey(): Promise<CryptoKey> {
    const stored = await settled(this.db.transaction(DEVICE_KEYS, "readonly").objectStore(DEVICE_KEYS).get(UPLOAD_KEY));
    if (stored instanceof CryptoKey) {
      return stored;
    }
    const key = await newDeviceKey();
    const transaction = this.db.transaction(DEVICE_KEYS, "readwrite");
    transaction.objectStore(DEVICE_KEYS).add(key, UPLOAD_KEY);
    try {
      await completed(transaction);
      return key;
    } catch {
      const winner = await settled(this.db.transaction(DEVICE_KEYS, "readonly").objectStore(DEVICE_KEYS).get(UPLOAD_KEY));
      if (!(winner instanceof CryptoKey)) {
        throw new UnsupportedEnvironmentError("IndexedDB could not keep the device key");
      }
      return winner;
    }
  }
}

function consecutive(entries: WireEntry[], from: number): WireEntry[] {
  const run: WireEntry[] = [];
  for (const entry of entries) {
    if (entry.index !== from + run.length) {
      break;
    }
    run.push(entry);
  }
  return run;
}

function settled<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function completed(transaction: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error);
  });
}
