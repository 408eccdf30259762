/**
 * Accounts (`Blindstore.accounts`): register and log in with a username and password (OPAQUE,
 * the password never leaves the client) or a passkey, keep a small encrypted vault in the
 * account, and remember the session on this device. docs/accounts.md is the server's side;
 * docs/sdk-format.md, "Accounts and key escrow", the formats.
 *
 * Key hierarchy: a random 32-byte master key per account; the vault is sealed under a key
 * derived from it; the master key itself is kept by the server only wrapped — under a key
 * derived from the OPAQUE export key (`key-password`) and under each passkey's PRF output
 * (`passkey-…`). A session holds the master key as a non-extractable HKDF key, plus its bytes
 * when it began with a password or passkey (needed to wrap it anew); a resumed session holds
 * only the non-extractable key.
 */

import * as opaque from "@serenity-kit/opaque";
import { type AccountApi, type NewSession, type StoredEnvelope } from "./account-api.js";
import { type Bytes, fromBase64Url } from "./bytes.js";
import type { DeviceStore } from "./device-store.js";
import { type ChainOpener, DeviceKeyring } from "./device-keys.js";
import {
  EnvelopeConflictError,
  EscrowError,
  InvalidInputError,
  InvalidLoginError,
  NetworkError,
  ReauthenticationRequiredError,
  SessionExpiredError,
  VerificationError,
} from "./errors.js";
import {
  type EnvelopePlace,
  PASSWORD_ENVELOPE,
  VAULT_ENVELOPE,
  accountIdOf,
  decodeVault,
  encodeVault,
  importMasterKey,
  newMasterKey,
  normalizeUsername,
  openEnvelope,
  passkeyEnvelopeName,
  passkeyWrapKey,
  passwordWrapKey,
  sealEnvelope,
  unwrapMasterKey,
  vaultKey,
} from "./escrow.js";
import { assertPasskey, createPasskey } from "./passkeys.js";

/** How often a vault write re-reads and retries after another device wrote first. */
const VAULT_ATTEMPTS = 8;
/** The key of the remembered session in the device store. */
const REMEMBERED = "session";

export interface PasswordCredentials {
  username: string;
  password: string;
  /** A label for the session (e.g. the device), shown in session lists; up to 128 bytes. */
  label?: string;
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
}

export interface ChangePasswordOptions {
  /** End every other session of the account in the same step (default true). */
  revokeOtherSessions?: boolean;
}

/** What `Accounts` needs of its client (client.ts). Internal. */
export interface AccountsContext {
  api: AccountApi;
  zone: string;
  chains: ChainOpener;
  /** Opens the device store of `purpose` for this deployment and zone. */
  deviceStore(purpose: string): Promise<DeviceStore>;
}

/** The remembered session as stored on the device (version 1): a session without the master key's bytes. */
type RememberedSession = { v: 1 } & Omit<SessionState, "masterKeyBytes">;

/** The account side of a client. One session at a time; its token goes with the client's requests. */
export class Accounts {
  readonly #context: AccountsContext;
  #current: Session | undefined;

  /** Internal: `Blindstore.accounts`. */
  constructor(context: AccountsContext) {
    this.#context = context;
  }

  /** The current session, if any. */
  get session(): Session | undefined {
    return this.#current;
  }

