/**
 * The account routes of a zone (`/v1/zones/{zone}/auth/...`, docs/accounts.md): one method per
 * route, each answer's shape checked. Errors are typed by `ZoneApi` (http.ts). Knows nothing of
 * keys or OPAQUE.
 */

import { type Bytes, fromBase64Url, toBase64Url } from "./bytes.js";
import { HttpError, VerificationError } from "./errors.js";
import type { ZoneApi } from "./http.js";

/** A session as login routes return it. */
export interface NewSession {
  token: string;
  session_id: string;
  account: string;
  expires_at_ms: number;
  /** The step-up of the login just completed (docs/accounts.md), when the server gives one. */
  step_up?: string;
  step_up_expires_at_ms?: number;
  /**
   * The device token (docs/accounts.md, "Device tokens"): sent with this device's later logins
   * to the account, they are held to its own rate limit, which strangers cannot exhaust.
   */
  device_token?: string;
}

/** A step-up: sent as `Blindstore-Step-Up` with what cannot be undone, until it expires (server time). */
export interface StepUp {
  value: string;
  expiresAt: number;
}

/** An envelope as read from the server. */
export interface StoredEnvelope {
  version: number;
  data: Bytes;
}

/** A passkey as the server lists it. */
export interface PasskeyRecord {
  passkey_id: string;
  label: string;
  created_at_ms: number;
  last_used_ms: number;
}

/** The answer to a password change or "log out everywhere": sessions ended, passkeys kept. */
export interface CredentialsChanged {
  revoked: number;
  /** The passkeys the account still has: each can still log in. */
  passkeys: PasskeyRecord[];
}

/** The WebAuthn options and ticket of a passkey ceremony's first step. */
export interface PasskeyChallenge {
  /** `options.publicKey` in the JSON form `PublicKeyCredential.parse*OptionsFromJSON` takes. */
  publicKey: unknown;
  ticket: string;
}

export class AccountApi {
  readonly #api: ZoneApi;
  readonly #signal: AbortSignal | undefined;

  constructor(api: ZoneApi, signal?: AbortSignal) {
    this.#api = api;
    this.#signal = signal;
  }

  /** The same routes, every request stopped by `signal` (`AbortedError`); itself without one. */
  withSignal(signal: AbortSignal | undefined): AccountApi {
    return signal === undefined ? this : new AccountApi(this.#api, signal);
  }

  #call(...[path, request]: Parameters<ZoneApi["account"]>): ReturnType<ZoneApi["account"]> {
    return this.#api.account(path, { ...request, signal: this.#signal });
  }

