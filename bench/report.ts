// The Markdown report of a run: header (date, machine, conditions), the issue's
// targets, one table per connection mode, the unregistered-pod check and the
// per-hop micro-benchmark.

import type { HopSummary } from "./hop.js";
import type { Mode } from "./plan.js";
import type { BenchResults } from "./results.js";
import type { ModeFigures, PointSummary } from "./summary.js";

const MAIN: Mode[] = ["no-mesh", "iptables", "meshlane"];

export function formatUs(us: number): string {
  if (!Number.isFinite(us)) return "–";
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

export function formatRatio(r: number | null | undefined): string {
  return r === null || r === undefined || !Number.isFinite(r) ? "–" : `${r.toFixed(2)}×`;
}

/** Axis labels: round values, shortest unit ("500 µs", "2 ms", "1 s"). */
export function formatUsShort(us: number): string {
  if (us < 1000) return `${us} µs`;
  if (us < 1e6) return `${us / 1000} ms`;
  return `${us / 1e6} s`;
}

const formatRate = (v: number) => Math.round(v).toLocaleString("en-US");
const formatCpu = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : "–");

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function slashed(p: PointSummary, f: (m: ModeFigures) => string): string {
  return MAIN.map((mode) => (p.modes[mode] ? f(p.modes[mode]!) : "–")).join(" / ");
}

function pointTable(rows: PointSummary[]): string {
  return table(
    ["conns", "req/s no-mesh / iptables / meshlane", "meshlane÷iptables req/s", "p50", "p90", "p99", "meshlane÷iptables p99", "CPU s per 1k req", "meshlane÷iptables CPU", "errors"],
    rows.map((p) => [
      String(p.connections),
      slashed(p, (m) => formatRate(m.requestsPerSec)),
      `**${formatRatio(p.meshlaneVsIptables?.qps)}**`,
      slashed(p, (m) => formatUs(m.p50Us)),
      slashed(p, (m) => formatUs(m.p90Us)),
      slashed(p, (m) => formatUs(m.p99Us)),
      `**${formatRatio(p.meshlaneVsIptables?.p99)}**`,
      slashed(p, (m) => formatCpu(m.cpuSecPer1kRequests)),
      formatRatio(p.meshlaneVsIptables?.cpu),
      slashed(p, (m) => String(m.errors)),
    ]),
  );
}

function unregisteredTable(rows: PointSummary[]): string {
  const covered = rows.filter((p) => p.modes.unregistered && p.modes.iptables);
  return table(
    ["point", "req/s iptables / attached, unregistered", "req/s ratio", "p99 ratio", "CPU ratio", "req/s spread over repetitions (iptables / unregistered)"],
    covered.map((p) => [
      `${p.connMode} ×${p.connections}`,
      `${formatRate(p.modes.iptables!.requestsPerSec)} / ${formatRate(p.modes.unregistered!.requestsPerSec)}`,
      `**${formatRatio(p.unregisteredVsIptables?.qps)}**`,
      formatRatio(p.unregisteredVsIptables?.p99),
      formatRatio(p.unregisteredVsIptables?.cpu),
      `${(p.modes.iptables!.qpsSpread * 100).toFixed(0)}% / ${(p.modes.unregistered!.qpsSpread * 100).toFixed(0)}%`,
    ]),
  );
}

function evidenceTable(r: BenchResults): string {
  return table(
    ["mode", "requests", "REDIRECT hits outbound / inbound", "connects steered by meshlane", "sockets paired", "sendmsg redirected per request", "fallbacks"],
    r.evidence.map((e) => [
      e.mode,
      formatRate(e.requests),
      `${formatRate(e.iptablesOutbound)} / ${formatRate(e.iptablesInbound)}`,
      formatRate(e.connectsSteered),
      formatRate(e.socketsPaired),
      e.msgRedirectedPerRequest.toFixed(2),
      formatRate(e.fallbacks),
    ]),
  );
}

