// The two charts of a run: QPS and latency against client connections, one
// panel per connection mode, one line per mode.

import { lineChart, type Panel } from "./charts.js";
import type { Mode } from "./plan.js";
import { formatUsShort } from "./report.js";
import type { BenchResults } from "./results.js";
import type { ModeFigures, PointSummary } from "./summary.js";
import type { ConnectionMode } from "./wrk.js";

const MODE_COLORS: Record<Exclude<Mode, "unregistered">, string> = {
  "no-mesh": "#6b7280",
  iptables: "#dc2626",
  meshlane: "#2563eb",
};

const PANELS: { connMode: ConnectionMode; title: string }[] = [
  { connMode: "keep-alive", title: "keep-alive" },
  { connMode: "close", title: "new connection per request" },
];

function connectionsOf(rows: PointSummary[]): number[] {
  return [...new Set(rows.map((r) => r.connections))].sort((a, b) => a - b);
}

function panels(rows: PointSummary[], xs: number[], lines: { suffix: string; dash?: string; value: (f: ModeFigures) => number }[]): Panel[] {
  return PANELS.map(({ connMode, title }) => ({
    title,
    series: (Object.keys(MODE_COLORS) as (keyof typeof MODE_COLORS)[]).flatMap((mode) =>
      lines.map((l) => ({
        name: `${mode}${l.suffix}`,
        color: MODE_COLORS[mode],
        ...(l.dash ? { dash: l.dash } : {}),
        values: xs.map((x) => {
          const f = rows.find((r) => r.connMode === connMode && r.connections === x)?.modes[mode];
          return f ? l.value(f) : null;
        }),
      })),
    ),
  }));
}

function subtitle(r: BenchResults): string {
  return `${r.date.slice(0, 10)} · ${r.machine.nproc} × ${r.machine.cpuModel} · kernel ${r.machine.kernel} · median of ${r.conditions.plan.repetitions} · all processes on CPU ${r.conditions.benchCpu} at nice ${r.conditions.benchNice}`;
}

export function qpsChart(r: BenchResults): string {
  const xs = connectionsOf(r.summary);
  return lineChart({
    title: "QPS vs client connections",
    subtitle: subtitle(r),
    xLabel: "client connections",
    yLabel: "requests per second",
    xs,
    yScale: "linear",
    formatY: (v) => (v >= 1000 ? `${v / 1000}k` : String(v)),
    panels: panels(r.summary, xs, [{ suffix: "", value: (f) => f.requestsPerSec }]),
  });
}

export function latencyChart(r: BenchResults): string {
  const xs = connectionsOf(r.summary);
  return lineChart({
    title: "Latency vs client connections",
    subtitle: subtitle(r),
    xLabel: "client connections",
    yLabel: "latency (log scale)",
    xs,
    yScale: "log",
    formatY: formatUsShort,
    panels: panels(r.summary, xs, [
      { suffix: " p99", value: (f) => f.p99Us },
      { suffix: " p50", dash: "5 4", value: (f) => f.p50Us },
    ]),
  });
}
