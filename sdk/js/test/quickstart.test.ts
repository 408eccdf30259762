/**
 * The README's quick start, run in the order a person types it: its shell blocks are run (the
 * node and `npx vite` become processes this test owns), its files are written where their
 * first-line comment says, and at each point where the text says "open …", Chromium does what
 * the text says and checks what it promises. Nothing is copied from the README into this test
 * but the block texts themselves, so the two cannot drift apart. Substituted, and only this:
 * the checkout is this one (its SDK installed and built by `npm test`; `npm pack` writes the
 * tarball into the test's stand-in checkout, where step 2 installs it from), the node's port is
 * free rather than 8080 (the files' `http://127.0.0.1:8080` follows it) and Vite's too.
 *
 * Then the Content-Security-Policy advice: a login under the README's policy works; under
 * `default-src 'self'` the OPAQUE WebAssembly is blocked and the login fails.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { launchChromium } from "./support/browser.js";
import { Blindstore, ChainKeys } from "../lib/index.js";
import { type RunningNode, startNode } from "./support/node.js";
import { packSdk, run } from "./support/package.js";

const README = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const SCREENSHOTS = fileURLToPath(new URL("../../../target/tmp/screenshots/", import.meta.url));
const WAIT_MS = 30_000;
const PASSWORD = "correct horse battery staple";
/** How many notes are written before the reloads that must not read them again. */
const TEN_THOUSAND = 10_000;

type Step = { kind: "sh"; commands: string[] } | { kind: "file"; path: string; text: string };

/** The quick start's code blocks, in order. */
function quickStart(): Step[] {
  const start = README.indexOf("## Quick start");
  assert.ok(start >= 0, "the README has a quick start");
  const section = README.slice(start, README.indexOf("\n## ", start + 1));
  const steps: Step[] = [];
  for (const block of section.matchAll(/^( *)```(\w+)\n([\s\S]*?)^\1```$/gm)) {
    const indent = block[1]!.length;
    const lines = block[3]!.split("\n").map((line) => line.slice(indent));
    if (block[2] === "sh") {
      const commands = lines.map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
      steps.push({ kind: "sh", commands: commands.flatMap((line) => line.split(" && ")) });
      continue;
    }
    // A file says where it goes in a comment on its first or second line.
    const named = lines.slice(0, 2).map((line) => /^(?:\/\/ |<!-- )(my-[\w-]+\/[\w./-]+)(?: -->)?$/.exec(line.trim())?.[1]).find((path) => path !== undefined);
    assert.ok(named !== undefined, `the ${block[2]} block names its file:\n${block[3]}`);
    steps.push({ kind: "file", path: named, text: lines.join("\n") });
  }
  return steps;
}

/** Splits a command line into words, with "double" and 'single' quotes. */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/** Terminal colour and style codes taken out of a program's output. */
function withoutEscapes(text: string): string {
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}

function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

