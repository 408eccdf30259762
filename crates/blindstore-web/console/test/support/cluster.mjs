// A real Blindstore cluster for the console's browser test: three nodes (ams-1, ams-2, ams-3)
// and a gateway (gw-1) on 127.0.0.1, every port picked by the OS (port 0, the address read from the
// process's output), data under one temporary directory. Only the processes started here are
// ever signalled, by their pid. The binary is $BLINDSTORE_BIN, else the workspace's debug build.
import { execFile, spawn } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const consoleDir = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const binary = resolve(consoleDir, process.env.BLINDSTORE_BIN ?? "../../../target/debug/blindstore");

/** Polls `condition` (async, truthy when done) every `everyMs` until `timeoutMs` passes. */
export async function eventually(what, condition, { timeoutMs = 15_000, everyMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** One `blindstore serve` process: its URL, rpc address, data dir, and how to stop it. */
class Server {
  constructor(child, name, dataDir) {
    this.child = child;
    this.name = name;
    this.dataDir = dataDir;
    this.log = "";
    child.stderr.setEncoding("utf8").on("data", (t) => {
      this.log = (this.log + t).slice(-16_384);
    });
  }

  get pid() {
    return this.child.pid;
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for the lines that give the addresses bound (rpc first, when there is one). */
  async started(rpc) {
    let out = "";
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`${this.name} did not start in 60 s\n${this.log}`)), 60_000);
      this.child.once("exit", (code, signal) => {
        clearTimeout(timer);
        fail(new Error(`${this.name} exited (${code ?? signal}) while starting\n${this.log}`));
      });
      this.child.stdout.setEncoding("utf8").on("data", (t) => {
        out += t;
        const http = /blindstore listening on (http:\/\/\S+)/.exec(out);
        const rpcAddr = /blindstore rpc listening on (\S+)/.exec(out);
        if (http && (!rpc || rpcAddr)) {
          clearTimeout(timer);
          this.url = http[1];
          this.rpc = rpcAddr?.[1];
          ok();
        }
      });
    });
  }

  /** SIGKILL: a node that dies without a word. */
  async kill() {
    if (!this.running) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGKILL");
    await exited;
  }

  /** SIGTERM, then SIGKILL after 10 s. */
  async stop() {
    if (!this.running) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGTERM");
    const hard = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(hard);
  }
}

/**
 * Starts three nodes (the first creates the cluster, two join it) and a gateway, each named,
 * with one admin token. Resolves with {dir, nodes, gateway, adminToken, stop}; on failure
 * stops what it started.
 */
export async function startCluster(extra = []) {
  if (!existsSync(binary)) throw new Error(`no Blindstore binary at ${binary}: run cargo build or set BLINDSTORE_BIN`);
  const dir = mkdtempSync(join(tmpdir(), "blindstore-console-"));
  const adminToken = randomBytes(24).toString("hex");
  const servers = [];
  const spawnServer = (name, args) => {
    const dataDir = join(dir, name);
    const child = spawn(binary, ["serve", "--http-addr", "127.0.0.1:0", "--data-dir", dataDir, "--admin-token", adminToken, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: environment(),
    });
    const server = new Server(child, name, dataDir);
    servers.push(server);
    return server;
  };
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const first = spawnServer("ams-1", ["--name", "ams-1", "--rpc-addr", "127.0.0.1:0", ...extra]);
    await first.started(true);
    const joinToken = readFileSync(join(first.dataDir, "join-token"), "utf8").trim();
    const nodes = [first];
    for (const name of ["ams-2", "ams-3"]) {
      const node = spawnServer(name, ["--name", name, "--rpc-addr", "127.0.0.1:0", "--join", first.rpc, "--join-token", joinToken, ...extra]);
      await node.started(true);
      nodes.push(node);
    }
    const gatewayToken = readFileSync(join(first.dataDir, "gateway-token"), "utf8").trim();
    const gateway = spawnServer("gateway", ["--name", "gw-1", "--role", "gateway", "--join", first.rpc, "--gateway-token", gatewayToken]);
    await gateway.started(false);
    return { dir, nodes, gateway, adminToken, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The environment of a process started here: quiet logs, no admin token but the one passed. */
function environment() {
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  delete env.BLINDSTORE_ADMIN_TOKEN;
  return env;
}

/** `blindstore ARGS`: its standard output. */
export async function cli(args) {
  const { stdout } = await promisify(execFile)(binary, args, { timeout: 60_000, env: environment() });
  return stdout;
}

/** A JSON call to `base` with `token`; resolves with {status, body}. */
export async function api(base, method, path, { token, body, raw } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(base + path, {
    method,
    headers,
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON (metrics, chunk bytes): the text.
  }
  return { status: response.status, body: parsed };
}

export function sha256(bytes) {
  return createHash("sha256").update(bytes).digest();
}

/** Uploads `count` random chunks into `zone` (writes open); resolves with their hex hashes. */
export async function putChunks(base, zone, count) {
  const hashes = [];
  for (let i = 0; i < count; i++) {
    const bytes = randomBytes(1024 + ((i * 977) % 6000));
    const hash = sha256(bytes).toString("hex");
    const { status, body } = await api(base, "PUT", `/v1/zones/${zone}/chunks/${hash}`, { raw: bytes });
    if (status !== 201 && status !== 200) throw new Error(`chunk upload: ${status} ${JSON.stringify(body)}`);
    hashes.push(hash);
  }
  return hashes;
}

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

/** A chain of `zone` with an Ed25519 key: `append(n)` appends n entries (DESIGN.md §3's format). */
export async function newChain(base, zone) {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const chainId = sha256(Buffer.concat([Buffer.from("blindstore/chain/v1\0"), raw]));
  const created = await api(base, "POST", `/v1/zones/${zone}/chains`, { body: { public_key: b64url(raw) } });
  if (created.status !== 201) throw new Error(`chain: ${created.status} ${JSON.stringify(created.body)}`);
  let index = 0;
  let prev = sha256(Buffer.concat([Buffer.from("blindstore/genesis/v1\0"), chainId]));
  const append = async (n) => {
    for (let i = 0; i < n; i++) {
      const payload = randomBytes(40 + (index % 200));
      const z = Buffer.from(zone);
      const u64 = (v) => {
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(BigInt(v));
        return b;
      };
      const message = Buffer.concat([
        Buffer.from("blindstore/entry/v1\0"),
        Buffer.from([z.length]),
        z,
        chainId,
        u64(index),
        prev,
        sha256(payload),
        u64(payload.length),
        Buffer.from([0, 0, 0, 0]),
      ]);
      const signature = sign(null, message, privateKey);
      const r = await api(base, "POST", `/v1/zones/${zone}/chains/${chainId.toString("hex")}/entries`, {
        body: { index, prev: prev.toString("hex"), payload: b64url(payload), chunks: [], signature: b64url(signature) },
      });
      if (r.status !== 201) throw new Error(`append ${index}: ${r.status} ${JSON.stringify(r.body)}`);
      prev = sha256(Buffer.concat([message, signature]));
      index++;
    }
  };
  return { append };
}
