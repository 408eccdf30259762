/**
 * No key the SDK keeps can be taken out of the page, in headless Chromium against a real node:
 * every `CryptoKey` the SDK stores in IndexedDB (found by reading every record of every database
 * of the origin) or hands out from its public objects is tried every way WebCrypto has to give
 * key bytes — exportKey in each format, wrapKey, deriveBits, and deriveKey into an extractable
 * key — and each attempt must fail without a byte coming out. The state probed includes what
 * older SDKs left behind (a remembered session holding the master key as an HKDF key, a device
 * keyring of HKDF read keys), after the SDK migrated it.
 *
 * Tests here repeat their set-up (a page, a context, a node) on purpose: each reads, and
 * fails, on its own.
 */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { Blindstore, accountIdOf, toHex } from "../lib/index.js";
import { type BrowserSite, openSdkPage, startBrowserSite } from "./support/browser.js";
import { masterKeyOf, writeLegacyVault } from "./support/legacy.js";


/**
 * Installed in the page: `probeKey(key)` tries every way out and lists the ones that gave
 * anything; `storedKeys()` finds every CryptoKey in the origin's IndexedDB.
 */
const PROBE = `
window.probeKey = async (key) => {
  const leaks = [];
  const attempt = async (what, run) => {
    try {
      const result = await run();
      leaks.push(what + ": " + (result instanceof ArrayBuffer ? result.byteLength + " bytes" : JSON.stringify(result).length + " characters"));
    } catch {}
  };
  for (const format of ["raw", "jwk", "pkcs8", "spki"]) {
    await attempt("exportKey " + format, () => crypto.subtle.exportKey(format, key));
  }
  const wrapping = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["wrapKey"]);
  for (const format of ["raw", "jwk", "pkcs8"]) {
    await attempt("wrapKey " + format, () => crypto.subtle.wrapKey(format, key, wrapping, { name: "AES-GCM", iv: new Uint8Array(12) }));
  }
  const kdfs = [
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: new Uint8Array(1) },
    { name: "PBKDF2", hash: "SHA-256", salt: new Uint8Array(16), iterations: 1 },
  ];
  for (const params of kdfs) {
    await attempt("deriveBits " + params.name, () => crypto.subtle.deriveBits(params, key, 256));
    await attempt("deriveKey " + params.name + " (extractable)", async () => {
      const derived = await crypto.subtle.deriveKey(params, key, { name: "AES-GCM", length: 256 }, true, ["encrypt"]);
      return crypto.subtle.exportKey("raw", derived);
    });
    await attempt("deriveKey " + params.name + " into HMAC (extractable)", async () => {
      const derived = await crypto.subtle.deriveKey(params, key, { name: "HMAC", hash: "SHA-256", length: 256 }, true, ["sign"]);
      return crypto.subtle.exportKey("raw", derived);
    });
  }
  return { algorithm: key.algorithm.name, extractable: key.extractable, usages: [...key.usages].sort(), leaks };
};
window.findKeys = (value, path, found, seen = new Set()) => {
  if (value instanceof CryptoKey) {
    found.push({ path, key: value });
    return found;
  }
  if (value === null || typeof value !== "object" || seen.has(value) || ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Blob) {
    return found;
  }
  seen.add(value);
  const entries = value instanceof Map ? [...value] : value instanceof Set ? [...value].entries() : Object.entries(value);
  for (const [name, inner] of entries) window.findKeys(inner, path + "[" + String(name) + "]", found, seen);
  return found;
};
window.storedKeys = async () => {
  const found = [];
  const settled = (request) => new Promise((resolve, reject) => { request.onsuccess = () => resolve(request.result); request.onerror = () => reject(request.error); });
  for (const { name } of await indexedDB.databases()) {
    const db = await settled(indexedDB.open(name));
    for (const storeName of db.objectStoreNames) {
      const store = db.transaction(storeName).objectStore(storeName);
      const [keys, values] = await Promise.all([settled(store.getAllKeys()), settled(store.getAll())]);
      values.forEach((value, i) => window.findKeys(value, name.replace(location.origin, "ORIGIN") + "/" + storeName + "/" + String(keys[i]), found));
    }
    db.close();
  }
  return found;
};
`;

let site: BrowserSite;

before(async () => {
  site = await startBrowserSite();
});

after(async () => {
  await site?.stop();
});