test("the README's quick start, typed in order, gives a working notes app in dev and served by the node", async () => {
  const work = mkdtempSync(join(tmpdir(), "blindstore-quickstart-"));
  cleanup.push(() => rmSync(work, { recursive: true, force: true }));
  const checkout = join(work, "blindstore"); // where the person starts the node
  mkdirSync(checkout);
  mkdirSync(SCREENSHOTS, { recursive: true });
  const browser: Browser = await launchChromium();
  cleanup.push(() => browser.close());

  let node: RunningNode | undefined;
  let vite: ChildProcess | undefined;
  const stopVite = () => {
    if (vite?.pid !== undefined && vite.exitCode === null) process.kill(vite.pid, "SIGTERM");
    vite = undefined;
  };
  cleanup.push(async () => {
    stopVite();
    await node?.stop();
  });
  let cwd = work;
  const seen = { dev: false, served: false };
  const npmEnv = { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_prefer_offline: "true" };

  for (const step of quickStart()) {
    if (step.kind === "file") {
      const path = join(work, step.path);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, node === undefined ? step.text : step.text.replaceAll("http://127.0.0.1:8080", node.url));
      continue;
    }
    for (const command of step.commands) {
      const serve = /^cargo run --release --bin blindstore -- serve\b(.*)$/.exec(command);
      if (serve !== null) {
        // Ctrl-C, then the new command on the same data dir.
        await node?.stop();
        const args = words(serve[1]!);
        const site = args.indexOf("--site");
        if (site >= 0) args[site + 1] = resolve(checkout, args[site + 1]!);
        node = await startNode(args, { dataDir: join(checkout, "blindstore-data") });
        if (site >= 0) {
          stopVite();
          await servedByTheNode(browser, node, args);
          seen.served = true;
        }
      } else if (command.startsWith("cd ")) {
        cwd = resolve(cwd, command.slice(3));
      } else if (command === "npm ci --prefix sdk/js" || command === "npm run --prefix sdk/js build") {
        // The checkout's SDK is this one, installed and built by `npm test` before the tests run.
      } else if (command === "npm pack ./sdk/js") {
        // Into the checkout, where step 2 installs it from (`../blindstore/…`).
        packSdk(checkout);
      } else if (command === "npx vite") {
        assert.ok(node !== undefined, "the node runs before the app");
        const port = await freePort();
        // Colours off, and stripped anyway: where the environment asks for them (CI or
        // FORCE_COLOR set), Vite prints the port in bold, between escape codes.
        const env = { ...process.env, NO_COLOR: "1" };
        vite = spawn(join(cwd, "node_modules/.bin/vite"), ["--port", String(port), "--strictPort", "--host", "127.0.0.1"], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
        await new Promise<void>((ready, failed) => {
          let said = "";
          const timer = setTimeout(() => failed(new Error(`vite did not start:\n${said}`)), WAIT_MS);
          vite!.stdout!.on("data", (text: Buffer) => {
            said += text.toString();
            if (withoutEscapes(said).includes(`127.0.0.1:${port}`)) (clearTimeout(timer), ready());
          });
          vite!.stderr!.on("data", (text: Buffer) => (said += text.toString()));
        });
        await developing(browser, `http://127.0.0.1:${port}`, node.url);
        seen.dev = true;
      } else {
        run("bash", ["-c", command], cwd, npmEnv);
      }
    }
  }
  assert.deepEqual(seen, { dev: true, served: true }, "the quick start runs the app under Vite, then served by the node");
});

/**
 * Step 6: sign up, write, see it in a second tab live, reload, a wrong password refused; then
 * ten thousand notes later, a reload reads only what is new, and the next one nothing.
 */
async function developing(browser: Browser, url: string, nodeUrl: string): Promise<void> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(url);
    await statusIs(page, "Log in or sign up.");
    await logIn(page, "ada", PASSWORD, "Sign up");
    await statusIs(page, "Logged in as ada. Notes: 0");
    await addNote(page, "milk and bread");

    const second = await context.newPage();
    await second.goto(url);
    await statusIs(second, "Logged in as ada. Notes: 1"); // the remembered session
    await note(second, "milk and bread");
    await addNote(second, "call the plumber");
    await note(page, "call the plumber"); // live, from the other tab
    await page.screenshot({ path: join(SCREENSHOTS, "quickstart-dev.png") });

    await page.reload();
    await statusIs(page, "Logged in as ada. Notes: 2");
    assert.deepEqual(await page.getByRole("listitem").allTextContents(), ["milk and bread", "call the plumber"]);
    await page.close();
    await second.close();

    // Ten thousand notes later, written by another device (Node, with the account's vault).
    const writer = new Blindstore({ url: nodeUrl, zone: "demo" });
    const session = await writer.accounts.login({ username: "ada", password: PASSWORD });
    const notes = writer.openChain(await ChainKeys.fromJSON(await session.vault.get("notes")));
    for (let n = 0; n < TEN_THOUSAND; n++) await notes.appendJson({ text: `note ${n}` });
    writer.close();
    const later = await context.newPage();
    const pages: string[] = [];
    later.on("request", (request) => void (/\/entries\?from=/.test(request.url()) && pages.push(new URL(request.url()).searchParams.get("from")!)));
    const timed = async (load: () => Promise<unknown>) => {
      const started = Date.now();
      await load();
      await statusIs(later, `Logged in as ada. Notes: ${TEN_THOUSAND + 2}`);
      return Date.now() - started;
    };
    const first = await timed(() => later.goto(url));
    assert.equal(await later.getByRole("listitem").count(), 50, "the newest 50 shown");
    assert.equal(pages[0], "0", "two notes made no checkpoint yet (one is kept every 500): the first load reads them all");
    pages.length = 0;
    const next = await timed(() => later.reload());
    // Nothing old: only the fold's tail, empty (`follow` links to the fold's head, given as `prev`).
    assert.deepEqual(pages, [String(TEN_THOUSAND + 2)], "the next reload reads nothing old: its checkpoint covers every note");
    console.log(`quick start, ${TEN_THOUSAND + 2} notes: ${first} ms to fold the new ones, ${next} ms for the reload after (from the checkpoint)`);
    await later.close();

    // Another browser: a wrong password is refused, and creates nothing.
    const stranger = await (await browser.newContext()).newPage();
    await stranger.goto(url);
    await statusIs(stranger, "Log in or sign up.");
    await logIn(stranger, "ada", "not the password", "Log in");
    await statusIs(stranger, "Wrong username or password.");
    await logIn(stranger, "ada", PASSWORD, "Sign up");
    await statusIs(stranger, "That username is taken: log in instead.");
    await stranger.context().close();
  } finally {
    await context.close();
  }
}

