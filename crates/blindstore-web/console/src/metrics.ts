// What the live charts compute from `GET /v1/metrics`: the Prometheus text exposition parsed
// into samples, counter increases and rates between two scrapes, histogram quantiles over the
// buckets that grew between them, and a bounded history of scrapes. No DOM here: the Node
// tests import this module as built.

/** One line of an exposition: a series (its name and labels) and its value. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of one `GET /v1/metrics` answer and when it was read (ms since the epoch). */
export interface Scrape {
  readonly atMs: number;
  readonly samples: readonly Sample[];
}

/** A histogram bucket: observations at most `le` (cumulative, as Prometheus counts them). */
export interface Bucket {
  readonly le: number;
  readonly count: number;
}

/** A value at a time; `null` where there is nothing to show (no traffic, no series). */
export interface Point {
  readonly atMs: number;
  readonly value: number | null;
}

/** Which series of a metric count: all of them when absent. */
export type Select = (labels: Readonly<Record<string, string>>) => boolean;

/** An exposition that does not follow the text format; the message names the line. */
export class ExpositionError extends Error {
  override name = "ExpositionError";
}

/**
 * Parses the Prometheus text format (version 0.0.4): `# HELP`/`# TYPE` lines and comments are
 * skipped; each sample line is `name{label="value",...} value [timestamp]`, label values with
 * `\\`, `\"` and `\n` escapes, values as floats or `+Inf`, `-Inf`, `NaN`. A malformed line
 * throws: a chart drawn from half an exposition would show a wrong picture without a word.
 */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, "").trim();
    if (line === "" || line.startsWith("#")) continue;
    try {
      samples.push(parseSample(line));
    } catch (error) {
      throw new ExpositionError(`metrics line ${i + 1}: ${(error as Error).message}: ${line.slice(0, 120)}`);
    }
  }
  return samples;
}

