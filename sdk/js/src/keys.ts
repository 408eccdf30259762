/**
 * A chain's keys as a client holds them: the write key (an Ed25519 seed; only writers have it)
 * and the read keys (32 random bytes each, one per key epoch; whoever should read gets them).
 *
 * `ChainKeys` serializes to JSON (docs/sdk-format.md, "Chain keys") so that an app can keep it
 * (encrypted, in an account envelope) and share a read-only copy.
 */

import { type Bytes, fromBase64Url, fromHex, randomBytes, toBase64Url, toHex } from "./bytes.js";
import { type WriteKey, chainIdOf, importWriteKey } from "./entry.js";
import { InvalidInputError, ReadOnlyError, UnsupportedVersionError } from "./errors.js";
import { type PayloadKeys, type PayloadPlace, chainKeyOf, rawPayloadKeys } from "./payload.js";

/** Largest key epoch: the payload format carries it as a u32. */
const MAX_EPOCH = 0xffffffff;

/** The JSON form of `ChainKeys` (version 1). */
export interface ChainKeysJson {
  v: 1;
  /** Lowercase hex. */
  chain_id: string;
  /** The 32-byte Ed25519 seed, base64url; absent in a read-only copy. */
  write_key?: string;
  /** Key epoch (decimal string) → 32-byte read key, base64url. */
  read_keys: Record<string, string>;
  /** The epoch new entries are encrypted under. */
  epoch: number;
}

/**
 * What a chain handle needs of its keys, whatever form they take: `ChainKeys` holds raw bytes
 * (and keeps the chain keys it derives from them as non-extractable `CryptoKey`s), a device
 * keyring (device-keys.ts) only non-extractable `CryptoKey`s. Internal.
 */
export interface ChainSecrets extends PayloadKeys {
  /** Lowercase hex chain id. */
  readonly chainId: string;
  /** The epoch new entries are encrypted under. */
  readonly epoch: number;
  readonly writable: boolean;
  /** The write key, ready to sign; throws `ReadOnlyError` without one. */
  signingKey(): Promise<WriteKey>;
  /** The raw read key of `epoch`: undefined when these keys lack it or hold no raw keys (a device keyring). */
  readKey(epoch: number): Bytes | undefined;
}

/** A chain's keys. Immutable: rotation and read-only copies return new objects. */
export class ChainKeys implements ChainSecrets {
  /** Lowercase hex chain id. */
  readonly chainId: string;
  /** The 32-byte Ed25519 seed, or undefined for a read-only copy. */
  readonly writeKey: Bytes | undefined;
  /** The epoch new entries are encrypted under. */
  readonly epoch: number;
  readonly #readKeys: ReadonlyMap<number, Bytes>;
  /** The chain keys derived so far, by epoch: each derived once, then used as it is. */
  readonly #chainKeys = new Map<number, Promise<CryptoKey>>();
  readonly #raw: PayloadKeys;

  private constructor(chainId: string, writeKey: Bytes | undefined, readKeys: ReadonlyMap<number, Bytes>, epoch: number) {
    this.chainId = chainId;
    this.writeKey = writeKey;
    this.#readKeys = readKeys;
    this.epoch = epoch;
    this.#raw = rawPayloadKeys(fromHex(chainId, 32), (keyEpoch) => readKeys.get(keyEpoch));
  }

  /** New keys for a new chain: a random write key and a random read key at epoch 0. */
  static async generate(): Promise<ChainKeys> {
    return ChainKeys.fromWriteKey(randomBytes(32), new Map([[0, randomBytes(32)]]), 0);
  }

  /**
   * Keys from a known write seed and read keys (the chain id is derived from the seed's public
   * key). Checks every key's length and that `epoch` has a key.
   */
  static async fromWriteKey(seed: Uint8Array, readKeys: ReadonlyMap<number, Uint8Array>, epoch: number): Promise<ChainKeys> {
    const { publicKey } = await importWriteKey(seed);
    const chainId = toHex(await chainIdOf(publicKey));
    return ChainKeys.#checked(chainId, Uint8Array.from(seed), readKeys, epoch);
  }

  /**
   * Read-only keys: a chain id and the read keys of the epochs this reader may decrypt.
   * `epoch` defaults to the highest one given.
   */
  static readOnly(chainId: string, readKeys: ReadonlyMap<number, Uint8Array>, epoch?: number): ChainKeys {
    try {
      fromHex(chainId, 32);
    } catch {
      throw new InvalidInputError("a chain id is 64 lowercase hex digits");
    }
    return ChainKeys.#checked(chainId, undefined, readKeys, epoch ?? Math.max(0, ...readKeys.keys()));
  }

  /** Parses the JSON form; refuses unknown versions and malformed keys. */
  static async fromJSON(json: unknown): Promise<ChainKeys> {
    if (typeof json !== "object" || json === null) {
      throw new InvalidInputError("chain keys must be a JSON object");
    }
    const value = json as Partial<Record<keyof ChainKeysJson, unknown>>;
    if (value.v !== 1) {
      throw new UnsupportedVersionError("chain_keys", value.v);
    }
    if (typeof value.read_keys !== "object" || value.read_keys === null || typeof value.epoch !== "number") {
      throw new InvalidInputError("chain keys need read_keys and epoch");
    }
    const readKeys = new Map<number, Bytes>();
    for (const [epochText, key] of Object.entries(value.read_keys as Record<string, unknown>)) {
      const epoch = Number(epochText);
      if (String(epoch) !== epochText || typeof key !== "string") {
        throw new InvalidInputError(`read key epoch ${JSON.stringify(epochText)} is malformed`);
      }
      readKeys.set(epoch, decodeKey(key, "read key"));
    }
    if (value.write_key === undefined) {
      if (typeof value.chain_id !== "string") {
        throw new InvalidInputError("read-only chain keys need chain_id");
      }
      return ChainKeys.readOnly(value.chain_id, readKeys, value.epoch);
    }
    if (typeof value.write_key !== "string") {
      throw new InvalidInputError("write_key must be base64url");
    }
    const keys = await ChainKeys.fromWriteKey(decodeKey(value.write_key, "write key"), readKeys, value.epoch);
    if (value.chain_id !== undefined && value.chain_id !== keys.chainId) {
      throw new InvalidInputError("chain_id does not match the write key");
    }
    return keys;
  }

