/**
 * Payload encryption (docs/sdk-format.md, "Entry payloads"): what the SDK puts in an entry's
 * payload. The server stores it as opaque bytes.
 *
 * Version 2, which this SDK writes: one AES-256-GCM key per chain and key epoch (the **chain
 * key**), derived once from the read key and then used as it is, so that what a client keeps is
 * the key that encrypts, never a key that other keys can be derived from.
 *
 * ```
 * chain_key = HKDF-SHA256(ikm = read_key[key_epoch], salt = chain_id,
 *                         info = "blindstore/chain-key/v2\0" || chain_id || u32(key_epoch))
 * aad       = "blindstore/payload/v2\0" || u8(len zone) || zone || chain_id || u64(index) || prev || u32(key_epoch)
 * payload   = u8(2) || u32(key_epoch) || iv (12 random bytes) || AES-256-GCM(chain_key, iv, aad, plaintext) (with its 16-byte tag)
 * plaintext = u8(kind: 1 bytes, 2 JSON as UTF-8) || body
 *           | u8(3) || write_id (16 bytes) || u8(kind: 1 or 2) || body     (a write from the outbox)
 * ```
 *
 * Version 1, still read: a key per entry, HKDF over the read key with the entry's index in the
 * info. Reading it needs the raw read key (or, for a migrated device keyring, the per-entry keys
 * kept for it).
 *
 * The additional data binds the ciphertext to its zone, chain, index, predecessor and epoch: a
 * payload moved to another place does not decrypt.
 */

import { type Bytes, bytesOf, concat, fromUtf8, randomBytes, readU32, u32, u64, u8, utf8 } from "./bytes.js";
import { DecryptionError, InvalidInputError, MissingKeyError, UnsupportedVersionError } from "./errors.js";

/** The version byte that starts every payload this SDK writes. */
export const PAYLOAD_VERSION = 2;

const V1 = 1;
const V1_KEY_INFO_LABEL = utf8("blindstore/payload-key/v1\0");
const V1_AAD_LABEL = utf8("blindstore/payload/v1\0");
const CHAIN_KEY_INFO_LABEL = utf8("blindstore/chain-key/v2\0");
const AAD_LABEL = utf8("blindstore/payload/v2\0");
const KIND_BYTES = 1;
const KIND_JSON = 2;
/** A write id, then one of the kinds above: lets the outbox find out whether a write landed. */
const KIND_WRITE = 3;
/** Bytes of a write id. */
export const WRITE_ID_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + 4 + IV_BYTES;

/** Bytes a payload adds to its body: version, epoch, IV, tag and kind. */
export const PAYLOAD_OVERHEAD = HEADER_BYTES + TAG_BYTES + 1;
/** Bytes a write id adds to a payload: its kind byte and the id. */
export const WRITE_ID_OVERHEAD = 1 + WRITE_ID_BYTES;

/** What an entry holds once decrypted. */
export type EntryContent = { kind: "json"; value: unknown } | { kind: "bytes"; bytes: Uint8Array };

/** Where a payload belongs: the additional data (and a version 1 key) depend on it. */
export interface PayloadPlace {
  zone: string;
  /** 32 bytes. */
  chainId: Uint8Array;
  index: number;
  /** The entry's `prev` (32 bytes). */
  prev: Uint8Array;
}

/** What a version 1 payload's key depends on: its place, less `prev`. */
export type EntryPosition = Pick<PayloadPlace, "zone" | "chainId" | "index">;

/**
 * The keys that decrypt a chain's payloads, whatever form the client holds them in: raw read
 * keys (`ChainKeys`, `rawPayloadKeys`) or kept `CryptoKey`s (a device keyring).
 */
export interface PayloadKeys {
  /**
   * The chain key of `epoch` (version 2): a non-extractable AES-256-GCM key, usages encrypt and
   * decrypt; undefined when these keys lack the epoch.
   */
  chainKey(epoch: number): Promise<CryptoKey | undefined>;
  /** The key of the version 1 payload at `place` under `epoch`; undefined when these keys cannot give it. */
  entryKeyV1(place: PayloadPlace, epoch: number): Promise<CryptoKey | undefined>;
}

