// From raw measurements to the reported figures: medians per point and mode,
// ratios between modes, what the programs cost per request according to the
// kernel's BPF statistics, and the targets checked against them.

import type { ProgStats } from "./bpfstats.js";
import { DEFAULT_MESHLANE_MODE, MESHLANE_MODES, type MeshlaneMode, type Mode, type CpuPlacement, type Sidecar } from "./plan.js";
import { median, ratio, relativeSpread } from "./stats.js";
import type { ConnectionMode } from "./wrk.js";

/** What summarising needs of a measurement (topology.ts's Measurement has more). */
export interface Sample {
  mode: Mode;
  sidecar: Sidecar;
  placement: CpuPlacement;
  connMode: ConnectionMode;
  connections: number;
  wrk: { requests: number; requestsPerSec: number; latencyUs: { p50: number; p90: number; p99: number }; errors: number };
  podCpuSec: number;
  /** Other work's share of the measurement's CPUs (topology.ts); above DISTURBED_SHARE the figure is marked. */
  foreignCpuShare?: number;
  progStats?: ProgStats;
  counters?: Record<string, number>;
  iptablesRedirects?: { outbound: number; inbound: number };
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
  /** Repetitions during which other work took more than DISTURBED_SHARE of the CPUs (after every retry). */
  disturbed: number;
}

/** topology.ts's MAX_FOREIGN_SHARE: summaries must not import the topology (it spawns processes). */
export const DISTURBED_SHARE = 0.1;

export interface Ratios {
  qps: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  cpu: number | null;
}

