// The live charts: `GET /v1/metrics` read every 2 s from sign-in on (the last 5 minutes kept in
// memory, in this tab only), drawn as appends per second, request latency, commit time, the
// cache's or local reads' share, and free disk against the reserve.
import { callText, messageOf } from "./api.js";
import { el, replace, svg } from "./element.js";
import * as format from "./format.js";
import { lineChart } from "./linechart.js";
import { bucketIncrease, histogramQuantile, increase, parseExposition, rate, ScrapeHistory, sum, } from "./metrics.js";
import { Poller, viewHeading } from "./view.js";
export const WINDOW_MS = 5 * 60_000;
export const SCRAPE_MS = 2_000;
/** The scrapes of this tab, read in the background whatever view is shown. */
export class MetricsFeed {
    history = new ScrapeHistory(WINDOW_MS);
    /** Why the last read failed, until one succeeds. */
    problem = null;
    #listeners = new Set();
    #poller = new Poller(() => this.#scrape(), SCRAPE_MS);
    start() {
        this.#poller.start();
    }
    stop() {
        this.#poller.stop();
    }
    /** Calls `listener` after each read; returns how to stop. */
    listen(listener) {
        this.#listeners.add(listener);
        return () => this.#listeners.delete(listener);
    }
    async #scrape() {
        try {
            const text = await callText("/v1/metrics");
            this.history.add({ atMs: Date.now(), samples: parseExposition(text) });
            this.problem = null;
        }
        catch (error) {
            this.problem = messageOf(error);
        }
        for (const listener of this.#listeners)
            listener();
    }
}
const REQUESTS = "blindstore_http_requests_total";
const LATENCY = "blindstore_http_request_duration_seconds";
const COMMIT = "blindstore_storage_commit_seconds";
const CACHE = "blindstore_cache_requests_total";
const READS = "blindstore_chunk_reads_total";
const DISK_FREE = "blindstore_disk_free_bytes";
const DISK_RESERVE = "blindstore_disk_reserve_bytes";
/** Appends: POST on the entries route (its template, whatever the chain parameter is named). */
const APPEND_ROUTE = /^\/v1\/zones\/\{[^}]+\}\/chains\/\{[^}]+\}\/entries$/;
const isAppend = (l) => l.method === "POST" && APPEND_ROUTE.test(l.route ?? "") && /^2\d\d$/.test(l.status ?? "");
const label = (name, value) => (l) => l[name] === value;
const oneOf = (name, ...values) => (l) => values.includes(l[name] ?? "");
function quantiles(history, name) {
    const at = (q) => history.between((a, b) => histogramQuantile(q, bucketIncrease(a, b, name)));
    return [
        { label: "p50", points: at(0.5), style: 0 },
        { label: "p99", points: at(0.99), style: 1 },
    ];
}
/** The share `part` makes of `part` plus `rest`, per interval. */
function share(history, name, part, rest) {
    return history.between((a, b) => {
        const yes = increase(a, b, name, part);
        const no = increase(a, b, name, rest);
        return yes + no > 0 ? yes / (yes + no) : null;
    });
}
function shareSinceStart(latest, name, part, rest) {
    const yes = sum(latest, name, part) ?? 0;
    const no = sum(latest, name, rest) ?? 0;
    return yes + no > 0 ? `${format.percent(yes / (yes + no))} since the process started (${format.count(yes + no)} reads)` : null;
}
function has(latest, name) {
    return latest.samples.some((s) => s.name === name || s.name === `${name}_bucket`);
}
function chartsFor(role) {
    const gateway = role === "gateway";
    const charts = [
        {
            title: "Appends",
            about: "Entries appended per second (POST …/entries answered 2xx).",
            lines: (h) => [{ label: "appends", points: h.between((a, b) => rate(a, b, REQUESTS, isAppend)), style: 0 }],
            format: (v) => format.perSecond(v),
            minTop: 1,
        },
        {
            title: "Request latency",
            about: "Time to the response head, all routes together, over each 2 s interval.",
            lines: (h) => quantiles(h, LATENCY),
            format: format.seconds,
            minTop: 0.001,
        },
        {
            title: "Commit time",
            about: "Durable writes, all stores together: Raft log writes with their one fdatasync, state commits (not synced) and the state's background syncs, groups of chunk writes.",
            lines: (h) => quantiles(h, COMMIT),
            format: format.seconds,
            minTop: 0.001,
            absent: (latest) => (has(latest, COMMIT) ? null : gateway ? "A gateway stores nothing: it makes no commits." : "No commit timings in this node's metrics yet."),
        },
        gateway
            ? {
                title: "Cache hit rate",
                about: "Chunk reads the gateway's cache answered, of all chunk reads through it.",
                lines: (h) => [{ label: "hits", points: share(h, CACHE, label("result", "hit"), label("result", "miss")), style: 0 }],
                format: format.percent,
                minTop: 1,
                maxTop: 1,
                sinceStart: (latest) => shareSinceStart(latest, CACHE, label("result", "hit"), label("result", "miss")),
            }
            : {
                title: "Cache hit rate",
                about: "Chunk reads this node's memory cache answered, and those answered without a peer (from the cache or its own disk), of all its chunk reads.",
                lines: (h) => [
                    { label: "cache", points: share(h, CACHE, label("result", "hit"), label("result", "miss")), style: 0 },
                    { label: "no peer hop", points: share(h, READS, oneOf("source", "cache", "local"), label("source", "peer")), style: 1 },
                ],
                format: format.percent,
                minTop: 1,
                maxTop: 1,
                sinceStart: (latest) => shareSinceStart(latest, CACHE, label("result", "hit"), label("result", "miss")),
            },
        {
            title: "Free disk",
            about: "Free bytes on the data directory's disk, and the reserve below which the node refuses new data.",
            lines: (h) => [
                { label: "free", points: h.each((s) => sum(s, DISK_FREE)), style: 0 },
                { label: "reserve", points: h.each((s) => sum(s, DISK_RESERVE)), style: 1 },
            ],
            format: format.bytes,
            minTop: 1024 ** 3,
            binary: true,
            absent: (latest) => (has(latest, DISK_FREE) ? null : gateway ? "A gateway keeps no data: no disk figures." : "No disk figures in this node's metrics."),
        },
    ];
    return charts;
}
export class ChartsView {
    feed;
    id = "charts";
    title = "Live charts";
    #grid = el("div", { class: "charts" });
    #problem = el("div");
    #stop = null;
    #context = null;
    constructor(feed) {
        this.feed = feed;
    }
    show(root, context) {
        this.#context = context;
        replace(root, viewHeading("Live charts"), el("p", { class: "footnote" }, `From GET /v1/metrics of the node serving this page, read every ${SCRAPE_MS / 1000} s; the last ${WINDOW_MS / 60_000} minutes are kept in this tab only. Each point covers the interval since the read before it.`), this.#problem, this.#grid);
        this.#render();
        this.#stop = this.feed.listen(() => this.#render());
    }
    hide() {
        this.#stop?.();
        this.#stop = null;
    }
    #render() {
        replace(this.#problem, this.feed.problem ? el("p", { class: "notice notice-error" }, `The metrics could not be read: ${this.feed.problem}`) : null);
        const history = this.feed.history;
        const latest = history.latest;
        if (!latest) {
            replace(this.#grid, el("p", { class: "muted" }, "Reading the metrics…"));
            return;
        }
        const role = this.#context?.health()?.role ?? "voter";
        // The time axis spans what was read so far, in whole minutes, up to the window kept.
        const span = latest.atMs - history.scrapes[0].atMs;
        const windowMs = Math.min(WINDOW_MS, Math.max(1, Math.ceil(span / 60_000)) * 60_000);
        // Drawn at the width the charts took last time, so their text stays legible on a phone.
        const drawn = () => this.#grid.querySelector("svg.chart")?.getBoundingClientRect().width || undefined;
        const width = drawn();
        const draw = (width) => replace(this.#grid, ...chartsFor(role).map((chart, i) => figure(chart, history, latest, windowMs, width, i)));
        draw(width);
        // The first time, the width is known only once drawn: draw again at it.
        if (width === undefined && drawn() !== undefined)
            draw(drawn());
    }
}
function figure(chart, history, latest, windowMs, width, index) {
    const id = `chart-${index}`;
    const absent = chart.absent?.(latest) ?? null;
    const head = el("figcaption", {}, el("h3", { id: `${id}-title` }, chart.title), el("p", { class: "chart-about" }, chart.about));
    if (absent) {
        return el("figure", { class: "panel chart-card chart-absent", "aria-labelledby": `${id}-title` }, head, el("p", { class: "muted" }, absent));
    }
    const lines = chart.lines(history);
    const values = lines.map((l) => {
        const last = l.points[l.points.length - 1];
        return last && last.value !== null ? `${l.label} ${chart.format(last.value)}` : `${l.label}: nothing in the last interval`;
    });
    const latestText = history.scrapes.length < 2 ? "Collecting: values appear after the second read." : `Latest: ${values.join(" · ")}`;
    const since = chart.sinceStart?.(latest) ?? null;
    const summary = el("p", { class: "chart-latest", id: `${id}-latest` }, latestText);
    const options = {
        label: `${chart.title}, last ${windowMs / 60_000} minute${windowMs === 60_000 ? "" : "s"}. ${latestText}`,
        lines,
        windowMs,
        nowMs: latest.atMs,
        format: chart.format,
        minTop: chart.minTop,
        ...(chart.maxTop !== undefined ? { maxTop: chart.maxTop } : {}),
        binary: chart.binary ?? false,
        ...(width !== undefined ? { width } : {}),
    };
    return el("figure", { class: "panel chart-card", "aria-labelledby": `${id}-title` }, head, summary, since ? el("p", { class: "chart-since" }, since) : null, lineChart(options), lines.length > 1 ? legend(lines) : null);
}
function legend(lines) {
    return el("ul", { class: "legend" }, ...lines.map((l) => el("li", {}, svg("svg", { viewBox: "0 0 24 8", width: 24, height: 8, "aria-hidden": "true" }, svg("line", { x1: 0, x2: 24, y1: 4, y2: 4, class: `chart-line chart-line-${l.style}` })), l.label)));
}