/**
 * `PayloadKeys` over the raw read keys of chain `chainId`: `readKey(epoch)` gives the 32 bytes of
 * an epoch, or undefined. Every call derives afresh (`ChainKeys` keeps what it derives).
 */
export function rawPayloadKeys(chainId: Uint8Array, readKey: (epoch: number) => Uint8Array | undefined): PayloadKeys {
  return {
    chainKey: async (epoch) => {
      const key = readKey(epoch);
      return key === undefined ? undefined : chainKeyOf(key, chainId, epoch);
    },
    entryKeyV1: async (place, epoch) => {
      const key = readKey(epoch);
      return key === undefined ? undefined : deriveEntryKeyV1(await importReadKey(key, ["deriveKey"]), place);
    },
  };
}

/**
 * The chain key of `epoch` from a raw read key, derived straight into a non-extractable
 * AES-256-GCM `CryptoKey` (usages encrypt, decrypt): its bytes never reach script.
 */
export async function chainKeyOf(readKey: Uint8Array, chainId: Uint8Array, epoch: number): Promise<CryptoKey> {
  return crypto.subtle.deriveKey(chainKeyParams(chainId, epoch), await importReadKey(readKey, ["deriveKey"]), AES_GCM, false, ["encrypt", "decrypt"]);
}

/** The chain key's bytes, from a raw read key: for test vectors only. */
export async function chainKeyBytes(readKey: Uint8Array, chainId: Uint8Array, epoch: number): Promise<Bytes> {
  const bits = await crypto.subtle.deriveBits(chainKeyParams(chainId, epoch), await importReadKey(readKey, ["deriveBits"]), 256);
  return new Uint8Array(bits);
}

/**
 * Encrypts `content` for the entry at `place` under `key`, the chain key of `epoch` (or the raw
 * read key of `epoch`, from which it is derived), with a random IV; with `writeId` (16 bytes),
 * the plaintext carries it (kind 3). Writes version 2.
 */
export async function encryptPayload(
  place: PayloadPlace,
  epoch: number,
  key: Uint8Array | CryptoKey,
  content: EntryContent,
  writeId?: Uint8Array,
): Promise<Bytes> {
  return sealPayload(place, epoch, key, content, randomBytes(IV_BYTES), writeId);
}

/**
 * `encryptPayload` with a given IV. Only for test vectors: an IV must never repeat under one key,
 * and only a random IV guarantees that (a chain key encrypts every entry of its epoch, and one
 * index can be written more than once, after a conflict).
 */
export async function sealPayload(
  place: PayloadPlace,
  epoch: number,
  key: Uint8Array | CryptoKey,
  content: EntryContent,
  iv: Uint8Array,
  writeId?: Uint8Array,
): Promise<Bytes> {
  const chainKey = key instanceof CryptoKey ? key : await chainKeyOf(key, place.chainId, epoch);
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: checkedIv(iv), additionalData: additionalData(place, epoch) },
    chainKey,
    plaintextOf(content, writeId),
  );
  return concat(u8(PAYLOAD_VERSION), u32(epoch), iv, new Uint8Array(ciphertext));
}

/**
 * A version 1 payload (per-entry key), as older SDKs wrote it. Only for test vectors and tests
 * of the reader: this SDK writes version 2.
 */
export async function sealPayloadV1(
  place: PayloadPlace,
  epoch: number,
  readKey: Uint8Array,
  content: EntryContent,
  iv: Uint8Array,
  writeId?: Uint8Array,
): Promise<Bytes> {
  const key = await deriveEntryKeyV1(await importReadKey(readKey, ["deriveKey"]), place, ["encrypt"]);
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: checkedIv(iv), additionalData: additionalDataV1(place, epoch) },
    key,
    plaintextOf(content, writeId),
  );
  return concat(u8(V1), u32(epoch), iv, new Uint8Array(ciphertext));
}

