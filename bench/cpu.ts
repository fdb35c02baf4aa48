// CPU time for "CPU seconds per 1,000 requests". The pods' cgroups hold wrk,
// nginx and both sidecars; this kernel has no IRQ time accounting, so the
// softirq work of the network stack run on their behalf is charged to them too.
// The benchmark CPU's busy time is read beside it: what exceeds the pods' time
// was someone else's work (another test suite, a kworker) disturbing the run.

import { readFileSync } from "node:fs";
import { join } from "node:path";

/** cgroup v2 cpu.stat usage_usec: scheduler-exact CPU time of everything ever in the cgroup. */
export function cgroupCpuUsec(cgroupDir: string): number {
  const stat = readFileSync(join(cgroupDir, "cpu.stat"), "utf8");
  const m = /^usage_usec (\d+)$/m.exec(stat);
  if (!m) throw new Error(`no usage_usec in ${cgroupDir}/cpu.stat`);
  return Number(m[1]);
}

/** Busy time of one CPU ("1") or of all ("") from /proc/stat (user, system, irq, softirq), in µs. */
export function cpuBusyUsec(cpu: string, procStat = readFileSync("/proc/stat", "utf8")): number {
  const line = procStat.split("\n").find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) throw new Error(`no cpu${cpu} line in /proc/stat`);
  // user nice system idle iowait irq softirq …, in USER_HZ (100/s).
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1, 8).map(Number);
  return (user! + nice! + system! + irq! + softirq!) * 10_000;
}