function hopTable(hops: HopSummary[]): string {
  const keys = [...new Set(hops.map((h) => `${h.placement}|${h.bytes}`))];
  return table(
    ["placement", "message", "round trip p50 / p99, TCP stack", "round trip p50 / p99, sockmap", "sockmap÷stack p50", "round trips/s stack / sockmap", "redirected sendmsg per round trip (stack / sockmap)"],
    keys.flatMap((k) => {
      const stack = hops.find((h) => `${h.placement}|${h.bytes}` === k && h.path === "tcp-stack");
      const sockmap = hops.find((h) => `${h.placement}|${h.bytes}` === k && h.path === "sockmap");
      if (!stack || !sockmap) return [];
      return [[
        stack.placement,
        `${stack.bytes} B`,
        `${stack.p50Us.toFixed(1)} / ${stack.p99Us.toFixed(1)} µs`,
        `${sockmap.p50Us.toFixed(1)} / ${sockmap.p99Us.toFixed(1)} µs`,
        `**${formatRatio(sockmap.p50Us / stack.p50Us)}**`,
        `${formatRate(stack.roundTripsPerSec)} / ${formatRate(sockmap.roundTripsPerSec)}`,
        `${stack.redirectedPerRoundTrip.toFixed(2)} / ${sockmap.redirectedPerRoundTrip.toFixed(2)}`,
      ]];
    }),
  );
}

function disturbance(r: BenchResults): string {
  const n = r.measurements.length;
  const retried = r.measurements.filter((m) => m.attempts > 1).length;
  const still = r.measurements.filter((m) => m.foreignCpuShare > r.conditions.maxForeignCpuShare).length;
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  return `other processes took more than ${pct(r.conditions.maxForeignCpuShare)} of CPU ${r.conditions.benchCpu} during ${retried} of ${n} measurements, which were taken again; ${still} stayed above it after ${r.conditions.maxAttempts} attempts (the least disturbed attempt is kept)`;
}

export function markdownReport(r: BenchResults): string {
  const c = r.conditions;
  const m = r.machine;
  const reps = c.plan.repetitions;
  return `# meshlane benchmark results (${c.plan.name} run)

- Date: ${r.date}
- Machine: ${m.nproc} × ${m.cpuModel}, ${m.memoryGiB} GiB, kernel ${m.kernel}
- Tools: ${m.versions.nginx}; ${m.versions.haproxy.replace(/ - https?:\S+/, "")}; ${m.versions.wrk.replace(/ Copyright.*/, "")}
- Each point: ${reps} repetition${reps > 1 ? "s" : ""} (median shown) of ${c.plan.warmupSeconds ? `${c.plan.warmupSeconds} s warm-up + ` : ""}${c.plan.seconds} s of wrk, modes interleaved at every point; every process (wrk, sidecars, nginx) pinned to CPU ${c.benchCpu} at nice ${c.benchNice}; nginx serves ${c.bodyBytes} B
- Load average (1 min) at start / end: ${c.loadAverage.start.toFixed(2)} / ${c.loadAverage.end.toFixed(2)}; run took ${Math.round(c.durationSec)} s
- Disturbance: ${disturbance(r)}
- CPU s per 1k req: CPU time of the client and server pods' cgroups (wrk, sidecars, nginx and the kernel work done in their context) per 1,000 requests

## Targets (issue 6)

${table(
  ["target", "met", "figures"],
  r.targets.map((t) => [t.target, t.met ? "yes" : "**no**", t.values.map((v) => `${v.point}: ${formatRatio(v.value)}`).join(", ")]),
)}

## Keep-alive connections

${pointTable(r.summary.filter((p) => p.connMode === "keep-alive"))}

## A new connection per request (\`Connection: close\`)

${pointTable(r.summary.filter((p) => p.connMode === "close"))}

## Which path the traffic took (counters summed over the measured runs)

${evidenceTable(r)}

## Pods that are not registered: programs attached vs not attached

${unregisteredTable(r.summary)}

## Per hop: request/response over one loopback TCP connection

${hopTable(r.hop)}
`;
}
