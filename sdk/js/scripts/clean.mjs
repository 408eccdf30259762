// Removes the build outputs so that a build never ships a module whose source was deleted.
import { rmSync } from "node:fs";

for (const dir of ["dist", "lib", "test-build"]) {
  rmSync(new URL(`../${dir}`, import.meta.url), { recursive: true, force: true });
}
