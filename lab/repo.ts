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

/** How to start one of meshlane's command lines: as TypeScript from the sources (under tsx), as JavaScript from dist/. */
export function cliCommand(cli: "webhook" | "loader"): string[] {
  return import.meta.url.endsWith(".ts") ? ["--import", "tsx", join(REPO, cli, "cli.ts")] : [join(REPO, "dist", cli, "cli.js")];
}