  /** Whether these keys can append (hold the write key). */
  get writable(): boolean {
    return this.writeKey !== undefined;
  }

  /** The read key of `epoch`, or undefined when these keys lack it. */
  readKey(epoch: number): Bytes | undefined {
    return this.#readKeys.get(epoch);
  }

  async signingKey(): Promise<WriteKey> {
    if (this.writeKey === undefined) {
      throw new ReadOnlyError(this.chainId);
    }
    return importWriteKey(this.writeKey);
  }

  /**
   * The chain key of `epoch` (payload version 2): derived from the read key the first time, then
   * kept, as a non-extractable AES-256-GCM `CryptoKey` (usages encrypt and decrypt).
   */
  async chainKey(epoch: number): Promise<CryptoKey | undefined> {
    const readKey = this.#readKeys.get(epoch);
    if (readKey === undefined) {
      return undefined;
    }
    let key = this.#chainKeys.get(epoch);
    if (key === undefined) {
      key = chainKeyOf(readKey, fromHex(this.chainId, 32), epoch);
      this.#chainKeys.set(epoch, key);
    }
    return key;
  }

  /** The key of a version 1 payload at `place`, derived from the read key for this entry only. */
  async entryKeyV1(place: PayloadPlace, epoch: number): Promise<CryptoKey | undefined> {
    return this.#raw.entryKeyV1(place, epoch);
  }

  /** The epochs these keys hold a read key for, ascending. */
  get epochs(): number[] {
    return [...this.#readKeys.keys()].sort((a, b) => a - b);
  }

  /** A copy without the write key, to share with readers. `epochs` limits which read keys it holds. */
  forReader(epochs?: readonly number[]): ChainKeys {
    const chosen = new Map([...this.#readKeys].filter(([epoch]) => epochs === undefined || epochs.includes(epoch)));
    return ChainKeys.readOnly(this.chainId, chosen);
  }

  /**
   * New keys whose entries from now on are encrypted under a fresh read key at the next epoch:
   * readers given only older keys cannot read what follows. Persist the result and hand the new
   * key to the readers that stay.
   */
  rotateReadKey(): ChainKeys {
    const next = Math.max(...this.#readKeys.keys()) + 1;
    if (next > MAX_EPOCH) {
      throw new InvalidInputError("no key epoch left");
    }
    const readKeys = new Map(this.#readKeys);
    readKeys.set(next, randomBytes(32));
    return new ChainKeys(this.chainId, this.writeKey, readKeys, next);
  }

  /** Keys that also hold `readKeys` (for a reader given a newer epoch's key). */
  withReadKeys(readKeys: ReadonlyMap<number, Uint8Array>): ChainKeys {
    const merged = new Map<number, Uint8Array>(this.#readKeys);
    for (const [epoch, key] of readKeys) {
      merged.set(epoch, key);
    }
    return ChainKeys.#checked(this.chainId, this.writeKey, merged, Math.max(this.epoch, ...readKeys.keys()));
  }

  toJSON(): ChainKeysJson {
    const readKeys: Record<string, string> = {};
    for (const epoch of this.epochs) {
      readKeys[String(epoch)] = toBase64Url(this.#readKeys.get(epoch)!);
    }
    const json: ChainKeysJson = { v: 1, chain_id: this.chainId, read_keys: readKeys, epoch: this.epoch };
    if (this.writeKey !== undefined) {
      json.write_key = toBase64Url(this.writeKey);
    }
    return json;
  }

  static #checked(chainId: string, writeKey: Bytes | undefined, readKeys: ReadonlyMap<number, Uint8Array>, epoch: number): ChainKeys {
    const copies = new Map<number, Bytes>();
    for (const [keyEpoch, key] of readKeys) {
      if (!Number.isInteger(keyEpoch) || keyEpoch < 0 || keyEpoch > MAX_EPOCH) {
        throw new InvalidInputError(`key epoch ${keyEpoch} is not in 0..2^32-1`);
      }
      if (key.length !== 32) {
        throw new InvalidInputError(`the read key of epoch ${keyEpoch} does not have 32 bytes`);
      }
      copies.set(keyEpoch, Uint8Array.from(key));
    }
    // A reader may hold no key at all (it verifies but cannot decrypt); a writer must hold the
    // key of the epoch it encrypts under.
    if (writeKey !== undefined && !copies.has(epoch)) {
      throw new InvalidInputError(`no read key for the current epoch ${epoch}`);
    }
    return new ChainKeys(chainId, writeKey, copies, epoch);
  }
}

function decodeKey(text: string, what: string): Bytes {
  try {
    return fromBase64Url(text, 32);
  } catch {
    throw new InvalidInputError(`the ${what} is not 32 bytes of base64url`);
  }
}
