/**
 * Every error the SDK raises on purpose is a `BlindstoreError` with a stable `code`, so callers
 * can branch on `err instanceof ForkError` or on `err.code === "fork"` without parsing messages.
 *
 * Three families matter to an app:
 * - the server misbehaved (verification, rollback, fork): stop trusting what it serves;
 * - the request definitely failed (HTTP errors, conflicts): nothing changed, decide and retry;
 * - the outcome is unknown (a write that timed out or whose answer was lost): read to find out.
 *
 * The classes are alike on purpose — one per code, each naming its status and code — so that
 * `instanceof` works and each appears in the API reference with its own description.
 */

/** Base class: `code` is a stable snake_case identifier, `message` is for people. */
export class BlindstoreError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Why a chain read did not verify. */
export type VerificationReason =
  /** The chain's public key does not hash to its chain id. */
  | "wrong_key"
  /** An entry's Ed25519 signature does not verify strictly under the chain's key. */
  | "bad_signature"
  /** An entry's `prev` is not the hash of the entry before it (or, for entry 0, the genesis). */
  | "bad_link"
  /** An entry's `payload_hash` is not the SHA-256 of its payload. */
  | "bad_payload_hash"
  /** The server's `entry_hash` differs from the hash of the signed message and signature. */
  | "bad_entry_hash"
  /** An entry came at another index than the next one expected. */
  | "bad_index"
  /** The server's `head` differs from the hash of its last entry. */
  | "bad_head"
  /** The server claims entries (a length) it did not deliver where it had to. */
  | "withheld"
  /** A downloaded chunk does not hash to the address it was fetched by. */
  | "bad_chunk_hash"
  /** A file manifest disagrees with the entry that carries it. */
  | "bad_manifest"
  /** The server's answer is not shaped as the API documents (bad hex, missing field, ...). */
  | "malformed";

/** What the server served does not verify: the data is not what the chain's writer signed. */
export class VerificationError extends BlindstoreError {
  readonly reason: VerificationReason;
  /** The entry index concerned, when there is one. */
  readonly index: number | undefined;

  constructor(reason: VerificationReason, message: string, index?: number) {
    super("verification_failed", index === undefined ? message : `entry ${index}: ${message}`);
    this.reason = reason;
    this.index = index;
  }
}

/**
 * The server shows a chain shorter than one this client already verified: it rolled the chain
 * back, or is hiding its newest entries.
 */
export class RollbackError extends BlindstoreError {
  /** The length this client verified before. */
  readonly rememberedLength: number;
  /** The length the server shows now. */
  readonly serverLength: number;

  constructor(rememberedLength: number, serverLength: number) {
    super(
      "rollback",
      `the server shows ${serverLength} entries, but ${rememberedLength} were verified before`,
    );
    this.rememberedLength = rememberedLength;
    this.serverLength = serverLength;
  }
}

/**
 * The server shows a history that differs from one this client already verified: at `index`
 * the remembered entry hash was `expected`, the server's is `actual`.
 */
export class ForkError extends BlindstoreError {
  readonly index: number;
  readonly expected: string;
  readonly actual: string;

  constructor(index: number, expected: string, actual: string) {
    super("fork", `entry ${index} is ${actual}, but ${expected} was verified before`);
    this.index = index;
    this.expected = expected;
    this.actual = actual;
  }
}

/** Ciphertext that does not decrypt under the key it names, or plaintext that is not well formed. */
export class DecryptionError extends BlindstoreError {
  /** The entry index concerned, when there is one. */
  readonly index: number | undefined;

  constructor(message: string, index?: number, options?: { cause?: unknown }) {
    super("decryption_failed", index === undefined ? message : `entry ${index}: ${message}`, options);
    this.index = index;
  }
}

/** A format version (payload, key bundle, manifest, upload state) this SDK does not know. */
export class UnsupportedVersionError extends BlindstoreError {
  /** Which format: "payload", "chain_keys", "file_manifest", "upload_state", ... */
  readonly format: string;
  readonly version: unknown;

  constructor(format: string, version: unknown) {
    super("unsupported_version", `unsupported ${format} version ${String(version)}`);
    this.format = format;
    this.version = version;
  }
}

/** The payload was encrypted under a read-key epoch this reader does not hold. */
export class MissingKeyError extends BlindstoreError {
  readonly epoch: number;
  /** The entry index concerned, when there is one. */
  readonly index: number | undefined;

