/**
 * The package as users get it: `npm pack`, the tarball installed in a fresh directory with Vite
 * and TypeScript from the registry, then used from Node (an account, a chain, a reader), type-
 * checked from both entry points, and built by Vite into the notes example (examples/notes),
 * which Chromium drives against a real node: sign up, write, follow live, open the share link
 * in the read-only viewer, reload. OPAQUE's chunk must load only when an account operation
 * needs it, and never in the viewer.
 */

import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "./support/browser.js";
import { packSdk, run } from "./support/package.js";
import { type RunningNode, startNode, zoneCreate } from "./support/node.js";

const NOTES = fileURLToPath(new URL("../../../examples/notes/", import.meta.url));
const SCREENSHOTS = fileURLToPath(new URL("../../../target/tmp/screenshots/", import.meta.url));
const WAIT_MS = 30_000;
const VERSIONS = JSON.parse(readFileSync(join(NOTES, "package.json"), "utf8")).devDependencies as Record<string, string>;

let work: string;
let app: string;
let tarball: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), "blindstore-package-"));
  const packed = packSdk(work);
  tarball = packed.tarball;
  const paths = packed.files;
  for (const needed of ["package.json", "README.md", "CHANGELOG.md", "dist/index.js", "dist/reader.js", "dist/types/index.d.ts", "dist/types/reader-entry.d.ts", "dist/browser/blindstore.js", "dist/browser/reader.js"]) {
    assert.ok(paths.includes(needed), `the tarball holds ${needed}`);
  }
  assert.deepEqual(paths.filter((path) => /^(src|test|lib|test-build|node_modules)\//.test(path)), [], "no sources, tests or build leftovers");

  // A fresh project, as `npm init` and `npm install` leave it.
  app = join(work, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "fresh-app", private: true, type: "module" }));
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball, `vite@${VERSIONS["vite"]}`, `typescript@${VERSIONS["typescript"]}`], app);
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

test("the installed package's manifest: version, exports with types, no side effects", () => {
  const manifest = JSON.parse(readFileSync(join(app, "node_modules/@blindstore/sdk/package.json"), "utf8"));
  assert.equal(manifest.version, "0.1.0");
  assert.equal(manifest.private, undefined);
  assert.equal(manifest.sideEffects, false);
  for (const [entry, target] of Object.entries(manifest.exports as Record<string, string | { types: string; default: string }>)) {
    if (entry === "./package.json") continue;
    assert.equal(typeof target, "object", `${entry} has conditions`);
    const { types, default: code } = target as { types: string; default: string };
    for (const file of [types, code]) readFileSync(join(app, "node_modules/@blindstore/sdk", file));
    // Minified: no line of the entry's code is indented source.
    assert.ok(!/\n {2}\S/.test(readFileSync(join(app, "node_modules/@blindstore/sdk", code), "utf8")), `${code} is minified`);
  }
});

test("Node uses the installed package: an account, a chain, and a reader of it", async () => {
  const node = await startNode();
  try {
    await zoneCreate(node, "node-use");
    writeFileSync(
      join(app, "use.mjs"),
      `import { Blindstore } from "@blindstore/sdk";
import { BlindstoreReader } from "@blindstore/sdk/reader";
const [url] = process.argv.slice(2);
const store = new Blindstore({ url, zone: "node-use" });
const session = await store.accounts.register({ username: "node-user", password: "a long enough password" });
const chain = await store.createChain();
await session.vault.put("notes", chain.keys);
await chain.appendJson({ text: "from node" });
const reader = new BlindstoreReader({ url, zone: "node-use" });
const texts = [];
for await (const entry of reader.openChain(chain.keys).entries()) texts.push(entry.content.value.text);
reader.close();
store.close();
console.log(JSON.stringify({ username: session.username, texts, kept: (await session.vault.get("notes")) !== undefined }));
`,
    );
    const output = JSON.parse(run(process.execPath, ["use.mjs", node.url], app));
    assert.deepEqual(output, { username: "node-user", texts: ["from node"], kept: true });
  } finally {
    await node.stop();
  }
});

