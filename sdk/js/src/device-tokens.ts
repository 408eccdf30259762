/**
 * Device tokens (docs/accounts.md, "Device tokens"): every login to an account returns one; the
 * device keeps it per account — across logouts, for it is not a session — and sends it with its
 * later logins, step-ups and password changes for that account. The server then holds those to
 * the device's own rate limit, which strangers failing on purpose cannot exhaust: nobody can
 * lock a user out of a device they logged in from before. A token grants no access by itself.
 *
 * In browsers the tokens live in IndexedDB (the `accounts` store of the deployment and zone,
 * under `device-token:<account id>`); elsewhere in memory, for the life of the client.
 */

import type { DeviceStore } from "./device-store.js";

const PREFIX = "device-token:";

export class DeviceTokens {
  readonly #open: (() => Promise<DeviceStore>) | undefined;
  #store: Promise<DeviceStore> | undefined;
  readonly #memory = new Map<string, string>();

  /** `open` opens the device store; without one (no IndexedDB) the tokens are kept in memory. */
  constructor(open: (() => Promise<DeviceStore>) | undefined) {
    this.#open = open;
  }

  /** The device token this device holds for `account`, if any. */
  async get(account: string): Promise<string | undefined> {
    const store = this.#db();
    if (store === undefined) {
      return this.#memory.get(account);
    }
    const stored = await (await store).get(PREFIX + account);
    return typeof stored === "string" && stored !== "" ? stored : undefined;
  }

  /** Keeps `token` (a login's answer, renewed each time) for `account`, replacing the one before. */
  async put(account: string, token: string): Promise<void> {
    const store = this.#db();
    if (store === undefined) {
      this.#memory.set(account, token);
      return;
    }
    await (await store).put(PREFIX + account, token);
  }

  /** Forgets the token of `account` (the account was deleted). */
  async delete(account: string): Promise<void> {
    const store = this.#db();
    if (store === undefined) {
      this.#memory.delete(account);
      return;
    }
    await (await store).delete(PREFIX + account);
  }

  #db(): Promise<DeviceStore> | undefined {
    if (this.#open !== undefined) {
      this.#store ??= this.#open();
    }
    return this.#store;
  }
}
