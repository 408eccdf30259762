/**
 * Accounts (`Blindstore.accounts`): register and log in with a username and password (OPAQUE,
 * the password never leaves the client) or a passkey, keep a small encrypted vault in the
 * account, and remember the session on this device. docs/accounts.md is the server's side;
 * docs/sdk-format.md, "Accounts and key escrow", the formats.
 *
 * Key hierarchy: a random 32-byte master key per account; the vault is sealed under a vault key
 * derived from it for a key epoch (a password change moves the vault to the next one); the
 * master key itself is kept by the server only wrapped — under a key derived from the OPAQUE
 * export key (`key-password`) and under each passkey's PRF output (`passkey-…`). A session holds
 * the current vault key as a non-extractable AES-GCM key, plus the master key's bytes when it
 * began with a password or passkey (needed to wrap it anew, or to derive another vault key); a
 * session remembered on the device keeps only the vault key, never the master key.
 */

import { type AccountApi, type CredentialsChanged, type NewSession, type PasskeyRecord, type StepUp, type StoredEnvelope } from "./account-api.js";
import { type Bytes, fromBase64Url } from "./bytes.js";
import type { DeviceStore } from "./device-store.js";
import type { DeviceTokens } from "./device-tokens.js";
import { type ChainOpener, DeviceKeyring } from "./device-keys.js";
import {
  AbortedError,
  EnvelopeConflictError,
  EscrowError,
  InvalidInputError,
  InvalidLoginError,
  NetworkError,
  UnsupportedEnvironmentError,
  ReauthenticationRequiredError,
  SessionExpiredError,
  VerificationError,
} from "./errors.js";
import {
  type EnvelopePlace,
  PASSWORD_ENVELOPE,
  VAULT_ENVELOPE,
  type VaultKeyId,
  accountIdOf,
  decodeVault,
  encodeVault,
  newMasterKey,
  nextVaultKeyId,
  normalizeUsername,
  olderVaultKey,
  openEnvelope,
  passkeyEnvelopeName,
  passkeyWrapKey,
  passwordWrapKey,
  sameVaultKey,
  sealEnvelope,
  sealVault,
  unwrapMasterKey,
  vaultKey,
  vaultKeyFromBase,
  vaultKeyIdOf,
} from "./escrow.js";
import { assertPasskey, createPasskey } from "./passkeys.js";

/** How often a vault write re-reads and retries after another device wrote first. */
const VAULT_ATTEMPTS = 8;
/** The key of the remembered session in the device store. */
const REMEMBERED = "session";
/** A step-up this close to its expiry is not used (the server's clock may run ahead). */
const STEP_UP_MARGIN_MS = 30_000;
/** The vault key a new account's vault is sealed under. */
const FIRST_VAULT_KEY: VaultKeyId = { version: 2, epoch: 0 };

export interface PasswordCredentials {
  username: string;
  password: string;
  /** A label for the session (e.g. the device), shown in session lists; up to 128 bytes. */
  label?: string;
}

/** What `register` takes: the credentials, and an invite code where the zone asks for one. */
export interface Registration extends PasswordCredentials {
  /**
   * A one-time invite code from the zone's administrator (`blindstore zone invite`), for a zone
   * whose registration is `invite`; ignored by an open zone. Without a valid one such a zone
   * answers `InvalidInviteError`.
   */
  invite?: string;
}

export interface PasskeyLogin {
  username: string;
  label?: string;
}

export interface PasskeyInfo {
  /** The credential id (base64url). */
  id: string;
  label?: string;
  /** Milliseconds since the epoch. */
  createdAt?: number;
  /** When it last logged in or proved a step-up (ms since the epoch); absent if never. */
  lastUsedAt?: number;
}

/**
 * A fresh proof, for what cannot be undone when the session has no live step-up (or, for adding
 * a passkey, no master key): the password (proven to the server with OPAQUE, never sent), or
 * `passkey: true` to prove one of the account's passkeys (a WebAuthn ceremony in the browser,
 * whose PRF output also opens the master key). One of the two, not both.
 */
export interface FreshProof {
  password?: string;
  passkey?: boolean;
  /** Stops the operation (`AbortedError`); what the server already did stays done. */
  signal?: AbortSignal;
}

/** Options of account operations that take only a signal. */
export interface SignalOptions {
  /** Stops the operation (`AbortedError`); what the server already did stays done. */
  signal?: AbortSignal;
}

export interface ChangePasswordOptions extends SignalOptions {
  /** End every other session of the account in the same step (default true). */
  revokeOtherSessions?: boolean;
  /**
   * Passkeys (their `id`s, from `session.passkeys()`) to remove in the same atomic step: a
   * password change does not end passkeys, and one the user does not know could be a thief's.
   * An id the account does not have refuses the whole change (`HttpError` 404
   * `unknown_passkey`; the password stays).
   */
  removePasskeys?: string[];
}

/** What a password change or "log out everywhere" did. */
export interface CredentialsChange {
  /** How many sessions ended. */
  revoked: number;
  /** The passkeys the account keeps: each of them can still log in. Show them to the user. */
  passkeys: PasskeyInfo[];
}

export interface LogoutOptions extends SignalOptions {
  /**
   * What becomes of the writes this account queued in the client's outbox and that are not sent
   * yet: `"keep"` (the default) keeps them, sealed, on this device, to be sent the next time the
   * account logs in here (never with another account's session); `"discard"` forgets them (their
   * `durable` rejects with `WriteDiscardedError`).
   */
  queuedWrites?: "keep" | "discard";
}

/** What `Accounts` needs of its client (client.ts). Internal. */
export interface AccountsContext {
  api: AccountApi;
  zone: string;
  chains: ChainOpener;
  /** Opens the device store of `purpose` for this deployment and zone. */
  deviceStore(purpose: string): Promise<DeviceStore>;
  /**
   * The client's outbox: started when a session begins, holding an account's writes while it logs
   * out (`hold`, `release`), emptied of them on request.
   */
  outbox: { flush(): void; hold(account: string): Promise<void>; release(account: string): void; discard(account: string): Promise<number> };
  /** This device's tokens, per account: sent with its logins, kept across logouts. */
  deviceTokens: DeviceTokens;
}

/**
 * The remembered session as stored on the device (version 2, docs/sdk-format.md): the session
 * and its vault key (non-extractable AES-GCM), never the master key.
 */