  /**
   * Registers `username` (409 → `AccountExistsError`) and logs in: the new account gets its
   * master key, its `key-password` envelope and an empty vault.
   */
  async register(credentials: PasswordCredentials): Promise<Session> {
    const account = await accountIdOf(this.#context.zone, credentials.username);
    await opaque.ready;
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password: credentials.password });
    const registrationResponse = await this.#context.api.registerStart(account, registrationRequest);
    const { registrationRecord } = opaqueStep(() =>
      opaque.client.finishRegistration({ clientRegistrationState, registrationResponse, password: credentials.password }),
    );
    await this.#context.api.registerFinish(account, registrationRecord);
    return this.login(credentials);
  }

  /**
   * Logs in with a password. A wrong password and an unknown username are the same
   * `InvalidLoginError`. An account whose envelopes do not open is an `EscrowError` (and the new
   * session is ended).
   */
  async login(credentials: PasswordCredentials): Promise<Session> {
    const username = normalizeUsername(credentials.username);
    const account = await accountIdOf(this.#context.zone, username);
    const { session, exportKey } = await passwordLogin(this.#context.api, account, credentials.password, credentials.label ?? "");
    const masterKey = await this.#withSession(session, () => this.#openOrCreateMasterKey(session.token, account, exportKey));
    return this.#begin(username, session, masterKey);
  }

  /**
   * Logs in with one of the account's passkeys (browsers; the zone must have passkeys on, else
   * `PasskeysOffError`), then opens the master key with the passkey's PRF output.
   */
  async loginWithPasskey(login: PasskeyLogin): Promise<Session> {
    const username = normalizeUsername(login.username);
    const account = await accountIdOf(this.#context.zone, username);
    const api = this.#context.api;
    const challenge = await api.passkeyLoginStart(account);
    const assertion = await assertPasskey(challenge.publicKey);
    const session = checkedSession(await api.passkeyLoginFinish(challenge.ticket, assertion.credential, login.label ?? ""), account);
    const masterKey = await this.#withSession(session, async () => {
      const place = { zone: this.#context.zone, account, name: await passkeyEnvelopeName(assertion.rawCredentialId) };
      const envelope = await required(api.getEnvelope(session.token, place.name), place.name);
      return unwrapMasterKey(await passkeyWrapKey(assertion.prfOutput, place.zone, account), place, envelope.data);
    });
    return this.#begin(username, session, masterKey);
  }

  /**
   * The session remembered on this device (IndexedDB) after a login, checked live with the
   * server; null when there is none or it has expired or been revoked (then it is forgotten).
   * A resumed session opens the vault but cannot add passkeys without the password.
   */
  async resume(): Promise<Session | null> {
    const store = await this.#context.deviceStore("accounts");
    const remembered = rememberedSession(await store.get(REMEMBERED));
    if (remembered === undefined) {
      return null;
    }
    if (remembered.expiresAt <= Date.now()) {
      await store.delete(REMEMBERED);
      return null;
    }
    try {
      await this.#context.api.sessions(remembered.token);
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
      masterKey: remembered.masterKey,
      masterKeyBytes: undefined,
    });
    this.#current = session;
    return session;
  }

  /** The device-only keyring `name` (browsers): chains whose keys never leave this device. */
  deviceKeys(name = "default"): DeviceKeyring {
    return new DeviceKeyring(name, this.#context.chains, () => this.#context.deviceStore("device-keys"));
  }

  /** The token to send with the client's requests. Internal. */
  currentToken(): string | undefined {
    return this.#current?.token;
  }

  /** Forgets `session` here and on the device, when it is the current one. Internal. */
  async forget(token: string): Promise<void> {
    if (this.#current?.token === token) {
      this.#current = undefined;
    }
    if (typeof indexedDB === "undefined") {
      return;
    }
    const store = await this.#context.deviceStore("accounts");
    const remembered = rememberedSession(await store.get(REMEMBERED));
    if (remembered?.token === token) {
      await store.delete(REMEMBERED);
      await store.delete(`vault-copy:${remembered.accountId}`);
    }
  }

  /** Makes a logged-in session current and remembers it on the device where there is IndexedDB. */
  async #begin(username: string, session: NewSession, masterKeyBytes: Bytes): Promise<Session> {
    const masterKey = await importMasterKey(masterKeyBytes);
    const state: SessionState = {
      username,
      accountId: session.account,
      sessionId: session.session_id,
      token: session.token,
      expiresAt: session.expires_at_ms,
      masterKey,
      masterKeyBytes,
    };
    if (typeof indexedDB !== "undefined") {
      const remembered: RememberedSession = {
        v: 1,
        username,
        accountId: state.accountId,
        sessionId: state.sessionId,
        token: state.token,
        expiresAt: state.expiresAt,
        masterKey,
      };
      await (await this.#context.deviceStore("accounts")).put(REMEMBERED, remembered);
    }
    this.#current = new Session(this.#context, this, state);
    return this.#current;
  }

  /**
   * The master key from `key-password`. A new account (or one whose registration stopped before
   * its envelopes were written: neither exists) gets a new master key, `key-password` and an
   * empty vault, each written create-only so that two devices finishing at once cannot both win.
   */
  async #openOrCreateMasterKey(token: string, account: string, exportKey: Bytes): Promise<Bytes> {
    const api = this.#context.api;
    const zone = this.#context.zone;
    const wrapKey = await passwordWrapKey(exportKey, zone, account);
    const keyPlace = { zone, account, name: PASSWORD_ENVELOPE };
    const wrapped = await api.getEnvelope(token, PASSWORD_ENVELOPE);
    if (wrapped !== undefined) {
      const masterKey = await unwrapMasterKey(wrapKey, keyPlace, wrapped.data);
      if ((await api.getEnvelope(token, VAULT_ENVELOPE)) === undefined) {
        // A first login cut off between the two writes: finish it (create-only, so a vault
        // another device wrote meanwhile wins).
        await this.#createEmptyVault(token, account, masterKey).catch((error: unknown) => {
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
    await this.#createEmptyVault(token, account, masterKey);
    return masterKey;
  }

  /** Writes an empty vault, create-only. */
  async #createEmptyVault(token: string, account: string, masterKey: Bytes): Promise<void> {
    const zone = this.#context.zone;
    const vaultPlace = { zone, account, name: VAULT_ENVELOPE };
    const emptyVault = await sealEnvelope(await vaultKey(await importMasterKey(masterKey), zone, account), vaultPlace, encodeVault(new Map()));
    await this.#context.api.putEnvelope(token, VAULT_ENVELOPE, emptyVault, 0);
  }

  /** Runs `open` with a new session; if it fails, ends that session rather than leave it dangling. */
  async #withSession<T>(session: NewSession, open: () => Promise<T>): Promise<T> {
    try {
      return await open();
    } catch (error) {
      // The session is useless without its keys; a failure to end it leaves it to expire.
      await this.#context.api.logout(session.token).catch(() => undefined);
      throw error;
    }
  }
}

