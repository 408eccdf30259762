/**
 * Checkpoints: a chain folded into the app's state (`chain.fold`), the state kept encrypted on
 * the device together with the index and head hash it covers, so that a reload reads the
 * checkpoint and the entries after it instead of the whole chain.
 *
 * A checkpoint is sealed (AES-256-GCM) under the chain key of an epoch the reader holds, with
 * the zone, chain, fold name and version, index, head hash and epoch as additional data: one
 * that was changed, moved to another chain or position, or written by another fold version does
 * not open, and is not used. When it opens, the chain as served must still hold it: the
 * entries after it link to its head hash, or the chain's head is that hash (else `ForkError`),
 * and the chain is at least that long (else `RollbackError`). docs/sdk-format.md, "Checkpoints".
 */

import { bytesOf, concat, fromHex, fromUtf8, randomBytes, u32, u64, u8, utf8 } from "./bytes.js";
import type { Entry } from "./chain-types.js";
import { DeviceStore } from "./device-store.js";
import { InvalidInputError } from "./errors.js";
import { LazyStore } from "./idb.js";
import type { PayloadKeys } from "./payload.js";

const CHECKPOINT_AAD = utf8("blindstore/checkpoint/v1\0");
const IV_BYTES = 12;

/** A checkpoint as kept by a `CheckpointStore` (sealed; the store never sees the state). */
export interface StoredCheckpoint {
  v: 1;
  /** The fold's version (`FoldOptions.version`). */
  version: number;
  /** How many entries it covers: it is the state after entries 0..index-1. */
  index: number;
  /** Entry hash of entry index-1 (lowercase hex; the chain's genesis for 0). */
  head: string;
  /** The key epoch it is sealed under. */
  epoch: number;
  iv: Uint8Array;
  sealed: Uint8Array;
}

/** Where checkpoints are kept, by key (`zone/chain/name`). */
export interface CheckpointStore {
  get(key: string): Promise<StoredCheckpoint | undefined>;
  put(key: string, checkpoint: StoredCheckpoint): Promise<void>;
  delete(key: string): Promise<void>;
}

/** Checkpoints in memory: for Node and tests; a reload forgets them. */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly #kept = new Map<string, StoredCheckpoint>();

  async get(key: string): Promise<StoredCheckpoint | undefined> {
    const kept = this.#kept.get(key);
    return kept === undefined ? undefined : structuredClone(kept);
  }

  async put(key: string, checkpoint: StoredCheckpoint): Promise<void> {
    this.#kept.set(key, structuredClone(checkpoint));
  }

  async delete(key: string): Promise<void> {
    this.#kept.delete(key);
  }
}

/** Checkpoints in IndexedDB (database `blindstore-checkpoints`): they survive reloads. */
export class IndexedDbCheckpointStore implements CheckpointStore {
  readonly #records: DeviceStore;

  private constructor(records: DeviceStore) {
    this.#records = records;
  }

  static async open(name = "blindstore-checkpoints"): Promise<IndexedDbCheckpointStore> {
    return new IndexedDbCheckpointStore(await DeviceStore.openNamed(name));
  }

  async get(key: string): Promise<StoredCheckpoint | undefined> {
    return (await this.#records.get(key)) as StoredCheckpoint | undefined;
  }

  async put(key: string, checkpoint: StoredCheckpoint): Promise<void> {
    await this.#records.put(key, checkpoint);
  }

  async delete(key: string): Promise<void> {
    await this.#records.delete(key);
  }

  close(): void {
    this.#records.close();
  }
}

/**
 * The checkpoint store a client uses when given none: IndexedDB where there is one (opened on
 * first use), memory elsewhere or where the browser refuses it.
 */
export class DefaultCheckpointStore implements CheckpointStore {
  readonly #store = new LazyStore<CheckpointStore>(() => IndexedDbCheckpointStore.open(), () => new MemoryCheckpointStore());

