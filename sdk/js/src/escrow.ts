/**
 * The cryptography of accounts (docs/sdk-format.md, "Accounts and key escrow"): the account id
 * sent in place of the username, the account master key and the keys derived from it, and the
 * sealing of envelopes — the vault, and the master key wrapped under the password's export key
 * or a passkey's PRF output. Knows nothing of HTTP.
 *
 * Every envelope is bound by its additional data to the zone, the account and its own name, so
 * a server that serves one account's envelope for another, or one envelope under another's name,
 * is caught by the AEAD; that and any other failure to open is an `EscrowError`, never an empty
 * vault.
 */

import { type Bytes, bytesOf, concat, fromUtf8, randomBytes, sha256, toBase64Url, toHex, u8, utf8 } from "./bytes.js";
import { EscrowError, InvalidInputError, UnsupportedVersionError } from "./errors.js";

/** The version byte of every account envelope. */
export const ENVELOPE_VERSION = 1;
/** The envelope holding the vault. */
export const VAULT_ENVELOPE = "vault";
/** The envelope holding the master key wrapped under the password. */
export const PASSWORD_ENVELOPE = "key-password";
/** The PRF input every passkey is evaluated with (`SHA-256("blindstore/passkey-prf/v1")`). */
export const PASSKEY_PRF_LABEL = "blindstore/passkey-prf/v1";

const IV_BYTES = 12;
const TAG_BYTES = 16;
const MASTER_KEY_BYTES = 32;

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
 * The master key as a non-extractable HKDF key: what a session keeps (and what is remembered on
 * the device), so that vault keys can be derived from it but the key itself cannot be read out.
 */
export async function importMasterKey(masterKey: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", bytesOf(masterKey), "HKDF", false, ["deriveKey"]);
}

/** The vault's AES-GCM key, derived from the master key for this zone and account. */
export async function vaultKey(master: CryptoKey, zone: string, account: string): Promise<CryptoKey> {
  return deriveAesKey(master, "blindstore/vault-key/v1\0", zone, account);
}

/** The key that wraps the master key in `key-password`, derived from the OPAQUE export key. */
export async function passwordWrapKey(exportKey: Uint8Array, zone: string, account: string): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", bytesOf(exportKey), "HKDF", false, ["deriveKey"]);
  return deriveAesKey(ikm, "blindstore/key-password/v1\0", zone, account);
}

/** The key that wraps the master key in a passkey's envelope, derived from its PRF output. */
export async function passkeyWrapKey(prfOutput: Uint8Array, zone: string, account: string): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", bytesOf(prfOutput), "HKDF", false, ["deriveKey"]);
  return deriveAesKey(ikm, "blindstore/key-passkey/v1\0", zone, account);
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

/** Seals `plaintext` as the envelope at `place`: u8(1) || iv || AES-GCM(key, iv, ad, plaintext). */
export async function sealEnvelope(key: CryptoKey, place: EnvelopePlace, plaintext: Uint8Array): Promise<Bytes> {
  const iv = randomBytes(IV_BYTES);
  const ciphertext = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: envelopeAd(place) }, key, bytesOf(plaintext));
  return concat(u8(ENVELOPE_VERSION), iv, new Uint8Array(ciphertext));
}

/** Opens the envelope at `place`; anything but an authentic envelope of this place is an `EscrowError`. */
export async function openEnvelope(key: CryptoKey, place: EnvelopePlace, sealed: Uint8Array): Promise<Bytes> {
  if (sealed.length === 0) {
    throw new EscrowError(place.name, "the envelope is empty");
  }
  if (sealed[0] !== ENVELOPE_VERSION) {
    throw new UnsupportedVersionError("account_envelope", sealed[0]);
  }
  if (sealed.length < 1 + IV_BYTES + TAG_BYTES) {
    throw new EscrowError(place.name, "the envelope is too short");
  }
  try {
    const plaintext = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytesOf(sealed.slice(1, 1 + IV_BYTES)), additionalData: envelopeAd(place) },
      key,
      bytesOf(sealed.subarray(1 + IV_BYTES)),
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

/** "blindstore/envelope/v1\0" || u8(len zone) || zone || u8(len account) || account || u8(len name) || name. */
function envelopeAd(place: EnvelopePlace): Bytes {
  return concat(utf8("blindstore/envelope/v1\0"), lengthPrefixed(place.zone), lengthPrefixed(place.account), lengthPrefixed(place.name));
}

async function deriveAesKey(ikm: CryptoKey, label: string, zone: string, account: string): Promise<CryptoKey> {
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: concat(utf8(label), lengthPrefixed(zone), lengthPrefixed(account)) },
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