  /** `deviceToken`: this device's for the account, if it has one (a password change). */
  async registerStart(account: string, registrationRequest: string, deviceToken: string | undefined): Promise<string> {
    const { body } = await this.#call("register/start", {
      method: "POST",
      token: null,
      json: { account, registration_request: registrationRequest, device_token: deviceToken },
    });
    return field(body, "registration_response", "string");
  }

  async registerFinish(account: string, registrationRecord: string, invite: string | undefined): Promise<void> {
    const json = { account, registration_record: registrationRecord, ...(invite === undefined ? {} : { invite: invite.trim() }) };
    await this.#call("register/finish", { method: "POST", token: null, json });
  }

  async loginStart(account: string, startLoginRequest: string, deviceToken: string | undefined): Promise<{ loginResponse: string; ticket: string }> {
    const { body } = await this.#call("login/start", {
      method: "POST",
      token: null,
      json: { account, start_login_request: startLoginRequest, device_token: deviceToken },
    });
    return { loginResponse: field(body, "login_response", "string"), ticket: field(body, "login_ticket", "string") };
  }

  async loginFinish(ticket: string, finishLoginRequest: string, label: string, deviceToken: string | undefined): Promise<NewSession> {
    const { body } = await this.#call("login/finish", {
      method: "POST",
      token: null,
      json: { login_ticket: ticket, finish_login_request: finishLoginRequest, label, device_token: deviceToken },
    });
    return newSession(body);
  }

  async logout(token: string): Promise<void> {
    await this.#call("logout", { method: "POST", token });
  }

  /** `POST logout-all`: every session ends, and the passkeys `removePasskeys` names go, in one step. */
  async logoutAll(token: string, stepUp: string, removePasskeys: string[]): Promise<CredentialsChanged> {
    const { body } = await this.#call("logout-all", {
      method: "POST",
      token,
      headers: stepUpHeader(stepUp),
      json: { remove_passkeys: removePasskeys },
    });
    return credentialsChanged(body);
  }

  /** `POST step-up`: a password login (from `loginStart`) finished as a step-up of the session `token`. */
  async stepUp(token: string, ticket: string, finishLoginRequest: string): Promise<StepUp> {
    const { body } = await this.#call("step-up", {
      method: "POST",
      token,
      json: { login_ticket: ticket, finish_login_request: finishLoginRequest },
    });
    return { value: field(body, "step_up", "string"), expiresAt: field(body, "expires_at_ms", "number") };
  }

  /** `GET sessions`: used to check that a session is live. */
  async sessions(token: string): Promise<void> {
    await this.#call("sessions", { token });
  }

  async deleteAccount(token: string, stepUp: string): Promise<void> {
    await this.#call("account", { method: "DELETE", token, headers: stepUpHeader(stepUp) });
  }

  /** An envelope, or undefined when the account has none of that name. */
  async getEnvelope(token: string, name: string): Promise<StoredEnvelope | undefined> {
    let body: unknown;
    try {
      ({ body } = await this.#call(`envelopes/${name}`, { token }));
    } catch (error) {
      if (error instanceof HttpError && error.status === 404) {
        return undefined;
      }
      throw error;
    }
    let data: Bytes;
    try {
      data = fromBase64Url(field(body, "data", "string"));
    } catch (error) {
      throw error instanceof VerificationError ? error : new VerificationError("malformed", `envelope ${name}: data is not base64url`);
    }
    return { version: field(body, "version", "number"), data };
  }

  /** Writes an envelope over version `ifVersion` (0: it must not exist yet); returns the new version. */
  async putEnvelope(token: string, name: string, data: Uint8Array, ifVersion: number): Promise<number> {
    const { body } = await this.#call(`envelopes/${name}`, {
      method: "PUT",
      token,
      headers: { "if-match": `"${ifVersion}"` },
      json: { data: toBase64Url(data) },
    });
    return field(body, "version", "number");
  }

  async deleteEnvelope(token: string, stepUp: string, name: string, version: number): Promise<void> {
    await this.#call(`envelopes/${name}`, { method: "DELETE", token, headers: { "if-match": `"${version}"`, ...stepUpHeader(stepUp) } });
  }

  /**
   * `POST password`: the new OPAQUE record, the re-wrapped master key, the removal of the passkeys
   * `removePasskeys` names and the end of the other sessions, in one atomic step.
   */
  async changePassword(
    token: string,
    stepUp: string,
    registrationRecord: string,
    envelope: { name: string; data: Uint8Array; ifVersion: number },
    revokeOtherSessions: boolean,
    removePasskeys: string[],
  ): Promise<CredentialsChanged> {
    const { body } = await this.#call("password", {
      method: "POST",
      token,
      headers: stepUpHeader(stepUp),
      json: {
        registration_record: registrationRecord,
        envelope: { name: envelope.name, data: toBase64Url(envelope.data), if_version: envelope.ifVersion },
        revoke_other_sessions: revokeOtherSessions,
        remove_passkeys: removePasskeys,
      },
    });
    return credentialsChanged(body);
  }

  async passkeyRegisterStart(token: string, stepUp: string): Promise<PasskeyChallenge> {
    const { body } = await this.#call("passkeys/register/start", { method: "POST", token, headers: stepUpHeader(stepUp) });
    return passkeyChallenge(body);
  }

  async passkeyRegisterFinish(token: string, ticket: string, credential: unknown, label: string): Promise<PasskeyRecord> {
    const { body } = await this.#call("passkeys/register/finish", { method: "POST", token, json: { ticket, credential, label } });
    return passkeyRecord(body);
  }

  async passkeyLoginStart(account: string, deviceToken: string | undefined): Promise<PasskeyChallenge> {
    const { body } = await this.#call("passkeys/login/start", { method: "POST", token: null, json: { account, device_token: deviceToken } });
    return passkeyChallenge(body);
  }

  async passkeyLoginFinish(ticket: string, credential: unknown, label: string, deviceToken: string | undefined): Promise<NewSession> {
    const { body } = await this.#call("passkeys/login/finish", {
      method: "POST",
      token: null,
      json: { ticket, credential, label, device_token: deviceToken },
    });
    return newSession(body);
  }

  /** `POST passkeys/step-up`: a passkey login (from `passkeyLoginStart`) finished as a step-up of the session `token`. */
  async passkeyStepUp(token: string, ticket: string, credential: unknown): Promise<StepUp> {
    const { body } = await this.#call("passkeys/step-up", { method: "POST", token, json: { ticket, credential } });
    return { value: field(body, "step_up", "string"), expiresAt: field(body, "expires_at_ms", "number") };
  }

  async passkeys(token: string): Promise<PasskeyRecord[]> {
    const { body } = await this.#call("passkeys", { token });
    const list = (body as { passkeys?: unknown } | undefined)?.passkeys;
    if (!Array.isArray(list)) {
      throw new VerificationError("malformed", "the passkey list lacks passkeys");
    }
    return list.map(passkeyRecord);
  }

  async removePasskey(token: string, stepUp: string, passkeyId: string): Promise<void> {
    await this.#call(`passkeys/${encodeURIComponent(passkeyId)}`, { method: "DELETE", token, headers: stepUpHeader(stepUp) });
  }
}

