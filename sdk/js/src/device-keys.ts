/**
 * Device-only chain keys: a keyring in IndexedDB whose chain keys are non-extractable
 * `CryptoKey`s — an Ed25519 private key that can only sign, and per key epoch an AES-256-GCM
 * chain key that can only encrypt and decrypt (payload version 2, docs/sdk-format.md). No key
 * kept here can be exported or derive another key, so one script running in the page once
 * cannot take anything with it that decrypts later entries. The price: such chains cannot be
 * shared (a reader needs a raw read key), escrowed in an account, or recovered when the
 * browser's storage is cleared.
 *
 * Keyrings written by older SDKs (record version 1) held HKDF *base* keys, from which any script
 * in the page could derive extractable keys. Opening such a chain migrates its record: see
 * `DeviceKeyring.openChain`.
 */

import { type Bytes, bytesOf, fromHex, toHex } from "./bytes.js";
import type { Chain } from "./chain.js";
import { DeviceStore } from "./device-store.js";
import { type WriteKey, chainIdOf } from "./entry.js";
import { InvalidInputError, ReadOnlyError, UnsupportedVersionError } from "./errors.js";
import type { ChainSecrets } from "./keys.js";
import { withLock } from "./outbox.js";
import { type EntryPosition, type PayloadPlace, entryKeyV1FromBase } from "./payload.js";

/** Largest key epoch: the payload format carries it as a u32. */
const MAX_EPOCH = 0xffffffff;

/** How the keyring reaches the client's chains (client.ts). Internal. */
export interface ChainOpener {
  /** Creates the chain of `secrets` on the server (checking the id it answers with). */
  create(secrets: ChainSecrets, signal?: AbortSignal): Promise<Chain>;
  open(secrets: ChainSecrets): Chain;
}

/** One chain's keys as stored (version 2): structured-cloned, every key a non-extractable CryptoKey. */
interface StoredChainKeys {
  v: 2;
  chainId: string;
  /** Ed25519 private key, usage sign. */
  signKey: CryptoKey;
  publicKey: Bytes;
  /** Epoch → chain key (AES-256-GCM, usages encrypt and decrypt). */
  chainKeys: Map<number, CryptoKey>;
  /** The epoch new entries are encrypted under. */
  epoch: number;
  /**
   * Left by the migration of a version 1 record: the keys of the version 1 payloads written
   * before it (AES-256-GCM, usage decrypt), by entry index, all under key epoch `epoch`.
   */
  v1Entries?: { epoch: number; keys: CryptoKey[] };
}

/** One chain's keys as SDKs before payload version 2 stored them (version 1). Only read, to migrate. */
interface StoredChainKeysV1 {
  v: 1;
  chainId: string;
  signKey: CryptoKey;
  publicKey: Bytes;
  /** Epoch → HKDF base key (usage deriveKey, or deriveBits in the oldest keyrings). */
  readKeys: Map<number, CryptoKey>;
  epoch: number;
}

/** A chain's keys held as non-extractable CryptoKeys. */
class DeviceChainKeys implements ChainSecrets {
  readonly chainId: string;
  readonly epoch: number;
  readonly writable = true;
  readonly #writeKey: WriteKey;
  readonly #chainKeys: ReadonlyMap<number, CryptoKey>;
  readonly #v1Entries: { epoch: number; keys: CryptoKey[] } | undefined;

  constructor(stored: StoredChainKeys) {
    this.chainId = stored.chainId;
    this.epoch = stored.epoch;
    this.#writeKey = { signKey: stored.signKey, publicKey: stored.publicKey };
    this.#chainKeys = stored.chainKeys;
    this.#v1Entries = stored.v1Entries;
  }

  async signingKey(): Promise<WriteKey> {
    return this.#writeKey;
  }

  async chainKey(epoch: number): Promise<CryptoKey | undefined> {
    return this.#chainKeys.get(epoch);
  }