  async get(key: string): Promise<StoredCheckpoint | undefined> {
    return (await this.#store.opened()).get(key);
  }

  async put(key: string, checkpoint: StoredCheckpoint): Promise<void> {
    await (await this.#store.opened()).put(key, checkpoint);
  }

  async delete(key: string): Promise<void> {
    await (await this.#store.opened()).delete(key);
  }

  /** Closes the IndexedDB connection, if one was opened; a later use opens it again. */
  close(): void {
    this.#store.close();
  }
}

/** How `chain.fold` folds a chain into state. */
export interface FoldOptions<S> {
  /** Which fold of the chain this is (an app may keep several): names its checkpoint. */
  name: string;
  /**
   * The fold's version (default 1): raise it when `apply` or the state's form changes, so that
   * checkpoints of the old fold are not used (the chain is folded again from the start).
   */
  version?: number;
  /** The state before the first entry. */
  initial: () => S;
  /** The state after `entry`, given the state before it (may change `state` and return it). */
  apply: (state: S, entry: Entry) => S;
  /** The state as JSON, for the checkpoint (default: the state itself, which must then be JSON). */
  toJSON?: (state: S) => unknown;
  /** The state back from that JSON (default: the JSON itself). */
  fromJSON?: (json: unknown) => S;
  /** Keep a checkpoint once this many entries were folded since the last one (default 500). */
  every?: number;
  /** Where checkpoints are kept (default: the client's `checkpointStore`). */
  store?: CheckpointStore;
  signal?: AbortSignal;
}

/** The place and keys a checkpoint is sealed for. */
export interface CheckpointPlace {
  zone: string;
  chainId: string;
  name: string;
  version: number;
}

/** The key under which a fold's checkpoint is kept. */
export function checkpointKey(place: CheckpointPlace): string {
  return `${place.zone}/${place.chainId}/${place.name}`;
}

/** Checks a fold's name, version and interval. */
export function checkedFoldOptions<S>(options: FoldOptions<S>): { version: number; every: number } {
  const version = options.version ?? 1;
  const every = options.every ?? 500;
  if (typeof options.name !== "string" || options.name.length === 0 || utf8(options.name).length > 255) {
    throw new InvalidInputError("a fold's name is 1 to 255 bytes");
  }
  if (!Number.isInteger(version) || version < 0 || version > 0xffff_ffff) {
    throw new InvalidInputError("a fold's version is an integer in 0..2^32-1");
  }
  if (!Number.isInteger(every) || every < 1) {
    throw new InvalidInputError("every must be a positive integer");
  }
  return { version, every };
}

function additionalData(place: CheckpointPlace, index: number, head: string, epoch: number): Uint8Array {
  const zone = utf8(place.zone);
  const name = utf8(place.name);
  return concat(CHECKPOINT_AAD, u8(zone.length), zone, fromHex(place.chainId, 32), u8(name.length), name, u32(place.version), u64(index), fromHex(head, 32), u32(epoch));
}

/** Seals `json` as the checkpoint of `place` after `index` entries ending in `head`. */
export async function sealCheckpoint(keys: PayloadKeys, epoch: number, place: CheckpointPlace, index: number, head: string, json: unknown): Promise<StoredCheckpoint> {
  const key = await keys.chainKey(epoch);
  if (key === undefined) {
    throw new InvalidInputError(`no key for epoch ${epoch} to seal a checkpoint with`);
  }
  const iv = randomBytes(IV_BYTES);
  const text = JSON.stringify(json);
  if (text === undefined) {
    throw new InvalidInputError("the fold's state has no JSON form: give toJSON");
  }
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: bytesOf(iv), additionalData: bytesOf(additionalData(place, index, head, epoch)) }, key, bytesOf(utf8(text))));
  return { v: 1, version: place.version, index, head, epoch, iv, sealed };
}

/**
 * The JSON a stored checkpoint holds, when it is a checkpoint of `place` that opens under
 * `keys`; undefined otherwise (another version, a key this reader lacks, changed bytes).
 */
export async function openCheckpoint(keys: PayloadKeys, place: CheckpointPlace, stored: StoredCheckpoint | undefined): Promise<{ json: unknown; index: number; head: string } | undefined> {
  if (stored?.v !== 1 || stored.version !== place.version || !Number.isSafeInteger(stored.index) || stored.index < 1 || !Number.isInteger(stored.epoch)) {
    return undefined;
  }
  try {
    const key = await keys.chainKey(stored.epoch);
    if (key === undefined) {
      return undefined;
    }
    const plaintext = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytesOf(stored.iv), additionalData: bytesOf(additionalData(place, stored.index, stored.head, stored.epoch)) },
      key,
      bytesOf(stored.sealed),
    );
    return { json: JSON.parse(fromUtf8(new Uint8Array(plaintext))), index: stored.index, head: stored.head };
  } catch {
    return undefined;
  }
}