test("TypeScript checks an app against the package's types, every entry point", () => {
  cpSync(NOTES, app, { recursive: true, filter: (path) => !/node_modules|dist|package(-lock)?\.json$/.test(path) });
  writeFileSync(
    join(app, "src/entry-points.ts"),
    `import { Blindstore, type Entry, type Session } from "@blindstore/sdk";
import { BlindstoreReader, type Chain, RateLimitedError } from "@blindstore/sdk/reader";
import * as browser from "@blindstore/sdk/browser";
import * as browserReader from "@blindstore/sdk/browser/reader";
export const clients: [Blindstore, BlindstoreReader, browser.Blindstore, browserReader.BlindstoreReader] = [
  new Blindstore({ url: "https://example.com", zone: "z" }),
  new BlindstoreReader({ url: "https://example.com", zone: "z" }),
  new browser.Blindstore({ url: "https://example.com", zone: "z" }),
  new browserReader.BlindstoreReader({ url: "https://example.com", zone: "z" }),
];
export type Seen = [Entry, Session | null, Chain, RateLimitedError];
`,
  );
  run(process.execPath, [join(app, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], app);
  // And a mistake is caught: the types are not \`any\`.
  writeFileSync(join(app, "src/wrong.ts"), `import { BlindstoreReader } from "@blindstore/sdk/reader";\nnew BlindstoreReader({ url: 1, zone: "z" });\n`);
  assert.throws(() => run(process.execPath, [join(app, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], app), /wrong\.ts.*TS2322/);
  rmSync(join(app, "src/wrong.ts"));
});

interface Manifest {
  [source: string]: { file: string; src?: string; imports?: string[]; dynamicImports?: string[]; isEntry?: boolean; isDynamicEntry?: boolean };
}

/** The files a built page loads before its code runs (its entry and static imports). */
function loadedBy(manifest: Manifest, key: string, seen = new Set<string>()): Set<string> {
  const chunk = manifest[key]!;
  seen.add(chunk.file);
  for (const imported of chunk.imports ?? []) loadedBy(manifest, imported, seen);
  return seen;
}

describeVite();

function describeVite(): void {
  let node: RunningNode;
  let browser: Browser;
  let manifest: Manifest;
  let opaqueFile: string;

  test("Vite builds the notes example from the installed package; the viewer never holds OPAQUE", () => {
    run(process.execPath, [join(app, "node_modules/vite/bin/vite.js"), "build", "--logLevel", "warn"], app);
    manifest = JSON.parse(readFileSync(join(app, "dist/.vite/manifest.json"), "utf8"));
    const opaque = Object.entries(manifest).filter(([source]) => source.includes("@serenity-kit/opaque"));
    assert.equal(opaque.length, 1, "OPAQUE is one chunk");
    assert.equal(opaque[0]![1].isDynamicEntry, true, "loaded by a dynamic import");
    opaqueFile = opaque[0]![1].file;
    const wasm = "AGFzbQ"; // the embedded WASM's first bytes, base64
    const withWasm = readdirSync(join(app, "dist/assets")).filter((file) => readFileSync(join(app, "dist/assets", file), "utf8").includes(wasm));
    assert.deepEqual(withWasm, [opaqueFile.replace("assets/", "")], "only OPAQUE's chunk holds WASM");
    for (const page of ["viewer.html", "index.html"]) {
      assert.ok(!loadedBy(manifest, page).has(opaqueFile), `${page} does not load OPAQUE before it runs`);
    }
  });

  test("Chromium: sign up, write, follow live, share read-only, reload — OPAQUE only at sign-up", async () => {
    node = await startNode(["--site", join(app, "dist")]);
    await zoneCreate(node, "notes");
    browser = await launchChromium();
    try {
      mkdirSync(SCREENSHOTS, { recursive: true });
      const context = await browser.newContext();
      const requested: string[] = [];
      context.on("request", (request) => requested.push(new URL(request.url()).pathname));
      const opaqueLoads = () => requested.filter((path) => path.endsWith(opaqueFile)).length;

      const page = await context.newPage();
      await page.goto(node.url);
      await waitForStatus(page, "Log in or create an account.");
      assert.equal(opaqueLoads(), 0, "no OPAQUE before an account operation");
      await page.getByLabel("Username").fill("ada");
      await page.getByLabel("Password").fill("a long enough password");
      await page.getByRole("button", { name: "Create account" }).click();
      await waitForStatus(page, /^Logged in as ada\. 0 notes\./);
      assert.equal(opaqueLoads(), 1, "OPAQUE loaded once, at sign-up");

      await page.getByLabel("New note").fill("first note");
      await page.getByRole("button", { name: "Add" }).click();
      await page.getByRole("listitem").filter({ hasText: "first note" }).waitFor({ timeout: WAIT_MS });
      await page.screenshot({ path: join(SCREENSHOTS, "notes-vite-app.png") });

      const link = await page.getByLabel("Read-only link to share").inputValue();
      const before = requested.length;
      const viewer = await context.newPage();
      await viewer.goto(link);
      await waitForStatus(viewer, /^1 note, verified\./);
      await page.getByLabel("New note").fill("second note");
      await page.getByRole("button", { name: "Add" }).click();
      await viewer.getByRole("listitem").filter({ hasText: "second note" }).waitFor({ timeout: WAIT_MS });
      await viewer.screenshot({ path: join(SCREENSHOTS, "notes-vite-viewer.png") });
      const viewerFiles = requested.slice(before).filter((path) => path.startsWith("/assets/"));
      assert.ok(viewerFiles.length > 0 && !viewerFiles.some((path) => path.endsWith(opaqueFile)), `the viewer loaded ${viewerFiles.join(", ")}`);

      // A reload resumes the remembered session (no password, so no OPAQUE) and reads both notes.
      await page.reload();
      await waitForStatus(page, /^Logged in as ada\. 2 notes\./);
      assert.equal(opaqueLoads(), 1, "resuming a session needs no OPAQUE");
      assert.deepEqual(await page.getByRole("listitem").allTextContents(), ["first note", "second note"]);
      await context.close();
    } finally {
      await browser.close();
      await node.stop();
    }
  });
}

async function waitForStatus(page: Page, expected: string | RegExp): Promise<void> {
  const status = page.getByRole("status");
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const text = (await status.textContent()) ?? "";
    if (typeof expected === "string" ? text === expected : expected.test(text)) return;
    if (Date.now() > deadline) throw new Error(`status stayed ${JSON.stringify(text)}, expected ${String(expected)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