/** Internal state of a session. */
interface SessionState {
  username: string;
  accountId: string;
  sessionId: string;
  token: string;
  expiresAt: number;
  /** The master key, non-extractable (HKDF). */
  masterKey: CryptoKey;
  /** The master key's bytes, when the session began with a login (not when resumed). */
  masterKeyBytes: Bytes | undefined;
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
    this.vault = new Vault(context.api, { zone: context.zone, account: state.accountId, name: VAULT_ENVELOPE }, state, copies);
  }

  /** The bearer token (keep it secret: it is the session). */
  get token(): string {
    return this.#state.token;
  }

  /**
   * Adds a passkey (browsers): registers a WebAuthn credential with the PRF extension and wraps
   * the master key under its PRF output. A resumed session does not hold the master key's bytes:
   * pass `password` (checked by a login) or get `ReauthenticationRequiredError`.
   */
  async addPasskey(options: { label?: string; password?: string } = {}): Promise<{ id: string }> {
    const masterKey = await this.#masterKeyBytes("adding a passkey", options.password);
    const api = this.#context.api;
    const challenge = await api.passkeyRegisterStart(this.token);
    const created = await createPasskey(challenge.publicKey, this.username);
    const record = await api.passkeyRegisterFinish(this.token, challenge.ticket, created.credential, options.label ?? "");
    const place = { zone: this.#context.zone, account: this.accountId, name: await passkeyEnvelopeName(created.rawCredentialId) };
    const sealed = await sealEnvelope(await passkeyWrapKey(created.prfOutput, place.zone, place.account), place, masterKey);
    try {
      await api.putEnvelope(this.token, place.name, sealed, 0);
    } catch (error) {
      // Without its envelope the passkey could log in but not open anything.
      await api.removePasskey(this.token, record.passkey_id).catch(() => undefined);
      throw error;
    }
    return { id: record.passkey_id };
  }

  /** The account's passkeys, oldest first. */
  async passkeys(): Promise<PasskeyInfo[]> {
    return (await this.#context.api.passkeys(this.token)).map((passkey) => ({
      id: passkey.passkey_id,
      ...(passkey.label === "" ? {} : { label: passkey.label }),
      createdAt: passkey.created_at_ms,
    }));
  }

  /** Removes a passkey and its envelope. */
  async removePasskey(id: string): Promise<void> {
    const api = this.#context.api;
    await api.removePasskey(this.token, id);
    let rawId: Bytes;
    try {
      rawId = fromBase64Url(id);
    } catch {
      throw new InvalidInputError("a passkey id is base64url");
    }
    const name = await passkeyEnvelopeName(rawId);
    const envelope = await api.getEnvelope(this.token, name);
    if (envelope !== undefined) {
      await api.deleteEnvelope(this.token, name, envelope.version);
    }
  }

  /**
   * Changes the password: `oldPassword` is checked by a login, then the new OPAQUE record and
   * the master key wrapped under the new password replace the old ones in one step (if another
   * device changed it meanwhile: `EnvelopeConflictError`, nothing changed). By default every
   * other session of the account ends.
   */
  async changePassword(oldPassword: string, newPassword: string, options: ChangePasswordOptions = {}): Promise<void> {
    const revokeOtherSessions = options.revokeOtherSessions ?? true;
    const api = this.#context.api;
    const { zone } = this.#context;
    const check = await passwordMasterKey(api, zone, this.accountId, oldPassword, "password change");
    let changed = false;
    try {
      await opaque.ready;
      const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password: newPassword });
      const registrationResponse = await api.registerStart(this.accountId, registrationRequest);
      const { registrationRecord, exportKey } = opaqueStep(() =>
        opaque.client.finishRegistration({ clientRegistrationState, registrationResponse, password: newPassword }),
      );
      const keyPlace = { zone, account: this.accountId, name: PASSWORD_ENVELOPE };
      const sealed = await sealEnvelope(await passwordWrapKey(fromBase64Url(exportKey), zone, this.accountId), keyPlace, check.masterKey);
      const envelope = { name: PASSWORD_ENVELOPE, data: sealed, ifVersion: check.version };
      await api.changePassword(this.token, registrationRecord, envelope, revokeOtherSessions);
      changed = true;
      this.#state.masterKeyBytes ??= check.masterKey;
    } finally {
      // The change revoked the check's session with the others; a failure to end it leaves it to expire.
      if (!(changed && revokeOtherSessions)) {
        await api.logout(check.token).catch(() => undefined);
      }
    }
  }

  /** Ends this session (and forgets it on this device). */
  async logout(): Promise<void> {
    await this.#ending(() => this.#context.api.logout(this.token));
  }

  /** Ends every session of the account, this one included. */
  async logoutAll(): Promise<void> {
    await this.#ending(() => this.#context.api.logoutAll(this.token));
  }

  /**
   * Deletes the account: its record, envelopes (the vault), passkeys and sessions. Chains are
   * not touched; their keys, if they were only in the vault, are gone.
   */
  async deleteAccount(): Promise<void> {
    await this.#ending(() => this.#context.api.deleteAccount(this.token));
  }

  /** Runs a request that ends this session, then forgets it; an already dead session counts as ended. */
  async #ending(request: () => Promise<void>): Promise<void> {
    try {
      await request();
    } catch (error) {
      if (!(error instanceof SessionExpiredError)) {
        throw error;
      }
    }
    await this.#accounts.forget(this.token);
  }

  async #masterKeyBytes(what: string, password: string | undefined): Promise<Bytes> {
    if (this.#state.masterKeyBytes !== undefined) {
      return this.#state.masterKeyBytes;
    }
    if (password === undefined) {
      throw new ReauthenticationRequiredError(what);
    }
    const api = this.#context.api;
    const check = await passwordMasterKey(api, this.#context.zone, this.accountId, password, "re-authentication");
    // Only the check's login; a failure to end it leaves it to expire.
    await api.logout(check.token).catch(() => undefined);
    this.#state.masterKeyBytes = check.masterKey;
    return check.masterKey;
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
  #key: Promise<CryptoKey> | undefined;

  /** Internal: `session.vault`. */
  constructor(api: AccountApi, place: EnvelopePlace, state: SessionState, copies?: () => Promise<DeviceStore>) {
    this.#api = api;
    this.#place = place;
    this.#state = state;
    this.#copies = copies;
  }

  /**
   * The value stored under `name`, or undefined. Any envelope that does not open is an
   * `EscrowError`. Offline (a `NetworkError`), in browsers, the vault as last read on this device
   * answers: still sealed under the account's key, opened and checked the same way.
   */
  async get<T = unknown>(name: string): Promise<T | undefined> {
    const { entries } = await this.#read(true);
    return entries.get(name) as T | undefined;
  }

  /** Stores `value` (JSON) under `name`. */
  async put(name: string, value: unknown): Promise<void> {
    const text = JSON.stringify(value);
    if (text === undefined) {
      throw new InvalidInputError("the value has no JSON form");
    }
    const copy: unknown = JSON.parse(text);
    await this.#update((entries) => entries.set(name, copy));
  }

  /** Removes `name` (nothing happens when it is absent). */
  async delete(name: string): Promise<void> {
    await this.#update((entries) => entries.delete(name));
  }

  /** All names in the vault. */
  async names(): Promise<string[]> {
    return [...(await this.#read()).entries.keys()];
  }

  async #update(change: (entries: Map<string, unknown>) => void): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const { entries, version } = await this.#read();
      change(entries);
      const sealed = await sealEnvelope(await this.#vaultKey(), this.#place, encodeVault(entries));
      try {
        await this.#api.putEnvelope(this.#state.token, this.#place.name, sealed, version);
        return;
      } catch (error) {
        if (!(error instanceof EnvelopeConflictError) || attempt >= VAULT_ATTEMPTS) {
          throw error;
        }
      }
    }
  }

  async #read(offline = false): Promise<{ entries: Map<string, unknown>; version: number }> {
    const copyName = `vault-copy:${this.#place.account}`;
    if (this.#copies !== undefined) {
      this.#copyStore ??= this.#copies();
    }
    let envelope: StoredEnvelope;
    let fromCopy = false;
    try {
      envelope = await required(this.#api.getEnvelope(this.#state.token, this.#place.name), this.#place.name);
    } catch (error) {
      const copy = offline && error instanceof NetworkError ? await (await this.#copyStore)?.get(copyName) : undefined;
      if (copy === undefined) {
        throw error;
      }
      envelope = copy as StoredEnvelope;
      fromCopy = true;
    }
    const plaintext = await openEnvelope(await this.#vaultKey(), this.#place, envelope.data);
    if (!fromCopy) {
      await (await this.#copyStore)?.put(copyName, { data: envelope.data, version: envelope.version });
    }
    return { entries: decodeVault(plaintext), version: envelope.version };
  }

  #vaultKey(): Promise<CryptoKey> {
    this.#key ??= vaultKey(this.#state.masterKey, this.#place.zone, this.#place.account);
    return this.#key;
  }
}

/** An OPAQUE login: the session and the export key. A wrong password fails on the client, like an unknown account on the server. */
async function passwordLogin(api: AccountApi, account: string, password: string, label: string): Promise<{ session: NewSession; exportKey: Bytes }> {
  await opaque.ready;
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const { loginResponse, ticket } = await api.loginStart(account, startLoginRequest);
  const finished = opaqueStep(() => opaque.client.finishLogin({ clientLoginState, loginResponse, password }));
  if (finished === undefined) {
    // The same error as the server's for an unknown account, on purpose.
    throw new InvalidLoginError("wrong username or password", undefined);
  }
  const session = checkedSession(await api.loginFinish(ticket, finished.finishLoginRequest, label), account);
  return { session, exportKey: fromBase64Url(finished.exportKey) };
}

/**
 * Checks `password` by a login of its own and unwraps the master key from `key-password` with
 * it: the master key, the version of `key-password`, and the check's session token (the caller
 * ends it).
 */
async function passwordMasterKey(
  api: AccountApi,
  zone: string,
  account: string,
  password: string,
  label: string,
): Promise<{ masterKey: Bytes; version: number; token: string }> {
  const { session, exportKey } = await passwordLogin(api, account, password, label);
  try {
    const current = await required(api.getEnvelope(session.token, PASSWORD_ENVELOPE), PASSWORD_ENVELOPE);
    const place = { zone, account, name: PASSWORD_ENVELOPE };
    const masterKey = await unwrapMasterKey(await passwordWrapKey(exportKey, zone, account), place, current.data);
    return { masterKey, version: current.version, token: session.token };
  } catch (error) {
    // A failure to end it leaves it to expire.
    await api.logout(session.token).catch(() => undefined);
    throw error;
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

function rememberedSession(value: unknown): RememberedSession | undefined {
  const stored = value as Partial<RememberedSession> | undefined;
  if (
    stored?.v !== 1 ||
    typeof stored.token !== "string" ||
    typeof stored.username !== "string" ||
    typeof stored.accountId !== "string" ||
    typeof stored.sessionId !== "string" ||
    typeof stored.expiresAt !== "number" ||
    !(stored.masterKey instanceof CryptoKey)
  ) {
    return undefined;
  }
  return stored as RememberedSession;
}
