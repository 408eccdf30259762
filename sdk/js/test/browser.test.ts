/**
 * The bundle in a real browser: headless Chromium (playwright-core) loads a page served by the
 * node itself (same origin, so no CORS set-up) that uses the SDK with WebCrypto Ed25519, the
 * IndexedDB head store, live following over fetch streaming, and a file round trip. Fails when
 * no Chromium is installed (`$CHROMIUM`, else /usr/bin/chromium).
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { startBrowserSite } from "./support/browser.js";

const PAGE_DEADLINE_MS = 60_000;

const page = `<!doctype html><meta charset="utf-8"><title>sdk</title><pre id="result"></pre>
<script type="module">
import { Blindstore, ChainKeys, IndexedDbHeadStore, fileManifestOf } from "./blindstore.js";
const report = {};
try {
  const heads = await IndexedDbHeadStore.open("blindstore-sdk-test");
  const store = new Blindstore({ url: location.origin, zone: "demo", headStore: heads });
  const chain = await store.createChain();
  for (let n = 0; n < 5; n++) await chain.appendJson({ n });
  const reader = store.openChain(await ChainKeys.fromJSON(JSON.parse(JSON.stringify(chain.keys.forReader()))));
  report.last = (await reader.readLast(2)).map((entry) => entry.content.value);
  report.remembered = (await heads.get("demo", chain.chainId)).length;
  const followed = [];
  const subscription = reader.follow({ from: 3, onEntry: (entry) => followed.push(entry.index), onError: (error) => (report.followError = String(error)) });
  await chain.appendJson({ n: 5 });
  for (let i = 0; i < 200 && followed.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  subscription.close();
  await subscription.closed;
  report.followed = followed;
  const data = crypto.getRandomValues(new Uint8Array(50000));
  const upload = await store.prepareUpload(new Blob([data]), { name: "x.bin", chunkSize: 20000 });
  await upload.send();
  await upload.commit(chain);
  const back = await store.downloadFile(fileManifestOf((await chain.readLast(1))[0]));
  report.file = back.length === data.length && back.every((byte, i) => byte === data[i]);
} catch (error) {
  report.error = String(error) + "\\n" + error.stack;
}
document.getElementById("result").textContent = JSON.stringify(report);
</script>`;

test("the bundle works in headless Chromium", async () => {
  const site = await startBrowserSite({ "index.html": page });
  try {
    const tab = await site.browser.newPage();
    await tab.goto(`${site.node.url}/`);
    await tab.waitForFunction(() => (document.getElementById("result")?.textContent ?? "") !== "", undefined, { timeout: PAGE_DEADLINE_MS });
    const text = await tab.evaluate(() => document.getElementById("result")!.textContent!);
    assert.deepEqual(JSON.parse(text), { last: [{ n: 3 }, { n: 4 }], remembered: 5, followed: [3, 4, 5], file: true });
  } finally {
    await site.stop();
  }
});
