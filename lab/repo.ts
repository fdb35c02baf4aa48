// The checkout's root, the same from the sources (tsx) and from dist/ (the built demo
// and benchmarks): files that tsc does not copy (C sources, shell scripts, YAML,
// manifests) are found from here, never relative to the running module.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    if (dirname(dir) === dir) throw new Error(`lab: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = dirname(dir);
  }
  return dir;
}

export const REPO = findRoot();

/**
 * The argv (after node) that runs one of meshlane's CLIs in the same form as the
 * caller: the TypeScript sources through tsx when running from the sources, the
 * built dist/ otherwise. tsx compiles the whole CLI at every start, which costs
 * seconds on the host and minutes in lab/qemu's emulated guests (they run dist/).
 */
export function cliCommand(cli: "webhook" | "loader"): string[] {
  return import.meta.url.endsWith(".ts") ? ["--import", "tsx", join(REPO, cli, "cli.ts")] : [join(REPO, "dist", cli, "cli.js")];
}
