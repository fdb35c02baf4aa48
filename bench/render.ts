// Renders the report and the charts again from a results.json, without
// measuring anything: `node --import tsx bench/render.ts [dir [report]]` (default
// bench/results, whose report is bench/README.md; any other dir gets its README.md
// unless a report path is given).

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { writeResultFiles } from "./output.js";
import type { BenchResults } from "./results.js";
import { checkTargets, pathEvidence, programCosts, summarise } from "./summary.js";
import { switchFigure } from "./switch.js";

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
const reportPath = process.argv[3] ?? (resolve(dir) === join(bench, "results") ? join(bench, "README.md") : join(dir, "README.md"));
// The figures are derived again from the raw measurements, so a report rendered by
// newer code shows what that code derives (e.g. marks it did not know yet).
results.summary = summarise(results.measurements);
results.costs = programCosts(results.measurements);
results.evidence = pathEvidence(results.measurements);
results.targets = checkTargets(results.summary, results.costs, results.switches.map(switchFigure));
writeResultFiles(dir, reportPath, results, { raw: false });
console.log(`render: wrote ${reportPath} and the charts in ${dir}`);
