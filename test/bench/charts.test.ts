import { test } from "node:test";
import assert from "node:assert/strict";
import { escapeXml, lineChart, niceCeil } from "../../bench/charts.js";

const spec = (values: (number | null)[]) => ({
  title: "QPS vs client connections",
  xLabel: "client connections",
  yLabel: "requests per second",
  xs: [1, 2, 4],
  yScale: "linear" as const,
  formatY: (v: number) => String(v),
  panels: [{ title: "keep-alive <a&b>", series: [{ name: "meshlane", color: "#2563eb", values }, { name: "iptables", color: "#dc2626", dash: "5 4", values: [1, 2, 3] }] }],
});

test("a chart is one SVG with a line and a dot per value, legend and escaped text", () => {
  const svg = lineChart(spec([100, 200, 300]));
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
  assert.equal((svg.match(/<circle/g) ?? []).length, 6);
  assert.match(svg, /stroke-dasharray="5 4"/);
  assert.match(svg, /keep-alive &lt;a&amp;b&gt;/);
  assert.ok(!svg.includes("NaN"), "no coordinate may be NaN");
});

test("a missing value breaks the line instead of drawing through it", () => {
  const svg = lineChart(spec([100, null, 300]));
  assert.equal((svg.match(/<polyline/g) ?? []).length, 1, "the meshlane line has no two neighbouring values left");
  assert.equal((svg.match(/<circle/g) ?? []).length, 5);
});

test("log scale puts values in order and a chart without values is refused", () => {
  const svg = lineChart({ ...spec([10, 1000, 100_000]), yScale: "log", panels: [{ title: "p", series: [{ name: "m", color: "#000", values: [10, 1000, 100_000] }] }] });
  const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(ys.length, 3);
  assert.ok(ys[0]! > ys[1]! && ys[1]! > ys[2]!, "larger values sit higher");
  assert.ok(Math.abs(ys[0]! - ys[1]! - (ys[1]! - ys[2]!)) < 0.2, "equal ratios, equal distances");
  assert.throws(() => lineChart({ ...spec([]), panels: [{ title: "p", series: [{ name: "m", color: "#000", values: [null, null, null] }] }] }), /no values/);
});

test("axis tops round up to 1, 2 or 5 times a power of ten; XML is escaped", () => {
  assert.equal(niceCeil(73_000), 100_000);
  assert.equal(niceCeil(1_900), 2_000);
  assert.equal(niceCeil(4.2), 5);
  assert.equal(escapeXml(`<"a" & b>`), "&lt;&quot;a&quot; &amp; b&gt;");
});