interface RememberedSession {
  v: 2;
  username: string;
  accountId: string;
  sessionId: string;
  token: string;
  expiresAt: number;
  vaultKey: CryptoKey;
  vaultVersion: 1 | 2;
  vaultEpoch: number;
}

/** As SDKs before vault key epochs stored it (version 1): the master key as an HKDF key. Only read, to migrate. */
interface RememberedSessionV1 {
  v: 1;
  username: string;
  accountId: string;
  sessionId: string;
  token: string;
  expiresAt: number;
  masterKey: CryptoKey;
}

/**
 * A change of the client's current session (`accounts.onSessionChange`):
 * - `login`: a session began — a password or passkey login (a sign-up logs in), or a session
 *   remembered on the device resumed;
 * - `logout`: this client ended it (`logout`, `logoutAll`, `deleteAccount`);
 * - `ended`: the server no longer takes it — `expired` (its time ran out) or `revoked` (ended
 *   elsewhere: a log-out-everywhere, a password change on another device, an admin). The app
 *   should ask the person to log in again; the account's queued writes wait for that login.
 */
export type SessionChange =
  | { type: "login"; session: Session; how: "password" | "passkey" | "resume" }
  | { type: "logout"; username: string; accountId: string }
  | { type: "ended"; username: string; accountId: string; reason: "expired" | "revoked" };

/** The longest delay `setTimeout` takes (about 24.8 days); longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The account side of a client. One session at a time; its token goes with the client's requests. */
export class Accounts {
  readonly #context: AccountsContext;
  #current: Session | undefined;
  readonly #listeners = new Set<(change: SessionChange) => void>();
  #expiry: ReturnType<typeof setTimeout> | undefined;

  /** Internal: `Blindstore.accounts`. */
  constructor(context: AccountsContext) {
    this.#context = context;
  }

  /** The current session, if any. */
  get session(): Session | undefined {
    return this.#current;
  }

