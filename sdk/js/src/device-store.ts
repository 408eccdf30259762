/**
 * A key-value store in IndexedDB for what the SDK keeps on a device: the remembered session and
 * device keyrings. Values are structured-cloned, so non-extractable `CryptoKey`s are stored as
 * they are — the browser keeps their bytes out of reach of the page. Browsers only.
 */

import { UnsupportedEnvironmentError } from "./errors.js";

const STORE = "records";

export class DeviceStore {
  readonly #db: IDBDatabase;

  private constructor(db: IDBDatabase) {
    this.#db = db;
  }

  /**
   * Opens the database of `purpose` for the deployment at `url` and `zone` (one database each, so
   * that two apps or zones on one origin never see each other's keys).
   */
  static async open(purpose: string, url: string, zone: string): Promise<DeviceStore> {
    return DeviceStore.openNamed(`blindstore-${purpose}:${url.replace(/\/+$/, "")}:${zone}`);
  }

  /** Opens (creating when needed) the key-value database `name`. */
  static async openNamed(name: string): Promise<DeviceStore> {
    if (typeof indexedDB === "undefined") {
      throw new UnsupportedEnvironmentError("IndexedDB is not available here: this needs a browser");
    }
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore(STORE);
    };
    return new DeviceStore(await settled(request));
  }

  async get(key: string): Promise<unknown> {
    return settled(this.#db.transaction(STORE, "readonly").objectStore(STORE).get(key));
  }

  /** Every key starting with `prefix`. */
  async keys(prefix: string): Promise<string[]> {
    const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
    const keys = await settled(this.#db.transaction(STORE, "readonly").objectStore(STORE).getAllKeys(range));
    return keys.map(String);
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.#write((store) => store.put(value, key));
  }

  async delete(key: string): Promise<void> {
    await this.#write((store) => store.delete(key));
  }

  close(): void {
    this.#db.close();
  }

  async #write(change: (store: IDBObjectStore) => void): Promise<void> {
    const transaction = this.#db.transaction(STORE, "readwrite");
    change(transaction.objectStore(STORE));
    await new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  }
}

function settled<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}
