// The module graph of the self-contained browser build, from esbuild's metafile (written by
// scripts/build.mjs to lib/browser-meta.json): which files a page loads before a module runs,
// and which it loads only on demand (dynamic imports).
import { readFileSync } from "node:fs";

const root = new URL("../", import.meta.url);
const outputs = JSON.parse(readFileSync(new URL("lib/browser-meta.json", root), "utf8")).outputs;

/** The build's JavaScript files, as paths relative to the package (e.g. `dist/browser/reader.js`). */
export const files = Object.keys(outputs).filter((path) => path.endsWith(".js"));

/** Every file loaded before `entries` run: the entries and their static imports, transitively. */
export function staticClosure(entries) {
  const seen = new Set();
  const visit = (path) => {
    if (seen.has(path)) return;
    seen.add(path);
    for (const edge of outputs[path].imports) if (edge.kind === "import-statement") visit(edge.path);
  };
  entries.forEach(visit);
  return seen;
}

/** The files loaded only on demand after `loaded` ran: dynamic imports and what they pull in. */
export function onDemand(loaded) {
  const lazy = new Set();
  for (const path of loaded) {
    for (const edge of outputs[path].imports) {
      if (edge.kind !== "dynamic-import") continue;
      for (const file of staticClosure([edge.path])) if (!loaded.has(file)) lazy.add(file);
    }
  }
  return lazy;
}

/** Imports of something outside the build (`file → specifier`): none in a self-contained build. */
export function externalImports() {
  return files.flatMap((path) => outputs[path].imports.filter((edge) => edge.external).map((edge) => `${path} → ${edge.path}`));
}

/** A file's bytes, by its path relative to the package. */
export const bytesOf = (path) => readFileSync(new URL(path, root));
