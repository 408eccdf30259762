// How the console writes numbers: counts with digit grouping, bytes in binary units, durations
// in the unit that reads best, rates and shares. Unknown values are an em dash, never 0.

const grouping = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

export const UNKNOWN = "—";

/** 1234567 → "1,234,567". */
export function count(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? UNKNOWN : grouping.format(n);
}

/** 1536 → "1.5 KiB". */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return UNKNOWN;
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? grouping.format(value) : oneDecimal.format(value)} ${units[unit]}`;
}

/** Seconds as "420 µs", "12.3 ms" or "1.2 s". */
export function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return UNKNOWN;
  if (s === 0) return "0 ms";
  if (s < 0.001) return `${grouping.format(s * 1e6)} µs`;
  if (s < 1) return `${oneDecimal.format(s * 1e3)} ms`;
  return `${oneDecimal.format(s)} s`;
}

/** A rate's number: 4.25 → "4.3", 0.042 → "0.04". */
export function decimal(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return UNKNOWN;
  return n !== 0 && Math.abs(n) < 0.1 ? n.toFixed(2) : oneDecimal.format(n);
}

/** 4.25 → "4.3/s", or with a unit "4.3 copies/s". */
export function perSecond(n: number | null | undefined, unit?: string): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return UNKNOWN;
  return unit ? `${decimal(n)} ${unit}/s` : `${decimal(n)}/s`;
}

/** 0.975 → "97.5%". */
export function percent(share: number | null | undefined): string {
  if (share === null || share === undefined || !Number.isFinite(share)) return UNKNOWN;
  return `${oneDecimal.format(share * 100)}%`;
}

/** Milliseconds since the epoch as "2025-12-06 08:49 UTC". */
export function date(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** A duration in seconds as "45 s", "3 min 20 s" or "2 h 5 min". */
export function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return UNKNOWN;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
