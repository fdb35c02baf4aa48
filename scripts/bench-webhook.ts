// npm run bench:webhook — the webhook against a bare node:https server that returns a
// canned AdmissionReview, in the same run, on loopback only. Each server runs in its own
// process pinned to CPU 1 (when taskset exists); the load generator is pinned to CPU 0.
// Open loop at fixed rates (latency measured from the scheduled send time, so a stall
// counts against the server), alternating the two servers, then a closed-loop maximum.
// Then the largest pod the API server admits (annotations at the 256 KiB limit, its
// istio-init carrying the same list), reviewed one at a time: issue 11 wants ≤ 50 ms.
// Bounded: about 50 s.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, createServer, request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSecureContext } from "node:tls";
import { createCertificateAuthority, issueServingCertificate } from "../certs/authority.js";
import { injectedPod, podReview } from "../lab/istio-fixtures.js";
import { createAuditLog } from "../webhook/audit.js";
import { createWebhookServer } from "../webhook/server.js";

const RATES = [250, 500, 1000, 2000];
const STEP_MS = 3000;
const MAX_CONCURRENCY = 32;
const SELF = new URL(import.meta.url).pathname;
type Kind = "webhook" | "bare";

const hasTaskset = spawnSync("taskset", ["--version"]).status === 0;

/** Child mode: serve on an ephemeral port, print it, run until killed. */
async function serveChild(kind: Kind, dir: string): Promise<void> {
  const certPem = readFileSync(join(dir, "tls.crt"), "utf8");
  const keyPem = readFileSync(join(dir, "tls.key"), "utf8");
  let port: number;
  if (kind === "webhook") {
    const server = createWebhookServer({ identity: { certPem, keyPem }, audit: createAuditLog({ file: join(dir, "audit.log") }) });
    port = (await server.listen(0, "127.0.0.1")).port;
  } else {
    const canned = readFileSync(join(dir, "canned.json"));
    const server = createServer({ cert: certPem, key: keyPem, minVersion: "TLSv1.2" }, (req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json", "content-length": canned.length });
        res.end(canned);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  }
  process.stdout.write(`${port}\n`);
  // Exit through process.exit so --cpu-prof and pino flush when profiling a server.
  process.once("SIGTERM", () => process.exit(0));
}

function startChild(kind: Kind, dir: string): Promise<{ child: ChildProcess; port: number }> {
  const node = [process.execPath, "--import", "tsx", SELF, "serve", kind, dir];
  const child = hasTaskset ? spawn("taskset", ["-c", "1", ...node], { stdio: ["ignore", "pipe", "inherit"] }) : spawn(node[0]!, node.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.stdout!.once("data", (d: Buffer) => resolve({ child, port: Number(d.toString().trim()) }));
    child.once("exit", (code) => reject(new Error(`${kind} server exited with ${code} before listening`)));
  });
}

interface Step {
  sent: number;
  ok: number;
  failed: number;
  latencies: number[];
  elapsedMs: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function post(agent: Agent, port: number, body: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/mutate", method: "POST", agent, headers: { "content-type": "application/json", "content-length": body.length } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
    });
    req.on("error", () => resolve(false));
    req.end(body);
  });
}

async function openLoop(agent: Agent, port: number, body: Buffer, rate: number): Promise<Step> {
  const step: Step = { sent: 0, ok: 0, failed: 0, latencies: [], elapsedMs: 0 };
  const start = performance.now();
  const total = Math.round((rate * STEP_MS) / 1000);
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    step.sent++;
    // From the scheduled time when the send is late (a stall counts against the server,
    // no coordinated omission), from the actual send when it went out early (waits
    // under 1 ms are not slept): a reply can never take less than no time.
    const from = Math.min(due, performance.now());
    pending.push(
      post(agent, port, body).then((ok) => {
        if (ok) {
          step.ok++;
          step.latencies.push(performance.now() - from);
        } else step.failed++;
      }),
    );
  }
  await Promise.all(pending);
  step.elapsedMs = performance.now() - start;
  return step;
}

