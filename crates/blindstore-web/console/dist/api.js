// The console's side of the HTTP API: the bodies it reads (as crates/blindstore-types/src/api.rs
// declares them), the credential it sends, and what a failed call means. The token lives in
// this tab's sessionStorage only: never localStorage, a cookie or a URL.
/** An answer other than 2xx; `message` is the server's own (`{"error":{"code","message"}}`). */
export class ApiError extends Error {
    status;
    code;
    name = "ApiError";
    constructor(status, code, message) {
        super(message);
        this.status = status;
        this.code = code;
    }
}
/** No answer: the network failed, or the deadline passed. For a change, its outcome is unknown. */
export class Unreachable extends Error {
    timedOut;
    name = "Unreachable";
    constructor(message, timedOut) {
        super(message);
        this.timedOut = timedOut;
    }
}
const TOKEN = "blindstore-console-token";
const ACCESS = "blindstore-console-access";
/** The signed-in credential of this tab. */
export const session = {
    get token() {
        return sessionStorage.getItem(TOKEN);
    },
    get access() {
        const access = sessionStorage.getItem(ACCESS);
        return access === "admin" || access === "metrics" ? access : null;
    },
    set(token, access) {
        sessionStorage.setItem(TOKEN, token);
        sessionStorage.setItem(ACCESS, access);
    },
    clear() {
        sessionStorage.removeItem(TOKEN);
        sessionStorage.removeItem(ACCESS);
    },
};
let connection = { refused() { }, reachable() { }, unreachable() { } };
export function onConnection(listener) {
    connection = listener;
}
/** Reads wait this long for an answer; changes (rotations, removals) longer. */
const READ_DEADLINE_MS = 10_000;
const CHANGE_DEADLINE_MS = 30_000;
/** Calls the API and returns the JSON answer. */
export async function call(method, path, options = {}) {
    const response = await send(method, path, options);
    const text = await response.text();
    try {
        return JSON.parse(text);
    }
    catch {
        throw new ApiError(response.status, "bad_response", `the answer to ${method} ${path} is not JSON`);
    }
}
/** Calls the API and returns the answer as text (`/v1/metrics`). */
export async function callText(path, options = {}) {
    return (await send("GET", path, options)).text();
}
async function send(method, path, options) {
    const token = options.token ?? session.token;
    const headers = { Accept: "application/json, text/plain" };
    if (token)
        headers.Authorization = `Bearer ${token}`;
    let body;
    if (options.body !== undefined) {
        headers["Content-Type"] = "application/json";
        body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    }
    const change = method !== "GET" && method !== "HEAD";
    const deadline = change ? CHANGE_DEADLINE_MS : READ_DEADLINE_MS;
    let response;
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
    }
    catch (error) {
        const timedOut = error instanceof DOMException && error.name === "TimeoutError";
        const failure = new Unreachable(timedOut
            ? change
                ? `no answer within ${deadline / 1000} s: the change may or may not have been made; look again before retrying`
                : `no answer within ${deadline / 1000} s`
            : "the node serving this page cannot be reached", timedOut);
        connection.unreachable(failure);
        throw failure;
    }
    connection.reachable();
    if (response.ok)
        return response;
    const error = await errorOf(response);
    if (response.status === 401 && !options.quietRefusal)
        connection.refused();
    throw error;
}
async function errorOf(response) {
    const text = await response.text().catch(() => "");
    try {
        const body = JSON.parse(text);
        if (body.error && typeof body.error.message === "string") {
            return new ApiError(response.status, String(body.error.code ?? "error"), body.error.message);
        }
    }
    catch {
        // Not the API's error body (a proxy's page, say): the status says what is known.
    }
    return new ApiError(response.status, `http_${response.status}`, `HTTP ${response.status} ${response.statusText}`.trim());
}
/** The message to show for a failed call. */
export function messageOf(error) {
    if (error instanceof ApiError || error instanceof Unreachable)
        return error.message;
    return error instanceof Error ? error.message : String(error);
}