  async entryKeyV1(place: PayloadPlace, epoch: number): Promise<CryptoKey | undefined> {
    return this.#v1Entries?.epoch === epoch ? this.#v1Entries.keys[place.index] : undefined;
  }

  readKey(): undefined {
    return undefined;
  }
}

/**
 * A version 1 record's keys, read-only: what the migration reads the chain with. Each use
 * derives from the base key; nothing derived is kept here.
 */
class LegacyDeviceChainKeys implements ChainSecrets {
  readonly chainId: string;
  readonly epoch: number;
  readonly writable = false;
  readonly #readKeys: ReadonlyMap<number, CryptoKey>;

  constructor(stored: StoredChainKeysV1) {
    this.chainId = stored.chainId;
    this.epoch = stored.epoch;
    this.#readKeys = stored.readKeys;
  }

  async signingKey(): Promise<WriteKey> {
    throw new ReadOnlyError(this.chainId);
  }

  /** Older SDKs wrote version 1 payloads only. */
  async chainKey(): Promise<undefined> {
    return undefined;
  }

  async entryKeyV1(place: EntryPosition, epoch: number): Promise<CryptoKey | undefined> {
    const base = this.#readKeys.get(epoch);
    return base === undefined ? undefined : entryKeyV1FromBase(base, place);
  }

  readKey(): undefined {
    return undefined;
  }
}

/** A named set of device-only chains of one zone (`Blindstore.accounts.deviceKeys(name)`). */
export class DeviceKeyring {
  readonly name: string;
  readonly #zone: string;
  readonly #opener: ChainOpener;
  readonly #open: () => Promise<DeviceStore>;
  #store: Promise<DeviceStore> | undefined;

  /** Internal: use `accounts.deviceKeys(name)`. */
  constructor(name: string, zone: string, opener: ChainOpener, open: () => Promise<DeviceStore>) {
    if (name === "" || name.includes("/")) {
      throw new InvalidInputError("a keyring name is non-empty and has no '/'");
    }
    this.name = name;
    this.#zone = zone;
    this.#opener = opener;
    this.#open = open;
  }