async function closedLoop(agent: Agent, port: number, body: Buffer): Promise<Step> {
  const step: Step = { sent: 0, ok: 0, failed: 0, latencies: [], elapsedMs: 0 };
  const start = performance.now();
  const until = start + STEP_MS;
  await Promise.all(
    Array.from({ length: MAX_CONCURRENCY }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        step.sent++;
        if (await post(agent, port, body)) {
          step.ok++;
          step.latencies.push(performance.now() - t0);
        } else step.failed++;
      }
    }),
  );
  step.elapsedMs = performance.now() - start;
  return step;
}

function summary(s: Step): { rps: number; p50: number; p99: number; failed: number } {
  const sorted = s.latencies.sort((a, b) => a - b);
  return { rps: (s.ok * 1000) / s.elapsedMs, p50: percentile(sorted, 50), p99: percentile(sorted, 99), failed: s.failed };
}

const fmt = (n: number, digits = 2) => n.toFixed(digits).padStart(8);

const ANNOTATIONS_MAX_BYTES = 256 * 1024;
type Obj = Record<string, any>;

/** The injected pod with includeOutboundIPRanges filling the annotations up to the API server's limit, as the injector would copy it into -i. */
function largestPod(pod: Obj): { pod: Obj; entries: number; bytes: number } {
  const big = structuredClone(pod);
  const annotations: Record<string, string> = big.metadata.annotations;
  const key = "traffic.sidecar.istio.io/includeOutboundIPRanges";
  // meshlane's own marking (status, interception document) must fit too; leave it room.
  const room = 16 * 1024;
  const used = Object.entries(annotations).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0) + Buffer.byteLength(key);
  const cidrs: string[] = [];
  let bytes = 0;
  for (let i = 0; ; i++) {
    const c = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`;
    if (used + bytes + c.length + 1 > ANNOTATIONS_MAX_BYTES - room) break;
    cidrs.push(c);
    bytes += c.length + 1;
  }
  annotations[key] = cidrs.join(",");
  const init = (big.spec.initContainers as Obj[]).find((c) => c.name === "istio-init")!;
  const at = (init.args as string[]).indexOf("-i");
  init.args[at + 1] = annotations[key];
  const total = Object.entries(annotations).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  return { pod: big, entries: cidrs.length, bytes: total };
}

async function largestPodReviews(port: number, ca: string, pod: Obj): Promise<void> {
  const big = largestPod(pod);
  const agent = new Agent({ keepAlive: true, maxSockets: 1, secureContext: createSecureContext({ ca }) });
  const latencies: number[] = [];
  const reviews = 20;
  for (let i = 0; i < reviews + 2; i++) {
    const body = Buffer.from(JSON.stringify(podReview(big.pod)));
    const t0 = performance.now();
    if (!(await post(agent, port, body))) throw new Error("the webhook refused the largest pod's review");
    if (i >= 2) latencies.push(performance.now() - t0); // two warm-up reviews
  }
  agent.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  console.log(`largest pod: annotations ${big.bytes} bytes (limit ${ANNOTATIONS_MAX_BYTES}), ${big.entries} CIDRs in the annotation and in istio-init -i`);
  console.log(`  ${reviews} reviews one at a time (ms): p50 ${fmt(percentile(sorted, 50))}  max ${fmt(sorted[sorted.length - 1]!)}  (issue 11: ≤ 50 ms)`);
}

async function main(): Promise<void> {
  if (hasTaskset) spawnSync("taskset", ["-p", "-c", "0", String(process.pid)], { stdio: "ignore" });
  const dir = mkdtempSync(join(tmpdir(), "meshlane-bench-"));
  const ca = createCertificateAuthority({ validityMs: 3600_000 });
  const serving = issueServingCertificate(ca, { names: ["127.0.0.1"], validityMs: 3600_000 });
  writeFileSync(join(dir, "tls.crt"), serving.certPem);
  writeFileSync(join(dir, "tls.key"), serving.keyPem);

  const pod = injectedPod("hello.injected");
  const body = Buffer.from(JSON.stringify(podReview(pod)));
  const servers: Record<Kind, { child: ChildProcess; port: number }> = {} as never;
  // The bare server answers exactly what the webhook answers for this review.
  servers.webhook = await startChild("webhook", dir);
  const agent0 = new Agent({ keepAlive: true, maxSockets: 1, secureContext: createSecureContext({ ca: ca.certPem }) });
  const canned = await new Promise<Buffer>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: servers.webhook.port, path: "/mutate", method: "POST", agent: agent0, headers: { "content-type": "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks)));
    });
    req.on("error", reject);
    req.end(body);
  });
  agent0.destroy();
  writeFileSync(join(dir, "canned.json"), canned);
  servers.bare = await startChild("bare", dir);

  console.log(`meshlane webhook benchmark: ${body.length}-byte Pod review (hello.injected, from Istio's injector), loopback, ${hasTaskset ? "servers on CPU 1, load on CPU 0" : "unpinned (no taskset)"}`);
  console.log(`open loop, ${STEP_MS / 1000} s per step, latency from scheduled send (ms)`);
  console.log("  rate/s  server      done/s      p50       p99   failed");
  const results: Record<string, ReturnType<typeof summary>> = {};
  try {
    const agents = Object.fromEntries((["webhook", "bare"] as const).map((k) => [k, new Agent({ keepAlive: true, maxSockets: 64, secureContext: createSecureContext({ ca: ca.certPem }) })])) as Record<Kind, Agent>;
    for (const k of ["webhook", "bare"] as const) await openLoop(agents[k], servers[k].port, body, 200); // warm-up, not reported
    for (const rate of RATES) {
      for (const k of ["webhook", "bare"] as const) {
        const s = summary(await openLoop(agents[k], servers[k].port, body, rate));
        results[`${rate}/${k}`] = s;
        console.log(`${String(rate).padStart(8)}  ${k.padEnd(8)} ${fmt(s.rps, 0)} ${fmt(s.p50)} ${fmt(s.p99)} ${String(s.failed).padStart(8)}`);
      }
    }
    console.log(`closed loop, ${MAX_CONCURRENCY} concurrent, ${STEP_MS / 1000} s`);
    for (const k of ["webhook", "bare"] as const) {
      const s = summary(await closedLoop(agents[k], servers[k].port, body));
      results[`max/${k}`] = s;
      console.log(`     max  ${k.padEnd(8)} ${fmt(s.rps, 0)} ${fmt(s.p50)} ${fmt(s.p99)} ${String(s.failed).padStart(8)}`);
    }
    for (const a of Object.values(agents)) a.destroy();
    const w = results["max/webhook"]!;
    const b = results["max/bare"]!;
    console.log(`ratio webhook/bare: max reviews/s ${(w.rps / b.rps).toFixed(2)}, closed-loop p50 ${(w.p50 / b.p50).toFixed(2)}×, p99 ${(w.p99 / b.p99).toFixed(2)}×`);
    for (const rate of RATES) {
      const rw = results[`${rate}/webhook`]!;
      const rb = results[`${rate}/bare`]!;
      console.log(`ratio at ${rate}/s: p50 ${(rw.p50 / rb.p50).toFixed(2)}×, p99 ${(rw.p99 / rb.p99).toFixed(2)}×`);
    }
    await largestPodReviews(servers.webhook.port, ca.certPem, pod);
  } finally {
    for (const s of Object.values(servers)) s.child.kill("SIGTERM");
  }
}

if (process.argv[2] === "serve") {
  await serveChild(process.argv[3] as Kind, process.argv[4]!);
} else {
  await main();
}