interface Probed {
  path: string;
  algorithm: string;
  extractable: boolean;
  usages: string[];
  leaks: string[];
}

test("no key the SDK keeps, in IndexedDB or on its objects, gives its bytes or an extractable key; older SDKs' keys are migrated", { timeout: 180_000 }, async () => {
  // An account as an older SDK left it: a version 1 vault, and (below) a remembered session
  // holding the master key as an HKDF key.
  const username = `user-${randomBytes(6).toString("hex")}`;
  const account = await accountIdOf("demo", username);
  await new Blindstore({ url: site.node.url, zone: "demo" }).accounts.register({ username, password: "pw" });
  await writeLegacyVault(site.node.url, "demo", account, "pw", { note: "kept by an older SDK" });
  const { masterKey } = await masterKeyOf(site.node.url, "demo", account, "pw");

  const context = await site.browser.newContext();
  try {
    const page = await openSdkPage(site, await context.newPage(), PROBE);
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(String(error)));

    // What older SDKs stored: the remembered session with the master key as an HKDF key, and a
    // device keyring whose chain has three version 1 entries and an HKDF read key.
    const legacy = await page.evaluate(
      async ({ username, masterKeyHex }) => {
        const sdk = (window as any).sdk;
        const client = () => new sdk.Blindstore({ url: location.origin, zone: "demo" });
        const session = await client().accounts.login({ username, password: "pw" });
        const settled = (request: IDBRequest) =>
          new Promise<any>((resolve, reject) => {
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
        const put = async (database: string, key: string, value: unknown) => {
          const db = await settled(indexedDB.open(database));
          const transaction = db.transaction("records", "readwrite");
          transaction.objectStore("records").put(value, key);
          await new Promise((resolve) => (transaction.oncomplete = resolve));
          db.close();
        };
        const masterKey = await crypto.subtle.importKey("raw", sdk.fromHex(masterKeyHex), "HKDF", false, ["deriveKey"]);
        await put(`blindstore-accounts:${location.origin}:demo`, "session", {
          v: 1,
          username: session.username,
          accountId: session.accountId,
          sessionId: session.sessionId,
          token: session.token,
          expiresAt: session.expiresAt,
          masterKey,
        });

        // The older writer: per-entry keys derived from an HKDF read key (payload version 1).
        const utf8 = (text: string) => new TextEncoder().encode(text);
        const concat = (...parts: Uint8Array[]) => {
          const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
          let at = 0;
          for (const part of parts) (out.set(part, at), (at += part.length));
          return out;
        };
        const u32 = (n: number) => Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
        const u64 = (n: number) => concat(u32(Math.floor(n / 2 ** 32)), u32(n >>> 0));
        const pair = (await crypto.subtle.generateKey("Ed25519", false, ["sign", "verify"])) as CryptoKeyPair;
        const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
        const readKey = await crypto.subtle.importKey("raw", crypto.getRandomValues(new Uint8Array(32)), "HKDF", false, ["deriveKey"]);
        const chainId = await sdk.chainIdOf(publicKey);
        const created = await fetch("/v1/zones/demo/chains", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ public_key: sdk.toBase64Url(publicKey) }),
        });
        if (!created.ok) throw new Error(`creating the chain: ${created.status}`);
        const zone = utf8("demo");
        let prev = await sdk.genesisOf(chainId);
        for (let index = 0; index < 3; index++) {
          const key = await crypto.subtle.deriveKey(
            { name: "HKDF", hash: "SHA-256", salt: chainId, info: concat(utf8("blindstore/payload-key/v1\0"), Uint8Array.of(zone.length), zone, chainId, u64(index)) },
            readKey,
            { name: "AES-GCM", length: 256 },
            false,
            ["encrypt"],
          );
          const iv = crypto.getRandomValues(new Uint8Array(12));
          const aad = concat(utf8("blindstore/payload/v1\0"), Uint8Array.of(zone.length), zone, chainId, u64(index), prev, u32(0));
          const plaintext = concat(Uint8Array.of(2), utf8(JSON.stringify({ n: index })));
          const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, key, plaintext));
          const payload = concat(Uint8Array.of(1), u32(0), iv, ciphertext);
          const payloadHash = new Uint8Array(await crypto.subtle.digest("SHA-256", payload));
          const message = sdk.entryMessage({ zone: "demo", chainId, index, prev, payloadHash, payloadLength: payload.length, chunks: [] });
          const signature = await sdk.signEntry({ signKey: pair.privateKey, publicKey }, message);
          const appended = await fetch(`/v1/zones/demo/chains/${sdk.toHex(chainId)}/entries`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ index, prev: sdk.toHex(prev), payload: sdk.toBase64Url(payload), chunks: [], signature: sdk.toBase64Url(signature) }),
          });
          if (!appended.ok) throw new Error(`appending entry ${index}: ${appended.status} ${await appended.text()}`);
          prev = await sdk.entryHashOf(message, signature);
        }
        const legacyChain = sdk.toHex(chainId);
        // The keyring's database, made by the SDK (the record is then replaced as an older SDK wrote it).
        await client().accounts.deviceKeys("legacy").list();
        await put(`blindstore-device-keys:${location.origin}:demo`, `legacy/${legacyChain}`, {
          v: 1,
          chainId: legacyChain,
          signKey: pair.privateKey,
          publicKey,
          readKeys: new Map([[0, readKey]]),
          epoch: 0,
        });
        // Negative control of the probe: these older keys, non-extractable as they are, give
        // extractable keys and bits away.
        const premise = [(await (window as any).probeKey(masterKey)).leaks, (await (window as any).probeKey(readKey)).leaks];
        return { legacyChain, premise };
      },
      { username, masterKeyHex: toHex(masterKey) },
    );
    const leaks = ["deriveKey HKDF (extractable): 32 bytes", "deriveKey HKDF into HMAC (extractable): 32 bytes"];
    assert.deepEqual(legacy.premise, [leaks, leaks], "the probe finds what an older SDK's HKDF keys (usage deriveKey) give away");

    // A reload, then everything the SDK does that keeps a key.
    await page.reload();
    await page.waitForFunction(() => (window as unknown as { sdkReady?: boolean }).sdkReady === true);
    const used = await page.evaluate(async (legacyChain) => {
      const sdk = (window as any).sdk;
      const w = window as any;
      const bs = new sdk.Blindstore({
        url: location.origin,
        zone: "demo",
        headStore: await sdk.IndexedDbHeadStore.open(),
        entryStore: await sdk.IndexedDbEntryStore.open(),
        outboxStore: await sdk.IndexedDbOutboxStore.open(),
        uploadStore: await sdk.IndexedDbUploadStore.open(),
      });
      const session = await bs.accounts.resume();
      const note = await session.vault.get("note");
      const chain = await bs.createChain();
      await chain.appendJson({ n: 0 });
      chain.rotateReadKey();
      await chain.appendJson({ n: 1 });
      await chain.enqueueJson({ n: 2 }).durable;
      await session.vault.put("chain", chain.keys.toJSON());
      const keyring = bs.accounts.deviceKeys("budget");
      const deviceChain = await keyring.createChain();
      await deviceChain.appendJson({ device: true });
      const migrated = await bs.accounts.deviceKeys("legacy").openChain(legacyChain);
      await migrated.appendJson({ n: 3 });
      const migratedValues = (await migrated.readFirst(10)).map((entry: any) => entry.content.value.n);
      const upload = await bs.prepareUpload(new Uint8Array(1000).fill(1), { name: "a.bin" });
      Object.assign(w, { bs, session, chain, keyring, deviceChain, migrated, upload });
      return { note, migratedValues, migratedEpochs: (await migrated.readFirst(10)).map((entry: any) => entry.keyEpoch) };
    }, legacy.legacyChain);
    assert.deepEqual(used, { note: "kept by an older SDK", migratedValues: [0, 1, 2, 3], migratedEpochs: [0, 0, 0, 1] });

    const probed = (await page.evaluate(async () => {
      const w = window as any;
      const found: Array<{ path: string; key: CryptoKey }> = await w.storedKeys();
      // Public objects: their properties, and every key their methods hand out.
      for (const name of ["bs", "session", "chain", "keyring", "deviceChain", "migrated", "upload"]) w.findKeys(w[name], `object:${name}`, found);
      w.findKeys(w.session.vault, "object:session.vault", found);
      const chainKeys = w.chain.keys;
      for (const epoch of chainKeys.epochs) found.push({ path: `object:chain.keys.chainKey(${epoch})`, key: await chainKeys.chainKey(epoch) });
      const place = { zone: "demo", chainId: w.sdk.fromHex(w.chain.chainId), index: 0, prev: new Uint8Array(32) };
      found.push({ path: "object:chain.keys.entryKeyV1(0)", key: await chainKeys.entryKeyV1(place, 0) });
      for (const [name, handle] of [
        ["deviceChain", w.deviceChain],
        ["migrated", w.migrated],
      ]) {
        const secrets = handle.secrets();
        found.push({ path: `object:${name}.signingKey`, key: (await secrets.signingKey()).signKey });
        found.push({ path: `object:${name}.chainKey(${secrets.epoch})`, key: await secrets.chainKey(secrets.epoch) });
        const v1 = await secrets.entryKeyV1({ zone: "demo", chainId: w.sdk.fromHex(handle.chainId), index: 0, prev: new Uint8Array(32) }, 0);
        if (v1 !== undefined) found.push({ path: `object:${name}.entryKeyV1(0)`, key: v1 });
      }
      const results = [];
      for (const { path, key } of found) results.push({ path, ...(await w.probeKey(key)) });
      return results;
    })) as Probed[];

    const chainId = await page.evaluate(() => (window as any).deviceChain.chainId as string);
    const paths = probed.map((probe) => probe.path.replace(chainId, "DEVICE").replace(legacy.legacyChain, "LEGACY"));
    for (const expected of [
      "blindstore-accounts:ORIGIN:demo/records/session[vaultKey]",
      "blindstore-device-keys:ORIGIN:demo/records/budget/DEVICE[signKey]",
      "blindstore-device-keys:ORIGIN:demo/records/budget/DEVICE[chainKeys][0]",
      "blindstore-device-keys:ORIGIN:demo/records/legacy/LEGACY[signKey]",
      "blindstore-device-keys:ORIGIN:demo/records/legacy/LEGACY[chainKeys][1]",
      "blindstore-device-keys:ORIGIN:demo/records/legacy/LEGACY[v1Entries][keys][0]",
      "blindstore-device-keys:ORIGIN:demo/records/legacy/LEGACY[v1Entries][keys][2]",
      "blindstore-offline/device-keys/uploads",
      "object:chain.keys.chainKey(0)",
      "object:chain.keys.chainKey(1)",
      "object:chain.keys.entryKeyV1(0)",
      "object:deviceChain.signingKey",
      "object:deviceChain.chainKey(0)",
      "object:migrated.signingKey",
      "object:migrated.chainKey(1)",
      "object:migrated.entryKeyV1(0)",
    ]) {
      assert.ok(paths.includes(expected), `${expected} was probed (found: ${paths.join(", ")})`);
    }
    assert.equal(paths.filter((path) => path.includes("[v1Entries][keys]")).length, 3, "one kept key per version 1 entry of the migrated keyring");
    for (const probe of probed) {
      assert.deepEqual(probe.leaks, [], `${probe.path}: no way out gives anything`);
      assert.equal(probe.extractable, false, `${probe.path} is not extractable`);
      // Keys that are used, never base keys: AES-GCM to encrypt and decrypt, Ed25519 to sign.
      if (probe.algorithm === "Ed25519") {
        assert.deepEqual(probe.usages, ["sign"], probe.path);
      } else {
        assert.equal(probe.algorithm, "AES-GCM", probe.path);
        assert.ok(probe.usages.length > 0 && probe.usages.every((usage) => usage === "encrypt" || usage === "decrypt"), `${probe.path}: ${probe.usages}`);
      }
    }
    // The older records were replaced: no master key, no HKDF key is left in any database.
    const stored = await page.evaluate(async () => {
      const w = window as any;
      const found = await w.storedKeys();
      const settled = (request: IDBRequest) => new Promise<any>((resolve) => (request.onsuccess = () => resolve(request.result)));
      const db = await settled(indexedDB.open(`blindstore-accounts:${location.origin}:demo`));
      const session = await settled(db.transaction("records").objectStore("records").get("session"));
      db.close();
      return { session: Object.keys(session).sort(), version: session.v, algorithms: [...new Set(found.map((f: any) => f.key.algorithm.name))].sort() };
    });
    assert.deepEqual(stored, {
      session: ["accountId", "expiresAt", "sessionId", "token", "username", "v", "vaultEpoch", "vaultKey", "vaultVersion"],
      version: 2,
      algorithms: ["AES-GCM", "Ed25519"],
    });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
