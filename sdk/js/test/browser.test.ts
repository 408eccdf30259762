/**
 * The bundle in a real browser: headless Chromium loads a page served by the node itself (same
 * origin, so no CORS set-up) that uses the SDK with WebCrypto Ed25519, the IndexedDB head
 * store, live following over fetch streaming, and a file round trip. Driven over the DevTools
 * protocol on a pipe. Skipped when no Chromium is installed (`$CHROMIUM`, else /usr/bin/chromium).
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { test } from "node:test";
import { startNode } from "./support/node.js";

const chromium = process.env["CHROMIUM"] ?? "/usr/bin/chromium";
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

test("the bundle works in headless Chromium", { skip: existsSync(chromium) ? false : `no Chromium at ${chromium}` }, async () => {
  const site = mkdtempSync(join(tmpdir(), "blindstore-sdk-site-"));
  const profile = mkdtempSync(join(tmpdir(), "blindstore-sdk-chromium-"));
  copyFileSync(new URL("../dist/blindstore.js", import.meta.url), join(site, "blindstore.js"));
  writeFileSync(join(site, "index.html"), page);
  const node = await startNode(["--site", site]);
  let browser: ChildProcess | undefined;
  try {
    browser = spawn(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", `--user-data-dir=${profile}`, "about:blank"], {
      stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"],
    });
    const devtools = new DevTools(browser.stdio[3] as Writable, browser.stdio[4] as Readable);
    const { targetId } = (await devtools.send("Target.createTarget", { url: `${node.url}/` })) as { targetId: string };
    const { sessionId } = (await devtools.send("Target.attachToTarget", { targetId, flatten: true })) as { sessionId: string };
    const deadline = Date.now() + PAGE_DEADLINE_MS;
    let text = "";
    while (text === "" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const answer = (await devtools.send("Runtime.evaluate", { expression: "document.getElementById('result')?.textContent ?? ''", returnByValue: true }, sessionId)) as {
        result: { value: string };
      };
      text = answer.result.value;
    }
    assert.notEqual(text, "", "the page finished in time");
    assert.deepEqual(JSON.parse(text), { last: [{ n: 3 }, { n: 4 }], remembered: 5, followed: [3, 4, 5], file: true });
  } finally {
    if (browser?.pid !== undefined && browser.exitCode === null) {
      const exited = new Promise((resolve) => browser!.once("exit", resolve));
      process.kill(browser.pid, "SIGKILL");
      await exited;
    }
    await node.stop();
    rmSync(site, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  }
});

/** A minimal DevTools protocol client over Chromium's pipe (NUL-separated JSON messages). */
class DevTools {
  #nextId = 0;
  #buffer = "";
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();

  constructor(
    private readonly input: Writable,
    output: Readable,
  ) {
    output.setEncoding("utf8").on("data", (text: string) => {
      this.#buffer += text;
      for (let end = this.#buffer.indexOf("\0"); end !== -1; end = this.#buffer.indexOf("\0")) {
        const message = JSON.parse(this.#buffer.slice(0, end)) as { id?: number; result?: unknown; error?: { message: string } };
        this.#buffer = this.#buffer.slice(end + 1);
        const waiter = message.id === undefined ? undefined : this.#pending.get(message.id);
        if (waiter !== undefined) {
          this.#pending.delete(message.id!);
          if (message.error !== undefined) waiter.reject(new Error(message.error.message));
          else waiter.resolve(message.result);
        }
      }
    });
  }

  /** Sends one command; fails after 10 s without an answer (a browser that died, say). */
  send(method: string, params: object, sessionId?: string): Promise<unknown> {
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no answer to ${method} within 10 s`));
      }, 10_000);
      this.#pending.set(id, {
        resolve: (value) => (clearTimeout(timer), resolve(value)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      });
      this.input.write(JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) }) + "\0");
    });
  }
}