  constructor(epoch: number, index?: number) {
    super(
      "missing_key",
      `${index === undefined ? "" : `entry ${index}: `}no read key for key epoch ${epoch}`,
    );
    this.epoch = epoch;
    this.index = index;
  }
}

/** An append on a chain opened without its write key. */
export class ReadOnlyError extends BlindstoreError {
  constructor(chainId: string) {
    super("read_only", `chain ${chainId} is open without its write key`);
  }
}

/**
 * The server answered with an error status. Definitely failed: nothing changed on the server
 * (an `outcome_unknown` answer is an `OutcomeUnknownError` instead).
 */
export class HttpError extends BlindstoreError {
  readonly status: number;
  /** The server's JSON body, when it sent one. */
  readonly body: unknown;

  /** `code` is the server's `error.code`, or `http_<status>` when the body has none. */
  constructor(status: number, code: string, message: string, body: unknown) {
    super(code, `HTTP ${status} ${code}: ${message}`);
    this.status = status;
    this.body = body;
  }
}

/**
 * Another append took the index first (409 `index_conflict`). Nothing was appended. Carries the
 * server's view of the chain, so the caller can re-read from `length` of its own knowledge and
 * retry (`Chain.appendWithRetry` does that).
 */
export class ConflictError extends HttpError {
  /** The index this append tried to take. */
  readonly attemptedIndex: number;
  /** The chain's length according to the server (unverified until read). */
  readonly length: number;
  /** The chain's head according to the server (unverified until read). */
  readonly head: string;

  constructor(attemptedIndex: number, length: number, head: string, body: unknown) {
    super(409, "index_conflict", `index ${attemptedIndex} is taken: the chain has ${length} entries`, body);
    this.attemptedIndex = attemptedIndex;
    this.length = length;
    this.head = head;
  }
}

/**
 * A write whose outcome is unknown: the server said `outcome_unknown`, or the connection broke
 * or timed out after the request was sent. It may have been applied; read to find out.
 */
export class OutcomeUnknownError extends BlindstoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("outcome_unknown", message, options);
  }
}

/** The request did not get an answer (connection refused, reset, timed out) and changed nothing. */
export class NetworkError extends BlindstoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("network", message, options);
  }
}

/** The caller's `AbortSignal` stopped the operation. */
export class AbortedError extends BlindstoreError {
  constructor(options?: { cause?: unknown }) {
    super("aborted", "aborted", options);
  }
}

/** Input the SDK refuses before sending anything: too large, malformed, out of range. */
export class InvalidInputError extends BlindstoreError {
  constructor(message: string) {
    super("invalid_input", message);
  }
}

/**
 * A resumed upload's data differs from the data the upload was prepared with. Nothing was sent
 * for the chunk concerned (sending it would reuse a chunk key with other plaintext).
 */
export class FileChangedError extends BlindstoreError {
  /** The first chunk found to differ, when the size alone did not tell. */
  readonly chunkIndex: number | undefined;

  constructor(message: string, chunkIndex?: number) {
    super("file_changed", message);
    this.chunkIndex = chunkIndex;
  }
}

/** A feature this environment lacks (for example IndexedDB outside a browser). */
export class UnsupportedEnvironmentError extends BlindstoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("unsupported_environment", message, options);
  }
}

/**
 * A login failed: wrong password, unknown account, or a passkey the server does not accept (the
 * server's 401 `invalid_login`). The server answers all of these alike, on purpose.
 */
export class InvalidLoginError extends HttpError {
  constructor(message: string, body: unknown) {
    super(401, "invalid_login", message, body);
  }
}

/** Registration of a username that is taken (409 `account_exists`). Nothing changed. */
export class AccountExistsError extends HttpError {
  constructor(message: string, body: unknown) {
    super(409, "account_exists", message, body);
  }
}

/** The zone takes no new accounts (403 `registration_closed`). Nothing changed. */
export class RegistrationClosedError extends HttpError {
  constructor(message: string, body: unknown) {
    super(403, "registration_closed", message, body);
  }
}

/**
 * The zone takes new accounts by invite only, and the code given is missing, unknown, used or
 * expired (403 `invalid_invite`; all alike). Nothing changed.
 */
export class InvalidInviteError extends HttpError {
  constructor(message: string, body: unknown) {
    super(403, "invalid_invite", message, body);
  }
}

/**
 * The session is missing, expired or revoked (401 `invalid_session`). The client forgets it
 * (and the session remembered on this device): log in again.
 */
