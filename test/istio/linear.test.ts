// Review time is bounded by the input: reading a pod's capture settings takes a number of
// steps linear in its list entries (counted, not timed: speed is the benchmark's job,
// scripts/bench-webhook.ts measures the 256 KiB pod).
import { test } from "node:test";
import assert from "node:assert/strict";
import { istioSettings } from "../../mesh/istio/index.js";
import { detectInjection } from "../../mesh/istio/detect.js";
import { Steps } from "../../mesh/istio/lists.js";
import { readPod } from "../../mesh/pod.js";

function ports(n: number): string {
  return Array.from({ length: n }, (_, i) => String((i % 65535) + 1)).join(",");
}
function cidrs(n: number): string {
  return Array.from({ length: n }, (_, i) => (i % 2 ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32` : `fd00::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}/128`)).join(",");
}

function steps(n: number, capture: "istio-init" | "istio-validation"): number {
  const lists = { i: cidrs(n), x: cidrs(n), q: ports(n), o: ports(n), b: ports(n) };
  const init = capture === "istio-init"
    ? { name: "istio-init", args: ["istio-iptables", "-i", lists.i, "-x", lists.x, "-q", lists.q, "-o", lists.o, "-b", lists.b] }
    : { name: "istio-validation", args: ["istio-iptables", "--run-validation", "--skip-rule-apply"] };
  const T = "traffic.sidecar.istio.io/";
  const annotations = capture === "istio-init" ? {} : {
    [`${T}includeOutboundIPRanges`]: lists.i, [`${T}excludeOutboundIPRanges`]: lists.x,
    [`${T}includeOutboundPorts`]: lists.q, [`${T}excludeOutboundPorts`]: lists.o, [`${T}includeInboundPorts`]: lists.b,
  };
  const pod = readPod({
    metadata: { annotations: { "sidecar.istio.io/status": "{}", ...annotations } },
    spec: { initContainers: [init], containers: [{ name: "istio-proxy" }] },
  });
  const counter = new Steps();
  const r = istioSettings(pod, detectInjection(pod), counter);
  assert.ok(r.ok, r.ok ? "" : r.detail);
  return counter.count;
}

for (const capture of ["istio-init", "istio-validation"] as const) {
  test(`${capture}: 50,000 entries per list take a linear number of steps`, () => {
    const n = 50_000;
    const lists = 5;
    const s = steps(n, capture);
    // Every entry is read once and every port sorted once: at most 2 steps per entry (plus a constant).
    assert.ok(s <= 2 * lists * n + 100, `${s} steps for ${lists} × ${n} entries`);
    // Ports stay distinct up to 65,535 entries, so half the entries must take half the steps.
    const ratio = s / steps(n / 2, capture);
    assert.ok(ratio > 1.8 && ratio < 2.2, `halving the entries divided the steps by ${ratio.toFixed(2)}`);
  });
}
