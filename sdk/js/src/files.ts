/**
 * Files (docs/sdk-format.md, "Files"): data too large for an entry's payload, stored as encrypted
 * chunks and committed by one entry whose encrypted payload is the file's manifest.
 *
 * Each file gets a random 256-bit key and a random 128-bit id; chunk `i` of `n` is encrypted with
 * AES-256-GCM under a key and nonce derived by HKDF from the file key, binding the file id, `i`
 * and `n`: a chunk moved to another position, another file, or a file cut short does not
 * decrypt. The encryption is deterministic per (file key, id, i, n), so that a resumed upload
 * produces the very chunks (and hashes) it started with; a chunk key is never used for two
 * different plaintexts (a resumed upload whose data changed stops with `FileChangedError`).
 *
 * Uploads resume: `FileUpload.state` is a small JSON-safe object (id, key, hashes, which chunks
 * are stored) that an app can persist; `FileUpload.resume` continues from it, asking the server
 * which chunks it lacks and sending only those.
 */

import {
  type Bytes,
  bytesOf,
  concat,
  fromBase64Url,
  fromHex,
  randomBytes,
  sha256,
  toBase64Url,
  toHex,
  u64,
  utf8,
} from "./bytes.js";
import type { AppendResult, Chain, Entry } from "./chain.js";
import {
  AbortedError,
  DecryptionError,
  FileChangedError,
  InvalidInputError,
  UnsupportedVersionError,
  VerificationError,
} from "./errors.js";
import type { ZoneApi } from "./http.js";
import { PAYLOAD_OVERHEAD } from "./payload.js";

/** Plaintext bytes per chunk unless told otherwise. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** The largest chunk plaintext: the server's default chunk limit (4 MiB) less the GCM tag (16 bytes). */
export const MAX_CHUNK_SIZE = 4 * 1024 * 1024 - 16;
/** A file has at most as many chunks as one entry may reference. */
export const MAX_FILE_CHUNKS = 1024;

/** The `kind` that marks a JSON entry payload as a file manifest. */
export const FILE_MANIFEST_KIND = "blindstore/file";

const CHUNK_INFO_LABEL = utf8("blindstore/file-chunk/v1\0");
const FILE_ID_BYTES = 16;
/** Chunks sent at once by default. */
const DEFAULT_CONCURRENCY = 3;
/** Hashes per `chunks/missing` request: the server's limit. */
const MISSING_BATCH = 10_000;

/** The data of a file: a `Blob` (a `File` from an input, say) or bytes. */
export type FileData = Blob | Uint8Array;

/** Called with the bytes (plaintext) done so far and the total. */
export type ProgressCallback = (done: number, total: number) => void;

/** A file manifest: the JSON payload of the entry that commits a file. */
export interface FileManifest {
  kind: typeof FILE_MANIFEST_KIND;
  v: 1;
  /** 16 bytes, base64url. */
  file_id: string;
  name: string;
  media_type: string;
  size: number;
  chunk_size: number;
  /** The 32-byte file key, base64url. Whoever can read the entry can read the file. */
  key: string;
  /** SHA-256 (lowercase hex) of each encrypted chunk, in order. */
  chunks: string[];
}

/**
 * What an app persists to resume an upload after a reload. Holds the file key: keep it as
 * carefully as the chain's keys.
 */
export interface UploadState {
  v: 1;
  file_id: string;
  file_key: string;
  name: string;
  media_type: string;
  size: number;
  chunk_size: number;
  /** Hashes of all encrypted chunks, in order. */
  chunks: string[];
  /** The chunks known stored (by this upload or already present). The server has the last word. */
  uploaded: string[];
}

