/**
 * The cryptography of accounts (docs/sdk-format.md, "Accounts and key escrow"): the account id
 * sent in place of the username, the account master key and the keys derived from it, and the
 * sealing of envelopes — the vault, and the master key wrapped under the password's export key
 * or a passkey's PRF output. Knows nothing of HTTP.
 *
 * The vault is sealed under a **vault key** that the master key derives for a key epoch, which
 * the vault envelope names (version 2); a password change seals the vault again at the next
 * epoch, so a vault key kept on a device (the remembered session keeps only that, never the
 * master key) opens no vault sealed after the change.
 *
 * Every envelope is bound by its additional data to the zone, the account and its own name, so
 * a server that serves one account's envelope for another, or one envelope under another's name,
 * is caught by the AEAD; that and any other failure to open is an `EscrowError`, never an empty
 * vault.
 */

import { type Bytes, bytesOf, concat, fromUtf8, randomBytes, readU32, sha256, toBase64Url, toHex, u32, u8, utf8 } from "./bytes.js";
import { EscrowError, InvalidInputError, UnsupportedVersionError } from "./errors.js";

/** The version byte of the key envelopes (`key-password`, `passkey-…`): no key epoch. */
export const ENVELOPE_VERSION = 1;
/** The version byte of the vault envelope this SDK writes: it names the vault key's epoch. */
export const EPOCH_ENVELOPE_VERSION = 2;
/** The envelope holding the vault. */
export const VAULT_ENVELOPE = "vault";
/** The envelope holding the master key wrapped under the password. */
export const PASSWORD_ENVELOPE = "key-password";
/** The PRF input every passkey is evaluated with (`SHA-256("blindstore/passkey-prf/v1")`). */
export const PASSKEY_PRF_LABEL = "blindstore/passkey-prf/v1";

// AES-GCM sizes, declared where they are used as outbox.ts does, on purpose: the two formats
// (docs/sdk-format.md) are versioned apart.
const IV_BYTES = 12;
const TAG_BYTES = 16;
const MASTER_KEY_BYTES = 32;
/** Largest vault key epoch: a u32. */
const MAX_VAULT_EPOCH = 0xffffffff;

/**
 * Which vault key seals a vault envelope: version 1 (older SDKs; one key for the life of the
 * account, `epoch` 0) or version 2 at `epoch`.
 */
export interface VaultKeyId {
  version: 1 | 2;
  epoch: number;
}

/** Where an envelope belongs: its key's derivation and its additional data both name it. */
export interface EnvelopePlace {
  zone: string;
  /** The account id as sent to the server. */
  account: string;
  /** The envelope name. */
  name: string;
}

/** A username as the SDK uses it: trimmed and NFC-normalized; case is kept (`Alice` ≠ `alice`). */
export function normalizeUsername(username: string): string {
  const normalized = username.trim().normalize("NFC");
  if (normalized === "") {
    throw new InvalidInputError("a username must not be empty");
  }
  return normalized;
}

/**
 * The account id the server sees for `username` in `zone`:
 * base64url(SHA-256("blindstore/account-id/v1\0" || u8(len zone) || zone || username)).
 */
export async function accountIdOf(zone: string, username: string): Promise<string> {
  return toBase64Url(await sha256(concat(utf8("blindstore/account-id/v1\0"), lengthPrefixed(zone), utf8(normalizeUsername(username)))));
}

/** A new random account master key. */
export function newMasterKey(): Bytes {
  return randomBytes(MASTER_KEY_BYTES);
}

/**
 * The vault key `id` of this zone and account, derived from the master key's bytes straight into
 * a non-extractable AES-256-GCM `CryptoKey` (usages encrypt, decrypt): what a session keeps.
 */
export async function vaultKey(masterKey: Uint8Array, zone: string, account: string, id: VaultKeyId): Promise<CryptoKey> {
  // The master key as an HKDF key only for this derivation: never kept.
  return vaultKeyFromBase(await crypto.subtle.importKey("raw", bytesOf(masterKey), "HKDF", false, ["deriveKey"]), zone, account, id);
}

/**
 * The vault key `id` from the master key held as an HKDF `CryptoKey` (usage deriveKey): how an
 * older SDK's remembered session is migrated to the vault key alone.
 */
