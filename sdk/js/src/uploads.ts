/**
 * Uploads that survive a reload: the upload's state and the data itself (a `Blob` — browsers
 * store a copy of a `File` or `Blob` in IndexedDB — or bytes) kept in an `UploadStore` until the
 * file is committed, so that after a reload `Blindstore.pendingUploads()` hands the uploads back
 * and `send()` sends only the chunks the server still lacks, without the user picking the file
 * again.
 *
 * The state holds the file key, so it is kept sealed: AES-256-GCM under a device key that the
 * store creates once as a non-extractable `CryptoKey` (its bytes never reach script, not even
 * ours) and keeps beside the records (docs/sdk-format.md, "Upload records").
 */

import { type Bytes, bytesOf, concat, fromUtf8, randomBytes, utf8 } from "./bytes.js";
import { DecryptionError, UnsupportedVersionError } from "./errors.js";
import type { FileData, UploadKeeper, UploadState } from "./files.js";

const AAD_LABEL = utf8("blindstore/upload-record/v1\0");
const IV_BYTES = 12;

/** One upload's state as an `UploadStore` keeps it; its data is kept apart, written once. */
export interface UploadRecord {
  v: 1;
  /** The file id (base64url), also the record's key. */
  id: string;
  zone: string;
  /** 12 bytes. */
  iv: Uint8Array;
  /** AES-256-GCM of the state's JSON under the device key, additional data the label, zone and id. */
  sealedState: Uint8Array;
}

/** Where resumable uploads are kept. `MemoryUploadStore` (tests); `IndexedDbUploadStore` (browsers). */
export interface UploadStore {
  /** Keeps an upload's data, once per upload (it is large; the state changes after every chunk). */
  putData(id: string, data: FileData): Promise<void>;
  putState(record: UploadRecord): Promise<void>;
  /** The zone's uploads, each with its data (uploads whose data is missing are left out). */
  list(zone: string): Promise<Array<UploadRecord & { data: FileData }>>;
  /** Forgets an upload: its state and its data. */
  remove(id: string): Promise<void>;
  /** The non-extractable AES-GCM key that seals the states, created on first use. */
  deviceKey(): Promise<CryptoKey>;
}

/** An `UploadStore` in memory (forgets on reload; for tests). */
export class MemoryUploadStore implements UploadStore {
  readonly #records = new Map<string, UploadRecord>();
  readonly #data = new Map<string, FileData>();
  #key: Promise<CryptoKey> | undefined;

  async putData(id: string, data: FileData): Promise<void> {
    this.#data.set(id, data);
  }

  async putState(record: UploadRecord): Promise<void> {
    this.#records.set(record.id, record);
  }

  async list(zone: string): Promise<Array<UploadRecord & { data: FileData }>> {
    return [...this.#records.values()].flatMap((record) => {
      const data = this.#data.get(record.id);
      return record.zone === zone && data !== undefined ? [{ ...record, data }] : [];
    });
  }

  async remove(id: string): Promise<void> {
    this.#records.delete(id);
    this.#data.delete(id);
  }

  deviceKey(): Promise<CryptoKey> {
    this.#key ??= newDeviceKey();
    return this.#key;
  }
}

/** A non-extractable AES-256-GCM key. */
export function newDeviceKey(): Promise<CryptoKey> {
  return crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]) as Promise<CryptoKey>;
}

/**
 * Keeps one upload's state in `store` as the upload goes (and its data, unless `dataKept`: an
 * upload resumed from the store), and removes both once committed.
 */
export function keeperFor(store: UploadStore, zone: string, data: FileData, dataKept = false): UploadKeeper {
  // Saves run one after another, so an older state never overwrites a newer one.
  let tail: Promise<void> = Promise.resolve();
  const after = (step: () => Promise<void>) => {
    tail = tail.then(step, step);
    return tail;
  };
  return {
    save: (state) =>
      after(async () => {
        const iv = randomBytes(IV_BYTES);
        const sealed = await crypto.subtle.encrypt(
          { name: "AES-GCM", iv, additionalData: aad(zone, state.file_id) },
          await store.deviceKey(),
          utf8(JSON.stringify(state)),
        );
        if (!dataKept) {
          await store.putData(state.file_id, data);
          dataKept = true;
        }
        await store.putState({ v: 1, id: state.file_id, zone, iv, sealedState: new Uint8Array(sealed) });
      }),
    remove: (fileId) => after(() => store.remove(fileId)),
  };
}

/** Opens a stored record: its state and data. */
export async function openRecord(store: UploadStore, record: UploadRecord & { data: FileData }): Promise<{ state: UploadState; data: FileData }> {
  if (record.v !== 1) {
    throw new UnsupportedVersionError("upload_record", record.v);
  }
  let plaintext: Bytes;
  try {
    plaintext = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: bytesOf(record.iv), additionalData: aad(record.zone, record.id) },
        await store.deviceKey(),
        bytesOf(record.sealedState),
      ),
    );
  } catch (error) {
    throw new DecryptionError(`the stored upload ${record.id} does not open under this store's device key`, undefined, { cause: error });
  }
  return { state: JSON.parse(fromUtf8(plaintext)) as UploadState, data: record.data };
}

function aad(zone: string, fileId: string): Bytes {
  return concat(AAD_LABEL, utf8(zone), utf8("\0"), utf8(fileId));
}
