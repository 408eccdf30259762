// A line chart as inline SVG built with DOM calls: a time axis over the last minutes, a value
// axis from zero with three labelled ticks, one line per series (told apart by dash pattern as
// well as colour), and gaps where there was nothing to measure.
import { svg } from "./element.js";
const DEFAULT_WIDTH = 560;
const MIN_WIDTH = 260;
const MAX_WIDTH = 1000;
const HEIGHT = 190;
const LEFT = 70;
const RIGHT = 12;
const TOP = 12;
const BOTTOM = 26;
export function lineChart(options) {
    const width = Math.round(Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, options.width ?? DEFAULT_WIDTH)));
    const plotWidth = width - LEFT - RIGHT;
    const plotHeight = HEIGHT - TOP - BOTTOM;
    const highest = Math.max(0, ...options.lines.flatMap((l) => l.points.map((p) => p.value ?? 0)));
    const top = options.maxTop ?? niceCeiling(Math.max(highest, options.minTop), options.binary ?? false);
    const start = options.nowMs - options.windowMs;
    const x = (atMs) => LEFT + ((atMs - start) / options.windowMs) * plotWidth;
    const y = (value) => TOP + plotHeight - (Math.min(value, top) / top) * plotHeight;
    const chart = svg("svg", {
        viewBox: `0 0 ${width} ${HEIGHT}`,
        class: "chart",
        role: "img",
        "aria-label": options.label,
        preserveAspectRatio: "xMidYMid meet",
    });
    for (const fraction of [0, 0.5, 1]) {
        const at = y(top * fraction);
        chart.append(svg("line", { x1: LEFT, x2: width - RIGHT, y1: at, y2: at, class: fraction === 0 ? "chart-axis" : "chart-grid" }), svg("text", { x: LEFT - 6, y: at + 4, "text-anchor": "end", class: "chart-tick" }, options.format(top * fraction)));
    }
    for (const fraction of [0, 0.5, 1]) {
        const at = LEFT + fraction * plotWidth;
        const text = fraction === 1 ? "now" : `−${ago(options.windowMs * (1 - fraction))}`;
        chart.append(svg("line", { x1: at, x2: at, y1: TOP + plotHeight, y2: TOP + plotHeight + 4, class: "chart-axis" }), svg("text", { x: at, y: HEIGHT - 6, "text-anchor": fraction === 0 ? "start" : fraction === 1 ? "end" : "middle", class: "chart-tick" }, text));
    }
    for (const line of options.lines) {
        const d = pathOf(line.points.filter((p) => p.atMs >= start), x, y);
        if (d)
            chart.append(svg("path", { d, class: `chart-line chart-line-${line.style}` }));
    }
    return chart;
}
/** "5 min", "1.5 min", "30 s". */
function ago(ms) {
    if (ms < 60_000)
        return `${Math.round(ms / 1000)} s`;
    const minutes = ms / 60_000;
    return `${minutes % 1 === 0 ? minutes : minutes.toFixed(1)} min`;
}
/** The path of `points`, broken where a value is missing; a lone point is a dot. */
function pathOf(points, x, y) {
    let d = "";
    let run = 0;
    const endRun = () => {
        if (run === 1)
            d += "l0.1 0";
        run = 0;
    };
    for (const p of points) {
        if (p.value === null) {
            endRun();
            continue;
        }
        d += `${run === 0 ? "M" : "L"}${x(p.atMs).toFixed(1)} ${y(p.value).toFixed(1)}`;
        run++;
    }
    endRun();
    return d;
}
/** The smallest 1, 2 or 5 times a power of ten (of 1024, if `binary`) at least `value` (its half reads well as a tick too). */
function niceCeiling(value, binary) {
    if (!(value > 0))
        return 1;
    if (binary) {
        let unit = 1;
        while (value / unit >= 1024)
            unit *= 1024;
        return unit * niceCeiling(value / unit, false);
    }
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) {
        if (step * power >= value * (1 - 1e-9))
            return step * power;
    }
    return 10 * power;
}
