// Where and under what conditions a run happened, for the report's header.

import { spawnSync } from "node:child_process";
import { cpus, loadavg, release, totalmem } from "node:os";

export interface Machine {
  nproc: number;
  cpuModel: string;
  kernel: string;
  memoryGiB: number;
  versions: Record<"nginx" | "haproxy" | "wrk", string>;
}

/** First line of a tool's version banner, from stdout or stderr (nginx prints it on stderr, wrk exits 1 after it). */
function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0] || `${cmd}: version unknown`;
}

export function describeMachine(): Machine {
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    kernel: release(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    versions: { nginx: version("nginx", ["-v"]), haproxy: version("haproxy", ["-v"]), wrk: version("wrk", ["-v"]) },
  };
}

export function loadAverage1m(): number {
  return loadavg()[0]!;
}
