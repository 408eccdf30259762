// Builds the console into a directory (default dist/): the TypeScript modules of src/ compiled
// by tsc, beside src/index.html and src/console.css. The directory is emptied first, so it holds
// exactly what the page is made of: the Rust build embeds dist/ as it is committed, and a test
// builds into a temporary directory to check that the committed dist/ is what the sources make.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const out = resolve(here, process.argv[2] ?? "dist");
// Emptying a directory that holds the sources (".", "..") would delete them.
if (here === out || here.startsWith(`${out}/`)) throw new Error(`refusing to build into ${out}: it holds the console's sources`);
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
execFileSync(process.execPath, [tsc, "-p", join(here, "tsconfig.json"), "--outDir", out], { cwd: here, stdio: "inherit" });
for (const file of ["index.html", "console.css"]) copyFileSync(join(here, "src", file), join(out, file));
console.log(`console built into ${out}`);