  /**
   * Calls `listener` at every change of the current session (see `SessionChange`); returns the
   * function that stops it. A listener that throws does not stop the others (its error is
   * reported asynchronously).
   */
  onSessionChange(listener: (change: SessionChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops the expiry timer and drops the listeners. Internal (`Blindstore.close`). */
  close(): void {
    clearTimeout(this.#expiry);
    this.#listeners.clear();
  }

  #emit(change: SessionChange): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** Makes `session` current and tells the listeners; its end is announced when its time runs out. */
  #started(session: Session, how: "password" | "passkey" | "resume"): Session {
    this.#current = session;
    this.#armExpiry(session);
    this.#context.outbox.release(session.accountId);
    this.#context.outbox.flush();
    this.#emit({ type: "login", session, how });
    return session;
  }

  #armExpiry(session: Session): void {
    clearTimeout(this.#expiry);
    const wait = session.expiresAt - Date.now();
    this.#expiry = setTimeout(
      () => (wait > MAX_TIMER_MS ? this.#armExpiry(session) : void this.forget(session.token).catch(() => undefined)),
      Math.max(0, Math.min(wait, MAX_TIMER_MS)),
    );
    // In Node, a session's timer must not keep the process alive.
    (this.#expiry as { unref?: () => void }).unref?.();
  }

  /**
   * Registers `username` (409 → `AccountExistsError`) and logs in: the new account gets its
   * master key, its `key-password` envelope and an empty vault.
   */
  async register(credentials: Registration, options: SignalOptions = {}): Promise<Session> {
    const api = this.#context.api.withSignal(options.signal);
    const account = await accountIdOf(this.#context.zone, credentials.username);
    const opaque = await loadOpaque();
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password: credentials.password });
    const deviceToken = await this.#context.deviceTokens.get(account);
    const registrationResponse = await api.registerStart(account, registrationRequest, deviceToken);
    const { registrationRecord } = opaqueStep(() =>
      opaque.client.finishRegistration({ clientRegistrationState, registrationResponse, password: credentials.password }),
    );
    await api.registerFinish(account, registrationRecord, credentials.invite);
    return this.login(credentials, options);
  }

  /**
   * Logs in with a password. A wrong password and an unknown username are the same
   * `InvalidLoginError`. An account whose envelopes do not open is an `EscrowError` (and the new
   * session is ended). Too many attempts: `RateLimitedError` — a device that logged in to the
   * account before sends its device token and is held to its own limit, which strangers'
   * attempts do not touch.
   */
  async login(credentials: PasswordCredentials, options: SignalOptions = {}): Promise<Session> {
    const api = this.#context.api.withSignal(options.signal);
    const username = normalizeUsername(credentials.username);
    const account = await accountIdOf(this.#context.zone, username);
    const deviceTokens = this.#context.deviceTokens;
    const deviceToken = await deviceTokens.get(account);
    const { session, exportKey } = await passwordLogin(api, this.#context.api, account, credentials.password, credentials.label ?? "", deviceToken, options.signal);
    await keepDeviceToken(deviceTokens, session);
    const opened = await this.#withSession(session, options.signal, async () => {
      const masterKey = await this.#openOrCreateMasterKey(api, session.token, account, exportKey);
      return { masterKey, vaultId: await this.#vaultKeyId(api, session.token) };
    });
    return this.#begin(username, session, opened.masterKey, opened.vaultId, "password");
  }

  /**
   * Logs in with one of the account's passkeys (browsers; the zone must have passkeys on, else
   * `PasskeysOffError`), then opens the master key with the passkey's PRF output.
   */
  async loginWithPasskey(login: PasskeyLogin, options: SignalOptions = {}): Promise<Session> {
    const username = normalizeUsername(login.username);
    const account = await accountIdOf(this.#context.zone, username);
    const api = this.#context.api.withSignal(options.signal);
    const deviceTokens = this.#context.deviceTokens;
    const deviceToken = await deviceTokens.get(account);
    const challenge = await api.passkeyLoginStart(account, deviceToken);
    const assertion = await assertPasskey(challenge.publicKey);
    throwIfAborted(options.signal);
    // Not stopped midway, as a password login's last step.
    const session = checkedSession(await this.#context.api.passkeyLoginFinish(challenge.ticket, assertion.credential, login.label ?? "", deviceToken), account);
    await keepDeviceToken(deviceTokens, session);
    const opened = await this.#withSession(session, options.signal, async () => {
      const place = { zone: this.#context.zone, account, name: await passkeyEnvelopeName(assertion.rawCredentialId) };
      const envelope = await required(api.getEnvelope(session.token, place.name), place.name);
      const masterKey = await unwrapMasterKey(await passkeyWrapKey(assertion.prfOutput, place.zone, account), place, envelope.data);
      return { masterKey, vaultId: await this.#vaultKeyId(api, session.token) };
    });
    return this.#begin(username, session, opened.masterKey, opened.vaultId, "passkey");
  }

  /**
   * The session remembered on this device (IndexedDB) after a login, checked live with the
   * server; null when there is none or it has expired or been revoked (then it is forgotten).
   * A resumed session opens the vault but cannot add passkeys without the password.
   */
  async resume(options: SignalOptions = {}): Promise<Session | null> {
    const store = await this.#context.deviceStore("accounts");
    const remembered = await this.#migrated(store, await store.get(REMEMBERED));
    if (remembered === undefined) {
      return null;
    }
    if (remembered.expiresAt <= Date.now()) {
      await store.delete(REMEMBERED);
      return null;
    }
    try {
      await this.#context.api.withSignal(options.signal).sessions(remembered.token);
    } catch (error) {
      if (error instanceof SessionExpiredError) {
        await store.delete(REMEMBERED);
        return null;
      }
      // Offline, the remembered session is used unchecked: its first request once the server
      // answers checks it (and forgets it if it has ended), and the vault answers from its copy.
      if (!(error instanceof NetworkError)) {
        throw error;
      }
    }
    const session = new Session(this.#context, this, {
      username: remembered.username,
      accountId: remembered.accountId,
      sessionId: remembered.sessionId,
      token: remembered.token,
      expiresAt: remembered.expiresAt,
      vault: { id: { version: remembered.vaultVersion, epoch: remembered.vaultEpoch }, key: remembered.vaultKey },
      masterKeyBytes: undefined,
    });
    return this.#started(session, "resume");
  }

  /** The device-only keyring `name` (browsers): chains whose keys never leave this device. */
  deviceKeys(name = "default"): DeviceKeyring {
    return new DeviceKeyring(name, this.#context.zone, this.#context.chains, () => this.#context.deviceStore("device-keys"));
  }

  /** The token to send with the client's requests. Internal. */
  currentToken(): string | undefined {
    return this.#current?.token;
  }

  /**
   * Forgets the session of `token` here and on the device; when it is the current one, tells
   * the listeners why: `logout` (this client ended it), else it ended on the server (expired
   * when its time is up, revoked before). Internal.
   */
  async forget(token: string, how: "logout" | "ended" = "ended"): Promise<void> {
    const current = this.#current;
    if (current?.token === token) {
      this.#current = undefined;
      clearTimeout(this.#expiry);
      const who = { username: current.username, accountId: current.accountId };
      this.#emit(
        how === "logout" ? { type: "logout", ...who } : { type: "ended", ...who, reason: current.expiresAt <= Date.now() ? "expired" : "revoked" },
      );
    }
    if (typeof indexedDB === "undefined") {
      return;
    }
    const store = await this.#context.deviceStore("accounts");
    const remembered = rememberedFields(await store.get(REMEMBERED));
    if (remembered?.token === token) {
      await store.delete(REMEMBERED);
      await store.delete(`vault-copy:${remembered.accountId}`);
    }
  }

  /**
   * Keeps the vault key `state` now uses in the remembered session, when `state` is the session
   * remembered on this device. Internal (the vault, after a password change or when it finds the
   * vault sealed under a newer key).
   */
  async rememberVaultKey(state: SessionState): Promise<void> {
    if (typeof indexedDB === "undefined") {
      return;
    }
    const store = await this.#context.deviceStore("accounts");
    if (rememberedFields(await store.get(REMEMBERED))?.token === state.token) {
      await store.put(REMEMBERED, rememberedRecord(state));
    }
  }

  /**
   * The remembered session in `stored`, version 2; a version 1 record (an older SDK's, holding
   * the master key as an HKDF key) is replaced by a version 2 one holding only the vault key
   * (version 1, the only one that SDK knew) derived from it.
   */
  async #migrated(store: DeviceStore, stored: unknown): Promise<RememberedSession | undefined> {
    const old = rememberedSessionV1(stored);
    if (old === undefined) {
      return rememberedSession(stored);
    }
    const vaultId: VaultKeyId = { version: 1, epoch: 0 };
    const migrated: RememberedSession = {
      v: 2,
      username: old.username,
      accountId: old.accountId,
      sessionId: old.sessionId,
      token: old.token,
      expiresAt: old.expiresAt,
      vaultKey: await vaultKeyFromBase(old.masterKey, this.#context.zone, old.accountId, vaultId),
      vaultVersion: vaultId.version,
      vaultEpoch: vaultId.epoch,
    };
    await store.put(REMEMBERED, migrated);
    return migrated;
  }

  /**
   * Makes a logged-in session current, remembers it on the device where there is IndexedDB (with
   * the vault key `vaultId`, never the master key), and lets the outbox send its account's writes.
   */
  async #begin(username: string, session: NewSession, masterKeyBytes: Bytes, vaultId: VaultKeyId, how: "password" | "passkey"): Promise<Session> {
    const state: SessionState = {
      username,
      accountId: session.account,
      sessionId: session.session_id,
      token: session.token,
      expiresAt: session.expires_at_ms,
      vault: { id: vaultId, key: await vaultKey(masterKeyBytes, this.#context.zone, session.account, vaultId) },
      masterKeyBytes,
    };
    if (session.step_up !== undefined && session.step_up_expires_at_ms !== undefined) {
      state.stepUp = { value: session.step_up, expiresAt: session.step_up_expires_at_ms };
    }
    if (typeof indexedDB !== "undefined") {
      await (await this.#context.deviceStore("accounts")).put(REMEMBERED, rememberedRecord(state));
    }
    return this.#started(new Session(this.#context, this, state), how);
  }

  /** The vault key the account's vault is sealed under now (its envelope's header). */
  async #vaultKeyId(api: AccountApi, token: string): Promise<VaultKeyId> {
    return vaultKeyIdOf((await required(api.getEnvelope(token, VAULT_ENVELOPE), VAULT_ENVELOPE)).data);
  }

  /**
   * The master key from `key-password`. A new account (or one whose registration stopped before
   * its envelopes were written: neither exists) gets a new master key, `key-password` and an
   * empty vault, each written create-only so that two devices finishing at once cannot both win.
   */
  async #openOrCreateMasterKey(api: AccountApi, token: string, account: string, exportKey: Bytes): Promise<Bytes> {
    const zone = this.#context.zone;
    const wrapKey = await passwordWrapKey(exportKey, zone, account);
    const keyPlace = { zone, account, name: PASSWORD_ENVELOPE };
    const wrapped = await api.getEnvelope(token, PASSWORD_ENVELOPE);
    if (wrapped !== undefined) {
      const masterKey = await unwrapMasterKey(wrapKey, keyPlace, wrapped.data);
      if ((await api.getEnvelope(token, VAULT_ENVELOPE)) === undefined) {
        // A first login cut off between the two writes: finish it (create-only, so a vault
        // another device wrote meanwhile wins).
        await this.#createEmptyVault(api, token, account, masterKey).catch((error: unknown) => {
          if (!(error instanceof EnvelopeConflictError)) throw error;
        });
      }
      return masterKey;
    }
    if ((await api.getEnvelope(token, VAULT_ENVELOPE)) !== undefined) {
      throw new EscrowError(PASSWORD_ENVELOPE, "the account has a vault but no key-password envelope");
    }
    const masterKey = newMasterKey();
    try {
      await api.putEnvelope(token, PASSWORD_ENVELOPE, await sealEnvelope(wrapKey, keyPlace, masterKey), 0);
    } catch (error) {
      if (error instanceof EnvelopeConflictError) {
        // Another device set the account up first: use its key.
        return unwrapMasterKey(wrapKey, keyPlace, (await required(api.getEnvelope(token, PASSWORD_ENVELOPE), PASSWORD_ENVELOPE)).data);
      }
      throw error;
    }
    await this.#createEmptyVault(api, token, account, masterKey);
    return masterKey;
  }

  /** Writes an empty vault, create-only, under the first vault key. */
  async #createEmptyVault(api: AccountApi, token: string, account: string, masterKey: Bytes): Promise<void> {
    const zone = this.#context.zone;
    const vaultPlace = { zone, account, name: VAULT_ENVELOPE };
    const key = await vaultKey(masterKey, zone, account, FIRST_VAULT_KEY);
    const emptyVault = await sealVault(key, FIRST_VAULT_KEY, vaultPlace, encodeVault(new Map()));
    await api.putEnvelope(token, VAULT_ENVELOPE, emptyVault, 0);
  }

  /**
   * Runs `open` with a new session; if it fails or `signal` stops it, ends that session rather
   * than leave it dangling (with a request no signal stops).
   */
  async #withSession<T>(session: NewSession, signal: AbortSignal | undefined, open: () => Promise<T>): Promise<T> {
    try {
      const opened = await open();
      throwIfAborted(signal);
      return opened;
    } catch (error) {
      // The session is useless without its keys; a failure to end it leaves it to expire.
      await this.#context.api.logout(session.token).catch(() => undefined);
      throw error;
    }
  }
}

/** Internal state of a session. */
export interface SessionState {
  username: string;
  accountId: string;
  sessionId: string;
  token: string;
  expiresAt: number;
  /** The vault key the session uses (non-extractable AES-GCM), and which one it is. */
  vault: { id: VaultKeyId; key: CryptoKey };
  /** The master key's bytes, when the session began with a login (not when resumed). */
  masterKeyBytes: Bytes | undefined;
  /** The session's step-up (memory only), from its login or a later proof. */
  stepUp?: StepUp;
}

/** A logged-in account: its vault, passkeys, password and sessions. */
export class Session {
  readonly username: string;
  readonly accountId: string;
  readonly sessionId: string;
  /** When the session ends (ms since the epoch); it is not extended by use. */
  readonly expiresAt: number;
  readonly vault: Vault;
  readonly #context: AccountsContext;
  readonly #accounts: Accounts;
  readonly #state: SessionState;

