/**
 * An in-process stand-in for the chain routes of a Blindstore node, served through a fake
 * `fetch`. It appends honestly (compare-and-set on index and prev) so the SDK's own writer can
 * build real signed chains, and then lets a test doctor what it serves: drop entries (rollback),
 * swap in another branch (fork), tamper with fields, cut answers short, or lie in the event stream.
 */

import { fromBase64Url, sha256, toHex } from "../../lib/bytes.js";
import { chainIdOf, entryHashOf, entryMessage, genesisOf } from "../../lib/entry.js";
import type { WireEntry } from "../../lib/entry.js";
import { fromHex, toBase64Url } from "../../lib/index.js";

const JSON_HEADERS = { "content-type": "application/json" };

export interface FakeChain {
  publicKey: string;
  entries: WireEntry[];
}

export class FakeServer {
  readonly zone: string;
  readonly chains = new Map<string, FakeChain>();
  /** Every request seen, as "METHOD path?query". */
  readonly requests: string[] = [];
  /** Request headers seen, in order. */
  readonly headers: Headers[] = [];
  /** Rewrites an entries answer before it is sent (doctoring hook). */
  doctorPage: ((page: { length: number; head: string; entries: WireEntry[]; next?: number }, query: URLSearchParams) => void) | undefined;
  /** Replaces the event stream's text for a request from `from` (doctoring hook). */
  doctorEvents: ((from: number) => string | undefined) | undefined;
  /** Event stream requests left that get no answer at all until the client gives up. */
  stalledEventRequests = 0;
  /** Replaces the public key the chain route states (doctoring hook). */
  doctorPublicKey: string | undefined;

  constructor(zone = "demo") {
    this.zone = zone;
  }

  /** A copy of this server's chains: a second server that shares the history so far. */
  fork(): FakeServer {
    const other = new FakeServer(this.zone);
    for (const [id, chain] of this.chains) {
      other.chains.set(id, { publicKey: chain.publicKey, entries: chain.entries.map((entry) => ({ ...entry, chunks: [...entry.chunks] })) });
    }
    return other;
  }

  readonly fetch = async (input: string, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input);
    const method = init.method ?? "GET";
    this.requests.push(`${method} ${url.pathname}${url.search}`);
    this.headers.push(new Headers(init.headers));
    const prefix = `/v1/zones/${this.zone}/chains`;
    if (!url.pathname.startsWith(prefix)) {
      return error(404, "not_found");
    }
    const [chainId, route] = url.pathname.slice(prefix.length + 1).split("/");
    if (chainId === "" || chainId === undefined) {
      return method === "POST" ? this.#create(JSON.parse(String(init.body))) : error(404, "not_found");
    }
    const chain = this.chains.get(chainId);
    if (chain === undefined) {
      return error(404, "unknown_chain");
    }
    if (route === undefined) {
      return json(200, { chain_id: chainId, public_key: this.doctorPublicKey ?? chain.publicKey, length: chain.entries.length, head: await this.#head(chainId, chain) });
    }
    if (route === "entries" && method === "POST") {
      return this.#append(chainId, chain, JSON.parse(String(init.body)));
    }
    if (route === "entries") {
      return this.#read(chainId, chain, url.searchParams);
    }
    if (route === "events" && this.stalledEventRequests > 0) {
      this.stalledEventRequests -= 1;
      return new Promise((_, reject) => init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")), { once: true }));
    }
    if (route === "events") {
      return this.#events(chain, Number(url.searchParams.get("from") ?? "0"), init.signal ?? undefined);
    }
    return error(404, "not_found");
  };

  async #create(body: { public_key: string }): Promise<Response> {
    const chainId = toHex(await chainIdOf(fromBase64Url(body.public_key)));
    if (!this.chains.has(chainId)) {
      this.chains.set(chainId, { publicKey: body.public_key, entries: [] });
    }
    const chain = this.chains.get(chainId)!;
    return json(201, { chain_id: chainId, public_key: body.public_key, length: chain.entries.length, head: await this.#head(chainId, chain) });
  }

  async #append(chainId: string, chain: FakeChain, body: { index: number; prev: string; payload: string; chunks: string[]; signature: string }): Promise<Response> {
    const head = await this.#head(chainId, chain);
    if (body.index !== chain.entries.length || body.prev !== head) {
      return json(409, { error: { code: "index_conflict", message: "index conflict", length: chain.entries.length, head }, length: chain.entries.length, head });
    }
    const payload = fromBase64Url(body.payload);
    const payloadHash = await sha256(payload);
    const signature = fromBase64Url(body.signature);
    const message = entryMessage({
      zone: this.zone,
      chainId: fromHex(chainId, 32),
      index: body.index,
      prev: fromHex(body.prev, 32),
      payloadHash,
      payloadLength: payload.length,
      chunks: body.chunks.map((chunk) => fromHex(chunk, 32)),
    });
    const entryHash = toHex(await entryHashOf(message, signature));
    chain.entries.push({
      index: body.index,
      prev: body.prev,
      payload_hash: toHex(payloadHash),
      payload: body.payload,
      chunks: body.chunks,
      signature: body.signature,
      entry_hash: entryHash,
    });
    return json(201, { index: body.index, entry_hash: entryHash, length: chain.entries.length });
  }

  async #read(chainId: string, chain: FakeChain, query: URLSearchParams): Promise<Response> {
    const entries = chain.entries;
    let chosen: WireEntry[];
    if (query.has("last")) {
      chosen = entries.slice(Math.max(0, entries.length - Number(query.get("last"))));
    } else {
      const from = Number(query.get("from") ?? "0");
      chosen = entries.slice(from, from + Number(query.get("limit") ?? "100"));
    }
    const page = { length: entries.length, head: await this.#head(chainId, chain), entries: chosen.map((entry) => ({ ...entry })) };
    this.doctorPage?.(page, query);
    return json(200, page);
  }

  #events(chain: FakeChain, from: number, signal: AbortSignal | undefined): Response {
    const text =
      this.doctorEvents?.(from) ??
      (from > chain.entries.length
        ? `event: unavailable\ndata: ${JSON.stringify({ code: "position_unavailable", from, length: chain.entries.length })}\n\n`
        : chain.entries
            .slice(from)
            .map((entry) => `event: entry\nid: ${entry.index}\ndata: ${JSON.stringify(entry)}\n\n`)
            .join(""));
    // The stream stays open after its events, as a live one does, until the client aborts.
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`retry: 10\n\n${text}`));
        signal?.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")), { once: true });
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  }

  async #head(chainId: string, chain: FakeChain): Promise<string> {
    return chain.entries.at(-1)?.entry_hash ?? toHex(await genesisOf(fromHex(chainId, 32)));
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

function error(status: number, code: string): Response {
  return json(status, { error: { code, message: code } });
}

/** Flips one bit of a base64url field, keeping it valid base64url of the same length. */
export function flipBase64Url(text: string, byteIndex = 0): string {
  const bytes = fromBase64Url(text);
  bytes[byteIndex]! ^= 1;
  return toBase64Url(bytes);
}
