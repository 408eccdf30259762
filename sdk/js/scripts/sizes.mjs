// What a page downloads, gzipped, from the self-contained browser build (dist/browser/), by
// what it uses: reading and verification (`reader.js`), chains with writing (`blindstore.js`),
// and accounts (the chunks the first account operation loads: OPAQUE and its WASM).
// Counted like a server sends them: each file gzipped on its own (level 9), source maps apart.
//
//   node scripts/sizes.mjs           prints the table
//   node scripts/sizes.mjs --check   fails when README.md's table is more than 5% off
//   node scripts/sizes.mjs --write   writes the table into README.md
import { readFileSync, writeFileSync } from "node:fs";
import { bytesOf, onDemand, staticClosure } from "./browser-graph.mjs";
import { gzipSync } from "node:zlib";

const readme = new URL("../README.md", import.meta.url);

const gzipped = (files) => [...files].reduce((sum, path) => sum + gzipSync(bytesOf(path), { level: 9 }).length, 0);
const raw = (files) => [...files].reduce((sum, path) => sum + bytesOf(path).length, 0);

const reader = staticClosure(["dist/browser/reader.js"]);
const full = staticClosure(["dist/browser/blindstore.js"]);
const lazy = onDemand(full);
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
const rows = [
  ["Reading and verification (`@blindstore/sdk/reader`)", reader],
  ["Chains with writing, outbox, uploads (`@blindstore/sdk`)", full],
  ["Accounts: added by the first account operation (OPAQUE)", lazy],
];
const table = [
  "| What the page uses | gzip | minified |",
  "|---|---:|---:|",
  ...rows.map(([what, files]) => `| ${what} | ${kb(gzipped(files))} | ${kb(raw(files))} |`),
].join("\n");

const START = "<!-- sizes: node scripts/sizes.mjs --write -->";
const END = "<!-- /sizes -->";
const text = readFileSync(readme, "utf8");
const at = text.indexOf(START);
const end = text.indexOf(END);
if (process.argv.includes("--write")) {
  if (at < 0 || end < at) throw new Error(`README.md has no ${START} … ${END} block`);
  writeFileSync(readme, `${text.slice(0, at + START.length)}\n${table}\n${text.slice(end)}`);
} else if (process.argv.includes("--check")) {
  const written = [...text.slice(at, end).matchAll(/\| ([\d.]+) KB \|/g)].map((m) => Number(m[1]) * 1024);
  const measured = rows.map(([, files]) => gzipped(files));
  const off = measured.filter((bytes, i) => written[i] === undefined || Math.abs(bytes - written[i]) > bytes * 0.05);
  if (at < 0 || off.length > 0) {
    console.error(`README.md's sizes are out of date; measured:\n${table}\nRun: npm run sizes -- --write`);
    process.exit(1);
  }
}
console.log(table);
