/**
 * Entries answers in the compact binary form the server sends when asked for it
 * (`Accept: application/vnd.blindstore.entries`; docs/entry-format.md, "Binary entries
 * answers"): no base64, hex or field names. A server that answers JSON instead is read as JSON.
 */

import { type Bytes, toHex } from "./bytes.js";
import { VerificationError } from "./errors.js";
import type { ParsedEntry } from "./entry.js";

/** The media type of the binary form. */
export const ENTRIES_BINARY = "application/vnd.blindstore.entries";

/** An entry decoded from the binary form: already in the shape `parseWireEntry` makes. */
export class BinaryEntry {
  constructor(readonly parsed: ParsedEntry) {}
}

/** A decoded page; its entries are `BinaryEntry` values. */
export interface BinaryPage {
  length: number;
  head: string;
  entries: BinaryEntry[];
  next?: number;
}

/** Decodes a binary entries answer. Throws `VerificationError("malformed")` on anything else. */
export function decodeEntriesPage(bytes: Bytes): BinaryPage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n: number): number => {
    if (at + n > bytes.length) {
      throw new VerificationError("malformed", "the binary entries answer is cut short");
    }
    const start = at;
    at += n;
    return start;
  };
  const u64 = (): number => {
    const start = need(8);
    const value = view.getBigUint64(start);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new VerificationError("malformed", "a number in the binary entries answer is above 2^53-1");
    }
    return Number(value);
  };
  const u32 = (): number => view.getUint32(need(4));
  const take = (n: number): Bytes => bytes.slice(need(n), at);
  const hash = (): string => toHex(bytes.subarray(need(32), at));

  if (bytes[0] !== 0x42 || bytes[1] !== 0x53 || bytes[2] !== 0x45 || bytes.length < 4) {
    throw new VerificationError("malformed", "not a binary entries answer");
  }
  at = 3;
  const version = bytes[need(1)];
  if (version !== 1) {
    throw new VerificationError("malformed", `binary entries answer version ${version} is not known`);
  }
  const length = u64();
  const head = hash();
  const hasNext = bytes[need(1)];
  const next = u64();
  const count = u32();
  const entries: BinaryEntry[] = [];
  for (let i = 0; i < count; i++) {
    const index = u64();
    const prev = hash();
    const payloadHash = hash();
    const payload = take(u32());
    const chunkCount = u32();
    const chunks: string[] = [];
    for (let c = 0; c < chunkCount; c++) {
      chunks.push(hash());
    }
    const signature = take(64);
    const entryHash = hash();
    entries.push(new BinaryEntry({ index, prev, payloadHash, payload, chunks, signature, entryHash }));
  }
  if (at !== bytes.length) {
    throw new VerificationError("malformed", "bytes follow the last entry of the binary entries answer");
  }
  return { length, head, entries, ...(hasNext !== 0 ? { next } : {}) };
}
