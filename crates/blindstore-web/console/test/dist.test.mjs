// dist/ is committed (the Rust build embeds it without npm): a fresh build of the sources must
// give exactly the committed files, byte for byte, and no others.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = resolve(dirname(fileURLToPath(import.meta.url)), "..");

test("the committed dist/ is what the sources build", () => {
  const out = mkdtempSync(join(tmpdir(), "blindstore-console-"));
  try {
    execFileSync(process.execPath, [join(here, "scripts/build.mjs"), out], { cwd: here, stdio: "pipe" });
    const built = readdirSync(out).sort();
    const committed = readdirSync(join(here, "dist")).sort();
    assert.deepEqual(committed, built, "dist/ has other files than a build makes: run npm run build");
    for (const file of ["index.html", "console.css", "console.js", "metrics.js"]) assert.ok(built.includes(file), `a build makes ${file}`);
    for (const file of built) {
      assert.ok(
        readFileSync(join(out, file)).equals(readFileSync(join(here, "dist", file))),
        `dist/${file} differs from a fresh build: run npm run build and commit dist/`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("the page keeps to its content security policy: no inline script or style, nothing from elsewhere", () => {
  const html = readFileSync(join(here, "dist/index.html"), "utf8");
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, "inline script");
  assert.doesNotMatch(html, /<style/i, "inline <style>");
  assert.doesNotMatch(html, /\sstyle=/i, "style attribute");
  assert.doesNotMatch(html, /\son[a-z]+=/i, "inline event handler");
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//i, "a resource from another origin");
  for (const file of readdirSync(join(here, "dist")).filter((f) => f.endsWith(".js"))) {
    const js = readFileSync(join(here, "dist", file), "utf8");
    assert.doesNotMatch(js, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/, `${file} builds markup from strings`);
    assert.doesNotMatch(js, /\blocalStorage\s*[.[]|document\.cookie/, `${file} keeps something beyond the tab's session`);
  }
});
