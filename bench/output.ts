// Writes a run's files: the raw JSON and what is derived from it, so that the
// report and charts can be rendered again from results.json alone (bench/render.ts).

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { latencyChart, qpsChart } from "./plots.js";
import { markdownReport } from "./report.js";
import type { BenchResults } from "./results.js";

/** Writes results.json, results.md, qps.svg and latency.svg into dir; returns the Markdown report. */
export function writeResultFiles(dir: string, results: BenchResults, { raw = true } = {}): string {
  mkdirSync(dir, { recursive: true });
  const report = markdownReport(results);
  if (raw) writeFileSync(join(dir, "results.json"), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(join(dir, "results.md"), report);
  writeFileSync(join(dir, "qps.svg"), qpsChart(results));
  writeFileSync(join(dir, "latency.svg"), latencyChart(results));
  return report;
}
