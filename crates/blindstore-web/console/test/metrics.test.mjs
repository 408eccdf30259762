// The live charts' arithmetic on small expositions, as built into dist/ (what the page runs):
// parsing the text format, counter increases and rates (a restart never makes one negative),
// and histogram quantiles over the buckets that grew between two scrapes.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ExpositionError,
  ScrapeHistory,
  bucketIncrease,
  histogramQuantile,
  increase,
  parseExposition,
  rate,
  sum,
} from "../dist/metrics.js";

const scrape = (atMs, text) => ({ atMs, samples: parseExposition(text) });

test("parses samples, labels with escapes, special values and timestamps; skips comments", () => {
  const samples = parseExposition(
    [
      "# HELP blindstore_http_requests_total HTTP requests answered",
      "# TYPE blindstore_http_requests_total counter",
      'blindstore_http_requests_total{route="/v1/zones/{zone}/chains/{chain_id}/entries",method="POST",status="201"} 12',
      'odd{path="a \\"quoted\\" \\\\ back\\nslash",empty=""} 1.5e3 1712345678000',
      'spaced { a = "1" , b="2", } -4',
      'h_bucket{le="+Inf"} +Inf',
      "h_sum NaN",
      "bare -Inf",
      "",
      "   ",
      "# a comment",
      "windows_line 7\r",
    ].join("\n"),
  );
  assert.deepEqual(
    samples.map((s) => [s.name, s.labels, s.value]),
    [
      ["blindstore_http_requests_total", { route: "/v1/zones/{zone}/chains/{chain_id}/entries", method: "POST", status: "201" }, 12],
      ["odd", { path: 'a "quoted" \\ back\nslash', empty: "" }, 1500],
      ["spaced", { a: "1", b: "2" }, -4],
      ["h_bucket", { le: "+Inf" }, Infinity],
      ["h_sum", {}, NaN],
      ["bare", {}, -Infinity],
      ["windows_line", {}, 7],
    ],
  );
});

test("a malformed line is an error naming the line, not a silently shorter exposition", () => {
  const cases = [
    ["ok 1\nbroken{le=\"1\" 2", /line 2/],
    ['x{a="unclosed} 1', /not closed/],
    ["x{a=1} 1", /quoted/],
    ["x 1 2 3", /value/],
    ["x one", /bad value/],
    ['x{a="\\t"} 1', /escape/],
    ["{a=\"b\"} 1", /name/],
    ["x", /value/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseExposition(text), (e) => e instanceof ExpositionError && message.test(e.message), text);
  }
});

test("counter increases and rates: growth, a new series from zero, a reset from zero, never negative", () => {
  const before = scrape(
    1_000,
    `c{k="a"} 10
c{k="b"} 100
c{k="gone"} 50
other 1`,
  );
  const after = scrape(
    3_000,
    `c{k="a"} 16
c{k="b"} 4
c{k="new"} 3
other 1000`,
  );
  // a grew by 6; b restarted and counts 4 from zero; new counts 3 from zero; gone is left out.
  assert.equal(increase(before, after, "c"), 13);
  assert.equal(rate(before, after, "c"), 6.5);
  assert.equal(increase(before, after, "c", (l) => l.k === "a"), 6);
  assert.equal(increase(before, after, "c", (l) => l.k === "b"), 4);
  assert.equal(increase(before, after, "missing"), 0);
  // Every counter of a restarted process is lower: the rate is what it counted since.
  const restarted = scrape(5_000, `c{k="a"} 2\nc{k="b"} 1`);
  assert.equal(rate(after, restarted, "c"), 1.5);
  assert.ok(increase(after, restarted, "c") >= 0);
  // Scrapes out of order or at the same instant give no rate.
  assert.equal(rate(after, before, "c"), null);
  assert.equal(rate(after, after, "c"), null);
});

test("sum adds the kept series, and is null when there is none", () => {
  const s = scrape(0, `g{source="local"} 3\ng{source="peer"} 1\ng{source="none"} 9`);
  assert.equal(sum(s, "g"), 13);
  assert.equal(sum(s, "g", (l) => l.source !== "none"), 4);
  assert.equal(sum(s, "absent"), null);
});

const histogram = (atMs, series) =>
  scrape(
    atMs,
    series
      .map(({ labels, buckets }) =>
        buckets.map(([le, n]) => `d_bucket{${labels ? `${labels},` : ""}le="${le}"} ${n}`).join("\n"),
      )
      .join("\n"),
  );