export interface PrepareOptions {
  /** Default: the `File`'s name, else "". */
  name?: string;
  /** Default: the `Blob`'s type, else "application/octet-stream". */
  mediaType?: string;
  /** Plaintext bytes per chunk, 1..`MAX_CHUNK_SIZE`; default 1 MiB. */
  chunkSize?: number;
  /** Progress of the hashing pass (every chunk is encrypted once to learn its hash). */
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

export interface SendOptions {
  /** Progress of the upload, counting chunks already stored as done. */
  onProgress?: ProgressCallback;
  /** Called with a fresh state after each stored chunk: persist it to resume later. */
  onState?: (state: UploadState) => void;
  /** Chunks in flight at once (default 3). */
  concurrency?: number;
  signal?: AbortSignal;
}

/** Where an upload keeps its state as it goes, to resume after a reload (uploads.ts). */
export interface UploadKeeper {
  save(state: UploadState): Promise<void>;
  /** Forgets the upload: it is committed. */
  remove(fileId: string): Promise<void>;
}

export interface DownloadOptions {
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

/** An upload in progress: prepare (or resume), send, commit. */
export class FileUpload {
  readonly #api: ZoneApi;
  readonly #data: FileData;
  readonly #fileId: Bytes;
  readonly #fileKey: Bytes;
  readonly #state: UploadState;
  readonly #keeper: UploadKeeper | undefined;

  private constructor(api: ZoneApi, data: FileData, state: UploadState, keeper?: UploadKeeper) {
    this.#api = api;
    this.#data = data;
    this.#state = state;
    this.#keeper = keeper;
    this.#fileId = fromBase64Url(state.file_id, FILE_ID_BYTES);
    this.#fileKey = fromBase64Url(state.file_key, 32);
  }

