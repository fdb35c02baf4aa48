// 10,000 random and mutated bodies over HTTPS: the server never crashes, never answers
// 5xx, keeps its metric series bounded and its heap steady. Seeded, so a failure
// reproduces.

import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { loadFixtures, podReview } from "../../lab/istio-fixtures.js";
import { Writable } from "node:stream";
import { createAuditLog } from "../../webhook/audit.js";
import { startTestServer } from "./helpers/https.js";
import { prng } from "../../lab/prng.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const rnd = prng(0x5eed);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

const NASTY = ["", "*", "0", "65536", "-1", "1e3", " , ", "::", "10.0.0.0/33", "REDIRECT", "TPROXY", "null", "{}", "[]", "~0~1/", "\u0000", "é", "x".repeat(300), "__proto__"];
function randomValue(depth = 0): unknown {
  switch (int(depth > 2 ? 5 : 8)) {
    case 0: return null;
    case 1: return rnd() < 0.5;
    case 2: return pick([0, -1, 1337, 65536, 1.5, Number.MAX_SAFE_INTEGER]);
    case 3: return pick(NASTY);
    case 4: return String.fromCharCode(...Array.from({ length: int(12) }, () => int(0x3000)));
    case 5: return Array.from({ length: int(4) }, () => randomValue(depth + 1));
    default: return Object.fromEntries(Array.from({ length: int(4) }, () => [pick(["uid", "kind", "object", "metadata", "annotations", "spec", pick(NASTY)]), randomValue(depth + 1)]));
  }
}

/** Paths to every object member / array element of a JSON value. */
function paths(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (typeof v === "object" && v !== null) {
    for (const [k, child] of Object.entries(v)) {
      const p = [...prefix, Array.isArray(v) ? Number(k) : k];
      out.push(p);
      paths(child, p, out);
    }
  }
  return out;
}

function mutate(doc: any): any {
  const all = paths(doc);
  for (let n = 1 + int(3); n > 0 && all.length > 0; n--) {
    const path = pick(all);
    let parent = doc;
    for (const k of path.slice(0, -1)) parent = parent?.[k];
    if (typeof parent !== "object" || parent === null) continue;
    const key = path.at(-1)!;
    if (rnd() < 0.3) delete parent[key];
    else parent[key] = randomValue();
  }
  return doc;
}

const templates = loadFixtures().map((f) => podReview(f.pod));
const istioKeys = ["traffic.sidecar.istio.io/excludeOutboundPorts", "traffic.sidecar.istio.io/includeOutboundIPRanges", "sidecar.istio.io/status", "sidecar.istio.io/interceptionMode", "meshlane.io/status"];

function body(i: number): { text: string | Buffer; type: string } {
  const kind = i % 6;
  if (kind === 0) return { text: Buffer.from(Array.from({ length: int(400) }, () => int(256))), type: "application/json" };
  if (kind === 1) return { text: JSON.stringify(randomValue()), type: pick(["application/json", "application/json; charset=utf-8", "text/plain", "application/xml"]) };
  const review: any = structuredClone(pick(templates));
  if (kind === 2) {
    const annotations = review.request.object?.metadata?.annotations;
    if (annotations) annotations[pick(istioKeys)] = String(randomValue());
    return { text: JSON.stringify(review), type: "application/json" };
  }
  const text = JSON.stringify(mutate(review));
  // Some mutated bodies are cut or get a byte flipped, so they are almost JSON.
  if (kind === 3) return { text: text.slice(0, int(text.length)), type: "application/json" };
  if (kind === 4) {
    const at = int(text.length);
    return { text: text.slice(0, at) + String.fromCharCode(int(128)) + text.slice(at + 1), type: "application/json" };
  }
  return { text, type: "application/json" };
}

test("fuzz: 10,000 bodies, no crash, no 5xx, bounded metrics, steady heap", { timeout: 120_000 }, async () => {
  // Audit lines are counted, not kept: holding them would itself grow the heap.
  let auditLines = 0;
  const sink = new Writable({ write(chunk: Buffer, _e, done) { auditLines += chunk.toString().split("\n").length - 1; done(); } });
  const t = await startTestServer({ audit: createAuditLog(sink) });
  try {
    const TOTAL = 10_000;
    const WARMUP = 2_500;
    const statuses = new Map<number, number>();
    let next = 0;
    let heapAfterWarmup = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        if (i === WARMUP) {
          gc();
          heapAfterWarmup = process.memoryUsage().heapUsed;
        }
        const { text, type } = body(i);
        const reply = await t.client.post(text, type);
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        assert.ok(reply.status < 500, `body ${i} got ${reply.status}: ${reply.body} for ${String(text).slice(0, 300)}`);
        assert.ok(reply.body.length > 0, `body ${i}: empty answer`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    gc();
    const growth = process.memoryUsage().heapUsed - heapAfterWarmup;

    assert.ok((statuses.get(200) ?? 0) > 1_500, `too few answered reviews: ${JSON.stringify([...statuses])}`);
    assert.ok((statuses.get(400) ?? 0) > 1_500, `too few refusals: ${JSON.stringify([...statuses])}`);
    assert.ok(statuses.has(415));
    assert.ok(growth < 24 * 1024 * 1024, `heap grew by ${(growth / 1048576).toFixed(1)} MiB over ${TOTAL - WARMUP} requests`);
    assert.equal((await t.client.send("GET", "/healthz")).status, 200);
    assert.equal(auditLines, TOTAL, "one audit line per request");

    // Reason labels are a closed set: arbitrary input cannot grow the metric series.
    const metrics = (await t.client.send("GET", "/metrics")).body;
    const series = metrics.split("\n").filter((l) => l.startsWith("meshlane_webhook_reviews_total{"));
    assert.ok(series.length > 3 && series.length <= 16, series.join("\n"));
    const errorSeries = metrics.split("\n").filter((l) => l.startsWith("meshlane_webhook_errors_total{"));
    assert.ok(errorSeries.every((l) => /problem="[a-z-]+"/.test(l)) && errorSeries.length <= 8, errorSeries.join("\n"));
    assert.equal(metrics.includes('problem="internal"'), false);
  } finally {
    await t.close();
  }
});