export async function vaultKeyFromBase(master: CryptoKey, zone: string, account: string, id: VaultKeyId): Promise<CryptoKey> {
  const info =
    id.version === 1
      ? concat(utf8("blindstore/vault-key/v1\0"), lengthPrefixed(zone), lengthPrefixed(account))
      : concat(utf8("blindstore/vault-key/v2\0"), lengthPrefixed(zone), lengthPrefixed(account), u32(id.epoch));
  return deriveAesKey(master, info);
}

/** The vault key that follows `id` (a password change seals the vault again under it). */
export function nextVaultKeyId(id: VaultKeyId): VaultKeyId {
  if (id.version === 1) {
    return { version: 2, epoch: 0 };
  }
  if (id.epoch >= MAX_VAULT_EPOCH) {
    throw new InvalidInputError("no vault key epoch left");
  }
  return { version: 2, epoch: id.epoch + 1 };
}

/** Whether `a` is the same vault key as `b`. */
export function sameVaultKey(a: VaultKeyId, b: VaultKeyId): boolean {
  return a.version === b.version && (a.version === 1 || a.epoch === b.epoch);
}

/** Whether `a` is older than `b` (version 1 before every epoch of version 2). */
export function olderVaultKey(a: VaultKeyId, b: VaultKeyId): boolean {
  const rank = (id: VaultKeyId) => (id.version === 1 ? -1 : id.epoch);
  return rank(a) < rank(b);
}

/** The vault key a sealed vault envelope names (its version, and for version 2 its epoch). */
export function vaultKeyIdOf(sealed: Uint8Array): VaultKeyId {
  checkHeader(VAULT_ENVELOPE, sealed);
  return sealed[0] === ENVELOPE_VERSION ? { version: 1, epoch: 0 } : { version: 2, epoch: readU32(sealed, 1) };
}

/** The key that wraps the master key in `key-password`, derived from the OPAQUE export key. */
export async function passwordWrapKey(exportKey: Uint8Array, zone: string, account: string): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", bytesOf(exportKey), "HKDF", false, ["deriveKey"]);
  return deriveAesKey(ikm, concat(utf8("blindstore/key-password/v1\0"), lengthPrefixed(zone), lengthPrefixed(account)));
}

/** The key that wraps the master key in a passkey's envelope, derived from its PRF output. */
export async function passkeyWrapKey(prfOutput: Uint8Array, zone: string, account: string): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", bytesOf(prfOutput), "HKDF", false, ["deriveKey"]);
  return deriveAesKey(ikm, concat(utf8("blindstore/key-passkey/v1\0"), lengthPrefixed(zone), lengthPrefixed(account)));
}

/** The PRF input passkeys are evaluated with. */
export async function passkeyPrfSalt(): Promise<Bytes> {
  return sha256(utf8(PASSKEY_PRF_LABEL));
}

/**
 * The envelope of the passkey whose credential id (base64url, the server's `passkey_id`) is
 * `credentialId`: "passkey-" and the first 16 bytes of the SHA-256 of the raw id, in hex. Derived
 * rather than numbered, so that a passkey login finds its envelope without a lookup.
 */
export async function passkeyEnvelopeName(rawCredentialId: Uint8Array): Promise<string> {
  return `passkey-${toHex((await sha256(rawCredentialId)).subarray(0, 16))}`;
}

/**
 * Seals `plaintext` as the envelope at `place`: without `epoch`, version 1,
 * u8(1) || iv || AES-GCM(key, iv, ad, plaintext); with it (the vault), version 2,
 * u8(2) || u32(epoch) || iv || AES-GCM(key, iv, ad_v2, plaintext).
 */
export async function sealEnvelope(key: CryptoKey, place: EnvelopePlace, plaintext: Uint8Array, epoch?: number): Promise<Bytes> {
  const iv = randomBytes(IV_BYTES);
  const header = epoch === undefined ? u8(ENVELOPE_VERSION) : concat(u8(EPOCH_ENVELOPE_VERSION), u32(epoch));
  const ciphertext = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: envelopeAd(place, epoch) }, key, bytesOf(plaintext));
  return concat(header, iv, new Uint8Array(ciphertext));
}

