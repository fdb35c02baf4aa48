// The benchmark's command line. With no flag, the full run; --quick runs every
// series briefly. The other flags measure a part (for comparing a data-path
// variant before committing to it); such a run writes to its own directory so
// it never replaces the full run's README.

import { parseArgs } from "node:util";
import type { Plan } from "./plan.js";
import { seriesName } from "./plan.js";

export interface BenchArgs {
  quick: boolean;
  /** Only these series (e.g. tcp-one-cpu), only this connection mode. */
  series: string[] | null;
  connMode: "keep-alive" | "close" | null;
  skipPoints: boolean;
  skipSwitch: boolean;
  skipHop: boolean;
  /** A BPF object to attach instead of the build's bpf/meshlane.bpf.o. */
  object: string | null;
  /** Where a partial run writes its results (under bench/results/). */
  label: string | null;
  /** Repetitions of every point instead of the plan's own (a quick plan repeated fits a short quiet window). */
  repetitions: number | null;
}

export function parseBenchArgs(argv: string[]): BenchArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      series: { type: "string" },
      conn: { type: "string" },
      "skip-points": { type: "boolean", default: false },
      "skip-switch": { type: "boolean", default: false },
      "skip-hop": { type: "boolean", default: false },
      object: { type: "string" },
      label: { type: "string" },
      repetitions: { type: "string" },
    },
    strict: true,
  });
  const conn = values.conn ?? null;
  if (conn !== null && conn !== "keep-alive" && conn !== "close") throw new Error(`--conn must be keep-alive or close, not ${JSON.stringify(conn)}`);
  const partial = values.series !== undefined || conn !== null || values["skip-points"] || values["skip-switch"] || values["skip-hop"] || values.object !== undefined;
  if (partial && !values.label) throw new Error("a partial run (--series, --conn, --skip-*, --object) needs --label NAME: its results go to bench/results/NAME/");
  if (values.label && !/^[a-z0-9][a-z0-9-]*$/.test(values.label)) throw new Error(`--label must be lower-case letters, digits and dashes, not ${JSON.stringify(values.label)}`);
  const reps = values.repetitions;
  if (reps !== undefined && !/^[1-9][0-9]?$/.test(reps)) throw new Error(`--repetitions must be a whole number from 1 to 99, not ${JSON.stringify(reps)}`);
  return {
    quick: values.quick!,
    series: values.series ? values.series.split(",") : null,
    connMode: conn,
    skipPoints: values["skip-points"]!,
    skipSwitch: values["skip-switch"]!,
    skipHop: values["skip-hop"]!,
    object: values.object ?? null,
    label: values.label ?? null,
    repetitions: reps === undefined ? null : Number(reps),
  };
}

/** The plan with only the selected points and the repetitions asked for; an unknown series name is an error. */
export function selectPoints(plan: Plan, args: BenchArgs): Plan {
  const known = new Set(plan.points.map((p) => seriesName(p.series)));
  for (const s of args.series ?? []) if (!known.has(s)) throw new Error(`unknown series ${s}: one of ${[...known].join(", ")}`);
  const repetitions = args.repetitions ?? plan.repetitions;
  const points = plan.points.filter((p) => !args.skipPoints && (!args.series || args.series.includes(seriesName(p.series))) && (!args.connMode || p.connMode === args.connMode));
  return { ...plan, repetitions, points };
}