function newSession(body: unknown): NewSession {
  const session: NewSession = {
    token: field(body, "token", "string"),
    session_id: field(body, "session_id", "string"),
    account: field(body, "account", "string"),
    expires_at_ms: field(body, "expires_at_ms", "number"),
  };
  const extra = (body as { step_up?: unknown; step_up_expires_at_ms?: unknown; device_token?: unknown } | undefined) ?? {};
  if (typeof extra.step_up === "string" && extra.step_up !== "" && typeof extra.step_up_expires_at_ms === "number") {
    session.step_up = extra.step_up;
    session.step_up_expires_at_ms = extra.step_up_expires_at_ms;
  }
  if (typeof extra.device_token === "string" && extra.device_token !== "") {
    session.device_token = extra.device_token;
  }
  return session;
}

/** The header that carries a step-up. */
function stepUpHeader(stepUp: string): Record<string, string> {
  return { "blindstore-step-up": stepUp };
}

function passkeyRecord(body: unknown): PasskeyRecord {
  return {
    passkey_id: field(body, "passkey_id", "string"),
    label: field(body, "label", "string"),
    created_at_ms: field(body, "created_at_ms", "number"),
    last_used_ms: field(body, "last_used_ms", "number"),
  };
}

function credentialsChanged(body: unknown): CredentialsChanged {
  const list = (body as { passkeys?: unknown } | undefined)?.passkeys;
  if (!Array.isArray(list)) {
    throw new VerificationError("malformed", "the answer lacks the passkeys kept");
  }
  return { revoked: field(body, "revoked", "number"), passkeys: list.map(passkeyRecord) };
}

function passkeyChallenge(body: unknown): PasskeyChallenge {
  const options = (body as { options?: { publicKey?: unknown } } | undefined)?.options;
  if (typeof options?.publicKey !== "object" || options.publicKey === null) {
    throw new VerificationError("malformed", "the passkey answer lacks options.publicKey");
  }
  return { publicKey: options.publicKey, ticket: field(body, "ticket", "string") };
}

function field<K extends "string" | "number">(body: unknown, name: string, type: K): K extends "string" ? string : number {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  if (typeof value !== type) {
    throw new VerificationError("malformed", `the answer lacks ${name}`);
  }
  return value as K extends "string" ? string : number;
}
