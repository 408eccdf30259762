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
  if (type.startsWith("application/json") && doctor?.json !== undefined) {
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
