/**
 * Payload encryption, version 1 (docs/sdk-format.md, "Entry payloads"): what the SDK puts in an
 * entry's payload. The server stores it as opaque bytes.
 *
 * ```
 * key       = HKDF-SHA256(ikm = read_key[key_epoch], salt = chain_id,
 *                         info = "blindstore/payload-key/v1\0" || u8(len zone) || zone || chain_id || u64(index))
 * aad       = "blindstore/payload/v1\0" || u8(len zone) || zone || chain_id || u64(index) || prev || u32(key_epoch)
 * payload   = u8(1) || u32(key_epoch) || iv (12 random bytes) || AES-256-GCM(key, iv, aad, plaintext) (with its 16-byte tag)
 * plaintext = u8(kind: 1 bytes, 2 JSON as UTF-8) || body
 *           | u8(3) || write_id (16 bytes) || u8(kind: 1 or 2) || body     (a write from the outbox)
 * ```
 *
 * The key is per entry, and the additional data binds the ciphertext to its zone, chain, index,
 * predecessor and epoch: a payload moved to another place does not decrypt.
 */

import { type Bytes, bytesOf, concat, fromUtf8, randomBytes, readU32, u32, u64, u8, utf8 } from "./bytes.js";
import { DecryptionError, InvalidInputError, MissingKeyError, UnsupportedVersionError } from "./errors.js";

/** The version byte that starts every payload this SDK writes. */
export const PAYLOAD_VERSION = 1;

const KEY_INFO_LABEL = utf8("blindstore/payload-key/v1\0");
const AAD_LABEL = utf8("blindstore/payload/v1\0");
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

/** Where a payload belongs: both the key and the additional data depend on it. */
export interface PayloadPlace {
  zone: string;
  /** 32 bytes. */
  chainId: Uint8Array;
  index: number;
  /** The entry's `prev` (32 bytes). */
  prev: Uint8Array;
}

/**
 * A read key as raw bytes, or as a non-extractable HKDF `CryptoKey` (usage `deriveBits`) for keys
 * that must not leave the device (device-keys.ts).
 */
export type ReadKeyMaterial = Uint8Array | CryptoKey;

/**
 * Encrypts `content` for the entry at `place` under the read key of `epoch`, with a random IV;
 * with `writeId` (16 bytes), the plaintext carries it (kind 3).
 */
export async function encryptPayload(
  place: PayloadPlace,
  epoch: number,
  readKey: ReadKeyMaterial,
  content: EntryContent,
  writeId?: Uint8Array,
): Promise<Bytes> {
  return sealPayload(place, epoch, readKey, content, randomBytes(IV_BYTES), writeId);
}

/**
 * `encryptPayload` with a given IV. Only for test vectors: an IV must never repeat under one key,
 * and since an index can be written more than once (a retry after a conflict) only a random IV
 * guarantees that.
 */
export async function sealPayload(
  place: PayloadPlace,
  epoch: number,
  readKey: ReadKeyMaterial,
  content: EntryContent,
  iv: Uint8Array,
  writeId?: Uint8Array,
): Promise<Bytes> {
  if (iv.length !== IV_BYTES) {
    throw new InvalidInputError("the IV has 12 bytes");
  }
  if (writeId !== undefined && writeId.length !== WRITE_ID_BYTES) {
    throw new InvalidInputError(`a write id has ${WRITE_ID_BYTES} bytes`);
  }
  const plaintext = writeId === undefined ? encodeContent(content) : concat(u8(KIND_WRITE), writeId, encodeContent(content));
  const key = await payloadKey(place, readKey);
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: bytesOf(iv), additionalData: additionalData(place, epoch) },
    key,
    plaintext,
  );
  return concat(u8(PAYLOAD_VERSION), u32(epoch), iv, new Uint8Array(ciphertext));
}

/** The key epoch a payload names, without decrypting it. */
export function payloadEpoch(payload: Uint8Array, index?: number): number {
  checkHeader(payload, index);
  return readU32(payload, 1);
}

/**
 * Decrypts the payload of the entry at `place`. `readKey(epoch)` gives the read key of an epoch,
 * or undefined. Throws `UnsupportedVersionError` (unknown version or kind), `MissingKeyError`
 * (no key for the payload's epoch) or `DecryptionError` (does not authenticate, malformed body).
 */
export async function decryptPayload(
  place: PayloadPlace,
  readKey: (epoch: number) => ReadKeyMaterial | undefined,
  payload: Uint8Array,
): Promise<{ epoch: number; content: EntryContent; writeId?: Bytes }> {
  const epoch = payloadEpoch(payload, place.index);
  const secret = readKey(epoch);
  if (secret === undefined) {
    throw new MissingKeyError(epoch, place.index);
  }
  const key = await payloadKey(place, secret);
  let plaintext: Uint8Array;
  try {
    plaintext = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: bytesOf(payload.slice(5, HEADER_BYTES)), additionalData: additionalData(place, epoch) },
        key,
        bytesOf(payload.subarray(HEADER_BYTES)),
      ),
    );
  } catch (error) {
    throw new DecryptionError("the payload does not authenticate under its read key and place", place.index, { cause: error });
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

function checkHeader(payload: Uint8Array, index: number | undefined): void {
  if (payload.length === 0) {
    throw new DecryptionError("the payload is empty", index);
  }
  if (payload[0] !== PAYLOAD_VERSION) {
    throw new UnsupportedVersionError("payload", payload[0]);
  }
  if (payload.length < HEADER_BYTES + TAG_BYTES) {
    throw new DecryptionError("the payload is too short", index);
  }
}

/**
 * The per-entry AES-256 key, derived straight into a non-extractable `CryptoKey`: a device read
 * key (usage `deriveKey` only) never lets script see a per-entry key's bytes.
 */
async function payloadKey(place: PayloadPlace, readKey: ReadKeyMaterial): Promise<CryptoKey> {
  const ikm = readKey instanceof CryptoKey ? readKey : await importReadKey(readKey, ["deriveKey"]);
  return crypto.subtle.deriveKey(payloadKeyParams(place), ikm, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/** The per-entry AES-256 key's bytes, from a raw read key: for test vectors only. */
export async function payloadKeyBytes(place: PayloadPlace, readKey: Uint8Array): Promise<Bytes> {
  const bits = await crypto.subtle.deriveBits(payloadKeyParams(place), await importReadKey(readKey, ["deriveBits"]), 256);
  return new Uint8Array(bits);
}

async function importReadKey(readKey: Uint8Array, usages: KeyUsage[]): Promise<CryptoKey> {
  if (readKey.length !== 32) {
    throw new InvalidInputError("a read key has 32 bytes");
  }
  return crypto.subtle.importKey("raw", bytesOf(readKey), "HKDF", false, usages);
}

/** HKDF-SHA-256 over the read key, salted with the chain id, bound to zone, chain and index. */
function payloadKeyParams(place: PayloadPlace): HkdfParams {
  const zone = utf8(place.zone);
  return {
    name: "HKDF",
    hash: "SHA-256",
    salt: bytesOf(place.chainId),
    info: concat(KEY_INFO_LABEL, u8(zone.length), zone, place.chainId, u64(place.index)),
  };
}

/** The additional data that binds a payload to its place and epoch. */
export function additionalData(place: PayloadPlace, epoch: number): Bytes {
  const zone = utf8(place.zone);
  return concat(AAD_LABEL, u8(zone.length), zone, place.chainId, u64(place.index), place.prev, u32(epoch));
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
