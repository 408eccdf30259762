/**
 * The zone's client API over HTTP (`/v1/zones/{zone}/...`, see `GET /v1/openapi.json`): one
 * method per route used, every answer's shape checked, every error mapped to a typed error here
 * and nowhere else. Knows nothing of signatures or encryption.
 */

import { type Bytes, bytesOf } from "./bytes.js";
import { decodeEntriesPage, ENTRIES_BINARY } from "./entries-binary.js";
import {
  AbortedError,
  AccountExistsError,
  InvalidInviteError,
  RegistrationClosedError,
  BlindstoreError,
  ConflictError,
  EnvelopeConflictError,
  HttpError,
  InvalidLoginError,
  NetworkError,
  OutcomeUnknownError,
  PasskeysOffError,
  RateLimitedError,
  SessionExpiredError,
  VerificationError,
} from "./errors.js";

/** The subset of `fetch` the SDK uses; pass a wrapper to add logging, counting or retries. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** Returns the session token to send as `Authorization: Bearer`, or undefined for none. */
export type SessionTokenSource = () => string | undefined | Promise<string | undefined>;

/** A chain as `GET /v1/zones/{zone}/chains/{id}` describes it. Unverified. */
export interface ChainInfo {
  chain_id: string;
  /** base64url raw Ed25519 key. */
  public_key: string;
  length: number;
  head: string;
}

/** One page of `GET .../entries`. Entries are unverified JSON values. */
export interface EntriesPage {
  length: number;
  head: string;
  entries: unknown[];
  /** Set when the answer was cut short: the index to ask for next. */
  next?: number;
}

/** The body of an append (`POST .../entries`). */
export interface AppendBody {
  index: number;
  prev: string;
  payload: string;
  chunks: string[];
  signature: string;
}

/** The answer to an append. */
export interface AppendAnswer {
  index: number;
  entry_hash: string;
  length: number;
}

export interface ZoneApiOptions {
  /** Where the API is, e.g. `https://budget.example.com` (the `/v1/...` paths are appended). */
  baseUrl: string;
  zone: string;
  fetch: FetchLike;
  sessionToken: SessionTokenSource | undefined;
  /** Deadline of each request, answer body included (event streams excepted). */
  timeoutMs: number;
  /** Told when the server refuses a token from `sessionToken` as expired or revoked. */
  onSessionRejected?: (token: string) => void;
}

/** An account route's answer (account-api.ts): its JSON (undefined when empty) and `ETag`. */
export interface AccountAnswer {
  body: unknown;
  etag: string | null;
}

/** The client API of one zone. */
export class ZoneApi {
  readonly zone: string;
  readonly #options: ZoneApiOptions;
  readonly #base: string;

  constructor(options: ZoneApiOptions) {
    this.#options = options;
    this.zone = options.zone;
    this.#base = `${options.baseUrl.replace(/\/+$/, "")}/v1/zones/${encodeURIComponent(options.zone)}`;
  }