  /**
   * Creates a chain whose keys are made here, non-extractable, and stored in this keyring before
   * the chain is created on the server (so a chain never exists without its keys). Its chain key
   * is generated as an AES key: there is no read key at all.
   */
  async createChain(options: { signal?: AbortSignal } = {}): Promise<Chain> {
    const pair = (await crypto.subtle.generateKey("Ed25519", false, ["sign", "verify"])) as CryptoKeyPair;
    const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    const stored: StoredChainKeys = {
      v: 2,
      chainId: toHex(await chainIdOf(publicKey)),
      signKey: pair.privateKey,
      publicKey: bytesOf(publicKey),
      chainKeys: new Map([[0, await newChainKey()]]),
      epoch: 0,
    };
    await (await this.#db()).put(this.#key(stored.chainId), stored);
    return this.#opener.create(new DeviceChainKeys(stored), options.signal);
  }

  /**
   * The chain `chainId` of this keyring, or undefined when this device does not hold its keys.
   *
   * A record of an older SDK (version 1: HKDF base keys) is migrated first, which needs the
   * server: the chain's last entry is read (verified) to learn its length; each version 1
   * payload written so far gets its own decrypt-only key, derived from the old base key; new
   * entries go under a fresh chain key, generated here, at the next epoch; and the record that
   * replaces the old one keeps no base key. Offline, this throws the `NetworkError` and keeps the
   * old record until a later call. Tabs take turns (a Web Lock), so a chain is migrated once.
   */
  async openChain(chainId: string, options: { signal?: AbortSignal } = {}): Promise<Chain | undefined> {
    const stored = await (await this.#db()).get(this.#key(chainId));
    if (stored === undefined) {
      return undefined;
    }
    const current = isV1(stored) ? await this.#migrate(chainId, options.signal) : checked(stored);
    return current === undefined ? undefined : this.#opener.open(new DeviceChainKeys(current));
  }

  /** The ids of this keyring's chains. */
  async list(): Promise<string[]> {
    const prefix = this.#key("");
    return (await (await this.#db()).keys(prefix)).map((key) => key.slice(prefix.length));
  }

  /** Forgets a chain's keys on this device: nobody can write it or read it any more. */
  async forget(chainId: string): Promise<void> {
    await (await this.#db()).delete(this.#key(chainId));
  }

  /** Replaces the version 1 record of `chainId` by a version 2 one (see `openChain`). */
  async #migrate(chainId: string, signal: AbortSignal | undefined): Promise<StoredChainKeys | undefined> {
    return withLock(`blindstore-device-keys:${this.#zone}:${this.#key(chainId)}/migration`, async () => {
      const db = await this.#db();
      // Another tab may have migrated it (or forgotten it) while this one waited.
      const stored = await db.get(this.#key(chainId));
      if (stored === undefined || !isV1(stored)) {
        return stored === undefined ? undefined : checked(stored);
      }
      const old = checkedV1(stored);
      const reader = this.#opener.open(new LegacyDeviceChainKeys(old));
      const [last] = await reader.readLast(1, { noCache: true, signal });
      const length = last === undefined ? 0 : last.index + 1;
      const base = old.readKeys.get(old.epoch);
      const keys: CryptoKey[] = [];
      if (base !== undefined) {
        const chainIdBytes = fromHex(chainId, 32);
        for (let index = 0; index < length; index++) {
          keys.push(await entryKeyV1FromBase(base, { zone: reader.zone, chainId: chainIdBytes, index }));
        }
      }
      const epoch = Math.max(old.epoch, ...old.readKeys.keys()) + 1;
      if (epoch > MAX_EPOCH) {
        throw new InvalidInputError("no key epoch left to migrate this keyring to");
      }
      const migrated: StoredChainKeys = {
        v: 2,
        chainId,
        signKey: old.signKey,
        publicKey: old.publicKey,
        chainKeys: new Map([[epoch, await newChainKey()]]),
        epoch,
        v1Entries: { epoch: old.epoch, keys },
      };
      await db.put(this.#key(chainId), migrated);
      return migrated;
    });
  }

  #key(chainId: string): string {
    return `${this.name}/${chainId}`;
  }

  #db(): Promise<DeviceStore> {
    this.#store ??= this.#open();
    // A failed open (no IndexedDB) must not stick.
    this.#store.catch(() => {
      this.#store = undefined;
    });
    return this.#store;
  }
}

/** A new chain key: AES-256-GCM, non-extractable, encrypt and decrypt only. */
function newChainKey(): Promise<CryptoKey> {
  return crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]) as Promise<CryptoKey>;
}

function isV1(value: unknown): boolean {
  return (value as { v?: unknown } | undefined)?.v === 1;
}

function checked(value: unknown): StoredChainKeys {
  const stored = value as Partial<StoredChainKeys>;
  if (stored.v !== 2) {
    throw new UnsupportedVersionError("device_chain_keys", stored.v);
  }
  if (
    typeof stored.chainId !== "string" ||
    !(stored.signKey instanceof CryptoKey) ||
    !(stored.publicKey instanceof Uint8Array) ||
    !(stored.chainKeys instanceof Map) ||
    typeof stored.epoch !== "number" ||
    (stored.v1Entries !== undefined && !Array.isArray(stored.v1Entries.keys))
  ) {
    throw new InvalidInputError("the stored device keys are malformed");
  }
  return stored as StoredChainKeys;
}

function checkedV1(value: unknown): StoredChainKeysV1 {
  const stored = value as Partial<StoredChainKeysV1>;
  if (
    typeof stored.chainId !== "string" ||
    !(stored.signKey instanceof CryptoKey) ||
    !(stored.publicKey instanceof Uint8Array) ||
    !(stored.readKeys instanceof Map) ||
    typeof stored.epoch !== "number"
  ) {
    throw new InvalidInputError("the stored device keys (version 1) are malformed");
  }
  return stored as StoredChainKeysV1;
}
