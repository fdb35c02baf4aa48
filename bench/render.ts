// Renders the report and the charts again from a results.json, without
// measuring anything: `node --import tsx bench/render.ts [dir]` (default
// bench/results, whose report is bench/README.md; any other dir gets its README.md).

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeResultFiles } from "./output.js";
import type { BenchResults } from "./results.js";

const bench = dirname(fileURLToPath(import.meta.url));
const dir = process.argv[2] ?? join(bench, "results");
const file = join(dir, "results.json");
let results: BenchResults;
try {
  results = JSON.parse(readFileSync(file, "utf8")) as BenchResults;
} catch (e) {
  console.error(`render: cannot read ${file}: ${(e as Error).message}`);
  process.exit(1);
}
const reportPath = resolve(dir) === join(bench, "results") ? join(bench, "README.md") : join(dir, "README.md");
writeResultFiles(dir, reportPath, results, { raw: false });
console.log(`render: wrote ${reportPath} and the charts in ${dir}`);
