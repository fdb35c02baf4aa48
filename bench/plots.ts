// The charts of a run: QPS and latency against client connections for each
// series (sidecar × placement), one panel per connection mode, one line per mode.

import { lineChart, type Panel } from "./charts.js";
import { seriesName, type Mode, type Series } from "./plan.js";
import { formatUsShort } from "./report.js";
import type { BenchResults } from "./results.js";
import type { ModeFigures, PointSummary } from "./summary.js";
import type { ConnectionMode } from "./wrk.js";

const MODE_STYLE: Partial<Record<Mode, { color: string; dash?: string }>> = {
  "no-mesh": { color: "#6b7280" },
  iptables: { color: "#dc2626" },
  "meshlane-proxy": { color: "#2563eb" },
  "meshlane-all": { color: "#7c3aed", dash: "2 3" },
  "meshlane-none": { color: "#059669", dash: "2 3" },
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
    series: (Object.keys(MODE_STYLE) as Mode[]).flatMap((mode) =>
      lines.map((l) => {
        const dash = l.dash ?? MODE_STYLE[mode]!.dash;
        return {
          name: `${mode}${l.suffix}`,
          color: MODE_STYLE[mode]!.color,
          ...(dash ? { dash } : {}),
          values: xs.map((x) => {
            const f = rows.find((r) => r.connMode === connMode && r.connections === x)?.modes[mode];
            return f ? l.value(f) : null;
          }),
        };
      }),
    ),
  }));
}

function subtitle(r: BenchResults, s: Series): string {
  const cpus = r.conditions.placements[s.placement]!;
  const where = cpus.client === cpus.server ? `all processes on CPU ${cpus.client}` : `client pod on CPU ${cpus.client}, server pod on CPU ${cpus.server}`;
  return `${r.date.slice(0, 10)} · ${r.machine.nproc} × ${r.machine.cpuModel} · kernel ${r.machine.kernel} · HAProxy ${s.sidecar} mode · median of ${r.conditions.plan.repetitions} · ${where}`;
}

const rowsOf = (r: BenchResults, s: Series) => r.summary.filter((p) => p.sidecar === s.sidecar && p.placement === s.placement);

export function qpsChart(r: BenchResults, s: Series): string {
  const rows = rowsOf(r, s);
  const xs = connectionsOf(rows);
  return lineChart({
    title: `QPS vs client connections (${seriesName(s)})`,
    subtitle: subtitle(r, s),
    xLabel: "client connections",
    yLabel: "requests per second",
    xs,
    yScale: "linear",
    formatY: (v) => (v >= 1000 ? `${v / 1000}k` : String(v)),
    panels: panels(rows, xs, [{ suffix: "", value: (f) => f.requestsPerSec }]),
  });
}

export function latencyChart(r: BenchResults, s: Series): string {
  const rows = rowsOf(r, s);
  const xs = connectionsOf(rows);
  return lineChart({
    title: `p99 latency vs client connections (${seriesName(s)})`,
    subtitle: subtitle(r, s),
    xLabel: "client connections",
    yLabel: "p99 latency (log scale)",
    xs,
    yScale: "log",
    formatY: formatUsShort,
    panels: panels(rows, xs, [{ suffix: " p99", value: (f) => f.p99Us }]),
  });
}