  /** The same API, its requests sending the token of `sessionToken` instead. */
  withSessionToken(sessionToken: SessionTokenSource): ZoneApi {
    return new ZoneApi({ ...this.#options, sessionToken });
  }

  /** `POST /chains`: creates the chain of `publicKey` (base64url), or finds it when it exists. */
  async createChain(publicKey: string, signal?: AbortSignal): Promise<ChainInfo> {
    const answer = await this.#json("/chains", { method: "POST", json: { public_key: publicKey }, signal });
    return chainInfo(answer);
  }

  /** `GET /chains/{id}`. */
  async getChain(chainId: string, signal?: AbortSignal): Promise<ChainInfo> {
    return chainInfo(await this.#json(`/chains/${chainId}`, { signal }));
  }

  /** `GET /chains/{id}/entries?from=&limit=` or `?last=`. */
  async readEntries(chainId: string, query: { from: number; limit: number } | { last: number }, signal?: AbortSignal): Promise<EntriesPage> {
    const search = "last" in query ? `last=${query.last}` : `from=${query.from}&limit=${query.limit}`;
    const path = `/chains/${chainId}/entries?${search}`;
    // The compact binary form when the server has it; JSON otherwise.
    const response = await this.#send(path, { accept: `${ENTRIES_BINARY}, application/json;q=0.5`, signal });
    if ((response.headers.get("content-type") ?? "").startsWith(ENTRIES_BINARY)) {
      const buffer = await this.#body(response, () => response.arrayBuffer(), signal);
      return decodeEntriesPage(new Uint8Array(buffer));
    }
    return entriesPage(await this.#jsonOf(response, `GET ${path}`, signal));
  }

  /**
   * `POST /chains/{id}/entries`. Throws `ConflictError` on 409 `index_conflict`, and
   * `OutcomeUnknownError` when the answer is lost: an append is the one request whose repetition
   * is not harmless to hide.
   */
  async append(chainId: string, body: AppendBody, signal?: AbortSignal): Promise<AppendAnswer> {
    let answer: unknown;
    try {
      answer = await this.#json(`/chains/${chainId}/entries`, { method: "POST", json: body, signal });
    } catch (error) {
      if (error instanceof HttpError && error.status === 409 && error.code === "index_conflict") {
        const conflict = error.body as { length?: unknown; head?: unknown };
        if (typeof conflict.length === "number" && typeof conflict.head === "string") {
          throw new ConflictError(body.index, conflict.length, conflict.head, error.body);
        }
      }
      if (error instanceof NetworkError) {
        throw new OutcomeUnknownError(`the append's answer was lost: ${error.message}`, { cause: error });
      }
      throw error;
    }
    const value = answer as Partial<AppendAnswer>;
    if (typeof value.index !== "number" || typeof value.entry_hash !== "string" || typeof value.length !== "number") {
      throw new VerificationError("malformed", "the append answer lacks index, entry_hash or length");
    }
    return value as AppendAnswer;
  }

  /** `PUT /chunks/{hash}`: stores a chunk (idempotent). */
  async putChunk(hash: string, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    const response = await this.#send(`/chunks/${hash}`, {
      method: "PUT",
      body: bytesOf(data),
      contentType: "application/octet-stream",
      signal,
    });
    await response.body?.cancel();
  }

  /** `GET /chunks/{hash}`: a chunk's bytes, as the server sends them (the caller checks the hash). */
  async getChunk(hash: string, signal?: AbortSignal): Promise<Bytes> {
    const response = await this.#send(`/chunks/${hash}`, { signal });
    return this.#body(response, () => response.arrayBuffer(), signal).then((buffer) => new Uint8Array(buffer));
  }

  /** `POST /chunks/missing`: which of `hashes` the zone does not hold, in request order. */
  async missingChunks(hashes: string[], signal?: AbortSignal): Promise<string[]> {
    const answer = (await this.#json("/chunks/missing", { method: "POST", json: { hashes }, signal })) as { missing?: unknown };
    if (!Array.isArray(answer.missing) || !answer.missing.every((hash) => typeof hash === "string")) {
      throw new VerificationError("malformed", "the missing-chunks answer lacks its list");
    }
    return answer.missing as string[];
  }

  /**
   * `GET /chains/{id}/events?from=`: opens the chain's event stream and returns the response
   * whose body streams. No deadline (the stream lives until `signal` aborts it); the caller
   * watches for silence.
   */
  async openEvents(chainId: string, from: number, signal: AbortSignal): Promise<Response> {
    return this.#send(`/chains/${chainId}/events?from=${from}`, { accept: "text/event-stream", signal, noTimeout: true });
  }

  /**
   * A request to an account route (`/auth/...`), for account-api.ts. `token` replaces the
   * session source: a string is sent, null sends none (logins).
   */
  async account(
    path: string,
    request: { method?: string; json?: unknown; headers?: Record<string, string>; token?: string | null; signal?: AbortSignal },
  ): Promise<AccountAnswer> {
    const response = await this.#send(`/auth/${path}`, request);
    const text = await this.#body(response, () => response.text(), request.signal);
    if (text === "") {
      return { body: undefined, etag: response.headers.get("etag") };
    }
    try {
      return { body: JSON.parse(text), etag: response.headers.get("etag") };
    } catch {
      throw new VerificationError("malformed", `${request.method ?? "GET"} /auth/${path} answered with something other than JSON`);
    }
  }

  /**
   * `GET /events?chains=id:from,...`: one event stream for many chains (at most 32), each from its
   * own position. Like `openEvents`, no deadline.
   */
  async openZoneEvents(cursors: ReadonlyArray<{ chainId: string; from: number }>, signal: AbortSignal): Promise<Response> {
    const chains = cursors.map(({ chainId, from }) => `${chainId}:${from}`).join(",");
    return this.#send(`/events?chains=${chains}`, { accept: "text/event-stream", signal, noTimeout: true });
  }

  async #json(path: string, request: RequestOptions): Promise<unknown> {
    const response = await this.#send(path, request);
    return this.#jsonOf(response, `${request.method ?? "GET"} ${path}`, request.signal);
  }

  /** The JSON body of `response`, the answer to `what`. */
  async #jsonOf(response: Response, what: string, signal: AbortSignal | undefined): Promise<unknown> {
    const text = await this.#body(response, () => response.text(), signal);
    try {
      return JSON.parse(text);
    } catch {
      throw new VerificationError("malformed", `${what} answered with something other than JSON`);
    }
  }

  /** Sends one request; non-2xx answers become typed errors. */
  async #send(path: string, request: RequestOptions): Promise<Response> {
    const signal = this.#deadline(request);
    const headers: Record<string, string> = { ...request.headers, accept: request.accept ?? "application/json" };
    let body: BodyInit | undefined;
    if (request.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(request.json);
    } else if (request.body !== undefined) {
      headers["content-type"] = request.contentType ?? "application/octet-stream";
      body = request.body;
    }
    const token = request.token === undefined ? await this.#options.sessionToken?.() : (request.token ?? undefined);
    if (token !== undefined) {
      headers["authorization"] = `Bearer ${token}`;
    }
    let response: Response;
    try {
      response = await this.#options.fetch(this.#base + path, { method: request.method ?? "GET", headers, body, signal });
    } catch (error) {
      throw transportError(error, request.signal, `${request.method ?? "GET"} ${path}`);
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (error instanceof SessionExpiredError && token !== undefined) {
        this.#options.onSessionRejected?.(token);
      }
      throw error;
    }
    return response;
  }

