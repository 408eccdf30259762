/**
 * `Blindstore`: the entry point. One client talks to one zone of one Blindstore deployment and
 * hands out chain handles; everything is encrypted, signed and verified in the client.
 */

import { AccountApi } from "./account-api.js";
import { Accounts } from "./accounts.js";
import { fromHex, toBase64Url, toHex } from "./bytes.js";
import { Chain, type ClientContext } from "./chain.js";
import { type CommonOptions, clientContext, zoneApi } from "./context.js";
import { DeviceStore } from "./device-store.js";
import { DeviceTokens } from "./device-tokens.js";
import { genesisOf } from "./entry.js";
import { InvalidInputError, VerificationError } from "./errors.js";
import { DefaultCheckpointStore } from "./checkpoint.js";
import { DefaultHeadStore } from "./idb.js";
import {
  type DownloadOptions,
  type FileData,
  type FileManifest,
  type PrepareOptions,
  type SendOptions,
  type UploadState,
  FileUpload,
  downloadFile,
  fileChunks,
} from "./files.js";
import type { SessionTokenSource } from "./http.js";
import { ChainKeys, type ChainSecrets } from "./keys.js";
import { LiveHub } from "./live.js";
import { MemoryOutboxStore, Outbox, type OutboxStore } from "./outbox.js";
import { type UploadStore, keeperFor, openRecord } from "./uploads.js";

export interface BlindstoreOptions extends CommonOptions {
  /**
   * The session token to send as `Authorization: Bearer`, for zones whose writes need accounts
   * (default: the token of the session `accounts` logged in or resumed, if any).
   */
  sessionToken?: SessionTokenSource;
  /** The zone's largest entry payload (`max_entry_payload_bytes`, default 64 KiB). */
  maxPayloadBytes?: number;
  /**
   * UNSAFE — for the malicious-server test suite's negative control only: skips every check of
   * what the server serves (signatures, hashes, links, withheld entries, rollback and fork
   * detection against the head store), so a test can show that its doctored answers would be
   * accepted without them. Decryption still authenticates payloads. Never set it in an app.
   */
  unsafeSkipVerification?: boolean;
  /**
   * Where `chain.enqueue` keeps queued writes (default in memory; in browsers
   * `await IndexedDbOutboxStore.open()`). A queued write belongs to the account logged in when it
   * was queued (`accounts`): it is sent only with that account's session token, while that
   * account is logged in here.
   */
  outboxStore?: OutboxStore;
  /** The outbox's first delay after a network failure (default 500 ms), doubling up to `outboxMaxRetryMs` (default 30 s). */
  outboxMinRetryMs?: number;
  outboxMaxRetryMs?: number;
  /** Where uploads are kept to resume after a reload (default: none; in browsers `await IndexedDbUploadStore.open()`). */
  uploadStore?: UploadStore;
}

/** A Blindstore client for one zone. */
export class Blindstore {
  readonly zone: string;
  /** Accounts of the zone: register, log in, the vault, passkeys, device-only keys. */
  readonly accounts: Accounts;
  /** Queued writes (`chain.enqueue`): `pending()`, `onChange(listener)`, `flush()`. */
  readonly outbox: Outbox;
  readonly #context: ClientContext;
  readonly #url: string;
  readonly #uploads: UploadStore | undefined;
  readonly #ownHeads: DefaultHeadStore | undefined;
  readonly #ownCheckpoints: DefaultCheckpointStore | undefined;
  readonly #deviceStores = new Map<string, Promise<DeviceStore>>();
  #live: LiveHub | undefined;
  readonly #closing = new AbortController();

