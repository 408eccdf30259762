/**
 * A stranger who tries to lock a user out: `login/start` for the user's account id, again and
 * again, from a plain HTTP client that holds no device token (docs/accounts.md, "Device tokens").
 * Each attempt carries a well-formed OPAQUE request, as a real guesser's would.
 */

import * as opaque from "@serenity-kit/opaque";

/** Sends `attempts` `login/start`s for `account` one after the other; the count of each status. */
export async function strangerLoginStarts(url: string, zone: string, account: string, attempts: number): Promise<Record<number, number>> {
  await opaque.ready;
  const { startLoginRequest } = opaque.client.startLogin({ password: "a guess" });
  const statuses: Record<number, number> = {};
  for (let attempt = 0; attempt < attempts; attempt++) {
    const response = await fetch(`${url}/v1/zones/${zone}/auth/login/start`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ account, start_login_request: startLoginRequest }),
    });
    await response.body?.cancel();
    statuses[response.status] = (statuses[response.status] ?? 0) + 1;
  }
  return statuses;
}
