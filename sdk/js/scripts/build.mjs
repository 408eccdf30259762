// Builds the package: `lib/` (tsc, one module per source file: the SDK's own tests and the
// interoperability scripts import it), `dist/` (what the package ships: minified ES modules
// for bundlers and Node, with the types), and `dist/browser/` (the same, self-contained, for
// pages served without a bundler). OPAQUE stays a dynamic import everywhere, so it lands in a
// chunk of its own that only the first account operation loads.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
await import("./clean.mjs");
execFileSync(process.execPath, [`${root}/node_modules/typescript/bin/tsc`, "-p", `${root}/tsconfig.json`], { stdio: "inherit" });

mkdirSync(`${root}/dist/types`, { recursive: true });
for (const file of readdirSync(`${root}/lib`)) {
  if (file.endsWith(".d.ts")) copyFileSync(`${root}/lib/${file}`, `${root}/dist/types/${file}`);
}

const common = {
  bundle: true,
  splitting: true,
  format: "esm",
  target: "es2022",
  minify: true,
  // Error classes name themselves after their class (`error.name`): keep the names.
  keepNames: true,
  sourcemap: true,
  chunkNames: "chunks/[name]-[hash]",
  logLevel: "warning",
  absWorkingDir: root,
};
// For bundlers and Node: the dependency stays a dependency.
await build({
  ...common,
  entryPoints: { index: `${root}/src/index.ts`, reader: `${root}/src/reader-entry.ts` },
  platform: "neutral",
  external: ["@serenity-kit/opaque"],
  outdir: `${root}/dist`,
});
// For pages without a bundler: everything included, OPAQUE in its own chunk.
// Its metafile (which file imports which, statically or on demand) is kept in lib/ for
// scripts/sizes.mjs and the bundle test.
const browser = await build({
  ...common,
  metafile: true,
  entryPoints: { blindstore: `${root}/src/index.ts`, reader: `${root}/src/reader-entry.ts` },
  platform: "browser",
  outdir: `${root}/dist/browser`,
});
writeFileSync(`${root}/lib/browser-meta.json`, JSON.stringify(browser.metafile));