  /**
   * Starts an upload of `data`: a new file id and key, and every chunk encrypted once to learn its
   * hash (nothing is sent yet). `maxPayloadBytes` is the zone's entry payload limit, which the
   * manifest must fit in.
   */
  static async prepare(
    api: ZoneApi,
    data: FileData,
    maxPayloadBytes: number,
    options: PrepareOptions = {},
    keeper?: UploadKeeper,
  ): Promise<FileUpload> {
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
      throw new InvalidInputError(`chunkSize must be an integer in 1..${MAX_CHUNK_SIZE}`);
    }
    const size = sizeOf(data);
    const count = Math.ceil(size / chunkSize);
    if (count > MAX_FILE_CHUNKS) {
      throw new InvalidInputError(`${count} chunks of ${chunkSize} bytes: at most ${MAX_FILE_CHUNKS} chunks per file (use larger chunks)`);
    }
    const state: UploadState = {
      v: 1,
      file_id: toBase64Url(randomBytes(FILE_ID_BYTES)),
      file_key: toBase64Url(randomBytes(32)),
      name: options.name ?? (typeof File !== "undefined" && data instanceof File ? data.name : ""),
      media_type: options.mediaType ?? (data instanceof Blob && data.type !== "" ? data.type : "application/octet-stream"),
      size,
      chunk_size: chunkSize,
      // Placeholders of the real hashes' length, to check the manifest's size before any work.
      chunks: new Array<string>(count).fill("0".repeat(64)),
      uploaded: [],
    };
    const upload = new FileUpload(api, data, state, keeper);
    const manifestBytes = utf8(JSON.stringify(upload.manifest())).length + PAYLOAD_OVERHEAD;
    if (manifestBytes > maxPayloadBytes) {
      throw new InvalidInputError(`the file's manifest would take ${manifestBytes} bytes, more than an entry's ${maxPayloadBytes}: use larger chunks or a shorter name`);
    }
    let done = 0;
    for (let index = 0; index < count; index++) {
      throwIfAborted(options.signal);
      const plaintext = await upload.#readChunk(index);
      state.chunks[index] = toHex(await sha256(await upload.#encryptChunk(index, plaintext)));
      done += plaintext.length;
      options.onProgress?.(done, size);
    }
    await keeper?.save(upload.state);
    return upload;
  }

  /**
   * Continues an upload from a persisted `state` with the same `data`. Throws `FileChangedError`
   * when the size differs; a changed chunk is caught when it is re-encrypted for sending.
   */
  static resume(api: ZoneApi, state: UploadState, data: FileData, keeper?: UploadKeeper): FileUpload {
    const checked = checkUploadState(state);
    if (sizeOf(data) !== checked.size) {
      throw new FileChangedError(`the data has ${sizeOf(data)} bytes, the upload ${checked.size}`);
    }
    return new FileUpload(api, data, checked, keeper);
  }

  /** A copy of the state to persist (JSON-safe). */
  get state(): UploadState {
    return structuredClone(this.#state);
  }

  /** Whether every chunk is known stored. */
  get complete(): boolean {
    const uploaded = new Set(this.#state.uploaded);
    return this.#state.chunks.every((hash) => uploaded.has(hash));
  }

  /**
   * Sends the chunks the server lacks (asking it first), a few at a time. Safe to call again
   * after a failure or abort: only what is still missing goes.
   */
  async send(options: SendOptions = {}): Promise<void> {
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new InvalidInputError("concurrency must be a positive integer");
    }
    const state = this.#state;
    const missing = new Set<string>();
    for (let start = 0; start < state.chunks.length; start += MISSING_BATCH) {
      for (const hash of await this.#api.missingChunks(state.chunks.slice(start, start + MISSING_BATCH), options.signal)) {
        missing.add(hash);
      }
    }
    state.uploaded = state.chunks.filter((hash) => !missing.has(hash));
    const pending = state.chunks.flatMap((hash, index) => (missing.has(hash) ? [index] : []));
    let done = state.size - pending.reduce((sum, index) => sum + this.#chunkLength(index), 0);
    options.onProgress?.(done, state.size);
    options.onState?.(this.state);

    const worker = async (): Promise<void> => {
      for (let index = pending.shift(); index !== undefined; index = pending.shift()) {
        throwIfAborted(options.signal);
        const plaintext = await this.#readChunk(index);
        const ciphertext = await this.#encryptChunk(index, plaintext);
        const hash = toHex(await sha256(ciphertext));
        if (hash !== state.chunks[index]) {
          throw new FileChangedError(`chunk ${index} differs from the one this upload was prepared with`, index);
        }
        await this.#api.putChunk(hash, ciphertext, options.signal);
        state.uploaded.push(hash);
        done += plaintext.length;
        options.onProgress?.(done, state.size);
        options.onState?.(this.state);
        await this.#keeper?.save(this.state);
      }
    };
    const workers = Array.from({ length: Math.min(concurrency, pending.length) }, worker);
    // Wait for every worker before failing, so no chunk is still in flight when this returns.
    const outcomes = await Promise.allSettled(workers);
    const failure = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
    if (failure !== undefined) {
      throw failure.reason;
    }
  }

  /** The manifest that commits this file. */
  manifest(): FileManifest {
    const state = this.#state;
    return {
      kind: FILE_MANIFEST_KIND,
      v: 1,
      file_id: state.file_id,
      name: state.name,
      media_type: state.media_type,
      size: state.size,
      chunk_size: state.chunk_size,
      key: state.file_key,
      chunks: [...state.chunks],
    };
  }

  /**
   * Appends the manifest to `chain` as one entry that references every chunk (which keeps them
   * from garbage collection). The server refuses it (400 `missing_chunk`) unless every chunk is
   * stored: `send` first.
   */
  async commit(chain: Chain, options: { signal?: AbortSignal } = {}): Promise<AppendResult & { manifest: FileManifest }> {
    const manifest = this.manifest();
    const result = await chain.append({ kind: "json", value: manifest }, { chunks: manifest.chunks, signal: options.signal });
    await this.#keeper?.remove(manifest.file_id);
    return { ...result, manifest };
  }

  #chunkLength(index: number): number {
    const { size, chunk_size: chunkSize } = this.#state;
    return Math.min(chunkSize, size - index * chunkSize);
  }

  async #readChunk(index: number): Promise<Bytes> {
    const start = index * this.#state.chunk_size;
    const end = start + this.#chunkLength(index);
    const data = this.#data;
    if (data instanceof Uint8Array) {
      return bytesOf(data.subarray(start, end));
    }
    return new Uint8Array(await data.slice(start, end).arrayBuffer());
  }

  async #encryptChunk(index: number, plaintext: Uint8Array): Promise<Bytes> {
    return encryptChunk(this.#fileKey, this.#fileId, index, this.#state.chunks.length, plaintext);
  }
}

/**
 * The file manifest an entry carries, or undefined when the entry is not a file. Throws when it
 * claims to be one but is malformed, or disagrees with the chunks the entry references.
 */
export function fileManifestOf(entry: Entry): FileManifest | undefined {
  const value = entry.content.kind === "json" ? (entry.content.value as Partial<FileManifest> | null) : null;
  if (typeof value !== "object" || value === null || value.kind !== FILE_MANIFEST_KIND) {
    return undefined;
  }
  const manifest = checkManifest(value);
  if (manifest.chunks.length !== entry.chunks.length || manifest.chunks.some((hash, i) => hash !== entry.chunks[i])) {
    throw new VerificationError("bad_manifest", "the manifest's chunks are not the chunks the entry references", entry.index);
  }
  return manifest;
}

/**
 * The plaintext chunks of a file, in order, each checked against its hash and decrypted.
 * `unsafeSkipVerification` (see `BlindstoreOptions`) skips the hash check, for the
 * malicious-server suite's negative control only.
 */
export async function* fileChunks(
  api: ZoneApi,
  manifest: FileManifest,
  options: DownloadOptions = {},
  unsafeSkipVerification = false,
): AsyncGenerator<Bytes, void, undefined> {
  const checked = checkManifest(manifest);
  const fileId = fromBase64Url(checked.file_id, FILE_ID_BYTES);
  const fileKey = fromBase64Url(checked.key, 32);
  const count = checked.chunks.length;
  let done = 0;
  options.onProgress?.(0, checked.size);
  for (let index = 0; index < count; index++) {
    throwIfAborted(options.signal);
    const hash = checked.chunks[index]!;
    const ciphertext = await api.getChunk(hash, options.signal);
    if (!unsafeSkipVerification && toHex(await sha256(ciphertext)) !== hash) {
      throw new VerificationError("bad_chunk_hash", `chunk ${index} does not hash to ${hash}`);
    }
    const plaintext = await decryptChunk(fileKey, fileId, index, count, ciphertext);
    const expected = Math.min(checked.chunk_size, checked.size - index * checked.chunk_size);
    if (plaintext.length !== expected) {
      throw new VerificationError("bad_manifest", `chunk ${index} has ${plaintext.length} bytes, the manifest says ${expected}`);
    }
    done += plaintext.length;
    options.onProgress?.(done, checked.size);
    yield plaintext;
  }
}

/** A whole file, downloaded, checked and decrypted. */
export async function downloadFile(
  api: ZoneApi,
  manifest: FileManifest,
  options: DownloadOptions = {},
  unsafeSkipVerification = false,
): Promise<Bytes> {
  const parts: Bytes[] = [];
  for await (const part of fileChunks(api, manifest, options, unsafeSkipVerification)) {
    parts.push(part);
  }
  return concat(...parts);
}

/** Encrypts chunk `index` of `count` of a file. */
export async function encryptChunk(fileKey: Uint8Array, fileId: Uint8Array, index: number, count: number, plaintext: Uint8Array): Promise<Bytes> {
  const { key, nonce } = await chunkKey(fileKey, fileId, index, count);
  return new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, key, bytesOf(plaintext)));
}

/** Decrypts chunk `index` of `count` of a file; `DecryptionError` when it does not authenticate there. */
export async function decryptChunk(fileKey: Uint8Array, fileId: Uint8Array, index: number, count: number, ciphertext: Uint8Array): Promise<Bytes> {
  const { key, nonce } = await chunkKey(fileKey, fileId, index, count);
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, key, bytesOf(ciphertext)));
  } catch (error) {
    throw new DecryptionError(`chunk ${index} of ${count} does not authenticate under the file key`, undefined, { cause: error });
  }
}

