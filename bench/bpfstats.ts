// The kernel's own account of what meshlane's programs cost: with
// kernel.bpf_stats_enabled=1 every program run adds its duration to the
// program's run_time_ns and one to its run_cnt (bpftool prog show). Read before
// and after a measurement, the difference is the exact time the programs took
// during it, per program, which the benchmark divides by the connections and
// messages of the run and compares with the CPU time the pods spent per request.
//
// The switch is machine-wide and costs two clock reads per program run, so it is
// on only while the benchmark runs and is put back as it was found.

import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { PROGRAM_NAMES, type ProgramName } from "../loader/maps/codecs.js";

const SYSCTL = "/proc/sys/kernel/bpf_stats_enabled";

/** Turns statistics on; returns what puts the switch back. */
export function enableBpfStats(): () => Promise<void> {
  const before = readFileSync(SYSCTL, "utf8").trim();
  writeFileSync(SYSCTL, "1");
  return async () => writeFileSync(SYSCTL, before);
}

export interface ProgStat {
  runTimeNs: number;
  runCnt: number;
}
export type ProgStats = Partial<Record<ProgramName, ProgStat>>;

/** Run time and count of the programs with these ids (one bpftool call for all). */
export function readProgStats(ids: Partial<Record<ProgramName, number>>): ProgStats {
  const all = JSON.parse(execFileSync("bpftool", ["-j", "prog", "show"], { encoding: "utf8", maxBuffer: 64 << 20 })) as { id: number; run_time_ns?: number; run_cnt?: number }[];
  const out: ProgStats = {};
  for (const name of PROGRAM_NAMES) {
    const id = ids[name];
    if (id === undefined) continue;
    const p = all.find((q) => q.id === id);
    if (!p) throw new Error(`program ${name} (id ${id}) is not loaded`);
    out[name] = { runTimeNs: p.run_time_ns ?? 0, runCnt: p.run_cnt ?? 0 };
  }
  return out;
}

export function statsDelta(before: ProgStats, after: ProgStats): ProgStats {
  const out: ProgStats = {};
  for (const name of PROGRAM_NAMES) {
    const a = after[name], b = before[name];
    if (a && b) out[name] = { runTimeNs: a.runTimeNs - b.runTimeNs, runCnt: a.runCnt - b.runCnt };
  }
  return out;
}

export const totalRunTimeNs = (s: ProgStats) => Object.values(s).reduce((n, p) => n + p.runTimeNs, 0);