export class SessionExpiredError extends HttpError {
  constructor(message: string, body: unknown) {
    super(401, "invalid_session", message, body);
  }
}

/**
 * The server refused the request for now (429): too many attempts of its kind — logins and
 * registrations per client address, per account or per device (docs/accounts.md, "Limits"), or
 * live subscriptions. Nothing changed. Try again after `retryAfter` seconds; the SDK's own
 * retries (the outbox, `follow`, the live hub) wait at least that long.
 */
export class RateLimitedError extends HttpError {
  /** The server's `Retry-After`, in seconds; undefined when it sent none the SDK can read. */
  readonly retryAfter: number | undefined;

  constructor(message: string, retryAfter: number | undefined, body: unknown, code = "rate_limited") {
    super(429, code, message, body);
    this.retryAfter = retryAfter;
  }
}

/**
 * How long a retry after `error` waits: `computedMs` (the caller's backoff), or longer when the
 * server asked for it (`Retry-After` of a `RateLimitedError`).
 */
export function retryDelayMs(error: unknown, computedMs: number): number {
  const asked = error instanceof RateLimitedError && error.retryAfter !== undefined ? error.retryAfter * 1000 : 0;
  return Math.max(computedMs, asked);
}

/** The zone has no passkey settings (403 `passkeys_off`). */
export class PasskeysOffError extends HttpError {
  constructor(message: string, body: unknown) {
    super(403, "passkeys_off", message, body);
  }
}

/**
 * An envelope write lost a compare-and-set (409 `envelope_conflict`): another device wrote it
 * first. Nothing changed. The vault retries on its own; this reaches the caller only when the
 * retries run out or a create-only write meets an existing envelope.
 */
export class EnvelopeConflictError extends HttpError {
  /** The envelope's current version on the server (0: it does not exist). */
  readonly currentVersion: number;

  constructor(message: string, currentVersion: number, body: unknown) {
    super(409, "envelope_conflict", message, body);
    this.currentVersion = currentVersion;
  }
}

/**
 * An account envelope (the vault, a wrapped master key) does not open: it does not authenticate
 * under the key it must be sealed with for this zone, account and envelope name, or it is
 * malformed or missing. Either the server swapped or altered it, or it was written by another
 * client. Never treated as an empty vault.
 */
export class EscrowError extends BlindstoreError {
  /** The envelope concerned. */
  readonly envelope: string;

  constructor(envelope: string, message: string, options?: { cause?: unknown }) {
    super("escrow_failed", `envelope ${envelope}: ${message}`, options);
    this.envelope = envelope;
  }
}

/**
 * The operation needs what only a fresh proof gives: the account's master key in clear (a
 * session resumed from this device keeps only the vault key), a step-up (what cannot be undone
 * needs a password or passkey proven for the session within the last minutes), or the vault key
 * of a vault sealed again since the session was remembered. Ask the user, then call again with
 * `{ password }` or `{ passkey: true }` (or `session.stepUp(...)` first), or log in again.
 */
export class ReauthenticationRequiredError extends BlindstoreError {
  constructor(what: string) {
    super("reauthentication_required", `${what} needs the password or a passkey proven again: pass one, or log in again`);
  }
}

/** A passkey ceremony failed in the browser: cancelled, no authenticator, or no PRF support. */
export class PasskeyError extends BlindstoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("passkey_failed", message, options);
  }
}

/** Keys that live only on this device (non-extractable) were asked for in exportable form. */
export class NotExportableError extends BlindstoreError {
  constructor(message: string) {
    super("not_exportable", message);
  }
}

/**
 * A queued write was discarded before it was sent: its account logged out choosing to forget
 * its queued writes (`session.logout({ queuedWrites: "discard" })`), or was deleted.
 */
export class WriteDiscardedError extends BlindstoreError {
  /** The write id. */
  readonly id: string;

  constructor(id: string) {
    super("write_discarded", `queued write ${id} was discarded at its account's logout; it was never sent`);
    this.id = id;
  }
}

/**
 * Whether reconnecting may help: a lost or silent connection (the idle timer aborts it, which
 * surfaces as `AbortedError` while following is not stopped), an overloaded or unavailable node.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof HttpError) {
    return error.status === 429 || error.status >= 500;
  }
  return error instanceof NetworkError || error instanceof AbortedError || error instanceof OutcomeUnknownError;
}
