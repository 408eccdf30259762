// Runs the real Blindstore binary for a test: one node on 127.0.0.1, port 0, a fresh data dir,
// stopped by its pid afterwards. The binary is $BLINDSTORE_BIN, else the debug build.
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
export const binary = process.env.BLINDSTORE_BIN ?? join(root, "target/debug/blindstore");

/** Starts `blindstore serve` with `args`; resolves with {url, dataDir, stop}. */
export async function startNode(args = []) {
  if (!existsSync(binary)) throw new Error(`no Blindstore binary at ${binary}: run cargo build or set BLINDSTORE_BIN`);
  const dataDir = mkdtempSync(join(tmpdir(), "blindstore-budget-"));
  const child = spawn(binary, ["serve", "--http-addr", "127.0.0.1:0", "--data-dir", dataDir, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (t) => { stderr = (stderr + t).slice(-8192); });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const hard = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(hard);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const url = await new Promise((ok, fail) => {
      let out = "";
      const timer = setTimeout(() => fail(new Error(`the node did not start in 30 s\n${stderr}`)), 30_000);
      child.once("exit", (code) => { clearTimeout(timer); fail(new Error(`the node exited with ${code}\n${stderr}`)); });
      child.stdout.setEncoding("utf8").on("data", (t) => {
        out += t;
        const m = /blindstore listening on (http:\/\/\S+)/.exec(out);
        if (m) { clearTimeout(timer); ok(m[1]); }
      });
    });
    return { url, dataDir, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** `blindstore zone invite ZONE --count N` against `node`: the codes it printed. */
export async function zoneInvite(node, zone, count) {
  const token = readFileSync(join(node.dataDir, "admin-token"), "utf8").trim();
  const { stdout } = await promisify(execFile)(
    binary,
    ["zone", "invite", zone, "--count", String(count), "--url", node.url, "--admin-token", token],
    { timeout: 30_000 },
  );
  return stdout.split("\n").filter((line) => line.trim() !== "");
}

/** `blindstore zone set ARGS` against `node`, with its admin token. */
export async function zoneSet(node, args) {
  const token = readFileSync(join(node.dataDir, "admin-token"), "utf8").trim();
  await promisify(execFile)(binary, ["zone", "set", ...args, "--url", node.url, "--admin-token", token], { timeout: 30_000 });
}
