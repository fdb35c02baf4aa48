// Renders results.md and the charts again from a results.json, without
// measuring anything: `node --import tsx bench/render.ts [dir]` (default bench/results).

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeResultFiles } from "./output.js";
import type { BenchResults } from "./results.js";

const dir = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "results");
const file = join(dir, "results.json");
let results: BenchResults;
try {
  results = JSON.parse(readFileSync(file, "utf8")) as BenchResults;
} catch (e) {
  console.error(`render: cannot read ${file}: ${(e as Error).message}`);
  process.exit(1);
}
writeResultFiles(dir, results, { raw: false });
console.log(`render: wrote results.md, qps.svg and latency.svg in ${dir}`);
