/**
 * The shapes chains read and write (entries, heads, append results, options), and what the
 * outbox needs of a chain handle: shared by `chain.ts`, `follow.ts` and `outbox.ts`, so none of
 * them imports another in a circle.
 */

import type { SessionTokenSource } from "./http.js";
import type { ChainSecrets } from "./keys.js";
import type { EntryContent } from "./payload.js";

/** A verified, decrypted entry. */
export interface Entry {
  index: number;
  /** Lowercase hex, as are all hashes here. */
  entryHash: string;
  prev: string;
  /** The extra chunks the entry references (signed by the writer), in order. */
  chunks: string[];
  /** The read-key epoch the payload was encrypted under. */
  keyEpoch: number;
  content: EntryContent;
  /** The write id (base64url) when the entry was written through the outbox (docs/sdk-format.md). */
  writeId?: string;
}

/** A chain's length and the hash of its last entry (the genesis while it is empty). */
export interface ChainHead {
  length: number;
  head: string;
}

/** The outcome of an append. */
export interface AppendResult {
  index: number;
  entryHash: string;
  /** The chain's length after the append. */
  length: number;
}

export interface ReadOptions {
  signal?: AbortSignal;
  /**
   * Fail with the `NetworkError` rather than answer from the entry cache when the network fails
   * (for callers that must know the server's state, such as the outbox looking for its writes).
   */
  noCache?: boolean;
}

export interface AppendOptions {
  /** Hashes (lowercase hex) of chunks the entry references; each must be stored already. */
  chunks?: readonly string[];
  /** A 16-byte write id to carry inside the encrypted payload (the outbox's de-duplication). */
  writeId?: Uint8Array;
  signal?: AbortSignal;
}

export interface RetryOptions extends AppendOptions {
  /** How many times to run `build` at most (default 5). */
  maxAttempts?: number;
}

/** What the outbox needs of a chain handle (`Chain` is one). */
export interface ChainHandle {
  readonly zone: string;
  readonly chainId: string;
  readonly writable: boolean;
  readonly maxPayloadBytes: number;
  secrets(): ChainSecrets;
  head(options?: ReadOptions): Promise<ChainHead>;
  readRange(from: number, count: number, options?: ReadOptions): Promise<Entry[]>;
  append(content: EntryContent, options?: AppendOptions): Promise<AppendResult>;
  /** The same chain, its requests carrying `sessionToken`. */
  withSessionToken(sessionToken: SessionTokenSource): ChainHandle;
}