/** Seals the vault's plaintext under vault key `id` (the version its envelope takes). */
export async function sealVault(key: CryptoKey, id: VaultKeyId, place: EnvelopePlace, plaintext: Uint8Array): Promise<Bytes> {
  return sealEnvelope(key, place, plaintext, id.version === 1 ? undefined : id.epoch);
}

/** Opens the envelope at `place` (version 1 or 2); anything but an authentic envelope of this place is an `EscrowError`. */
export async function openEnvelope(key: CryptoKey, place: EnvelopePlace, sealed: Uint8Array): Promise<Bytes> {
  const headerBytes = checkHeader(place.name, sealed);
  const epoch = sealed[0] === ENVELOPE_VERSION ? undefined : readU32(sealed, 1);
  try {
    const plaintext = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytesOf(sealed.slice(headerBytes, headerBytes + IV_BYTES)), additionalData: envelopeAd(place, epoch) },
      key,
      bytesOf(sealed.subarray(headerBytes + IV_BYTES)),
    );
    return new Uint8Array(plaintext);
  } catch (error) {
    throw new EscrowError(place.name, "it does not authenticate for this zone, account and name (wrong key, or swapped or altered by the server)", {
      cause: error,
    });
  }
}

/** Opens a wrapped master key and checks its length. */
export async function unwrapMasterKey(key: CryptoKey, place: EnvelopePlace, sealed: Uint8Array): Promise<Bytes> {
  const masterKey = await openEnvelope(key, place, sealed);
  if (masterKey.length !== MASTER_KEY_BYTES) {
    throw new EscrowError(place.name, `a master key has ${MASTER_KEY_BYTES} bytes, this one ${masterKey.length}`);
  }
  return masterKey;
}

/** The vault's plaintext: the JSON text of an object mapping names to values. */
export function encodeVault(entries: ReadonlyMap<string, unknown>): Bytes {
  return utf8(JSON.stringify(Object.fromEntries(entries)));
}

/** Parses a vault's plaintext; anything but a JSON object is an `EscrowError`. */
export function decodeVault(plaintext: Uint8Array): Map<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8(plaintext));
  } catch (error) {
    throw new EscrowError(VAULT_ENVELOPE, "the vault is not UTF-8 JSON", { cause: error });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new EscrowError(VAULT_ENVELOPE, "the vault is not a JSON object");
  }
  return new Map(Object.entries(value));
}

/**
 * Version 1: "blindstore/envelope/v1\0" || u8(len zone) || zone || u8(len account) || account
 * || u8(len name) || name; version 2 (`epoch` given): "blindstore/envelope/v2\0" || the same
 * || u32(epoch).
 */
function envelopeAd(place: EnvelopePlace, epoch: number | undefined): Bytes {
  const framed = concat(lengthPrefixed(place.zone), lengthPrefixed(place.account), lengthPrefixed(place.name));
  return epoch === undefined ? concat(utf8("blindstore/envelope/v1\0"), framed) : concat(utf8("blindstore/envelope/v2\0"), framed, u32(epoch));
}

/** Checks an envelope's version and length; returns the length of its header (before the IV). */
function checkHeader(name: string, sealed: Uint8Array): number {
  if (sealed.length === 0) {
    throw new EscrowError(name, "the envelope is empty");
  }
  if (sealed[0] !== ENVELOPE_VERSION && sealed[0] !== EPOCH_ENVELOPE_VERSION) {
    throw new UnsupportedVersionError("account_envelope", sealed[0]);
  }
  const headerBytes = sealed[0] === ENVELOPE_VERSION ? 1 : 1 + 4;
  if (sealed.length < headerBytes + IV_BYTES + TAG_BYTES) {
    throw new EscrowError(name, "the envelope is too short");
  }
  return headerBytes;
}

/** HKDF-SHA-256 (salt empty) into a non-extractable AES-256-GCM key, usages encrypt and decrypt. */
async function deriveAesKey(ikm: CryptoKey, info: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: bytesOf(info) },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/** u8(byte length) || UTF-8 text; every text so framed is at most 255 bytes here. */
function lengthPrefixed(text: string): Bytes {
  const bytes = utf8(text);
  if (bytes.length > 255) {
    throw new InvalidInputError(`${JSON.stringify(text.slice(0, 16))}… is longer than 255 bytes`);
  }
  return concat(u8(bytes.length), bytes);
}
