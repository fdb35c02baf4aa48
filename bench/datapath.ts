// `npm run bench [-- --quick]`: meshlane in each redirect mode against Istio's
// iptables path and against no mesh, on the test topology of docs/design.md, with
// HAProxy as a TCP and as an HTTP (Envoy-like) sidecar, on one CPU and on two;
// then switches between the paths under load, then the per-hop micro-benchmark.
// Writes bench/README.md and bench/results/ (results.json and the charts), or
// bench/results/quick/ for --quick. Needs root: it creates network namespaces
// and cgroups and attaches BPF programs, all of its own, and removes them when
// it ends, also on Ctrl-C or SIGTERM; it turns kernel.bpf_stats_enabled on for
// the run and puts it back.

import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { enableBpfStats } from "./bpfstats.js";
import { buildPingPong, runHopBenchmark, summariseHops } from "./hop.js";
import { describeMachine, loadAverage1m } from "./machine.js";
import { BODY_BYTES } from "./nginx.js";
import { parseBenchArgs, selectPoints, type BenchArgs } from "./args.js";
import { makePlan, schedule, seriesName } from "./plan.js";
import { writeResultFiles } from "./output.js";
import { formatUs } from "./report.js";
import type { BenchResults } from "./results.js";
import { checkTargets, pathEvidence, programCosts, summarise } from "./summary.js";
import { runSwitchSeries, switchFigure } from "./switch.js";
import { BENCH_CPU, BENCH_NICE, BenchTopology, MAX_ATTEMPTS, MAX_FOREIGN_SHARE, PLACEMENT_CPUS, type Measurement } from "./topology.js";

const BENCH = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(BENCH, "results");

if (process.getuid?.() !== 0) {
  console.error("bench: needs root (network namespaces, cgroups, BPF programs)");
  process.exit(1);
}

// This process and the helpers it spawns (ip, iptables-save, ss) stay off the
// benchmark CPU; only the measured processes are moved onto it.
const ORCHESTRATOR_CPU = "0";
execFileSync("taskset", ["-a", "-p", "-c", ORCHESTRATOR_CPU, String(process.pid)], { stdio: "ignore" });

let args: BenchArgs;
try {
  args = parseBenchArgs(process.argv.slice(2));
} catch (e) {
  console.error(`bench: ${(e as Error).message}`);
  process.exit(2);
}
const plan = selectPoints(makePlan(args.quick), args);
const outDir = args.label ? join(RESULTS, args.label) : args.quick ? join(RESULTS, "quick") : RESULTS;
// The full run's report is bench/README.md; any other run's stays beside its results.
const readmePath = outDir === RESULTS ? join(BENCH, "README.md") : join(outDir, "README.md");

// Cleanup runs once, from whichever comes first: the end of the run or a signal.
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | null = null;
let interrupted: NodeJS.Signals | null = null;
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const c of cleanups.reverse()) await c().catch((e) => console.error(`bench: cleanup: ${(e as Error).message}`));
  })());
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  process.once(signal, () => {
    interrupted = signal;
    console.error(`bench: ${signal}: removing pods, namespaces and programs`);
    void cleanup().finally(() => process.exit(code));
  });
}

function progress(i: number, n: number, m: Measurement): void {
  const what = `${m.sidecar} ${m.placement} ${m.connMode} ×${m.connections} ${m.mode}`.padEnd(48);
  const errors = m.wrk.errors ? `, ${m.wrk.errors} errors` : "";
  const disturbed = m.attempts > 1 ? ` (attempt ${m.attempts}, other work ${(m.foreignCpuShare * 100).toFixed(0)}% of the CPUs)` : "";
  console.log(`[${String(i + 1).padStart(3)}/${n}] rep ${m.repetition + 1} ${what} ${Math.round(m.wrk.requestsPerSec).toString().padStart(7)} req/s  p99 ${formatUs(m.wrk.latencyUs.p99)}${errors}${disturbed}`);
}

const started = Date.now();
const loadStart = loadAverage1m();
try {
  cleanups.push(enableBpfStats());
  const topology = await BenchTopology.create((c) => cleanups.push(c), plan.retryBudgetSec, args.object ?? undefined);
  const steps = schedule(plan);
  const series = [...new Set(plan.points.map((p) => seriesName(p.series)))].join(", ");
  console.log(`bench: ${plan.name} run, ${steps.length} data-path measurements (series ${series}), then path switches and the per-hop micro-benchmark`);
  const measurements: Measurement[] = [];
  for (const [i, step] of steps.entries()) {
    if (interrupted) throw new Error(`interrupted by ${interrupted}`);
    const m = await topology.measure(step, plan.seconds, plan.warmupSeconds);
    measurements.push(m);
    progress(i, steps.length, m);
  }
  console.log(`bench: switching paths under load (${plan.switches.connections} connections, a new one per request)`);
  const switches = args.skipSwitch ? [] : await runSwitchSeries(topology, plan.switches, (line) => console.log(line));
  console.log("bench: per-hop micro-benchmark");
  const hopMeasurements = args.skipHop ? [] : await runHopBenchmark(topology.node, topology.mesh, plan.hop, buildPingPong(topology.node.workDir));
  const summary = summarise(measurements);
  const costs = programCosts(measurements);
  const results: BenchResults = {
    date: new Date(started).toISOString(),
    machine: describeMachine(),
    conditions: {
      plan,
      benchCpu: BENCH_CPU,
      placements: PLACEMENT_CPUS,
      benchNice: BENCH_NICE,
      bodyBytes: BODY_BYTES,
      maxForeignCpuShare: MAX_FOREIGN_SHARE,
      maxAttempts: MAX_ATTEMPTS,
      loadAverage: { start: loadStart, end: loadAverage1m() },
      durationSec: (Date.now() - started) / 1000,
      bpfStats: true,
      object: args.object,
      redirectModesHonoured: measurements.some((m) => m.mode === "meshlane-none") && measurements.filter((m) => m.mode === "meshlane-none").every((m) => (m.counters?.CNT_SOCKETS_PAIRED ?? 0) === 0),
    },
    summary,
    costs,
    switches,
    targets: checkTargets(summary, costs, switches.map(switchFigure)),
    evidence: pathEvidence(measurements),
    hop: summariseHops(hopMeasurements),
    measurements,
    hopMeasurements,
  };
  const report = writeResultFiles(outDir, readmePath, results);
  console.log(`\n${report}\nbench: results in ${outDir} (${Math.round(results.conditions.durationSec)} s)`);
} finally {
  await cleanup();
}