async function chunkKey(fileKey: Uint8Array, fileId: Uint8Array, index: number, count: number): Promise<{ key: CryptoKey; nonce: Bytes }> {
  const material = await chunkKeyMaterial(fileKey, fileId, index, count);
  const key = await crypto.subtle.importKey("raw", material.key, "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, nonce: material.nonce };
}

/**
 * `HKDF-SHA256(ikm = file_key, salt = file_id, info = label || file_id || u64(index) || u64(count))`,
 * 44 bytes: the chunk's AES-256 key, then its 12-byte nonce. Exported for test vectors.
 */
export async function chunkKeyMaterial(fileKey: Uint8Array, fileId: Uint8Array, index: number, count: number): Promise<{ key: Bytes; nonce: Bytes }> {
  if (fileKey.length !== 32 || fileId.length !== FILE_ID_BYTES) {
    throw new InvalidInputError("a file key has 32 bytes and a file id 16");
  }
  if (!(index < count)) {
    throw new InvalidInputError(`chunk ${index} of ${count} does not exist`);
  }
  const ikm = await crypto.subtle.importKey("raw", bytesOf(fileKey), "HKDF", false, ["deriveBits"]);
  const bits = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: bytesOf(fileId), info: concat(CHUNK_INFO_LABEL, fileId, u64(index), u64(count)) },
      ikm,
      (32 + 12) * 8,
    ),
  );
  return { key: bits.slice(0, 32), nonce: bits.slice(32) };
}