  /** Reads an answer's body, mapping a connection lost midway like one lost before the answer. */
  async #body<T>(response: Response, read: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    try {
      return await read();
    } catch (error) {
      // Stopped by the caller's signal: `AbortedError`, not a network failure to retry.
      throw transportError(error, signal, `reading the answer from ${response.url}`);
    }
  }

  #deadline(request: RequestOptions): AbortSignal | undefined {
    if (request.noTimeout) {
      return request.signal;
    }
    const timeout = AbortSignal.timeout(this.#options.timeoutMs);
    return request.signal === undefined ? timeout : AbortSignal.any([request.signal, timeout]);
  }
}

interface RequestOptions {
  method?: string;
  json?: unknown;
  body?: BodyInit;
  contentType?: string;
  accept?: string;
  headers?: Record<string, string>;
  /** Overrides the session source: a token to send, or null for none. */
  token?: string | null;
  signal?: AbortSignal | undefined;
  noTimeout?: boolean;
}

/** The typed error for a non-2xx answer: the server's `{"error": {"code", "message"}}` when it sent one. */
async function errorOf(response: Response): Promise<BlindstoreError> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  const detail = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof detail?.code === "string" ? detail.code : `http_${response.status}`;
  const message = typeof detail?.message === "string" ? detail.message : response.statusText;
  if (response.status === 503 && code === "outcome_unknown") {
    return new OutcomeUnknownError(`the server could not tell whether the write was done: ${message}`);
  }
  if (response.status === 429) {
    return new RateLimitedError(message, retryAfterSeconds(response.headers.get("retry-after")), body, code);
  }
  switch (`${response.status} ${code}`) {
    case "401 invalid_login":
      return new InvalidLoginError(message, body);
    case "401 invalid_session":
      return new SessionExpiredError(message, body);
    case "409 account_exists":
      return new AccountExistsError(message, body);
    case "403 registration_closed":
      return new RegistrationClosedError(message, body);
    case "403 invalid_invite":
      return new InvalidInviteError(message, body);
    case "403 passkeys_off":
      return new PasskeysOffError(message, body);
    case "409 envelope_conflict": {
      const version = (detail as { version?: unknown }).version;
      return new EnvelopeConflictError(message, typeof version === "number" ? version : 0, body);
    }
  }
  return new HttpError(response.status, code, message, body);
}

/** `Retry-After` in seconds: delay-seconds, or an HTTP date counted from now; undefined when absent or unreadable. */
function retryAfterSeconds(header: string | null): number | undefined {
  if (header === null) {
    return undefined;
  }
  const text = header.trim();
  if (/^\d+$/.test(text)) {
    return Number(text);
  }
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function transportError(error: unknown, callerSignal: AbortSignal | undefined, what: string): BlindstoreError {
  if (error instanceof BlindstoreError) {
    return error;
  }
  if (callerSignal?.aborted) {
    return new AbortedError({ cause: error });
  }
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return new NetworkError(`${what} timed out`, { cause: error });
  }
  return new NetworkError(`${what} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

function chainInfo(value: unknown): ChainInfo {
  const chain = value as Partial<ChainInfo> | null;
  if (
    typeof chain?.chain_id !== "string" ||
    typeof chain.public_key !== "string" ||
    typeof chain.head !== "string" ||
    !isIndex(chain.length)
  ) {
    throw new VerificationError("malformed", "the chain answer lacks chain_id, public_key, length or head");
  }
  return chain as ChainInfo;
}

function entriesPage(value: unknown): EntriesPage {
  const page = value as Partial<EntriesPage> | null;
  if (!isIndex(page?.length) || typeof page?.head !== "string" || !Array.isArray(page.entries)) {
    throw new VerificationError("malformed", "the entries answer lacks length, head or entries");
  }
  if (page.next !== undefined && page.next !== null && !isIndex(page.next)) {
    throw new VerificationError("malformed", "the entries answer's next is not an index");
  }
  return { length: page.length, head: page.head, entries: page.entries, ...(isIndex(page.next) ? { next: page.next } : {}) };
}

function isIndex(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
