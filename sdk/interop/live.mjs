// Loads a page from one origin that calls a Blindstore node on another origin (CORS) and
// follows a chain with EventSource, in headless Chromium (Debian's `chromium`, driven by
// playwright-core). Used by the Rust test suite:
//
//   node live.mjs <api-url> <zone> <chain-id> <entries-before> <entries-after> <screenshot-dir> <chunk-hash>
//
// The page also reads the chunk <chunk-hash> (its ETag must be readable).
// The page is served by a local HTTP server, as http://localhost:PORT (to be allowed by the
// zone) and as http://127.0.0.1:PORT (another origin, not allowed). Prints
// {"origin": ..., "other": ...} and waits for a line on stdin (the zone's CORS is set
// meanwhile); prints {"ready": true} once the allowed page has received <entries-before>
// entries, then one JSON line with what both pages saw when the first has <entries-after>
// (or after 20 s). Exit status 1 on any error.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { deadline, launchChromium } from "./browser.mjs";

const [api, zone, chain, before, after, shots, chunk] = process.argv.slice(2);
if (!chunk) {
  console.error("usage: node live.mjs <api-url> <zone> <chain-id> <entries-before> <entries-after> <screenshot-dir> <chunk-hash>");
  process.exit(1);
}
deadline("live.mjs", 60);

const html = readFileSync(new URL("./live.html", import.meta.url));
const server = createServer((request, response) => {
  response.writeHead(request.url === "/" ? 200 : 404, { "content-type": "text/html; charset=utf-8" });
  response.end(request.url === "/" ? html : "");
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;
const origins = { origin: `http://localhost:${port}`, other: `http://127.0.0.1:${port}` };
console.log(JSON.stringify(origins));
const lines = createInterface({ input: process.stdin });
await new Promise((resolve) => lines.once("line", resolve));
lines.close();

const browser = await launchChromium();

async function open(origin) {
  const context = await browser.newContext({ viewport: { width: 860, height: 420 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${origin}/`);
  await page.evaluate(([api, zone, chain, chunk]) => window.follow(api, zone, chain, chunk), [api, zone, chain, chunk]);
  return { page, errors };
}

async function waitFor(page, count, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const n = await page.evaluate(() => window.report.entries.length);
    if (n >= count) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

try {
  const allowed = await open(origins.origin);
  const other = await open(origins.other);
  if (!(await waitFor(allowed.page, Number(before), 10_000))) {
    const seen = await allowed.page.evaluate(() => window.report);
    throw new Error(`the first entries never arrived: ${JSON.stringify(seen)} ${allowed.errors}`);
  }
  console.log(JSON.stringify({ ready: true }));
  await waitFor(allowed.page, Number(after), 20_000);
  await allowed.page.screenshot({ path: `${shots}/live-allowed-origin.png` });
  await other.page.screenshot({ path: `${shots}/live-other-origin.png` });
  const report = await allowed.page.evaluate(() => window.report);
  const refused = await other.page.evaluate(() => window.report);
  console.log(
    JSON.stringify({ allowed: report, other: refused, page_errors: [...allowed.errors, ...other.errors] }),
  );
} finally {
  await browser.close();
  server.close();
}