/** Step 7: the built app served by the node, under the README's policy; then the control. */
async function servedByTheNode(browser: Browser, node: RunningNode, args: string[]): Promise<void> {
  const answer = await fetch(node.url);
  const csp = answer.headers.get("content-security-policy");
  assert.equal(csp, args[args.indexOf("--site-csp") + 1], "the page carries the README's policy");
  await loginWorks(browser, node.url, "served by the node");

  // The control: under `default-src 'self'` the OPAQUE WebAssembly is blocked.
  const dataDir = node.dataDir;
  await node.stop();
  const strict = await startNode([...args.slice(0, args.indexOf("--site-csp")), "--site-csp", "default-src 'self'"], { dataDir });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(strict.url);
    await statusIs(page, "Log in or sign up.");
    await logIn(page, "ada", PASSWORD, "Log in");
    // The SDK says why, and what the policy needs.
    await statusMatches(page, /^Failed: this page cannot run OPAQUE's WebAssembly .*'wasm-unsafe-eval'/);
    await context.close();
  } finally {
    await strict.stop();
  }
  Object.assign(node, await startNode(args, { dataDir }));
  await loginWorks(browser, node.url, "served again after the control");
}

/** Logs in under the README's policy and adds the note `text`. */
async function loginWorks(browser: Browser, url: string, text: string): Promise<void> {
  const context: BrowserContext = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(url);
    await statusIs(page, "Log in or sign up.");
    await logIn(page, "ada", PASSWORD, "Log in");
    await statusMatches(page, /^Logged in as ada\. Notes: \d+$/, text);
    await note(page, `note ${TEN_THOUSAND - 1}`);
    await addNote(page, text);
    await page.screenshot({ path: join(SCREENSHOTS, "quickstart-served.png") });
  } finally {
    await context.close();
  }
}

async function logIn(page: Page, username: string, password: string, button: string): Promise<void> {
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: button }).click();
}

async function addNote(page: Page, text: string): Promise<void> {
  await page.getByLabel("Note").fill(text);
  await page.getByRole("button", { name: "Add" }).click();
  await note(page, text);
}

async function note(page: Page, text: string): Promise<void> {
  await page.getByRole("listitem").filter({ hasText: text }).waitFor({ timeout: WAIT_MS });
}

async function statusIs(page: Page, expected: string, what = ""): Promise<void> {
  await statusMatches(page, new RegExp(`^${expected.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`), what);
}

async function statusMatches(page: Page, expected: RegExp, what = ""): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const text = (await page.getByRole("status").textContent()) ?? "";
    if (expected.test(text)) return;
    if (Date.now() > deadline) throw new Error(`${what} status stayed ${JSON.stringify(text)}, expected ${String(expected)}`);
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
  }
}
