// What one benchmark run measures and in which order. Modes are interleaved at
// every point, and the mode that goes first rotates, so slow drift of a shared
// VM (another suite starting, thermal or steal changes) spreads over all modes
// instead of landing on whichever ran last.

import type { RedirectMode } from "../registry/document.js";
import type { ConnectionMode } from "./wrk.js";

/**
 * no-mesh:          client pod straight to server pod; pods without sidecars or Istio rules
 * iptables:         Istio's rules and sidecars, no meshlane program attached
 * meshlane-<mode>:  the same pods, programs attached and both pods registered with
 *                   interception.redirect = <mode> (registry/document.ts)
 * unregistered:     the iptables pods, programs attached, no pod registered (the cost
 *                   meshlane puts on traffic it must leave alone)
 */
export type MeshlaneMode = `meshlane-${RedirectMode}`;
export type Mode = "no-mesh" | "iptables" | MeshlaneMode | "unregistered";
export const MESHLANE_MODES: MeshlaneMode[] = ["meshlane-proxy", "meshlane-all", "meshlane-none"];
/** The registration's default (registry/document.ts DEFAULT_REDIRECT_MODE): what the headline figures are about. */
export const DEFAULT_MESHLANE_MODE: MeshlaneMode = "meshlane-proxy";

export const redirectOf = (mode: MeshlaneMode): RedirectMode => mode.slice("meshlane-".length) as RedirectMode;
export const isMeshlane = (mode: Mode): mode is MeshlaneMode => mode.startsWith("meshlane-");

/**
 * The sidecar stand-in: HAProxy forwarding TCP (what the first benchmark used), or
 * HAProxy in HTTP mode, parsing every request and response and keeping upstream
 * connections alive across downstream ones, as Envoy's HTTP connection manager and
 * connection pool do (lab/topology/haproxy.ts).
 */
export type Sidecar = "tcp" | "http";
/** one-cpu: every process on CPU 1. two-cpus: the client pod's processes on CPU 0, the server pod's on CPU 1. */
export type CpuPlacement = "one-cpu" | "two-cpus";

export interface Series {
  sidecar: Sidecar;
  placement: CpuPlacement;
}
export const seriesName = (s: Series) => `${s.sidecar}-${s.placement}`;

export interface Point {
  series: Series;
  connMode: ConnectionMode;
  connections: number;
  modes: Mode[];
}

export interface SwitchPlan {
  connections: number;
  /** Steady state measured before each switch, in seconds. */
  steadySeconds: number;
  /** The window after a switch, measured as consecutive wrk runs of segmentSeconds. */
  windowSeconds: number;
  segmentSeconds: number;
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
  switches: SwitchPlan;
  hop: { sizes: number[]; seconds: number; repetitions: number };
}

export interface Step {
  repetition: number;
  point: Point;
  mode: Mode;
}

const MESHED: Mode[] = ["no-mesh", "iptables", ...MESHLANE_MODES];

function points(series: Series, connections: number[], unregisteredAt: number[]): Point[] {
  return (["keep-alive", "close"] as const).flatMap((connMode) =>
    connections.map((c) => ({ series, connMode, connections: c, modes: unregisteredAt.includes(c) ? [...MESHED, "unregistered" as const] : MESHED })),
  );
}

export function makePlan(quick: boolean): Plan {
  const tcpOne: Series = { sidecar: "tcp", placement: "one-cpu" };
  const httpOne: Series = { sidecar: "http", placement: "one-cpu" };
  const tcpTwo: Series = { sidecar: "tcp", placement: "two-cpus" };
  const httpTwo: Series = { sidecar: "http", placement: "two-cpus" };
  if (quick) {
    const few = [1, 16, 64];
    return {
      name: "quick",
      repetitions: 1,
      warmupSeconds: 0,
      seconds: 2,
      retryBudgetSec: 10,
      points: [...points(tcpOne, few, [16]), ...points(httpOne, few, [16]), ...points(tcpTwo, [1, 64], []), ...points(httpTwo, [1, 64], [])],
      switches: { connections: 16, steadySeconds: 4, windowSeconds: 8, segmentSeconds: 4 },
      hop: { sizes: [64, 4096], seconds: 1, repetitions: 1 },
    };
  }
  const some = [1, 4, 16, 64];
  return {
    name: "full",
    repetitions: 5,
    warmupSeconds: 1,
    seconds: 3,
    retryBudgetSec: 180,
    points: [...points(tcpOne, [1, 2, 4, 8, 16, 32, 64], some), ...points(httpOne, some, [1, 16]), ...points(tcpTwo, some, []), ...points(httpTwo, some, [])],
    switches: { connections: 16, steadySeconds: 20, windowSeconds: 120, segmentSeconds: 10 },
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