export interface PointSummary {
  sidecar: Sidecar;
  placement: CpuPlacement;
  connMode: ConnectionMode;
  connections: number;
  modes: Partial<Record<Mode, ModeFigures>>;
  /** Each meshlane mode ÷ iptables. */
  vsIptables: Partial<Record<MeshlaneMode | "unregistered", Ratios>>;
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
    disturbed: samples.filter((s) => (s.foreignCpuShare ?? 0) > DISTURBED_SHARE).length,
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

const pointKey = (s: Pick<Sample, "sidecar" | "placement" | "connMode" | "connections">) => `${s.sidecar}|${s.placement}|${s.connMode}|${s.connections}`;

function groups<T>(items: T[], key: (t: T) => string): T[][] {
  const m = new Map<string, T[]>();
  for (const t of items) m.set(key(t), [...(m.get(key(t)) ?? []), t]);
  return [...m.values()];
}

/** One row per (series, connection mode, connections), in the order the points first appear. */
export function summarise(samples: Sample[]): PointSummary[] {
  return groups(samples, pointKey).map((ps) => {
    const modes: PointSummary["modes"] = {};
    for (const mode of new Set(ps.map((s) => s.mode))) modes[mode] = figures(ps.filter((s) => s.mode === mode));
    const vsIptables: PointSummary["vsIptables"] = {};
    for (const mode of [...MESHLANE_MODES, "unregistered" as const]) {
      const r = ratios(modes[mode], modes.iptables);
      if (r) vsIptables[mode] = r;
    }
    const { sidecar, placement, connMode, connections } = ps[0]!;
    return { sidecar, placement, connMode, connections, modes, vsIptables };
  });
}

/** What the programs cost in one (point, attached mode), from bpf_stats; medians over repetitions. */
export interface ProgramCost {
  sidecar: Sidecar;
  placement: CpuPlacement;
  connMode: ConnectionMode;
  connections: number;
  mode: Mode;
  /** Per program: runs per request and ns per run. */
  programs: Record<string, { runsPerRequest: number; nsPerRun: number; nsPerRequest: number }>;
  /** All programs' run time per request. */
  bpfNsPerRequest: number;
  /** The pods' CPU time per request, same runs. */
  cpuNsPerRequest: number;
  /** bpfNsPerRequest ÷ cpuNsPerRequest: median, lowest and highest over repetitions. */
  share: { median: number; min: number; max: number };
  /** Sockets put into the sockhash, messages redirected, connections Istio's REDIRECT still caught inbound, per request. */
  pairedPerRequest: number;
  redirectedPerRequest: number;
  inboundRedirectsPerRequest: number;
}

export function programCosts(samples: Sample[]): ProgramCost[] {
  const attached = samples.filter((s) => s.progStats && s.wrk.requests > 0);
  return groups(attached, (s) => `${pointKey(s)}|${s.mode}`).map((ss) => {
    const names = [...new Set(ss.flatMap((s) => Object.keys(s.progStats!)))];
    const perReq = (s: Sample, f: (s: Sample) => number) => f(s) / s.wrk.requests;
    const programs: ProgramCost["programs"] = {};
    for (const name of names) {
      const stat = (s: Sample) => s.progStats![name as keyof ProgStats] ?? { runTimeNs: 0, runCnt: 0 };
      programs[name] = {
        runsPerRequest: median(ss.map((s) => perReq(s, (x) => stat(x).runCnt))),
        nsPerRun: median(ss.map((s) => (stat(s).runCnt ? stat(s).runTimeNs / stat(s).runCnt : 0))),
        nsPerRequest: median(ss.map((s) => perReq(s, (x) => stat(x).runTimeNs))),
      };
    }
    const bpfNs = (s: Sample) => Object.values(s.progStats!).reduce((n, p) => n + p.runTimeNs, 0);
    const shares = ss.map((s) => bpfNs(s) / (s.podCpuSec * 1e9));
    const { sidecar, placement, connMode, connections, mode } = ss[0]!;
    const counter = (s: Sample, name: string) => s.counters?.[name] ?? 0;
    return {
      sidecar,
      placement,
      connMode,
      connections,
      mode,
      programs,
      bpfNsPerRequest: median(ss.map((s) => perReq(s, bpfNs))),
      cpuNsPerRequest: median(ss.map((s) => perReq(s, (x) => x.podCpuSec * 1e9))),
      share: { median: median(shares), min: Math.min(...shares), max: Math.max(...shares) },
      pairedPerRequest: median(ss.map((s) => perReq(s, (x) => counter(x, "CNT_SOCKETS_PAIRED")))),
      redirectedPerRequest: median(ss.map((s) => perReq(s, (x) => counter(x, "CNT_MSG_REDIRECTED")))),
      inboundRedirectsPerRequest: median(ss.map((s) => perReq(s, (x) => x.iptablesRedirects?.inbound ?? 0))),
    };
  });
}

export interface TargetCheck {
  target: string;
  /** ratio: a÷b; share: a fraction shown as a percentage. */
  unit: "ratio" | "share";
  /** The figure the target is about at each point it covers. */
  values: { point: string; value: number | null; disturbed?: boolean }[];
  met: boolean;
}

export interface SwitchFigure {
  kind: string;
  windowOverSteadyP99: number | null;
}

const pointLabel = (r: { sidecar: Sidecar; placement: CpuPlacement; connMode: ConnectionMode; connections: number }) =>
  `${r.sidecar} ${r.placement} ${r.connMode} ×${r.connections}`;

/** The targets, each judged at every point it covers (a target is met only if met at all of them). */
export function checkTargets(rows: PointSummary[], costs: ProgramCost[], switches: SwitchFigure[]): TargetCheck[] {
  const check = <T extends { sidecar: Sidecar; placement: CpuPlacement; connMode: ConnectionMode; connections: number }>(
    target: string, items: T[], value: (r: T) => number | null | undefined, ok: (v: number) => boolean, unit: TargetCheck["unit"] = "ratio",
  ): TargetCheck => {
    const values = items.map((r) => ({ point: pointLabel(r), value: value(r) ?? null, ...("modes" in r && Object.values((r as unknown as PointSummary).modes).some((m) => m && m.disturbed > 0) ? { disturbed: true } : {}) }));
    return { target, unit, values, met: values.length > 0 && values.every((v) => v.value !== null && ok(v.value)) };
  };
  const tcpOne = rows.filter((r) => r.sidecar === "tcp" && r.placement === "one-cpu");
  const d = DEFAULT_MESHLANE_MODE;
  const switchValues = switches.map((s) => ({ point: s.kind, value: s.windowOverSteadyP99 }));
  return [
    check(`new connection per request, 1–64 connections: ${d}/iptables req/s ≥ 1.0 (aim 1.1)`, tcpOne.filter((r) => r.connMode === "close"), (r) => r.vsIptables[d]?.qps, (v) => v >= 1.0),
    check(`keep-alive, 1–16 connections: ${d}/iptables req/s ≥ 1.4`, tcpOne.filter((r) => r.connMode === "keep-alive" && r.connections <= 16), (r) => r.vsIptables[d]?.qps, (v) => v >= 1.4),
    check(`keep-alive, 1–16 connections: ${d}/iptables p99 ≤ 0.75`, tcpOne.filter((r) => r.connMode === "keep-alive" && r.connections <= 16), (r) => r.vsIptables[d]?.p99, (v) => v <= 0.75),
    check("unregistered pods: programs' run time ≤ 1% of the CPU time per request (highest repetition)", costs.filter((c) => c.mode === "unregistered"), (c) => c.share.max, (v) => v <= 0.01, "share"),
    { unit: "ratio", target: "switching paths: p99 in the window after a switch ≤ 2× the steady state before it", values: switchValues, met: switchValues.length > 0 && switchValues.every((v) => v.value !== null && v.value <= 2) },
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

/** Proof that each meshed mode took the path it is named after. */
export function pathEvidence(samples: Sample[]): PathEvidence[] {
  const modes: Mode[] = ["iptables", "unregistered", ...MESHLANE_MODES];
  return modes.flatMap((mode) => {
    const ms = samples.filter((s) => s.mode === mode);
    if (ms.length === 0) return [];
    const sum = (f: (s: Sample) => number) => ms.reduce((n, s) => n + f(s), 0);
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
