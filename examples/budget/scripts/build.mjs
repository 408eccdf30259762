// Builds the SDK and puts its self-contained browser build beside the app (site/sdk/: the
// entry modules and their chunks, OPAQUE's loaded only at the first login): site/ is then a
// complete static site, ready for `blindstore serve --site` or `blindstore site deploy`.
import { cpSync, rmSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const sdk = join(here, "..", "..", "sdk", "js");
execFileSync("npm", ["run", "--silent", "build"], { cwd: sdk, stdio: "inherit" });
rmSync(join(here, "site", "sdk"), { recursive: true, force: true });
cpSync(join(sdk, "dist", "browser"), join(here, "site", "sdk"), { recursive: true });
// What the page loads before it runs, for the service worker to keep for offline starts (OPAQUE,
// loaded on demand, is kept when it is first fetched).
const { staticClosure } = await import(new URL("../../../sdk/js/scripts/browser-graph.mjs", import.meta.url).href);
const shell = [...staticClosure(["dist/browser/blindstore.js"])].map((path) => path.replace("dist/browser/", "sdk/"));
writeFileSync(join(here, "site", "sdk", "shell.json"), JSON.stringify(shell));
console.log(`site/sdk/ copied from sdk/js/dist/browser (${shell.length} files load first)`);