/** The per-entry key's bytes of a version 1 payload, from a raw read key: for test vectors only. */
export async function entryKeyV1Bytes(place: EntryPosition, readKey: Uint8Array): Promise<Bytes> {
  const bits = await crypto.subtle.deriveBits(entryKeyV1Params(place), await importReadKey(readKey, ["deriveBits"]), 256);
  return new Uint8Array(bits);
}

/**
 * The key of the version 1 payload at `place`, from a base key of an older SDK's kind (an HKDF
 * key with usage deriveKey or deriveBits): what a device keyring migration keeps of it, as a
 * non-extractable AES-256-GCM key that can only decrypt.
 */
export async function entryKeyV1FromBase(base: CryptoKey, place: EntryPosition): Promise<CryptoKey> {
  if (base.usages.includes("deriveKey")) {
    return crypto.subtle.deriveKey(entryKeyV1Params(place), base, AES_GCM, false, ["decrypt"]);
  }
  // The oldest keyrings allowed deriveBits only: the bytes pass through here once, on their way
  // into the non-extractable key that is kept.
  const bits = await crypto.subtle.deriveBits(entryKeyV1Params(place), base, 256);
  return crypto.subtle.importKey("raw", bits, AES_GCM, false, ["decrypt"]);
}

/** The key epoch a payload names, without decrypting it. */
export function payloadEpoch(payload: Uint8Array, index?: number): number {
  checkHeader(payload, index);
  return readU32(payload, 1);
}

/**
 * Decrypts the payload of the entry at `place`, version 2 or 1. `keys` are the chain's keys, or a
 * function giving the raw read key of an epoch (or undefined). Throws `UnsupportedVersionError`
 * (unknown version or kind), `MissingKeyError` (no key for the payload's epoch) or
 * `DecryptionError` (does not authenticate, malformed body).
 */
export async function decryptPayload(
  place: PayloadPlace,
  keys: PayloadKeys | ((epoch: number) => Uint8Array | undefined),
  payload: Uint8Array,
): Promise<{ epoch: number; content: EntryContent; writeId?: Bytes }> {
  const source = typeof keys === "function" ? rawPayloadKeys(place.chainId, keys) : keys;
  const epoch = payloadEpoch(payload, place.index);
  const v1 = payload[0] === V1;
  const key = v1 ? await source.entryKeyV1(place, epoch) : await source.chainKey(epoch);
  if (key === undefined) {
    throw new MissingKeyError(epoch, place.index);
  }
  let plaintext: Uint8Array;
  try {
    plaintext = new Uint8Array(
      await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: bytesOf(payload.slice(5, HEADER_BYTES)),
          additionalData: v1 ? additionalDataV1(place, epoch) : additionalData(place, epoch),
        },
        key,
        bytesOf(payload.subarray(HEADER_BYTES)),
      ),
    );
  } catch (error) {
    throw new DecryptionError("the payload does not authenticate under its key and place", place.index, { cause: error });
  }
  if (plaintext[0] === KIND_WRITE) {
    if (plaintext.length < 1 + WRITE_ID_BYTES + 1 || plaintext[1 + WRITE_ID_BYTES] === KIND_WRITE) {
      throw new DecryptionError("a write-id plaintext is too short or nested", place.index);
    }
    const writeId = plaintext.slice(1, 1 + WRITE_ID_BYTES);
    return { epoch, content: decodeContent(plaintext.subarray(1 + WRITE_ID_BYTES), place.index), writeId };
  }
  return { epoch, content: decodeContent(plaintext, place.index) };
}

/** The additional data that binds a version 2 payload to its place and epoch. */
export function additionalData(place: PayloadPlace, epoch: number): Bytes {
  const zone = utf8(place.zone);
  return concat(AAD_LABEL, u8(zone.length), zone, place.chainId, u64(place.index), place.prev, u32(epoch));
}

/** The additional data of a version 1 payload. */
export function additionalDataV1(place: PayloadPlace, epoch: number): Bytes {
  const zone = utf8(place.zone);
  return concat(V1_AAD_LABEL, u8(zone.length), zone, place.chainId, u64(place.index), place.prev, u32(epoch));
}