  /** Internal: sessions come from `Blindstore.accounts`. */
  constructor(context: AccountsContext, accounts: Accounts, state: SessionState) {
    this.username = state.username;
    this.accountId = state.accountId;
    this.sessionId = state.sessionId;
    this.expiresAt = state.expiresAt;
    this.#context = context;
    this.#accounts = accounts;
    this.#state = state;
    const copies = typeof indexedDB === "undefined" ? undefined : () => context.deviceStore("accounts");
    this.vault = new Vault(context.api, { zone: context.zone, account: state.accountId, name: VAULT_ENVELOPE }, state, copies, () =>
      accounts.rememberVaultKey(state),
    );
  }

  /** The account routes, stopped by `signal` when there is one. */
  #api(signal: AbortSignal | undefined): AccountApi {
    return this.#context.api.withSignal(signal);
  }

  /** The bearer token (keep it secret: it is the session). */
  get token(): string {
    return this.#state.token;
  }

  /**
   * Proves the password or a passkey again for this session now (docs/accounts.md, "Step-up"),
   * whether or not it has a live step-up: what cannot be undone is then allowed for the next
   * minutes without asking again. The proof also gives back the master key a resumed session
   * lacks. A wrong password or a passkey the server refuses: `InvalidLoginError`; a cancelled
   * passkey ceremony: `PasskeyError`. Returns when the step-up expires (server time, ms).
   */
  async stepUp(proof: FreshProof): Promise<{ expiresAt: number }> {
    checkedProof(proof);
    const api = this.#api(proof.signal);
    const stepUp = proof.password !== undefined ? (await this.#prove(api, proof.password)).stepUp : await this.#provePasskey(api);
    return { expiresAt: stepUp.expiresAt };
  }

  /**
   * Adds a passkey (browsers): registers a WebAuthn credential with the PRF extension and wraps
   * the master key under its PRF output. It needs the master key's bytes and a step-up (a
   * password or passkey proven for this session within the last minutes, docs/accounts.md): a
   * session that began with a login minutes ago has both; otherwise pass a `FreshProof`
   * (`password`, or `passkey: true`) or get `ReauthenticationRequiredError`.
   */
  async addPasskey(options: { label?: string } & FreshProof = {}): Promise<{ id: string }> {
    const what = "adding a passkey";
    const api = this.#api(options.signal);
    const stepUp = await this.#freshStepUp(api, what, options, true);
    const masterKey = this.#state.masterKeyBytes;
    if (masterKey === undefined) {
      throw new ReauthenticationRequiredError(what);
    }
    const challenge = await api.passkeyRegisterStart(this.token, stepUp);
    const created = await createPasskey(challenge.publicKey, this.username);
    const record = await api.passkeyRegisterFinish(this.token, challenge.ticket, created.credential, options.label ?? "");
    const place = { zone: this.#context.zone, account: this.accountId, name: await passkeyEnvelopeName(created.rawCredentialId) };
    const sealed = await sealEnvelope(await passkeyWrapKey(created.prfOutput, place.zone, place.account), place, masterKey);
    try {
      await api.putEnvelope(this.token, place.name, sealed, 0);
    } catch (error) {
      // Without its envelope the passkey could log in but not open anything (no signal stops this).
      await this.#context.api.removePasskey(this.token, stepUp, record.passkey_id).catch(() => undefined);
      throw error;
    }
    return { id: record.passkey_id };
  }

  /**
   * The account's passkeys, oldest first: what `changePassword` and `logoutAll` can remove in
   * the same step.
   */
  async passkeys(options: SignalOptions = {}): Promise<PasskeyInfo[]> {
    return (await this.#api(options.signal).passkeys(this.token)).map(passkeyInfo);
  }

  /** Removes a passkey and its envelope; needs a step-up, as `addPasskey` (without the master key). */
  async removePasskey(id: string, options: FreshProof = {}): Promise<void> {
    const name = await passkeyEnvelopeNameOf(id);
    const api = this.#api(options.signal);
    const stepUp = await this.#freshStepUp(api, "removing a passkey", options);
    await api.removePasskey(this.token, stepUp, id);
    await this.#deleteEnvelopes(api, [name], stepUp);
  }

  /**
   * Changes the password: `oldPassword` is proven to the server (a step-up of this session, which
   * also opens the master key); the vault is sealed again under the next vault key (so a vault
   * key kept by another device, or by a device that lost the session, opens nothing written from
   * now on); then the new OPAQUE record and the master key wrapped under the new password
   * replace the old ones in one step (if another device changed the password meanwhile:
   * `EnvelopeConflictError`, the password is unchanged — the vault stays sealed under its new
   * key). By default every other session of the account ends. The passkeys named in
   * `removePasskeys` are removed in the same step (then their envelopes); the answer lists the
   * passkeys the account keeps, which a password change does not end: show them to the user.
   */
  async changePassword(oldPassword: string, newPassword: string, options: ChangePasswordOptions = {}): Promise<CredentialsChange> {
    const revokeOtherSessions = options.revokeOtherSessions ?? true;
    const removePasskeys = [...(options.removePasskeys ?? [])];
    const envelopeNames = await Promise.all(removePasskeys.map(passkeyEnvelopeNameOf));
    const api = this.#api(options.signal);
    const { zone } = this.#context;
    const proof = await this.#prove(api, oldPassword);
    // First the vault: had the password changed first, a failure in between would leave the
    // vault readable by the keys of before.
    await this.vault.reseal(proof.masterKey, options);
    const opaque = await loadOpaque();
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password: newPassword });
    // With the device token: held to this device's limit, not the one strangers share.
    const registrationResponse = await api.registerStart(this.accountId, registrationRequest, await this.#context.deviceTokens.get(this.accountId));
    const { registrationRecord, exportKey } = opaqueStep(() =>
      opaque.client.finishRegistration({ clientRegistrationState, registrationResponse, password: newPassword }),
    );
    const keyPlace = { zone, account: this.accountId, name: PASSWORD_ENVELOPE };
    const sealed = await sealEnvelope(await passwordWrapKey(fromBase64Url(exportKey), zone, this.accountId), keyPlace, proof.masterKey);
    const envelope = { name: PASSWORD_ENVELOPE, data: sealed, ifVersion: proof.version };
    const changed = await api.changePassword(this.token, proof.stepUp.value, registrationRecord, envelope, revokeOtherSessions, removePasskeys);
    // The passkeys are gone; their envelopes now open nothing anyone can log in to fetch.
    await this.#deleteEnvelopes(api, envelopeNames, proof.stepUp.value);
    return credentialsChange(changed);
  }

  /**
   * Ends this session (and forgets it on this device). The account's writes still queued in the
   * client's outbox are kept for its next login here, or discarded (`options.queuedWrites`); they
   * are never sent with another account's session.
   */
  async logout(options: LogoutOptions = {}): Promise<void> {
    await this.#ending(() => this.#api(options.signal).logout(this.token), options.queuedWrites ?? "keep");
  }

  /**
   * Ends every session of the account, this one included, and removes the passkeys named in
   * `removePasskeys` in the same step (their envelopes first, while this session can still delete
   * them); queued writes as in `logout`. Needs a step-up, as `removePasskey`. Returns the passkeys
   * the account keeps: they can still log in. A session that has already ended cannot end the
   * others: `SessionExpiredError` (forgotten here all the same).
   */
  async logoutAll(options: LogoutOptions & FreshProof & { removePasskeys?: string[] } = {}): Promise<CredentialsChange> {
    const removePasskeys = [...(options.removePasskeys ?? [])];
    const envelopeNames = await Promise.all(removePasskeys.map(passkeyEnvelopeNameOf));
    const api = this.#api(options.signal);
    const stepUp = await this.#freshStepUp(api, "ending every session", options);
    let changed: CredentialsChanged | undefined;
    await this.#ending(async () => {
      await this.#deleteEnvelopes(api, envelopeNames, stepUp);
      changed = await api.logoutAll(this.token, stepUp, removePasskeys);
    }, options.queuedWrites ?? "keep");
    if (changed === undefined) {
      throw new SessionExpiredError("the session had ended already: log in again to end the others", undefined);
    }
    return credentialsChange(changed);
  }

