// From raw measurements to the reported figures: medians per point and mode,
// ratios between modes, and the targets checked against them.

import type { Mode } from "./plan.js";
import { median, ratio, relativeSpread } from "./stats.js";
import type { ConnectionMode } from "./wrk.js";

/** What summarising needs of a measurement (topology.ts's Measurement has more). */
export interface Sample {
  mode: Mode;
  connMode: ConnectionMode;
  connections: number;
  wrk: { requests: number; requestsPerSec: number; latencyUs: { p50: number; p90: number; p99: number }; errors: number };
  podCpuSec: number;
}

export interface ModeFigures {
  repetitions: number;
  requestsPerSec: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  cpuSecPer1kRequests: number;
  /** Relative spread of requests/s over the repetitions. */
  qpsSpread: number;
  errors: number;
}

export interface Ratios {
  qps: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  cpu: number | null;
}

export interface PointSummary {
  connMode: ConnectionMode;
  connections: number;
  modes: Partial<Record<Mode, ModeFigures>>;
  meshlaneVsIptables: Ratios | null;
  unregisteredVsIptables: Ratios | null;
}

function figures(samples: Sample[]): ModeFigures {
  const rps = samples.map((s) => s.wrk.requestsPerSec);
  return {
    repetitions: samples.length,
    requestsPerSec: median(rps),
    p50Us: median(samples.map((s) => s.wrk.latencyUs.p50)),
    p90Us: median(samples.map((s) => s.wrk.latencyUs.p90)),
    p99Us: median(samples.map((s) => s.wrk.latencyUs.p99)),
    cpuSecPer1kRequests: median(samples.map((s) => (s.wrk.requests ? (s.podCpuSec * 1000) / s.wrk.requests : Infinity))),
    qpsSpread: relativeSpread(rps),
    errors: samples.reduce((n, s) => n + s.wrk.errors, 0),
  };
}

export function ratios(a: ModeFigures | undefined, b: ModeFigures | undefined): Ratios | null {
  if (!a || !b) return null;
  return {
    qps: ratio(a.requestsPerSec, b.requestsPerSec),
    p50: ratio(a.p50Us, b.p50Us),
    p90: ratio(a.p90Us, b.p90Us),
    p99: ratio(a.p99Us, b.p99Us),
    cpu: ratio(a.cpuSecPer1kRequests, b.cpuSecPer1kRequests),
  };
}

/** One row per (connection mode, connections), in the order the points first appear. */
export function summarise(samples: Sample[]): PointSummary[] {
  const points = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = `${s.connMode}|${s.connections}`;
    points.set(key, [...(points.get(key) ?? []), s]);
  }
  return [...points.values()].map((ps) => {
    const modes: PointSummary["modes"] = {};
    for (const mode of new Set(ps.map((s) => s.mode))) modes[mode] = figures(ps.filter((s) => s.mode === mode));
    return {
      connMode: ps[0]!.connMode,
      connections: ps[0]!.connections,
      modes,
      meshlaneVsIptables: ratios(modes.meshlane, modes.iptables),
      unregisteredVsIptables: ratios(modes.unregistered, modes.iptables),
    };
  });
}

export interface TargetCheck {
  target: string;
  /** The figure the target is about at each point it covers. */
  values: { point: string; value: number | null }[];
  met: boolean;
}

/** The targets, each judged at every point it covers (a target is met only if met at all of them). */
export function checkTargets(rows: PointSummary[]): TargetCheck[] {
  const check = (target: string, covers: (r: PointSummary) => boolean, value: (r: PointSummary) => number | null | undefined, ok: (v: number) => boolean): TargetCheck => {
    const values = rows.filter(covers).map((r) => ({ point: `${r.connMode} ×${r.connections}`, value: value(r) ?? null }));
    return { target, values, met: values.length > 0 && values.every((v) => v.value !== null && ok(v.value)) };
  };
  const keepAlive1to16 = (r: PointSummary) => r.connMode === "keep-alive" && r.connections <= 16;
  return [
    check("keep-alive, 1–16 connections: meshlane/iptables req/s ≥ 1.4", keepAlive1to16, (r) => r.meshlaneVsIptables?.qps, (v) => v >= 1.4),
    check("keep-alive, 1–16 connections: meshlane/iptables p99 ≤ 0.75", keepAlive1to16, (r) => r.meshlaneVsIptables?.p99, (v) => v <= 0.75),
    check("new connection per request: meshlane/iptables req/s ≥ 0.98 (no loss)", (r) => r.connMode === "close", (r) => r.meshlaneVsIptables?.qps, (v) => v >= 0.98),
    check("unregistered pods: attached-unregistered/iptables req/s ≥ 0.98", (r) => r.unregisteredVsIptables !== null, (r) => r.unregisteredVsIptables?.qps, (v) => v >= 0.98),
  ];
}

/** What the counters say happened, summed over the runs of one mode. */
export interface PathEvidence {
  mode: Mode;
  requests: number;
  /** Connections Istio's REDIRECT rules caught: outbound in the client pod, inbound in the server pod. */
  iptablesOutbound: number;
  iptablesInbound: number;
  connectsSteered: number;
  socketsPaired: number;
  msgRedirectedPerRequest: number;
  fallbacks: number;
}

type CountedSample = Sample & { counters?: Record<string, number>; iptablesRedirects?: { outbound: number; inbound: number } };

/** Proof that each meshed mode took the path it is named after. */
export function pathEvidence(samples: CountedSample[]): PathEvidence[] {
  const modes: Mode[] = ["iptables", "unregistered", "meshlane"];
  return modes.flatMap((mode) => {
    const ms = samples.filter((s) => s.mode === mode);
    if (ms.length === 0) return [];
    const sum = (f: (s: CountedSample) => number) => ms.reduce((n, s) => n + f(s), 0);
    const counter = (name: string) => sum((s) => s.counters?.[name] ?? 0);
    const requests = sum((s) => s.wrk.requests);
    return [{
      mode,
      requests,
      iptablesOutbound: sum((s) => s.iptablesRedirects?.outbound ?? 0),
      iptablesInbound: sum((s) => s.iptablesRedirects?.inbound ?? 0),
      connectsSteered: counter("CNT_CONNECT_OUTBOUND") + counter("CNT_CONNECT_INBOUND"),
      socketsPaired: counter("CNT_SOCKETS_PAIRED"),
      msgRedirectedPerRequest: requests ? counter("CNT_MSG_REDIRECTED") / requests : 0,
      fallbacks: sum((s) => Object.entries(s.counters ?? {}).reduce((n, [k, v]) => n + (k.startsWith("CNT_FALLBACK_") ? v : 0), 0)),
    }];
  });
}
