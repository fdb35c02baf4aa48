// The shape of bench/results/results.json: everything a run measured, the
// figures derived from it, and the conditions it ran under.

import type { HopMeasurement, HopSummary } from "./hop.js";
import type { Machine } from "./machine.js";
import type { Plan } from "./plan.js";
import type { SwitchMeasurement } from "./switch.js";
import type { PathEvidence, PointSummary, ProgramCost, TargetCheck } from "./summary.js";
import type { Measurement } from "./topology.js";

export interface RunConditions {
  plan: Plan;
  /** The CPU every process of a one-cpu measurement was pinned to… */
  benchCpu: string;
  /** …and where the client and server pods ran in each placement. */
  placements: Record<string, { client: string; server: string }>;
  /** …at this nice level. */
  benchNice: string;
  bodyBytes: number;
  /** A measurement is taken again while other work exceeds this share of the benchmark CPU… */
  maxForeignCpuShare: number;
  /** …at most this many times in all. */
  maxAttempts: number;
  /** 1-minute load average when the run started and ended: other work on the machine shows here. */
  loadAverage: { start: number; end: number };
  /** kernel.bpf_stats_enabled during the run (set to 1 for it, restored after). */
  bpfStats: boolean;
  /** The BPF object attached, when not the build's own (bench --object). */
  object: string | null;
  /** What the data path of this build does with interception.redirect (from the counters: does "none" pair sockets?). */
  redirectModesHonoured: boolean;
  durationSec: number;
}

export interface BenchResults {
  date: string;
  machine: Machine;
  conditions: RunConditions;
  summary: PointSummary[];
  costs: ProgramCost[];
  switches: SwitchMeasurement[];
  targets: TargetCheck[];
  evidence: PathEvidence[];
  hop: HopSummary[];
  measurements: Measurement[];
  hopMeasurements: HopMeasurement[];
}
