/**
 * `BlindstoreReader`: reading only — verified chains, live updates and files — with no
 * accounts, outbox or uploads, for pages that show what others share (a share link's viewer).
 * Its entry point, `@blindstore/sdk/reader`, is the SDK's smallest, and never loads OPAQUE.
 */

import { Chain, type ClientContext } from "./chain.js";
import { type CommonOptions, clientContext, zoneApi } from "./context.js";
import { type DownloadOptions, type FileManifest, downloadFile, fileChunks } from "./files.js";
import { DefaultCheckpointStore } from "./checkpoint.js";
import { DefaultHeadStore } from "./idb.js";
import { ChainKeys } from "./keys.js";
import { LiveHub } from "./live.js";

/** Options of a `BlindstoreReader`: those of `Blindstore` that reading uses. */
export type ReaderOptions = CommonOptions;

/** A client for one zone that reads, verifies and follows chains and downloads files. */
export class BlindstoreReader {
  readonly zone: string;
  readonly #context: ClientContext;
  readonly #name: string;
  readonly #ownHeads: DefaultHeadStore | undefined;
  readonly #ownCheckpoints: DefaultCheckpointStore | undefined;
  #live: LiveHub | undefined;
  readonly #closing = new AbortController();

  constructor(options: ReaderOptions) {
    this.zone = options.zone;
    this.#name = `blindstore:${options.url}:${options.zone}`;
    this.#ownHeads = options.headStore === undefined ? new DefaultHeadStore() : undefined;
    this.#ownCheckpoints = options.checkpointStore === undefined ? new DefaultCheckpointStore() : undefined;
    const api = zoneApi(options, { token: () => undefined });
    this.#context = clientContext(api, options, options.headStore ?? this.#ownHeads!, undefined, this.#closing.signal, options.checkpointStore ?? this.#ownCheckpoints!);
  }

  /**
   * A read-only handle on the chain of `keys` (a share link's keys): it verifies everything
   * with the key the chain id certifies and decrypts with the read keys; it cannot append, even
   * when `keys` hold the write key.
   */
  openChain(keys: ChainKeys | { chainId: string; readKeys: ReadonlyMap<number, Uint8Array> }): Chain {
    const readOnly = keys instanceof ChainKeys ? keys.forReader() : ChainKeys.readOnly(keys.chainId, keys.readKeys);
    return new Chain(this.#context, readOnly);
  }

  /** Downloads, checks and decrypts a whole file (see `fileManifestOf`). */
  async downloadFile(manifest: FileManifest, options: DownloadOptions = {}): Promise<Uint8Array> {
    return downloadFile(this.#context.api, manifest, options, false);
  }

  /** A file's plaintext chunks in order, for files too large to hold whole. */
  fileChunks(manifest: FileManifest, options: DownloadOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    return fileChunks(this.#context.api, manifest, options, false);
  }

  /** The live connection shared with the origin's other tabs (see `Blindstore.live`). */
  live(): LiveHub {
    this.#live ??= new LiveHub({ api: this.#context.api, name: this.#name });
    return this.#live;
  }

  /** Stops the live connection and closes the head store this reader opened itself. */
  close(): void {
    this.#closing.abort();
    this.#live?.close();
    this.#ownHeads?.close();
    this.#ownCheckpoints?.close();
  }
}