export function encodeContent(content: EntryContent): Bytes {
  if (content.kind === "bytes") {
    return concat(u8(KIND_BYTES), content.bytes);
  }
  const text = JSON.stringify(content.value);
  if (text === undefined) {
    throw new InvalidInputError("the value has no JSON form");
  }
  return concat(u8(KIND_JSON), utf8(text));
}

export function decodeContent(plaintext: Uint8Array, index?: number): EntryContent {
  if (plaintext.length === 0) {
    throw new DecryptionError("the plaintext has no kind byte", index);
  }
  const body = plaintext.slice(1);
  switch (plaintext[0]) {
    case KIND_BYTES:
      return { kind: "bytes", bytes: body };
    case KIND_JSON:
      try {
        return { kind: "json", value: JSON.parse(fromUtf8(body)) };
      } catch (error) {
        throw new DecryptionError("the plaintext is not UTF-8 JSON", index, { cause: error });
      }
    default:
      throw new UnsupportedVersionError("payload kind", plaintext[0]);
  }
}

const AES_GCM = { name: "AES-GCM", length: 256 } as const;

function checkHeader(payload: Uint8Array, index: number | undefined): void {
  if (payload.length === 0) {
    throw new DecryptionError("the payload is empty", index);
  }
  if (payload[0] !== PAYLOAD_VERSION && payload[0] !== V1) {
    throw new UnsupportedVersionError("payload", payload[0]);
  }
  if (payload.length < HEADER_BYTES + TAG_BYTES) {
    throw new DecryptionError("the payload is too short", index);
  }
}

function checkedIv(iv: Uint8Array): Bytes {
  if (iv.length !== IV_BYTES) {
    throw new InvalidInputError("the IV has 12 bytes");
  }
  return bytesOf(iv);
}

function plaintextOf(content: EntryContent, writeId: Uint8Array | undefined): Bytes {
  if (writeId === undefined) {
    return encodeContent(content);
  }
  if (writeId.length !== WRITE_ID_BYTES) {
    throw new InvalidInputError(`a write id has ${WRITE_ID_BYTES} bytes`);
  }
  return concat(u8(KIND_WRITE), writeId, encodeContent(content));
}

async function importReadKey(readKey: Uint8Array, usages: KeyUsage[]): Promise<CryptoKey> {
  if (readKey.length !== 32) {
    throw new InvalidInputError("a read key has 32 bytes");
  }
  // Only for the derivation at hand: never kept.
  return crypto.subtle.importKey("raw", bytesOf(readKey), "HKDF", false, usages);
}

/** A version 1 entry key: decrypt only, but for `sealPayloadV1` (test vectors). */
async function deriveEntryKeyV1(base: CryptoKey, place: EntryPosition, usages: KeyUsage[] = ["decrypt"]): Promise<CryptoKey> {
  return crypto.subtle.deriveKey(entryKeyV1Params(place), base, AES_GCM, false, usages);
}

/**
 * HKDF-SHA-256 over the read key, salted with the chain id, bound to the chain and the epoch. The
 * zone is bound by every payload's additional data instead, so that keys that serve a chain need
 * not know its zone.
 */
function chainKeyParams(chainId: Uint8Array, epoch: number): HkdfParams {
  return { name: "HKDF", hash: "SHA-256", salt: bytesOf(chainId), info: concat(CHAIN_KEY_INFO_LABEL, chainId, u32(epoch)) };
}

/** Version 1: HKDF-SHA-256 over the read key, salted with the chain id, bound to zone, chain and index. */
function entryKeyV1Params(place: EntryPosition): HkdfParams {
  const zone = utf8(place.zone);
  return {
    name: "HKDF",
    hash: "SHA-256",
    salt: bytesOf(place.chainId),
    info: concat(V1_KEY_INFO_LABEL, u8(zone.length), zone, place.chainId, u64(place.index)),
  };
}