  /**
   * Deletes the account: its record, envelopes (the vault), passkeys and sessions, and its writes
   * queued on this device (and this device's token for it). Chains are not touched; their keys,
   * if they were only in the vault, are gone. Needs a step-up, as `removePasskey`.
   */
  async deleteAccount(options: FreshProof = {}): Promise<void> {
    const api = this.#api(options.signal);
    const stepUp = await this.#freshStepUp(api, "deleting the account", options);
    let deleted = false;
    await this.#ending(async () => {
      await api.deleteAccount(this.token, stepUp);
      deleted = true;
    }, "discard");
    // A session that had ended deleted nothing: the device token still serves the account.
    if (deleted) {
      await this.#context.deviceTokens.delete(this.accountId);
    }
  }

  /**
   * Runs a request that ends this session, then forgets it (an already dead session counts as
   * ended), then discards the account's queued writes if asked. The account's writes are held
   * from the start: none is sent once the session is ending (appends need no session, so a send
   * already under way would otherwise go out after the logout); they go again if the request
   * fails and the session stays.
   */
  async #ending(request: () => Promise<void>, queuedWrites: "keep" | "discard"): Promise<void> {
    const outbox = this.#context.outbox;
    await outbox.hold(this.accountId);
    try {
      await request();
    } catch (error) {
      if (!(error instanceof SessionExpiredError)) {
        outbox.release(this.accountId);
        outbox.flush();
        throw error;
      }
    }
    await this.#accounts.forget(this.token, "logout");
    if (queuedWrites === "discard") {
      await this.#context.outbox.discard(this.accountId);
    }
  }

  /**
   * A live step-up of this session — its own (from the login, or a proof minutes ago), else one
   * from proving `proof` — and, when `masterKey` is asked for, the master key's bytes held too
   * (the same proof opens it).
   */
  async #freshStepUp(api: AccountApi, what: string, proof: FreshProof, masterKey = false): Promise<string> {
    checkedProof(proof, true);
    const live = this.#state.stepUp;
    if (live !== undefined && live.expiresAt - STEP_UP_MARGIN_MS > Date.now() && (!masterKey || this.#state.masterKeyBytes !== undefined)) {
      return live.value;
    }
    if (proof.password !== undefined) {
      return (await this.#prove(api, proof.password)).stepUp.value;
    }
    if (proof.passkey === true) {
      return (await this.#provePasskey(api)).value;
    }
    throw new ReauthenticationRequiredError(what);
  }

  /**
   * Proves one of the account's passkeys as a step-up of this session (`passkeys/login/start`,
   * the browser's assertion without its PRF results, then `passkeys/step-up`), and opens the
   * master key with the assertion's PRF output when the session lacks it.
   */
  async #provePasskey(api: AccountApi): Promise<StepUp> {
    const zone = this.#context.zone;
    const challenge = await api.passkeyLoginStart(this.accountId, await this.#context.deviceTokens.get(this.accountId));
    const assertion = await assertPasskey(challenge.publicKey);
    const stepUp = await api.passkeyStepUp(this.token, challenge.ticket, assertion.credential);
    this.#state.stepUp = stepUp;
    if (this.#state.masterKeyBytes === undefined) {
      const place = { zone, account: this.accountId, name: await passkeyEnvelopeName(assertion.rawCredentialId) };
      const envelope = await required(api.getEnvelope(this.token, place.name), place.name);
      this.#state.masterKeyBytes = await unwrapMasterKey(await passkeyWrapKey(assertion.prfOutput, zone, this.accountId), place, envelope.data);
    }
    return stepUp;
  }

  /** Deletes the envelopes `names` that exist (a removed passkey's), with the step-up it needs. */
  async #deleteEnvelopes(api: AccountApi, names: string[], stepUp: string): Promise<void> {
    for (const name of names) {
      const envelope = await api.getEnvelope(this.token, name);
      if (envelope !== undefined) {
        await api.deleteEnvelope(this.token, stepUp, name, envelope.version);
      }
    }
  }

  /**
   * Proves `password` to the server as a step-up of this session (no new session is opened), and
   * opens the master key with the login's export key. A wrong password: `InvalidLoginError`.
   */
  async #prove(api: AccountApi, password: string): Promise<{ masterKey: Bytes; version: number; stepUp: StepUp }> {
    const zone = this.#context.zone;
    const deviceToken = await this.#context.deviceTokens.get(this.accountId);
    const { exportKey, stepUp } = await passwordStepUp(api, this.accountId, password, this.token, deviceToken);
    this.#state.stepUp = stepUp;
    const current = await required(api.getEnvelope(this.token, PASSWORD_ENVELOPE), PASSWORD_ENVELOPE);
    const place = { zone, account: this.accountId, name: PASSWORD_ENVELOPE };
    const masterKey = await unwrapMasterKey(await passwordWrapKey(exportKey, zone, this.accountId), place, current.data);
    this.#state.masterKeyBytes ??= masterKey;
    return { masterKey, version: current.version, stepUp };
  }
}

