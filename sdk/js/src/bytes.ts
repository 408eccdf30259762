/**
 * Byte encodings of the wire formats: lowercase hex for hashes and chain ids, base64url without
 * padding for keys, signatures and payloads, big-endian integers, UTF-8 text.
 *
 * Decoders are strict (they refuse what the matching encoder would never produce), because a
 * lenient decoder lets two different strings stand for the same bytes, and the SDK compares
 * hashes and ids as strings.
 */

/**
 * A byte array backed by a plain `ArrayBuffer`: what WebCrypto accepts as `BufferSource`.
 * Every function here returns one.
 */
export type Bytes = Uint8Array<ArrayBuffer>;

/** Largest integer a JavaScript number holds exactly: the bound of every index and length. */
export const MAX_SAFE_INDEX = Number.MAX_SAFE_INTEGER;

/** The bytes of `data` in a buffer WebCrypto accepts, copying only when `data` is a view on a `SharedArrayBuffer`. */
export function bytesOf(data: Uint8Array): Bytes {
  if (data.buffer instanceof ArrayBuffer) {
    return data as Bytes;
  }
  return new Uint8Array(data) as Bytes;
}

const HEX_DIGITS = "0123456789abcdef";

/** Lowercase hex of `data`. */
export function toHex(data: Uint8Array): string {
  let out = "";
  for (const byte of data) {
    out += HEX_DIGITS[byte >> 4]! + HEX_DIGITS[byte & 15]!;
  }
  return out;
}

/**
 * Bytes of a lowercase hex string; `expectedLength` (in bytes) is checked when given.
 * Throws `SyntaxError` on anything else (uppercase included: hashes are compared as strings).
 */
export function fromHex(text: string, expectedLength?: number): Bytes {
  if (text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) {
    throw new SyntaxError("not lowercase hex");
  }
  if (expectedLength !== undefined && text.length !== expectedLength * 2) {
    throw new SyntaxError(`expected ${expectedLength} bytes of hex, got ${text.length / 2}`);
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

const B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64URL_VALUES = new Map<string, number>([...B64URL_ALPHABET].map((c, i) => [c, i]));

/** base64url of `data`, without padding. */
export function toBase64Url(data: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 3 <= data.length; i += 3) {
    const n = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
    out += B64URL_ALPHABET[n >> 18]! + B64URL_ALPHABET[(n >> 12) & 63]! + B64URL_ALPHABET[(n >> 6) & 63]! + B64URL_ALPHABET[n & 63]!;
  }
  const rest = data.length - i;
  if (rest === 1) {
    const n = data[i]! << 16;
    out += B64URL_ALPHABET[n >> 18]! + B64URL_ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (data[i]! << 16) | (data[i + 1]! << 8);
    out += B64URL_ALPHABET[n >> 18]! + B64URL_ALPHABET[(n >> 12) & 63]! + B64URL_ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

/**
 * Bytes of unpadded base64url text. Refuses padding, other alphabets, impossible lengths and
 * non-zero trailing bits, so each byte string has exactly one accepted text.
 * Throws `SyntaxError`.
 */
export function fromBase64Url(text: string, expectedLength?: number): Bytes {
  if (text.length % 4 === 1) {
    throw new SyntaxError("not base64url: impossible length");
  }
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let bitCount = 0;
  let pos = 0;
  for (const c of text) {
    const value = B64URL_VALUES.get(c);
    if (value === undefined) {
      throw new SyntaxError("not base64url (unpadded, - and _)");
    }
    bits = (bits << 6) | value;
    bitCount += 6;
    if (bitCount >= 8) {
      bitCount -= 8;
      out[pos++] = (bits >> bitCount) & 0xff;
    }
    bits &= (1 << bitCount) - 1;
  }
  if (bits !== 0) {
    throw new SyntaxError("not canonical base64url: trailing bits set");
  }
  if (expectedLength !== undefined && out.length !== expectedLength) {
    throw new SyntaxError(`expected ${expectedLength} bytes, got ${out.length}`);
  }
  return out;
}

/** The concatenation of `parts`. */
export function concat(...parts: Uint8Array[]): Bytes {
  let length = 0;
  for (const part of parts) {
    length += part.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Whether `a` and `b` hold the same bytes. Not constant-time: only for public values. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    return false;
  }
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      return false;
    }
  }
  return true;
}

/** One byte. Throws `RangeError` outside 0..255. */
export function u8(value: number): Bytes {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new RangeError(`${value} does not fit in a u8`);
  }
  return Uint8Array.of(value);
}

/** Big-endian u32. Throws `RangeError` outside 0..2^32-1. */
export function u32(value: number): Bytes {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`${value} does not fit in a u32`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/**
 * Big-endian u64 of a JavaScript number. Indexes and lengths are numbers in this SDK, so values
 * above 2^53 - 1 (where numbers stop being exact) are refused with `RangeError` rather than
 * silently rounded into another index.
 */
export function u64(value: number): Bytes {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${value} is not an integer in 0..2^53-1`);
  }
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(value / 0x1_0000_0000));
  view.setUint32(4, value >>> 0);
  return out;
}

/** Reads a big-endian u32 at `offset`. */
export function readU32(data: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 4 > data.length) {
    throw new RangeError("u32 read past the end");
  }
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(offset);
}

/** Reads a big-endian u64 at `offset`; throws `RangeError` above 2^53 - 1. */
export function readU64(data: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 8 > data.length) {
    throw new RangeError("u64 read past the end");
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const value = view.getUint32(offset) * 0x1_0000_0000 + view.getUint32(offset + 4);
  if (!Number.isSafeInteger(value)) {
    throw new RangeError("u64 above 2^53-1");
  }
  return value;
}

const encoder = new TextEncoder();

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Bytes {
  return encoder.encode(text) as Bytes;
}

/** Text of UTF-8 bytes; throws `TypeError` on invalid UTF-8 instead of inserting U+FFFD. */
export function fromUtf8(data: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: true }).decode(data);
}

/** `length` cryptographically random bytes. */
export function randomBytes(length: number): Bytes {
  const out = new Uint8Array(length);
  // getRandomValues fills at most 65,536 bytes per call.
  for (let offset = 0; offset < length; offset += 65536) {
    crypto.getRandomValues(out.subarray(offset, Math.min(length, offset + 65536)));
  }
  return out;
}

/** SHA-256 of `data`. */
export async function sha256(data: Uint8Array): Promise<Bytes> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytesOf(data)));
}
