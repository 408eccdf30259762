// Builds the SDK and puts its browser bundle beside the app: site/ is then a complete static
// site, ready for `blindstore serve --site` or `blindstore site deploy`.
import { copyFileSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const sdk = join(here, "..", "..", "sdk", "js");
const bundle = join(sdk, "dist", "blindstore.js");
execFileSync("npm", ["run", "--silent", "build"], { cwd: sdk, stdio: "inherit" });
copyFileSync(bundle, join(here, "site", "blindstore.js"));
if (existsSync(`${bundle}.map`)) copyFileSync(`${bundle}.map`, join(here, "site", "blindstore.js.map"));
console.log("site/blindstore.js copied from sdk/js/dist");
