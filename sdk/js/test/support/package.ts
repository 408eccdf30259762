/**
 * The package as users get it: `npm pack` of sdk/js, and commands run the way a person runs
 * them, with a failure that reports the end of what they printed.
 */

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const SDK = fileURLToPath(new URL("../../", import.meta.url));

/** Runs a command; a failure reports the end of what it printed (not minified code in full). */
export function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const result = spawnSync(command, args, { cwd, env, encoding: "utf8", timeout: 300_000 });
  if (result.status !== 0) {
    const said = `${result.stdout ?? ""}\n${result.stderr ?? ""}`
      .split("\n")
      .map((line) => line.slice(0, 300))
      .join("\n");
    throw new Error(`${command} ${args.join(" ")} failed (${result.status ?? result.signal}):\n${said.slice(-3000)}`);
  }
  return result.stdout;
}

/** `npm pack` of the built SDK into `dir`: the tarball's path and the files it holds. */
export function packSdk(dir: string): { tarball: string; files: string[] } {
  const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", dir], SDK)) as { filename: string; files: { path: string }[] }[];
  return { tarball: join(dir, packed[0]!.filename), files: packed[0]!.files.map((file) => file.path) };
}
