/**
 * What SDKs before vault key epochs left on the server, for the tests of reading and moving on
 * from it: an account's master key recovered the way any client can (an OPAQUE login of its own
 * and the `key-password` envelope), and its vault sealed again as such an SDK sealed it
 * (envelope version 1, the vault key of version 1).
 */

import * as opaque from "@serenity-kit/opaque";
import { AccountApi } from "../../lib/account-api.js";
import { fromBase64Url } from "../../lib/bytes.js";
import { PASSWORD_ENVELOPE, VAULT_ENVELOPE, encodeVault, passwordWrapKey, sealVault, unwrapMasterKey, vaultKey } from "../../lib/escrow.js";
import { ZoneApi } from "../../lib/http.js";

/** The account API of `zone` at `url`, for requests the SDK makes only as part of its flows. */
export function accountApi(url: string, zone: string): AccountApi {
  return new AccountApi(new ZoneApi({ baseUrl: url, zone, fetch: globalThis.fetch.bind(globalThis), sessionToken: undefined, timeoutMs: 30_000 }));
}

/** Logs in to `account` with `password` on the side: the session token and the account's master key. */
export async function masterKeyOf(url: string, zone: string, account: string, password: string): Promise<{ token: string; masterKey: Uint8Array }> {
  const api = accountApi(url, zone);
  await opaque.ready;
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const { loginResponse, ticket } = await api.loginStart(account, startLoginRequest, undefined);
  const finished = opaque.client.finishLogin({ clientLoginState, loginResponse, password });
  if (finished === undefined) {
    throw new Error("the side login failed: wrong password");
  }
  const session = await api.loginFinish(ticket, finished.finishLoginRequest, "test", undefined);
  const wrapped = await api.getEnvelope(session.token, PASSWORD_ENVELOPE);
  if (wrapped === undefined) {
    throw new Error("the account has no key-password envelope");
  }
  const place = { zone, account, name: PASSWORD_ENVELOPE };
  const masterKey = await unwrapMasterKey(await passwordWrapKey(fromBase64Url(finished.exportKey), zone, account), place, wrapped.data);
  return { token: session.token, masterKey };
}

/** Replaces the account's vault by one holding `entries`, sealed as an older SDK sealed it (version 1). */
export async function writeLegacyVault(url: string, zone: string, account: string, password: string, entries: Record<string, unknown>): Promise<void> {
  const api = accountApi(url, zone);
  const { token, masterKey } = await masterKeyOf(url, zone, account, password);
  const id = { version: 1, epoch: 0 } as const;
  const sealed = await sealVault(await vaultKey(masterKey, zone, account, id), id, { zone, account, name: VAULT_ENVELOPE }, encodeVault(new Map(Object.entries(entries))));
  const current = await api.getEnvelope(token, VAULT_ENVELOPE);
  await api.putEnvelope(token, VAULT_ENVELOPE, sealed, current?.version ?? 0);
  await api.logout(token);
}