test("quantiles interpolate inside the bucket, start the first bucket at 0, and stop at the highest finite bound", () => {
  const buckets = [
    { le: 0.1, count: 10 },
    { le: 0.5, count: 60 },
    { le: 1, count: 100 },
    { le: Infinity, count: 100 },
  ];
  // Rank 50 is 40 of the 50 observations between 0.1 and 0.5.
  assert.ok(Math.abs(histogramQuantile(0.5, buckets) - 0.42) < 1e-12);
  // Rank 5 is half of the first bucket, counted from 0.
  assert.ok(Math.abs(histogramQuantile(0.05, buckets) - 0.05) < 1e-12);
  assert.equal(histogramQuantile(1, buckets), 1);
  // Past the last finite bound, the answer is that bound.
  const tail = [
    { le: 0.1, count: 1 },
    { le: 1, count: 2 },
    { le: Infinity, count: 10 },
  ];
  assert.equal(histogramQuantile(0.99, tail), 1);
  // Out of order input is sorted; no +Inf bucket or no observations: no answer.
  assert.ok(Math.abs(histogramQuantile(0.5, [...buckets].reverse()) - 0.42) < 1e-12);
  assert.equal(histogramQuantile(0.5, buckets.slice(0, 3)), null);
  assert.equal(histogramQuantile(0.5, [{ le: 1, count: 0 }, { le: Infinity, count: 0 }]), null);
  assert.equal(histogramQuantile(0.5, []), null);
  assert.equal(histogramQuantile(1.5, buckets), null);
  // Everything in the +Inf bucket with no finite one below: unknown.
  assert.equal(histogramQuantile(0.5, [{ le: Infinity, count: 3 }]), null);
});

test("bucket increases between scrapes: per series deltas added up, a reset series counted from zero", () => {
  const before = histogram(0, [
    { labels: 'route="/a"', buckets: [[0.1, 5], [1, 8], ["+Inf", 9]] },
    { labels: 'route="/b"', buckets: [[0.1, 100], [1, 100], ["+Inf", 100]] },
  ]);
  const after = histogram(2_000, [
    // /a: 10 more, all between 0.1 and 1.
    { labels: 'route="/a"', buckets: [[0.1, 5], [1, 18], ["+Inf", 19]] },
    // /b restarted: 4 observations since, all at most 0.1.
    { labels: 'route="/b"', buckets: [[0.1, 4], [1, 4], ["+Inf", 4]] },
    // /c is new: 2 observations above 1.
    { labels: 'route="/c"', buckets: [[0.1, 0], [1, 0], ["+Inf", 2]] },
  ]);
  assert.deepEqual(bucketIncrease(before, after, "d"), [
    { le: 0.1, count: 4 },
    { le: 1, count: 14 },
    { le: Infinity, count: 16 },
  ]);
  assert.deepEqual(bucketIncrease(before, after, "d", (l) => l.route === "/a"), [
    { le: 0.1, count: 0 },
    { le: 1, count: 10 },
    { le: Infinity, count: 10 },
  ]);
  // p50 of the interval: rank 8 of 16 falls between 0.1 (4) and 1 (14): 0.1 + 0.9 * 4/10.
  assert.ok(Math.abs(histogramQuantile(0.5, bucketIncrease(before, after, "d")) - 0.46) < 1e-12);
  // Nothing happened: no quantile (a gap in the chart, not a zero).
  assert.equal(histogramQuantile(0.5, bucketIncrease(after, after, "d")), null);
});

test("the history keeps the window (and one scrape before it) and computes per-interval points", () => {
  const history = new ScrapeHistory(10_000);
  for (let t = 0; t <= 30_000; t += 2_000) history.add(scrape(t, `c ${t / 1000}`));
  // Out of order and repeated scrapes are ignored.
  history.add(scrape(1_000, "c 999"));
  history.add(scrape(30_000, "c 999"));
  const times = history.scrapes.map((s) => s.atMs);
  assert.equal(times[times.length - 1], 30_000);
  assert.ok(times[0] <= 20_000 && times[1] > 20_000, `kept ${times}`);
  const rates = history.between((a, b) => rate(a, b, "c"));
  assert.equal(rates.length, history.scrapes.length - 1);
  for (const p of rates) assert.equal(p.value, 1);
  // Non-finite values become gaps.
  assert.ok(history.each(() => NaN).every((p) => p.value === null));
  assert.ok(history.between(() => null).every((p) => p.value === null));
});
