/**
 * Device-only chain keys: a keyring in IndexedDB whose chain keys are non-extractable
 * `CryptoKey`s — an Ed25519 private key to sign, an HKDF key per read-key epoch to decrypt. The
 * page can use them but not read them, so they never leave the browser: not to the server, not
 * to a script that later runs in the page. The price: they cannot be shared (a share link needs a
 * raw read key), escrowed in an account, or recovered when the browser's storage is cleared.
 */

import { type Bytes, bytesOf, randomBytes, toHex } from "./bytes.js";
import type { Chain } from "./chain.js";
import { DeviceStore } from "./device-store.js";
import { type WriteKey, chainIdOf } from "./entry.js";
import { InvalidInputError, UnsupportedVersionError } from "./errors.js";
import type { ChainSecrets } from "./keys.js";
import type { ReadKeyMaterial } from "./payload.js";

/** How the keyring reaches the client's chains (client.ts). Internal. */
export interface ChainOpener {
  /** Creates the chain of `secrets` on the server (checking the id it answers with). */
  create(secrets: ChainSecrets): Promise<Chain>;
  open(secrets: ChainSecrets): Chain;
}

/** One chain's keys as stored (version 1): structured-cloned, the keys as non-extractable CryptoKeys. */
interface StoredChainKeys {
  v: 1;
  chainId: string;
  signKey: CryptoKey;
  publicKey: Bytes;
  /** Epoch → HKDF key (usage deriveKey). */
  readKeys: Map<number, CryptoKey>;
  epoch: number;
}

/** A chain's keys held as non-extractable CryptoKeys. */
class DeviceChainKeys implements ChainSecrets {
  readonly chainId: string;
  readonly epoch: number;
  readonly writable = true;
  readonly #writeKey: WriteKey;
  readonly #readKeys: ReadonlyMap<number, CryptoKey>;

  constructor(stored: StoredChainKeys) {
    this.chainId = stored.chainId;
    this.epoch = stored.epoch;
    this.#writeKey = { signKey: stored.signKey, publicKey: stored.publicKey };
    this.#readKeys = stored.readKeys;
  }

  async signingKey(): Promise<WriteKey> {
    return this.#writeKey;
  }

  readKeyMaterial(epoch: number): ReadKeyMaterial | undefined {
    return this.#readKeys.get(epoch);
  }
}

/** A named set of device-only chains of one zone (`Blindstore.accounts.deviceKeys(name)`). */
export class DeviceKeyring {
  readonly name: string;
  readonly #opener: ChainOpener;
  readonly #open: () => Promise<DeviceStore>;
  #store: Promise<DeviceStore> | undefined;

  /** Internal: use `accounts.deviceKeys(name)`. */
  constructor(name: string, opener: ChainOpener, open: () => Promise<DeviceStore>) {
    if (name === "" || name.includes("/")) {
      throw new InvalidInputError("a keyring name is non-empty and has no '/'");
    }
    this.name = name;
    this.#opener = opener;
    this.#open = open;
  }

  /**
   * Creates a chain whose keys are made here, non-extractable, and stored in this keyring before
   * the chain is created on the server (so a chain never exists without its keys).
   */
  async createChain(): Promise<Chain> {
    const pair = (await crypto.subtle.generateKey("Ed25519", false, ["sign", "verify"])) as CryptoKeyPair;
    const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    // The read key's bytes exist only until imported, as non-extractable, here.
    // deriveKey only: per-entry keys come out as non-extractable AES keys, never as bytes.
    const readKey = await crypto.subtle.importKey("raw", randomBytes(32), "HKDF", false, ["deriveKey"]);
    const stored: StoredChainKeys = {
      v: 1,
      chainId: toHex(await chainIdOf(publicKey)),
      signKey: pair.privateKey,
      publicKey: bytesOf(publicKey),
      readKeys: new Map([[0, readKey]]),
      epoch: 0,
    };
    await (await this.#db()).put(this.#key(stored.chainId), stored);
    return this.#opener.create(new DeviceChainKeys(stored));
  }

  /** The chain `chainId` of this keyring, or undefined when this device does not hold its keys. */
  async openChain(chainId: string): Promise<Chain | undefined> {
    const stored = await (await this.#db()).get(this.#key(chainId));
    if (stored === undefined) {
      return undefined;
    }
    return this.#opener.open(new DeviceChainKeys(checked(stored)));
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

function checked(value: unknown): StoredChainKeys {
  const stored = value as Partial<StoredChainKeys>;
  if (stored.v !== 1) {
    throw new UnsupportedVersionError("device_chain_keys", stored.v);
  }
  if (
    typeof stored.chainId !== "string" ||
    !(stored.signKey instanceof CryptoKey) ||
    !(stored.publicKey instanceof Uint8Array) ||
    !(stored.readKeys instanceof Map) ||
    typeof stored.epoch !== "number"
  ) {
    throw new InvalidInputError("the stored device keys are malformed");
  }
  return stored as StoredChainKeys;
}
