// Line charts as standalone SVG, written by hand so the benchmark needs no
// plotting dependency. x is categorical (client connections 1, 2, 4 … are
// powers of two, so equal spacing is a log2 axis); y is linear from zero or
// logarithmic (latencies span three decades between 1 and 64 connections).
// Each panel has its own y axis: keep-alive and new-connection rates differ
// by an order of magnitude.

export interface Series {
  name: string;
  color: string;
  /** SVG stroke-dasharray; solid when absent. */
  dash?: string;
  /** One value per x; null leaves a gap. */
  values: (number | null)[];
}

export interface Panel {
  title: string;
  series: Series[];
}

export interface ChartSpec {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  xs: number[];
  yScale: "linear" | "log";
  formatY: (v: number) => string;
  panels: Panel[];
}

const PANEL_W = 440;
const PANEL_H = 300;
const MARGIN = { left: 70, right: 20, top: 30, bottom: 45 };
const HEADER_H = 70;
const LEGEND_ROW_H = 18;

export function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Round numbers at or above v: 1, 2, 5 × 10^k. */
export function niceCeil(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((n) => n >= v * (1 - 1e-9))!;
}

interface YAxis {
  ticks: number[];
  pos(v: number): number; // 0 at the bottom of the plot, 1 at the top
}

function yAxis(spec: ChartSpec, panel: Panel): YAxis {
  const values = panel.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  if (spec.yScale === "linear") {
    const top = niceCeil(Math.max(...values, 0) * 1.05);
    const step = niceCeil(top / 6);
    const ticks = Array.from({ length: Math.floor(top / step) + 1 }, (_, i) => i * step);
    return { ticks, pos: (v) => v / (ticks[ticks.length - 1] || 1) };
  }
  const positive = values.filter((v) => v > 0);
  if (positive.length === 0) return { ticks: [1, 10], pos: (v) => Math.log10(Math.max(v, 1)) };
  const lo = Math.floor(Math.log10(Math.min(...positive)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...positive))));
  // 1-2-5 ticks while they fit; decades only over wide ranges.
  const mantissas = hi - lo > 3 ? [1] : [1, 2, 5];
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) for (const m of mantissas) if (m * 10 ** e <= 10 ** hi) ticks.push(m * 10 ** e);
  return { ticks, pos: (v) => (Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo) };
}

function panelSvg(spec: ChartSpec, panel: Panel, ox: number, oy: number): string {
  const y = yAxis(spec, panel);
  const w = PANEL_W - MARGIN.left - MARGIN.right;
  const h = PANEL_H - MARGIN.top - MARGIN.bottom;
  const x0 = ox + MARGIN.left, y0 = oy + MARGIN.top;
  const px = (i: number) => x0 + (spec.xs.length === 1 ? w / 2 : (i * w) / (spec.xs.length - 1));
  const py = (v: number) => y0 + h - y.pos(v) * h;
  const out: string[] = [`<text x="${x0 + w / 2}" y="${oy + 18}" text-anchor="middle" font-weight="bold">${escapeXml(panel.title)}</text>`];
  for (const t of y.ticks) {
    const ty = py(t).toFixed(1);
    out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${ty}" y2="${ty}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${x0 - 6}" y="${ty}" text-anchor="end" dominant-baseline="middle" font-size="11">${escapeXml(spec.formatY(t))}</text>`);
  }
  spec.xs.forEach((x, i) => {
    out.push(`<line x1="${px(i)}" x2="${px(i)}" y1="${y0 + h}" y2="${y0 + h + 4}" stroke="#374151"/>`);
    out.push(`<text x="${px(i)}" y="${y0 + h + 16}" text-anchor="middle" font-size="11">${x}</text>`);
  });
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#374151"/>`);
  out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 34}" text-anchor="middle" font-size="12">${escapeXml(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(${ox + 16} ${y0 + h / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeXml(spec.yLabel)}</text>`);
  for (const s of panel.series) {
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
    // A null breaks the line into separate runs.
    let run: string[] = [];
    const flush = () => {
      if (run.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${run.join(" ")}"/>`);
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return flush();
      run.push(`${px(i).toFixed(1)},${py(v).toFixed(1)}`);
      out.push(`<circle cx="${px(i).toFixed(1)}" cy="${py(v).toFixed(1)}" r="3" fill="${s.color}"><title>${escapeXml(`${s.name}, ${spec.xs[i]}: ${spec.formatY(v)}`)}</title></circle>`);
    });
    flush();
  }
  return out.join("\n");
}

function legendSvg(panels: Panel[], width: number, top: number): string {
  const seen = new Map<string, Series>();
  for (const p of panels) for (const s of p.series) if (!seen.has(s.name)) seen.set(s.name, s);
  const perRow = Math.max(1, Math.floor(width / 150));
  return [...seen.values()]
    .map((s, i) => {
      const x = 20 + (i % perRow) * 150, y = top + Math.floor(i / perRow) * LEGEND_ROW_H;
      const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
      return `<line x1="${x}" x2="${x + 24}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${dash}/><text x="${x + 30}" y="${y}" dominant-baseline="middle" font-size="12">${escapeXml(s.name)}</text>`;
    })
    .join("\n");
}

export function lineChart(spec: ChartSpec): string {
  const values = spec.panels.flatMap((p) => p.series.flatMap((s) => s.values)).filter((v) => v !== null && Number.isFinite(v));
  if (values.length === 0) throw new Error(`chart "${spec.title}" has no values`);
  const width = PANEL_W * spec.panels.length;
  const legendNames = new Set(spec.panels.flatMap((p) => p.series.map((s) => s.name)));
  const legendRows = Math.ceil(legendNames.size / Math.max(1, Math.floor(width / 150)));
  const top = HEADER_H + legendRows * LEGEND_ROW_H;
  const height = top + PANEL_H;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="18" font-weight="bold">${escapeXml(spec.title)}</text>`,
    spec.subtitle ? `<text x="${width / 2}" y="44" text-anchor="middle" font-size="12" fill="#4b5563">${escapeXml(spec.subtitle)}</text>` : "",
    legendSvg(spec.panels, width, HEADER_H - 6),
    ...spec.panels.map((p, i) => panelSvg(spec, p, i * PANEL_W, top)),
    "</svg>",
    "",
  ].join("\n");
}