  constructor(options: BlindstoreOptions) {
    this.zone = options.zone;
    const api = zoneApi(options, {
      token: options.sessionToken ?? (() => this.accounts.currentToken()),
      // A dead session is forgotten wherever the server refuses it (a background cleanup: a
      // failure leaves the remembered copy to the next `resume`, which checks it again).
      onRejected: (token) => void this.accounts.forget(token).catch(() => undefined),
    });
    this.accounts = new Accounts({
      api: new AccountApi(api),
      zone: options.zone,
      chains: { create: (secrets, signal) => this.#createChain(secrets, signal), open: (secrets) => new Chain(this.#context, secrets) },
      deviceStore: (purpose) => this.#deviceStore(purpose),
      deviceTokens: new DeviceTokens(typeof indexedDB === "undefined" ? undefined : () => this.#deviceStore("accounts")),
      outbox: {
        flush: () => this.outbox.flush(),
        hold: (account) => this.outbox.hold(account),
        release: (account) => this.outbox.release(account),
        discard: (account) => this.outbox.discard(account),
      },
    });
    this.#url = options.url;
    this.#uploads = options.uploadStore;
    this.outbox = new Outbox({
      store: options.outboxStore ?? new MemoryOutboxStore(),
      zone: options.zone,
      lockPrefix: `blindstore:${options.url}:${options.zone}`,
      minRetryMs: options.outboxMinRetryMs,
      maxRetryMs: options.outboxMaxRetryMs,
      // A queued write goes with the session of the account that queued it, or waits for it.
      owner: () => {
        const session = this.accounts.session;
        if (session === undefined) {
          return { account: undefined, token: options.sessionToken ?? (() => undefined) };
        }
        const token = session.token;
        return { account: session.accountId, token: () => token };
      },
    });
    this.#ownHeads = options.headStore === undefined ? new DefaultHeadStore() : undefined;
    this.#ownCheckpoints = options.checkpointStore === undefined ? new DefaultCheckpointStore() : undefined;
    this.#context = clientContext(api, options, options.headStore ?? this.#ownHeads!, this.outbox, this.#closing.signal, options.checkpointStore ?? this.#ownCheckpoints!);
  }

  /**
   * Lets go of everything this client holds in the page: the live connection, the outbox's
   * listeners and channel, the IndexedDB connections it opened. Queued writes stay stored for the
   * next client; the remembered session stays remembered. Use a new client afterwards.
   */
  close(): void {
    this.#closing.abort();
    this.#live?.close();
    this.outbox.close();
    this.accounts.close();
    this.#ownHeads?.close();
    this.#ownCheckpoints?.close();
    for (const store of this.#deviceStores.values()) {
      void store.then((opened) => opened.close()).catch(() => undefined);
    }
    this.#deviceStores.clear();
  }

  /** The device database of `purpose`, opened once per client (closed by `close`). */
  #deviceStore(purpose: string): Promise<DeviceStore> {
    let store = this.#deviceStores.get(purpose);
    if (store === undefined) {
      store = DeviceStore.open(purpose, this.#url, this.zone);
      store.catch(() => this.#deviceStores.delete(purpose));
      this.#deviceStores.set(purpose, store);
    }
    return store;
  }

  /**
   * Creates a chain: new keys (unless given) and the chain on the server. Persist `chain.keys`
   * before writing anything that matters: without them the chain can be neither written nor read.
   */
  async createChain(keys?: ChainKeys, options: { signal?: AbortSignal } = {}): Promise<Chain> {
    const chainKeys = keys ?? (await ChainKeys.generate());
    if (chainKeys.writeKey === undefined) {
      throw new InvalidInputError("creating a chain needs its write key");
    }
    return this.#createChain(chainKeys, options.signal);
  }

  /** Creates the chain of `secrets` (which hold its write key) on the server. */
  async #createChain(secrets: ChainSecrets, signal?: AbortSignal): Promise<Chain> {
    const { publicKey } = await secrets.signingKey();
    const info = await this.#context.api.createChain(toBase64Url(publicKey), signal);
    if (info.chain_id !== secrets.chainId) {
      throw new VerificationError("wrong_key", `the server created chain ${info.chain_id}, not ${secrets.chainId}`);
    }
    const genesis = toHex(await genesisOf(fromHex(secrets.chainId, 32)));
    // A fresh chain starts at the genesis; an existing one (same keys given again) is learnt on first append.
    const fresh = info.length === 0 && info.head === genesis;
    const chain = new Chain(this.#context, secrets, fresh ? { length: 0, head: genesis } : undefined);
    this.outbox.register(chain);
    return chain;
  }

  /**
   * A handle on an existing chain with these keys: writable when they hold the write key. The
   * outbox sends the chain's queued writes (those left by an earlier page too) once it is opened.
   */
  openChain(keys: ChainKeys): Chain {
    const chain = new Chain(this.#context, keys);
    this.outbox.register(chain);
    return chain;
  }

  /**
   * A read-only handle on chain `chainId`, decrypting with `readKeys` (epoch → 32-byte key).
   * It verifies everything with the key the chain id certifies; it cannot append.
   */
  openReadOnly(reader: { chainId: string; readKeys: ReadonlyMap<number, Uint8Array> }): Chain {
    return new Chain(this.#context, ChainKeys.readOnly(reader.chainId, reader.readKeys));
  }

  /**
   * Starts an upload: every chunk is encrypted once to learn its hash; nothing is sent yet.
   * Then `upload.send()` and `upload.commit(chain)`; persist `upload.state` to resume.
   */
  async prepareUpload(data: FileData, options: PrepareOptions = {}): Promise<FileUpload> {
    const keeper = this.#uploads === undefined ? undefined : keeperFor(this.#uploads, this.zone, data);
    return FileUpload.prepare(this.#context.api, data, this.#context.maxPayloadBytes, options, keeper);
  }

  /**
   * The uploads kept in the `uploadStore` and not committed yet (an earlier page's too), with
   * their data: `send()` sends only the chunks the server lacks, `commit(chain)` forgets them.
   */
  async pendingUploads(): Promise<FileUpload[]> {
    const store = this.#uploads;
    if (store === undefined) {
      return [];
    }
    const uploads: FileUpload[] = [];
    for (const record of await store.list(this.zone)) {
      const { state, data } = await openRecord(store, record);
      uploads.push(FileUpload.resume(this.#context.api, state, data, keeperFor(store, this.zone, data, true)));
    }
    return uploads;
  }

  /**
   * The live connection this client shares with the origin's other tabs (live.ts): one event
   * stream for every chain any tab follows through it.
   */
  live(): LiveHub {
    this.#live ??= new LiveHub({ api: this.#context.api, name: `blindstore:${this.#url}:${this.zone}` });
    return this.#live;
  }

  /** Resumes an upload from its persisted state, with the same data. */
  resumeUpload(state: UploadState, data: FileData): FileUpload {
    return FileUpload.resume(this.#context.api, state, data);
  }

  /** Uploads `data` and commits it to `chain` in one go. */
  async uploadFile(
    chain: Chain,
    data: FileData,
    options: PrepareOptions & SendOptions = {},
  ): Promise<Awaited<ReturnType<FileUpload["commit"]>>> {
    const upload = await this.prepareUpload(data, { ...options, onProgress: undefined });
    await upload.send(options);
    return upload.commit(chain, { signal: options.signal });
  }

  /** Downloads, checks and decrypts a whole file (see `fileManifestOf` to get a manifest from an entry). */
  async downloadFile(manifest: FileManifest, options: DownloadOptions = {}): Promise<Uint8Array> {
    return downloadFile(this.#context.api, manifest, options, this.#context.unsafeSkipVerification);
  }

  /** A file's plaintext chunks in order, for files too large to hold whole. */
  fileChunks(manifest: FileManifest, options: DownloadOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    return fileChunks(this.#context.api, manifest, options, this.#context.unsafeSkipVerification);
  }
}