function checkManifest(value: Partial<FileManifest>): FileManifest {
  if (value.v !== 1) {
    throw new UnsupportedVersionError("file_manifest", value.v);
  }
  const fail = (why: string) => new VerificationError("bad_manifest", `the file manifest ${why}`);
  if (typeof value.name !== "string" || typeof value.media_type !== "string") {
    throw fail("lacks its name or media type");
  }
  if (!isCount(value.size) || !isCount(value.chunk_size) || value.chunk_size < 1 || value.chunk_size > MAX_CHUNK_SIZE) {
    throw fail("has a bad size or chunk size");
  }
  if (!Array.isArray(value.chunks) || value.chunks.length !== Math.ceil(value.size / value.chunk_size)) {
    throw fail("does not list one chunk per chunk size of data");
  }
  try {
    value.chunks.forEach((hash) => fromHex(hash, 32));
    fromBase64Url(value.file_id ?? "", FILE_ID_BYTES);
    fromBase64Url(value.key ?? "", 32);
  } catch {
    throw fail("has a malformed chunk hash, id or key");
  }
  return value as FileManifest;
}

function checkUploadState(state: UploadState): UploadState {
  if ((state as { v?: unknown }).v !== 1) {
    throw new UnsupportedVersionError("upload_state", (state as { v?: unknown }).v);
  }
  const chunks = Array.isArray(state.chunks) ? state.chunks : [];
  try {
    checkManifest({ ...state, kind: FILE_MANIFEST_KIND, key: state.file_key, chunks });
  } catch {
    throw new InvalidInputError("the upload state is malformed");
  }
  if (!Array.isArray(state.uploaded) || !state.uploaded.every((hash) => chunks.includes(hash))) {
    throw new InvalidInputError("the upload state lists uploaded chunks that are not its own");
  }
  return structuredClone(state);
}

function sizeOf(data: FileData): number {
  return data instanceof Uint8Array ? data.length : data.size;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new AbortedError({ cause: signal.reason });
  }
}
