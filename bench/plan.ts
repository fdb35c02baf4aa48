// What one benchmark run measures and in which order. Modes are interleaved at
// every point, and the mode that goes first rotates, so slow drift of a shared
// VM (another suite starting, thermal or steal changes) spreads over all modes
// instead of landing on whichever ran last.

import type { ConnectionMode } from "./wrk.js";

/**
 * no-mesh:      client pod straight to server pod; pods without sidecars or Istio rules
 * iptables:     Istio's rules and sidecars, no meshlane program attached
 * meshlane:     the same pods, programs attached and both pods registered
 * unregistered: the same pods, programs attached, no pod registered (the cost
 *               meshlane puts on traffic it must leave alone)
 */
export type Mode = "no-mesh" | "iptables" | "meshlane" | "unregistered";

export interface Point {
  connMode: ConnectionMode;
  connections: number;
  modes: Mode[];
}

export interface Plan {
  name: "full" | "quick";
  repetitions: number;
  /** Each measurement: a warm-up wrk run, then the measured one. */
  warmupSeconds: number;
  seconds: number;
  /** Wall time the run may spend taking disturbed measurements again (topology.ts). */
  retryBudgetSec: number;
  points: Point[];
  hop: { sizes: number[]; seconds: number; repetitions: number };
}

export interface Step {
  repetition: number;
  point: Point;
  mode: Mode;
}

const MAIN_MODES: Mode[] = ["no-mesh", "iptables", "meshlane"];
const WITH_UNREGISTERED: Mode[] = [...MAIN_MODES, "unregistered"];

function points(connections: number[], unregisteredAt: number[]): Point[] {
  return (["keep-alive", "close"] as const).flatMap((connMode) =>
    connections.map((c) => ({ connMode, connections: c, modes: unregisteredAt.includes(c) ? WITH_UNREGISTERED : MAIN_MODES })),
  );
}

export function makePlan(quick: boolean): Plan {
  if (quick) {
    return {
      name: "quick",
      repetitions: 1,
      warmupSeconds: 0,
      seconds: 2,
      retryBudgetSec: 10,
      points: points([1, 8, 64], [8]),
      hop: { sizes: [64, 4096], seconds: 1, repetitions: 1 },
    };
  }
  return {
    name: "full",
    repetitions: 5,
    warmupSeconds: 1,
    seconds: 3,
    retryBudgetSec: 120,
    points: points([1, 2, 4, 8, 16, 32, 64], [1, 4, 16, 64]),
    hop: { sizes: [64, 1024, 16384], seconds: 2, repetitions: 3 },
  };
}

/** Every measurement in run order: repetition by repetition, point by point, modes rotated. */
export function schedule(plan: Plan): Step[] {
  const steps: Step[] = [];
  for (let repetition = 0; repetition < plan.repetitions; repetition++) {
    plan.points.forEach((point, i) => {
      const shift = (repetition + i) % point.modes.length;
      const modes = [...point.modes.slice(shift), ...point.modes.slice(0, shift)];
      for (const mode of modes) steps.push({ repetition, point, mode });
    });
  }
  return steps;
}
