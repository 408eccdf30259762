// The console's side of the HTTP API: the bodies it reads (as crates/blindstore-types/src/api.rs
// declares them), the credential it sends, and what a failed call means. The token lives in
// this tab's sessionStorage only: never localStorage, a cookie or a URL.

/** `GET /v1/health`. */
export interface Health {
  node_id: number;
  /** `voter`, `learner` or `gateway`. */
  role: string;
  leader: number | null;
  term: number;
  last_applied: number | null;
  last_log_index: number | null;
  snapshot: number | null;
  purged: number | null;
  chunks_held: number;
  under_replicated: number;
  repair_backlog: number;
  /** Copies per second the node's last repair pass sent. */
  repair_rate: number;
  removed: boolean;
  feature_level: number;
  cluster_version: number;
  cluster_id: string | null;
  name: string;
  rpc_tls: boolean;
  version: string;
  revision: string;
}

/** A member as `GET /v1/admin/cluster/overview` gives it, with its health when it answered. */
export interface OverviewMember {
  node_id: number;
  role: string;
  rpc_addr: string;
  http_addr: string;
  /** Highest log index known replicated to it (only when the answering node leads). */
  matched: number | null;
  draining: boolean;
  health: Health | null;
  /** Why its health could not be read (it is down or unreachable). */
  error: string | null;
}

/** `GET /v1/admin/cluster/overview`. */
export interface Overview {
  answered_by: number;
  leader: number | null;
  term: number;
  leader_last_log_index: number | null;
  members: OverviewMember[];
  removed: number[];
}

/** `GET /v1/admin/chunks/most-requested`. */
export interface MostRequested {
  most_requested: { zone: string; hash: string; requests: number }[];
}

export interface ZoneQuota {
  max_chains: number;
  max_entries: number;
  max_chunk_bytes: number;
  max_chunks: number;
}

export type WritePolicy = "open" | "accounts";
export type RegistrationPolicy = "open" | "invite" | "closed";

/** A zone with its usage (`GET /v1/admin/zones`). */
export interface Zone {
  zone: string;
  created_at_ms: number;
  /** Chains and entries of the whole zone; chunks and bytes on the answering node. */
  usage: { chains: number; entries: number; chunks: number; bytes: number };
  quota: ZoneQuota;
  settings: {
    writes: WritePolicy;
    account_quota: { max_chains: number; max_chunks: number; max_chunk_bytes: number };
    passkeys: { rp_id: string; origins: string[] } | null;
    cors_origins: string[];
    site_hosts: string[];
    proxies: { name: string; upstream: string; timeout_ms: number }[];
  };
  registration: { policy: RegistrationPolicy; max_accounts: number; max_envelope_bytes: number };
  accounts: { accounts: number; envelope_bytes: number };
}

/** `POST /v1/admin/cluster/credentials/rotate`. */
export interface RotatedCredential {
  admin_token: string | null;
  metrics_token: string | null;
}

/** What the token in use may do: every admin call, or reading metrics only. */
export type Access = "admin" | "metrics";

/** An answer other than 2xx; `message` is the server's own (`{"error":{"code","message"}}`). */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** No answer: the network failed, or the deadline passed. For a change, its outcome is unknown. */
export class Unreachable extends Error {
  override name = "Unreachable";
  constructor(
    message: string,
    readonly timedOut: boolean,
  ) {
    super(message);
  }
}

const TOKEN = "blindstore-console-token";
const ACCESS = "blindstore-console-access";

/** The signed-in credential of this tab. */
export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN);
  },
  get access(): Access | null {
    const access = sessionStorage.getItem(ACCESS);
    return access === "admin" || access === "metrics" ? access : null;
  },
  set(token: string, access: Access): void {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(ACCESS, access);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(ACCESS);
  },
};

/** What the page is told about calls: a refused token, and whether the node answers. */
export interface Connection {
  refused(): void;
  reachable(): void;
  unreachable(error: Unreachable): void;
}

let connection: Connection = { refused() {}, reachable() {}, unreachable() {} };

export function onConnection(listener: Connection): void {
  connection = listener;
}

/** Reads wait this long for an answer; changes (rotations, removals) longer. */
const READ_DEADLINE_MS = 10_000;
const CHANGE_DEADLINE_MS = 30_000;

export interface CallOptions {
  /** A JSON body (sent as `application/json`). */
  body?: unknown;
  /** The token to send instead of the session's (signing in tries one before keeping it). */
  token?: string;
  /** Do not tell the page about a 401 (signing in handles it itself). */
  quietRefusal?: boolean;
}

/** Calls the API and returns the JSON answer. */
export async function call<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
  const response = await send(method, path, options);
  const text = await response.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(response.status, "bad_response", `the answer to ${method} ${path} is not JSON`);
  }
}

/** Calls the API and returns the answer as text (`/v1/metrics`). */
export async function callText(path: string, options: CallOptions = {}): Promise<string> {
  return (await send("GET", path, options)).text();
}

async function send(method: string, path: string, options: CallOptions): Promise<Response> {
  const token = options.token ?? session.token;
  const headers: Record<string, string> = { Accept: "application/json, text/plain" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
  }
  const change = method !== "GET" && method !== "HEAD";
  const deadline = change ? CHANGE_DEADLINE_MS : READ_DEADLINE_MS;
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body ?? null,
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      signal: AbortSignal.timeout(deadline),
    });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === "TimeoutError";
    const failure = new Unreachable(
      timedOut
        ? change
          ? `no answer within ${deadline / 1000} s: the change may or may not have been made; look again before retrying`
          : `no answer within ${deadline / 1000} s`
        : "the node serving this page cannot be reached",
      timedOut,
    );
    connection.unreachable(failure);
    throw failure;
  }
  connection.reachable();
  if (response.ok) return response;
  const error = await errorOf(response);
  if (response.status === 401 && !options.quietRefusal) connection.refused();
  throw error;
}

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (body.error && typeof body.error.message === "string") {
      return new ApiError(response.status, String(body.error.code ?? "error"), body.error.message);
    }
  } catch {
    // Not the API's error body (a proxy's page, say): the status says what is known.
  }
  return new ApiError(response.status, `http_${response.status}`, `HTTP ${response.status} ${response.statusText}`.trim());
}

/** The message to show for a failed call. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError || error instanceof Unreachable) return error.message;
  return error instanceof Error ? error.message : String(error);
}