/**
 * A small JSON map kept encrypted in the account (the `vault` envelope): app settings, chain
 * keys. Every call reads the server's current copy; writes are compare-and-set with retries, so
 * two devices writing different names both keep their change.
 */
export class Vault {
  readonly #api: AccountApi;
  readonly #place: EnvelopePlace;
  readonly #state: SessionState;
  /** Where the last vault read is kept (sealed, as the server sent it), in browsers. */
  readonly #copies: (() => Promise<DeviceStore>) | undefined;
  /** That store, opened on first use. */
  #copyStore: Promise<DeviceStore> | undefined;
  /** Keeps the session's new vault key on the device, when it is the remembered session. */
  readonly #keyChanged: () => Promise<void>;

  /** Internal: `session.vault`. */
  constructor(api: AccountApi, place: EnvelopePlace, state: SessionState, copies: (() => Promise<DeviceStore>) | undefined, keyChanged: () => Promise<void>) {
    this.#api = api;
    this.#place = place;
    this.#state = state;
    this.#copies = copies;
    this.#keyChanged = keyChanged;
  }

  /**
   * The value stored under `name`, or undefined. Any envelope that does not open is an
   * `EscrowError`; a vault sealed again under a newer key (a password change) since a resumed
   * session was remembered, a `ReauthenticationRequiredError`. Offline (a `NetworkError`), in
   * browsers, the vault as last read on this device answers: still sealed under the account's
   * key, opened and checked the same way.
   */
  async get<T = unknown>(name: string, options: SignalOptions = {}): Promise<T | undefined> {
    const { entries } = await this.#read(this.#api.withSignal(options.signal), true);
    return entries.get(name) as T | undefined;
  }

