// One row of the compatibility table: a kernel (a Debian one under qemu, or the
// host's own), doctor's verdict and each kernel suite's pass/fail counts.

import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { fetchKernel } from "./apt.js";
import { runInGuest, type Step, type StepResult } from "./guest.js";
import type { Kernel } from "./kernels.js";
import { failedTests, parseDoctor, parseRunnerSummary, type DoctorVerdict, type RunnerSummary } from "./summary.js";

export interface SuiteResult {
  suite: string;
  /** null: the runner printed no summary (it crashed or was killed); see `failures`. */
  summary: RunnerSummary | null;
  code: number;
  seconds: number;
  /** Each failed test with its whole error message (summary.ts failedTests). */
  failures: string[];
  /** The runner's whole output, kept for the reader of a failed run. */
  log: string;
}

export interface Row {
  kernel: string;
  release: string;
  doctor: DoctorVerdict & { seconds: number; log: string };
  suites: SuiteResult[];
  /** Only for a kernel doctor refuses: what `attach` did there. */
  attach?: { code: number; leftovers: string[]; log: string };
  seconds: number;
  /** CPU seconds of the qemu guest (absent for the host's kernel). */
  cpuSeconds?: number;
}

/** The kernel suites: every file in test/datapath (the socket-API matrix included once it lands). */
export function datapathSuites(repo: string): string[] {
  return readdirSync(join(repo, "test", "datapath")).filter((f) => f.endsWith(".test.ts")).map((f) => f.replace(/\.test\.ts$/, "")).sort();
}

const DOCTOR: Step = { name: "doctor", command: "node dist/loader/cli.js doctor" };
const ATTACH: Step = { name: "attach", command: "bash lab/qemu/attach-leaves-nothing.sh" };
/**
 * The suites run as built JavaScript (dist/, which npm test and npm run test:kernels
 * build first), so that neither the runner nor the CLIs a suite starts
 * (lab/repo.ts cliCommand) compile TypeScript with tsx: under TCG that alone took
 * minutes (faults' loader did not start within 90 s).
 */
const suiteFile = (suite: string) => `dist/test/datapath/${suite}.test.js`;
const suiteStep = (suite: string): Step => ({
  name: `suite-${suite}`,
  command: `node --test --test-reporter=spec --test-timeout=1500000 ${suiteFile(suite)}`,
});

function requireBuilt(repo: string, suites: string[]): void {
  const missing = ["dist/loader/cli.js", ...suites.map(suiteFile)].filter((f) => !existsSync(join(repo, f)));
  if (missing.length) throw new Error(`${missing.join(", ")} missing: run "npm run build" first (npm test and npm run test:kernels do)`);
}

function toRow(kernel: string, rel: string, results: StepResult[], seconds: number): Row {
  const get = (name: string) => results.find((r) => r.name === name);
  const d = get("doctor")!;
  const row: Row = { kernel, release: rel, doctor: { ...parseDoctor(d.log, d.code), seconds: d.seconds, log: d.log }, suites: [], seconds };
  for (const r of results.filter((x) => x.name.startsWith("suite-"))) {
    const summary = parseRunnerSummary(r.log);
    const failures = failedTests(r.log);
    if (!summary) failures.push(`no test summary (exit ${r.code}); its last lines:\n${r.log.trim().split("\n").slice(-15).join("\n")}`);
    row.suites.push({ suite: r.name.slice("suite-".length), summary, code: r.code, seconds: r.seconds, failures, log: r.log });
  }
  const a = get("attach");
  if (a) {
    const exit = /^attach-exit (\d+)$/m.exec(a.log);
    row.attach = { code: exit ? Number(exit[1]) : -1, leftovers: a.log.split("\n").filter((l) => l.startsWith("leftover: ")).map((l) => l.slice(10)), log: a.log };
  }
  return row;
}

export interface MatrixOptions {
  repo: string;
  suites: string[];
  /** Whole guest run limit. */
  timeoutMs: number;
  log?: (line: string) => void;
}

/**
 * A supported kernel runs doctor then the suites; a kernel doctor must refuse runs
 * doctor and the attach-leaves-nothing check instead.
 */
export async function runKernel(k: Kernel, opts: MatrixOptions): Promise<Row> {
  requireBuilt(opts.repo, opts.suites);
  const unpacked = await fetchKernel(k);
  const steps = k.expect === "too-old" ? [DOCTOR, ATTACH] : [DOCTOR, ...opts.suites.map(suiteStep)];
  opts.log?.(`kernel ${k.id}: booting ${unpacked.release} under qemu (TCG) for ${steps.map((s) => s.name).join(", ")}`);
  const run = await runInGuest(unpacked, steps, { repo: opts.repo, timeoutMs: opts.timeoutMs });
  return { ...toRow(k.id, run.release, run.steps, run.seconds), cpuSeconds: run.cpuSeconds };
}

/** The host's own kernel: the same steps, run directly (no qemu). */
export async function runHost(opts: MatrixOptions): Promise<Row> {
  requireBuilt(opts.repo, opts.suites);
  const started = Date.now();
  const steps = [DOCTOR, ...opts.suites.map(suiteStep)];
  const results: StepResult[] = [];
  for (const s of steps) {
    opts.log?.(`host kernel ${release()}: ${s.name}`);
    const t = Date.now();
    const { code, output } = await sh(s.command, opts.repo);
    results.push({ name: s.name, code, log: output, seconds: (Date.now() - t) / 1000 });
  }
  return toRow("host", release(), results, (Date.now() - started) / 1000);
}

/** Process groups of the host row's running steps (each step's shell, its test runner and the suite's processes). */
const hostSteps = new Set<number>();

/** Ends the host row's running step, group and all (a stopped run; the guests die by pdeathsig). */
export function stopHostSteps(): void {
  for (const group of hostSteps) {
    try {
      process.kill(-group, "SIGTERM");
    } catch {
      // already gone
    }
  }
}

function sh(command: string, cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", command], { cwd, stdio: ["ignore", "pipe", "pipe"], detached: true });
    if (child.pid !== undefined) hostSteps.add(child.pid);
    let output = "";
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("close", (code) => {
      if (child.pid !== undefined) hostSteps.delete(child.pid);
      resolve({ code: code ?? 1, output });
    });
  });
}
