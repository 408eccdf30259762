/**
 * A malicious server for tests: an HTTP proxy in front of real Blindstore nodes that forwards
 * every request and lets a test doctor the answers — JSON bodies, chunk bytes, the event stream
 * — or switch to another node mid-way (a failover to a node with another history).
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** How the proxy lies; every hook is optional and sees the path without the zone prefix. */
export interface Doctor {
  /** Rewrites a JSON answer; return the new value (or nothing to keep it). */
  json?(path: string, method: string, body: any): any;
  /** Rewrites a binary answer (chunks). */
  bytes?(path: string, body: Uint8Array): Uint8Array | undefined;
  /** Rewrites each event-stream block (`id: ...\nevent: ...\ndata: ...`); null drops it. */
  event?(path: string, block: string): string | null;
}

export interface TamperingProxy {
  url: string;
  /** Arms a doctor (undefined: honest). */
  doctor: Doctor | undefined;
  /** Where requests go from now on. */
  upstream: string;
  close(): Promise<void>;
}

/** Hop-by-hop and length headers the proxy recomputes rather than copies. */
const DROPPED = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"]);

export async function startProxy(upstream: string): Promise<TamperingProxy> {
  const proxy: TamperingProxy = { url: "", doctor: undefined, upstream, close: async () => {} };
  const server = createServer((request, response) => {
    forward(proxy, request, response).catch((error: unknown) => {
      if (!response.headersSent) {
        response.writeHead(502, { "content-type": "application/json" });
      }
      response.end(JSON.stringify({ error: "bad_gateway", message: String(error) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}

async function forward(proxy: TamperingProxy, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (!DROPPED.has(name) && typeof value === "string") headers.set(name, value);
  }
  const method = request.method ?? "GET";
  const abort = new AbortController();
  response.on("close", () => abort.abort());
  const answer = await fetch(proxy.upstream + request.url, {
    method,
    headers,
    body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
    signal: abort.signal,
  });
  const path = (request.url ?? "").replace(/^\/v1\/zones\/[^/]+/, "");
  const out: Record<string, string> = {};
  answer.headers.forEach((value, name) => {
    if (!DROPPED.has(name)) out[name] = value;
  });
  const type = answer.headers.get("content-type") ?? "";
  const doctor = proxy.doctor;
  if (type.startsWith("text/event-stream")) {
    response.writeHead(answer.status, out);
    await relayEvents(answer, response, (block) => (doctor?.event === undefined ? block : doctor.event(path, block)));
    return;
  }
  let body: Uint8Array = new Uint8Array(await answer.arrayBuffer());
  if (type.startsWith(ENTRIES_BINARY) && doctor?.json !== undefined) {
    // Entries in the binary form are doctored as the JSON page they carry, then sent back in
    // the binary form — or as JSON when the doctor made something that form cannot carry.
    const changed = doctor.json(path, method, binaryToJson(body));
    if (changed !== undefined) {
      try {
        body = jsonToBinary(changed);
      } catch {
        body = Buffer.from(JSON.stringify(changed));
        out["content-type"] = "application/json";
      }
    }
  } else if (type.startsWith("application/json") && doctor?.json !== undefined) {
    const changed = doctor.json(path, method, JSON.parse(Buffer.from(body).toString("utf8")));
    if (changed !== undefined) body = Buffer.from(JSON.stringify(changed));
  } else if (type.startsWith("application/octet-stream") && doctor?.bytes !== undefined) {
    body = doctor.bytes(path, body) ?? body;
  }
  response.writeHead(answer.status, out);
  response.end(body);
}

/** Passes an event stream through block by block, each block rewritten by `rewrite`. */
async function relayEvents(answer: Response, response: ServerResponse, rewrite: (block: string) => string | null): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for await (const chunk of answer.body as unknown as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = pending.indexOf("\n\n")) >= 0) {
        const block = pending.slice(0, end);
        pending = pending.slice(end + 2);
        const rewritten = block.startsWith(":") ? block : rewrite(block);
        if (rewritten !== null) response.write(`${rewritten}\n\n`);
      }
    }
  } catch {
    // The client went away (the abort ended the upstream read).
  }
  response.end();
}

const ENTRIES_BINARY = "application/vnd.blindstore.entries";

/** A binary entries page (docs/entry-format.md) as the JSON page with the same fields. */
function binaryToJson(bytes: Uint8Array): any {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 4;
  const u64 = () => Number(view.getBigUint64((at += 8) - 8));
  const u32 = () => view.getUint32((at += 4) - 4);
  const take = (n: number) => bytes.subarray(at, (at += n));
  const hex = () => Buffer.from(take(32)).toString("hex");
  const b64 = (n: number) => Buffer.from(take(n)).toString("base64url");
  const length = u64();
  const head = hex();
  const hasNext = take(1)[0];
  const next = u64();
  const entries = [];
  for (let i = u32(); i > 0; i--) {
    const index = u64();
    const prev = hex();
    const payload_hash = hex();
    const payload = b64(u32());
    const chunks = Array.from({ length: u32() }, hex);
    const signature = b64(64);
    entries.push({ index, prev, payload_hash, payload, chunks, signature, entry_hash: hex() });
  }
  return { length, head, entries, ...(hasNext ? { next } : {}) };
}

/** The JSON page back in the binary form; throws on a field that form cannot carry. */
function jsonToBinary(page: any): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.from([0x42, 0x53, 0x45, 1])];
  const u64 = (n: number) => {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not an index: ${n}`);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n));
    parts.push(b);
  };
  const u32 = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    parts.push(b);
  };
  const fixed = (data: Buffer, n: number) => {
    if (data.length !== n) throw new Error(`${data.length} bytes where ${n} go`);
    parts.push(data);
  };
  const hex = (h: string) => fixed(Buffer.from(h, "hex"), 32);
  u64(page.length);
  hex(page.head);
  parts.push(Uint8Array.from([page.next === undefined ? 0 : 1]));
  u64(page.next ?? 0);
  u32(page.entries.length);
  for (const e of page.entries) {
    u64(e.index);
    hex(e.prev);
    hex(e.payload_hash);
    const payload = Buffer.from(e.payload, "base64url");
    u32(payload.length);
    parts.push(payload);
    u32(e.chunks.length);
    e.chunks.forEach(hex);
    fixed(Buffer.from(e.signature, "base64url"), 64);
    hex(e.entry_hash);
  }
  return Buffer.concat(parts);
}