  /** Stores `value` (JSON) under `name`. */
  async put(name: string, value: unknown, options: SignalOptions = {}): Promise<void> {
    const text = JSON.stringify(value);
    if (text === undefined) {
      throw new InvalidInputError("the value has no JSON form");
    }
    const copy: unknown = JSON.parse(text);
    await this.#update(this.#api.withSignal(options.signal), (entries) => entries.set(name, copy));
  }

  /** Removes `name` (nothing happens when it is absent). */
  async delete(name: string, options: SignalOptions = {}): Promise<void> {
    await this.#update(this.#api.withSignal(options.signal), (entries) => entries.delete(name));
  }

  /** All names in the vault. */
  async names(options: SignalOptions = {}): Promise<string[]> {
    return [...(await this.#read(this.#api.withSignal(options.signal))).entries.keys()];
  }

  /**
   * Seals the vault again, unchanged, under the vault key after the one it is sealed under
   * (derived from `masterKey`); from then on the session uses that key. Internal (a password
   * change).
   */
  async reseal(masterKey: Bytes, options: SignalOptions = {}): Promise<void> {
    this.#state.masterKeyBytes ??= masterKey;
    await this.#update(this.#api.withSignal(options.signal), () => undefined, true);
  }

  /**
   * Reads, changes and writes the vault (compare-and-set, retried when another device wrote
   * first); `nextKey` seals it under the vault key after the one it was read under. A writer
   * keeps the key the vault is sealed under: only a password change moves it on.
   */
  async #update(api: AccountApi, change: (entries: Map<string, unknown>) => void, nextKey = false): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const { entries, version, id } = await this.#read(api);
      change(entries);
      const sealedId = nextKey ? nextVaultKeyId(id) : id;
      const key = await this.#keyFor(sealedId);
      const sealed = await sealVault(key, sealedId, this.#place, encodeVault(entries));
      let written: number;
      try {
        written = await api.putEnvelope(this.#state.token, this.#place.name, sealed, version);
      } catch (error) {
        if (!(error instanceof EnvelopeConflictError) || attempt >= VAULT_ATTEMPTS) {
          throw error;
        }
        continue;
      }
      if (!sameVaultKey(sealedId, this.#state.vault.id)) {
        this.#state.vault = { id: sealedId, key };
        await this.#keyChanged();
      }
      await this.#keepCopy({ data: sealed, version: written });
      return;
    }
  }

  async #read(api: AccountApi, offline = false): Promise<{ entries: Map<string, unknown>; version: number; id: VaultKeyId }> {
    const copyName = `vault-copy:${this.#place.account}`;
    let envelope: StoredEnvelope;
    let fromCopy = false;
    try {
      envelope = await required(api.getEnvelope(this.#state.token, this.#place.name), this.#place.name);
    } catch (error) {
      const copy = offline && error instanceof NetworkError ? await (await this.#copyDb())?.get(copyName) : undefined;
      if (copy === undefined) {
        throw error;
      }
      envelope = copy as StoredEnvelope;
      fromCopy = true;
    }
    const id = vaultKeyIdOf(envelope.data);
    const key = await this.#keyFor(id);
    const plaintext = await openEnvelope(key, this.#place, envelope.data);
    if (!sameVaultKey(id, this.#state.vault.id)) {
      // A vault sealed under a newer key than the session's (a password change on another device
      // that kept this session): use that key from now on.
      this.#state.vault = { id, key };
      await this.#keyChanged();
    }
    if (!fromCopy) {
      await this.#keepCopy({ data: envelope.data, version: envelope.version });
    }
    return { entries: decodeVault(plaintext), version: envelope.version, id };
  }

  /**
   * The vault key `id`: the session's own, or, for a newer one, derived from the master key when
   * the session holds its bytes. Never an older key than the session's: a server that serves a
   * vault sealed before the last password change this session knows of is caught.
   */
  async #keyFor(id: VaultKeyId): Promise<CryptoKey> {
    const current = this.#state.vault;
    if (sameVaultKey(id, current.id)) {
      return current.key;
    }
    if (olderVaultKey(id, current.id)) {
      throw new EscrowError(this.#place.name, "the vault is sealed under an older key than this session has seen (served from before a password change)");
    }
    if (this.#state.masterKeyBytes === undefined) {
      throw new ReauthenticationRequiredError("opening the vault, sealed again under a new key since this session was remembered (a password change),");
    }
    return vaultKey(this.#state.masterKeyBytes, this.#place.zone, this.#place.account, id);
  }

  async #keepCopy(envelope: StoredEnvelope): Promise<void> {
    await (await this.#copyDb())?.put(`vault-copy:${this.#place.account}`, { data: envelope.data, version: envelope.version });
  }

  #copyDb(): Promise<DeviceStore> | undefined {
    if (this.#copies !== undefined) {
      this.#copyStore ??= this.#copies();
    }
    return this.#copyStore;
  }
}

/** An OPAQUE login: the session and the export key. A wrong password fails on the client, like an unknown account on the server. */
async function passwordLogin(
  api: AccountApi,
  finishApi: AccountApi,
  account: string,
  password: string,
  label: string,
  deviceToken: string | undefined,
  signal: AbortSignal | undefined,
): Promise<{ session: NewSession; exportKey: Bytes }> {
  const proof = await passwordProof(api, account, password, deviceToken);
  throwIfAborted(signal);
  // The last step is not stopped midway: the client must learn the session it makes, to end it
  // when the caller has given up meanwhile.
  const session = checkedSession(await finishApi.loginFinish(proof.ticket, proof.finishLoginRequest, label, deviceToken), account);
  return { session, exportKey: proof.exportKey };
}

/**
 * The client's side of an OPAQUE login up to its last message: the server's ticket, the
 * message that finishes the login (or a step-up), and the export key. A wrong password fails
 * here, on the client, with the same error as the server's for an unknown account, on purpose.
 */
async function passwordProof(
  api: AccountApi,
  account: string,
  password: string,
  deviceToken: string | undefined,
): Promise<{ ticket: string; finishLoginRequest: string; exportKey: Bytes }> {
  const opaque = await loadOpaque();
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const { loginResponse, ticket } = await api.loginStart(account, startLoginRequest, deviceToken);
  const finished = opaqueStep(() => opaque.client.finishLogin({ clientLoginState, loginResponse, password }));
  if (finished === undefined) {
    throw new InvalidLoginError("wrong username or password", undefined);
  }
  return { ticket, finishLoginRequest: finished.finishLoginRequest, exportKey: fromBase64Url(finished.exportKey) };
}

/**
 * Proves `password` for the session `token` (OPAQUE `login/start`, then `step-up` in place of
 * `login/finish`): the export key and the step-up. A wrong password fails on the client, like a
 * login's.
 */
async function passwordStepUp(
  api: AccountApi,
  account: string,
  password: string,
  token: string,
  deviceToken: string | undefined,
): Promise<{ exportKey: Bytes; stepUp: StepUp }> {
  const proof = await passwordProof(api, account, password, deviceToken);
  const stepUp = await api.stepUp(token, proof.ticket, proof.finishLoginRequest);
  return { exportKey: proof.exportKey, stepUp };
}

type Opaque = typeof import("@serenity-kit/opaque");
let opaqueModule: Promise<Opaque> | undefined;

/**
 * The OPAQUE library (its WASM is about 160 KB gzipped), loaded on the first account operation
 * that needs it: bundlers put it in a chunk of its own, so a page that only reads never fetches
 * it. A failed load (the network) is tried again on the next call.
 */
function loadOpaque(): Promise<Opaque> {
  opaqueModule ??= (async () => {
    let module: Opaque;
    try {
      module = await import("@serenity-kit/opaque");
    } catch (error) {
      throw new NetworkError(`the OPAQUE module did not load: ${messageOf(error)}`, { cause: error });
    }
    try {
      await module.ready;
    } catch (error) {
      // Chiefly a Content-Security-Policy without 'wasm-unsafe-eval': no retry will help.
      throw new UnsupportedEnvironmentError(
        `this page cannot run OPAQUE's WebAssembly (${messageOf(error)}); a Content-Security-Policy needs 'wasm-unsafe-eval' in script-src`,
        { cause: error },
      );
    }
    return module;
  })();
  return opaqueModule.catch((error: unknown) => {
    opaqueModule = undefined;
    throw error;
  });
}

function messageOf(error: unknown): string {
  return (error as Error)?.message ?? String(error);
}

/** Throws `AbortedError` when `signal` has stopped. */
function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new AbortedError({ cause: signal.reason });
  }
}

/** Runs an OPAQUE client step; the library throws only on messages it cannot parse. */
function opaqueStep<T>(step: () => T): T {
  try {
    return step();
  } catch (error) {
    throw new VerificationError("malformed", `the server's OPAQUE message does not parse: ${(error as Error)?.message ?? String(error)}`);
  }
}

/** Keeps the device token a login returned (renewed at each login) for the next ones. */
async function keepDeviceToken(deviceTokens: DeviceTokens, session: NewSession): Promise<void> {
  if (session.device_token !== undefined) {
    await deviceTokens.put(session.account, session.device_token);
  }
}

/** Refuses a proof naming both the password and a passkey; with `optional`, one naming neither is allowed. */
function checkedProof(proof: FreshProof, optional = false): void {
  const given = Number(proof.password !== undefined) + Number(proof.passkey === true);
  if (given > 1 || (given === 0 && !optional)) {
    throw new InvalidInputError("a fresh proof is the password or a passkey: give exactly one");
  }
}

function passkeyInfo(passkey: PasskeyRecord): PasskeyInfo {
  return {
    id: passkey.passkey_id,
    ...(passkey.label === "" ? {} : { label: passkey.label }),
    createdAt: passkey.created_at_ms,
    ...(passkey.last_used_ms === 0 ? {} : { lastUsedAt: passkey.last_used_ms }),
  };
}

function credentialsChange(changed: CredentialsChanged): CredentialsChange {
  return { revoked: changed.revoked, passkeys: changed.passkeys.map(passkeyInfo) };
}

/** The envelope name of the passkey `id` (base64url, as listed); anything else is refused before anything is sent. */
async function passkeyEnvelopeNameOf(id: string): Promise<string> {
  let rawId: Bytes;
  try {
    rawId = fromBase64Url(id);
  } catch {
    throw new InvalidInputError("a passkey id is base64url");
  }
  return passkeyEnvelopeName(rawId);
}

function checkedSession(session: NewSession, account: string): NewSession {
  if (session.account !== account) {
    throw new VerificationError("malformed", "the server opened a session for another account");
  }
  return session;
}

async function required(envelope: Promise<StoredEnvelope | undefined>, name: string): Promise<StoredEnvelope> {
  const found = await envelope;
  if (found === undefined) {
    throw new EscrowError(name, "the account has no such envelope");
  }
  return found;
}

/** The session record to remember on the device for `state`: its vault key, never the master key. */
function rememberedRecord(state: SessionState): RememberedSession {
  return {
    v: 2,
    username: state.username,
    accountId: state.accountId,
    sessionId: state.sessionId,
    token: state.token,
    expiresAt: state.expiresAt,
    vaultKey: state.vault.key,
    vaultVersion: state.vault.id.version,
    vaultEpoch: state.vault.id.epoch,
  };
}

/** The fields every remembered session record has, whatever its version. */
function rememberedFields(value: unknown): { token: string; accountId: string } | undefined {
  const stored = value as { token?: unknown; accountId?: unknown } | undefined;
  return typeof stored?.token === "string" && typeof stored.accountId === "string" ? { token: stored.token, accountId: stored.accountId } : undefined;
}

function hasSessionFields(stored: Partial<RememberedSession> | Partial<RememberedSessionV1>): boolean {
  return (
    typeof stored.token === "string" &&
    typeof stored.username === "string" &&
    typeof stored.accountId === "string" &&
    typeof stored.sessionId === "string" &&
    typeof stored.expiresAt === "number"
  );
}

function rememberedSession(value: unknown): RememberedSession | undefined {
  const stored = value as Partial<RememberedSession> | undefined;
  if (
    stored?.v !== 2 ||
    !hasSessionFields(stored) ||
    !(stored.vaultKey instanceof CryptoKey) ||
    (stored.vaultVersion !== 1 && stored.vaultVersion !== 2) ||
    typeof stored.vaultEpoch !== "number"
  ) {
    return undefined;
  }
  return stored as RememberedSession;
}

function rememberedSessionV1(value: unknown): RememberedSessionV1 | undefined {
  const stored = value as Partial<RememberedSessionV1> | undefined;
  if (stored?.v !== 1 || !hasSessionFields(stored) || !(stored.masterKey instanceof CryptoKey)) {
    return undefined;
  }
  return stored as RememberedSessionV1;
}
