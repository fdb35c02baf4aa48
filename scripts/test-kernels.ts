// npm run test:kernels: the full kernel matrix. Each pinned Debian kernel boots under
// qemu (TCG) and runs doctor and every kernel suite against the host's checkout;
// the host's own kernel runs the same directly; the kernel older than the minimum
// must make doctor refuse and attach leave nothing. Writes the table into
// docs/kernels.md and exits non-zero if any kernel did not do what it must.
//
//   npm run test:kernels [-- --kernels 6.1,6.12,5.10,host] [--suites steering,integrity] [--jobs 2] [--no-doc]

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { meshlaneCache } from "../lab/qemu/apt.js";
import { KERNELS, kernelById } from "../lab/qemu/kernels.js";
import { datapathSuites, runHost, runKernel, stopHostSteps, type Row } from "../lab/qemu/matrix.js";
import { renderTable, replaceTable, rowProblems } from "../lab/qemu/table.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");

const { values } = parseArgs({
  options: {
    kernels: { type: "string", default: [...KERNELS.map((k) => k.id), "host"].join(",") },
    suites: { type: "string" },
    "no-doc": { type: "boolean", default: false },
    "timeout-min": { type: "string", default: "90" },
    jobs: { type: "string", default: "1" },
  },
});
if (process.getuid?.() !== 0) {
  console.error("test:kernels: the suites load BPF programs and create namespaces in each kernel; run as root");
  process.exit(1);
}
const all = datapathSuites(REPO);
const suites = values.suites ? values.suites.split(",") : all;
for (const s of suites) if (!all.includes(s)) throw new Error(`--suites: no test/datapath/${s}.test.ts (have: ${all.join(", ")})`);
const ids = values.kernels.split(",");
const opts = { repo: REPO, suites, timeoutMs: Number(values["timeout-min"]) * 60_000, log: (l: string) => console.log(`test:kernels: ${l}`) };

/** A failed suite's whole output, kept where the next run of the same kernel and suite replaces it. */
function keepLog(kernel: string, suite: string, log: string): string {
  const dir = join(meshlaneCache(), "kernels", "logs");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${kernel}-${suite}.log`);
  writeFileSync(file, log);
  return file;
}

const results = new Map<string, Row>();
/** Kernels whose guest failed (no row), with the reason. */
const failed = new Map<string, string>();
const problems: string[] = [];
async function one(id: string): Promise<void> {
  const expect = id === "host" ? "supported" : kernelById(id).expect;
  try {
    const row = id === "host" ? await runHost(opts) : await runKernel(kernelById(id), opts);
    results.set(id, row);
    const p = rowProblems(row, expect);
    problems.push(...p.map((x) => `${id}: ${x}`));
    console.log(`test:kernels: ${id} (${row.release}) done in ${Math.round(row.seconds)} s${p.length ? `: ${p.join("; ")}` : ": as expected"}`);
    if (!row.doctor.ok) console.log(row.doctor.log.trim());
    for (const s of row.suites.filter((x) => x.failures.length)) console.log(`test:kernels: ${id}, ${s.suite} failed; its whole output: ${keepLog(id, s.suite, s.log)}`);
  } catch (e) {
    failed.set(id, (e as Error).message);
    problems.push(`${id}: ${(e as Error).message}`);
    console.log(`test:kernels: ${id} FAILED: ${(e as Error).message}`);
  }
}
// The page is rewritten as each kernel finishes: a run stopped half-way (a guest takes
// tens of minutes) still leaves the rows it has, and says which kernels have none.
const date = new Date().toISOString().slice(0, 10);
let stopped: string | undefined;
const unfinished = () => (stopped ? `the run was stopped (${stopped}) before this kernel finished` : "still running when this was written");
const tableNow = () =>
  renderTable(ids.flatMap((id) => results.get(id) ?? []), suites, date, ids.filter((id) => !results.has(id)).map((id) => ({ kernel: id, why: failed.get(id) ?? unfinished() })));
function writeDoc(): void {
  if (values["no-doc"]) return;
  const doc = join(REPO, "docs", "kernels.md");
  writeFileSync(doc, replaceTable(readFileSync(doc, "utf8"), tableNow()));
}
// Stopped (Ctrl-C, a deadline): the page says so instead of "still running"; the guests die
// with this process (pdeathsig), the host's running suite is ended (lab/topology/janitor.ts
// clears what its after-hooks could not).
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    stopped = signal;
    stopHostSteps();
    writeDoc();
    console.log(`test:kernels: stopped by ${signal}; no result for ${ids.filter((id) => !results.has(id)).join(", ") || "none"}`);
    process.exit(1);
  });
}
// --jobs 2 boots two guests at once: each emulated CPU is one host thread, so on a
// machine with spare cores the matrix takes about half the time.
const queue = [...ids];
await Promise.all(Array.from({ length: Math.max(1, Number(values.jobs)) }, async () => {
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    await one(id);
    writeDoc();
  }
}));

console.log(`\n${tableNow()}\n`);
if (!values["no-doc"]) console.log(`test:kernels: table written to docs/kernels.md`);
if (problems.length) {
  console.log(`test:kernels: ${problems.length} problem(s):\n${problems.map((p) => `- ${p}`).join("\n")}`);
  process.exit(1);
}
