/**
 * Runs the real Blindstore binary for a test: a single node on port 0 with a fresh data dir,
 * stopped by its pid when the test is done. The binary is `$BLINDSTORE_BIN`, or the debug build
 * at ../../target/debug/blindstore (relative to sdk/js).
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SDK_DIR = resolve(fileURLToPath(import.meta.url), "../../..");
const START_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 10_000;

export interface RunningNode {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  /** The node's data dir (its admin token is in `admin-token`). */
  dataDir: string;
  stop(): Promise<void>;
}

export function blindstoreBinary(): string {
  return process.env["BLINDSTORE_BIN"] ?? resolve(SDK_DIR, "../../target/debug/blindstore");
}

/**
 * Starts a node; `extraArgs` are added to `serve` (e.g. `--site DIR`). With `dataDir`, on that
 * data dir (kept when the node stops: a restart finds its data); else on a fresh one, removed.
 */
export async function startNode(extraArgs: string[] = [], options: { dataDir?: string } = {}): Promise<RunningNode> {
  const binary = blindstoreBinary();
  if (!existsSync(binary)) {
    throw new Error(`no Blindstore binary at ${binary}: build it (cargo build) or set BLINDSTORE_BIN`);
  }
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "blindstore-sdk-"));
  const removeData = options.dataDir === undefined;
  const child = spawn(binary, ["serve", "--http-addr", "127.0.0.1:0", "--data-dir", dataDir, ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env["RUST_LOG"] ?? "warn" },
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (text: string) => {
    stderr = (stderr + text).slice(-8192);
  });
  try {
    const url = await listeningUrl(child, () => stderr);
    return { url, dataDir, stop: () => stop(child, removeData ? dataDir : undefined) };
  } catch (error) {
    await stop(child, removeData ? dataDir : undefined);
    throw error;
  }
}

/** Resolves with the URL from the node's `blindstore listening on ...` line. */
function listeningUrl(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let stdout = "";
    const timer = setTimeout(() => fail(new Error(`the node did not start within ${START_DEADLINE_MS} ms`)), START_DEADLINE_MS);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(new Error(`${error.message}\n${stderr()}`));
    };
    child.once("exit", (code) => fail(new Error(`the node exited with ${code} before listening`)));
    child.stdout!.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
      const match = /blindstore listening on (http:\/\/\S+)/.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        resolvePromise(match[1]!);
      }
    });
  });
}

async function stop(child: ChildProcess, dataDir: string | undefined): Promise<void> {
  if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
    const exited = new Promise<void>((resolvePromise) => child.once("exit", () => resolvePromise()));
    process.kill(child.pid, "SIGTERM");
    const timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) {
        process.kill(child.pid, "SIGKILL");
      }
    }, STOP_DEADLINE_MS);
    await exited;
    clearTimeout(timer);
  }
  if (dataDir !== undefined) {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Runs `blindstore zone set <zone> <args>` against `node` with its admin token; fails on a non-zero exit. */
export async function zoneSet(node: RunningNode, zone: string, args: string[]): Promise<void> {
  await new Promise<void>((resolvePromise, reject) => {
    execFile(
      blindstoreBinary(),
      ["zone", "set", zone, ...args, "--url", node.url, "--data-dir", node.dataDir],
      { timeout: START_DEADLINE_MS },
      (error, _stdout, stderr) => (error === null ? resolvePromise() : reject(new Error(`zone set failed: ${error.message}\n${stderr}`))),
    );
  });
}

/** Runs `blindstore zone create <zone>` against `node`. */
export async function zoneCreate(node: RunningNode, zone: string): Promise<void> {
  await new Promise<void>((resolvePromise, reject) => {
    execFile(
      blindstoreBinary(),
      ["zone", "create", zone, "--url", node.url, "--data-dir", node.dataDir],
      { timeout: START_DEADLINE_MS },
      (error, _stdout, stderr) => (error === null ? resolvePromise() : reject(new Error(`zone create failed: ${error.message}\n${stderr}`))),
    );
  });
}

/** Runs `blindstore zone invite <zone> --count <count>` against `node`: the codes it printed. */
export async function zoneInvite(node: RunningNode, zone: string, count: number): Promise<string[]> {
  return await new Promise<string[]>((resolvePromise, reject) => {
    execFile(
      blindstoreBinary(),
      ["zone", "invite", zone, "--count", String(count), "--url", node.url, "--data-dir", node.dataDir],
      { timeout: START_DEADLINE_MS },
      (error, stdout, stderr) =>
        error === null
          ? resolvePromise(stdout.split("\n").filter((line) => line.trim() !== ""))
          : reject(new Error(`zone invite failed: ${error.message}\n${stderr}`)),
    );
  });
}

/** Polls `condition` every 20 ms until it holds, or fails after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 20));
  }
}
