// Writes a run's files: the raw JSON, the charts beside it and the report, so
// that report and charts can be rendered again from results.json alone
// (bench/render.ts).

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { seriesName } from "./plan.js";
import { latencyChart, qpsChart } from "./plots.js";
import { markdownReport, type Variant } from "./report.js";
import type { BenchResults } from "./results.js";

/** The other benchmarks whose results the report mentions when their files are in `dir`. */
const others = (dir: string) => [
  { name: "Propagation (registry helper)", path: join(dir, "propagation.json"), command: "npm run bench:propagation" },
  { name: "Admission webhook", path: join(dir, "webhook.json"), command: "npm run bench:webhook" },
];

/** Variant runs saved beside the full run (results.json under bench/results/exp-NAME), in name order. */
function variants(resultsDir: string): Variant[] {
  const root = dirname(resultsDir) === resultsDir ? resultsDir : resultsDir.replace(/\/(quick|exp-[^/]+)$/, "");
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => d.startsWith("exp-") && existsSync(join(root, d, "results.json")))
    .sort()
    .map((d) => ({ label: d.slice("exp-".length), results: JSON.parse(readFileSync(join(root, d, "results.json"), "utf8")) as BenchResults }));
}

/** Writes results.json and the charts into dir and the report to reportPath; returns the report. */
export function writeResultFiles(dir: string, reportPath: string, results: BenchResults, { raw = true } = {}): string {
  mkdirSync(dir, { recursive: true });
  // Charts of an earlier layout or of series no longer measured would linger unreferenced.
  for (const f of readdirSync(dir)) if (/^(qps|latency)(-.*)?\.svg$/.test(f) || f === "results.md") rmSync(join(dir, f));
  const chartDir = relative(dirname(reportPath), dir);
  const report = markdownReport(results, { chartDir: chartDir ? `${chartDir}/` : "", others: others(dir), variants: /\/exp-[^/]+$/.test(dir) ? [] : variants(dir) });
  if (raw) writeFileSync(join(dir, "results.json"), JSON.stringify(results, null, 2) + "\n");
  const series = [...new Map(results.conditions.plan.points.map((p) => [seriesName(p.series), p.series])).values()];
  for (const s of series) {
    writeFileSync(join(dir, `qps-${seriesName(s)}.svg`), qpsChart(results, s));
    writeFileSync(join(dir, `latency-${seriesName(s)}.svg`), latencyChart(results, s));
  }
  writeFileSync(reportPath, report);
  return report;
}