/** A stable key for a series: its name and its labels in name order. */
export function seriesKey(name: string, labels: Readonly<Record<string, string>>, leave?: string): string {
  const parts = Object.keys(labels)
    .filter((k) => k !== leave)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${name}{${parts.join(",")}}`;
}

/** The sum of the samples of `name` that `select` keeps, or null when there is none. */
export function sum(scrape: Scrape, name: string, select?: Select): number | null {
  let total: number | null = null;
  for (const s of scrape.samples) {
    if (s.name === name && (!select || select(s.labels))) total = (total ?? 0) + s.value;
  }
  return total;
}

/**
 * How much the counters of `name` that `select` keeps grew from `before` to `after`, summed.
 * A counter lower than before was reset (its process restarted) and counts from zero, as does
 * a series that `before` did not have: an increase is never negative.
 */
export function increase(before: Scrape, after: Scrape, name: string, select?: Select): number {
  const earlier = new Map<string, number>();
  for (const s of before.samples) {
    if (s.name === name) earlier.set(seriesKey(s.name, s.labels), s.value);
  }
  let total = 0;
  for (const s of after.samples) {
    if (s.name !== name || (select && !select(s.labels))) continue;
    const was = earlier.get(seriesKey(s.name, s.labels));
    total += counterGrowth(was, s.value);
  }
  return total;
}

/** The per-second rate of `increase`, or null when the scrapes are not in time order. */
export function rate(before: Scrape, after: Scrape, name: string, select?: Select): number | null {
  const seconds = (after.atMs - before.atMs) / 1000;
  if (!(seconds > 0)) return null;
  return increase(before, after, name, select) / seconds;
}

/**
 * The observations histogram `name` (its `name_bucket` series) gained from `before` to
 * `after`, the series that `select` keeps added up bucket by bucket, in `le` order. A series
 * any of whose buckets went down was reset and counts from zero as a whole.
 */
export function bucketIncrease(before: Scrape, after: Scrape, name: string, select?: Select): Bucket[] {
  const bucketName = `${name}_bucket`;
  const group = (scrape: Scrape, keep: boolean) => {
    const groups = new Map<string, Map<number, number>>();
    for (const s of scrape.samples) {
      if (s.name !== bucketName || s.labels.le === undefined) continue;
      if (keep && select && !select(s.labels)) continue;
      const key = seriesKey(s.name, s.labels, "le");
      let buckets = groups.get(key);
      if (!buckets) groups.set(key, (buckets = new Map()));
      buckets.set(parseBound(s.labels.le), s.value);
    }
    return groups;
  };
  const earlier = group(before, false);
  const total = new Map<number, number>();
  for (const [key, buckets] of group(after, true)) {
    const was = earlier.get(key);
    const reset = !was || [...buckets].some(([le, count]) => count < (was.get(le) ?? 0));
    for (const [le, count] of buckets) {
      total.set(le, (total.get(le) ?? 0) + (reset ? count : count - (was.get(le) ?? 0)));
    }
  }
  return [...total].sort(([a], [b]) => a - b).map(([le, count]) => ({ le, count }));
}

/**
 * The `q` quantile (0 to 1) of cumulative `buckets`, as PromQL's `histogram_quantile` gives
 * it: found by linear interpolation inside the bucket it falls in (the first bucket starting
 * at 0); in the `+Inf` bucket, the highest finite bound. Null without observations or without
 * a `+Inf` bucket (the total is then unknown).
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number | null {
  if (!(q >= 0 && q <= 1)) return null;
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const last = sorted[sorted.length - 1];
  if (!last || last.le !== Infinity) return null;
  // Buckets added up from series reset at different times can come out of order; a count is
  // at least the one below it.
  let running = 0;
  const cumulative = sorted.map((b) => ({ le: b.le, count: (running = Math.max(running, b.count)) }));
  const total = cumulative[cumulative.length - 1]!.count;
  if (!(total > 0)) return null;
  const rank = q * total;
  const i = cumulative.findIndex((b) => b.count >= rank);
  const bucket = cumulative[i]!;
  if (bucket.le === Infinity) return i > 0 ? cumulative[i - 1]!.le : null;
  const lower = i > 0 ? cumulative[i - 1]!.le : 0;
  const below = i > 0 ? cumulative[i - 1]!.count : 0;
  if (i === 0 && bucket.le <= 0) return bucket.le;
  const inside = bucket.count - below;
  if (inside <= 0) return lower;
  return lower + (bucket.le - lower) * ((rank - below) / inside);
}

/**
 * The scrapes of the last `windowMs`, oldest first, and series computed from consecutive
 * pairs of them (rates and quantiles need two scrapes).
 */
export class ScrapeHistory {
  readonly #scrapes: Scrape[] = [];

  constructor(readonly windowMs: number) {}

  /** Adds a scrape and forgets those older than the window (one older is kept, to pair). */
  add(scrape: Scrape): void {
    const last = this.#scrapes[this.#scrapes.length - 1];
    if (last && scrape.atMs <= last.atMs) return;
    this.#scrapes.push(scrape);
    const horizon = scrape.atMs - this.windowMs;
    while (this.#scrapes.length > 2 && this.#scrapes[1]!.atMs <= horizon) this.#scrapes.shift();
  }

  get scrapes(): readonly Scrape[] {
    return this.#scrapes;
  }

  get latest(): Scrape | undefined {
    return this.#scrapes[this.#scrapes.length - 1];
  }

  /** One point per consecutive pair of scrapes, at the later one's time. */
  between(compute: (before: Scrape, after: Scrape) => number | null): Point[] {
    const points: Point[] = [];
    for (let i = 1; i < this.#scrapes.length; i++) {
      const value = compute(this.#scrapes[i - 1]!, this.#scrapes[i]!);
      points.push({ atMs: this.#scrapes[i]!.atMs, value: value !== null && Number.isFinite(value) ? value : null });
    }
    return points;
  }

  /** One point per scrape (gauges). */
  each(compute: (scrape: Scrape) => number | null): Point[] {
    return this.#scrapes.map((s) => {
      const value = compute(s);
      return { atMs: s.atMs, value: value !== null && Number.isFinite(value) ? value : null };
    });
  }
}

/** A counter's growth from `was` (undefined: the series is new) to `now`. */
function counterGrowth(was: number | undefined, now: number): number {
  if (was === undefined || now < was) return now;
  return now - was;
}

function parseBound(le: string): number {
  const bound = parseValue(le);
  if (Number.isNaN(bound)) throw new ExpositionError(`bucket bound ${JSON.stringify(le)} is not a number`);
  return bound;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseSample(line: string): Sample {
  const name = NAME.exec(line)?.[0];
  if (!name) throw new Error("no metric name");
  let rest = line.slice(name.length).trimStart();
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = rest.slice(1);
    for (;;) {
      rest = rest.trimStart();
      if (rest.startsWith("}")) {
        rest = rest.slice(1);
        break;
      }
      const label = LABEL.exec(rest)?.[0];
      if (!label) throw new Error("bad label name");
      rest = rest.slice(label.length).trimStart();
      if (!rest.startsWith("=")) throw new Error(`label ${label} has no quoted value`);
      rest = rest.slice(1).trimStart();
      if (!rest.startsWith('"')) throw new Error(`label ${label} has no quoted value`);
      const [value, after] = readQuoted(rest.slice(1));
      labels[label] = value;
      rest = after.trimStart();
      if (rest.startsWith(",")) rest = rest.slice(1);
      else if (!rest.startsWith("}")) throw new Error("labels not closed");
    }
  }
  const fields = rest.trim().split(/\s+/);
  if (fields.length < 1 || fields.length > 2 || fields[0] === "") throw new Error("expected a value and at most a timestamp");
  const value = parseValue(fields[0]!);
  if (Number.isNaN(value) && fields[0] !== "NaN") throw new Error(`bad value ${JSON.stringify(fields[0])}`);
  return { name, labels, value };
}

/** A quoted label value (after its opening quote): the value and the text after its closing quote. */
function readQuoted(text: string): [string, string] {
  let value = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') return [value, text.slice(i + 1)];
    if (c === "\\") {
      const next = text[++i];
      if (next === "n") value += "\n";
      else if (next === "\\" || next === '"') value += next;
      else throw new Error(`bad escape \\${next ?? ""}`);
    } else {
      value += c;
    }
  }
  throw new Error("label value not closed");
}

function parseValue(token: string): number {
  switch (token) {
    case "+Inf":
    case "Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
    case "NaN":
      return NaN;
    default:
      return token.trim() === "" ? NaN : Number(token);
  }
}
