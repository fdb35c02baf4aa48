// npm run bench:loader-memory — the node agent's memory at 0, 100 and 1,000 registered
// pods. The local cluster (API server, Istio's injector, meshlane's webhook and
// registrar, and `meshlane-loader run --node` as the built JavaScript, as deployed)
// registers pods the way a cluster does: each pod is created, gets a cgroup and then
// an IP, and the registrar writes its registry object, which the loader sees as one
// watch event. At each step, after the loader reports every pod registered and 3 s
// without work, the loader's RSS, its peak RSS (VmHWM) and the V8/Node breakdown
// from its /metrics are recorded. Two runs: Node's defaults, and the NODE_OPTIONS the
// DaemonSet sets (manifests/all-in-one.yaml); the processes of the local cluster
// inherit it. Results go to bench/results/loader-memory.json, rewritten after every
// step (with the load average, which sets how fast pods arrive), so a step that does
// not finish leaves the ones before it and the error. Bounded: about two minutes on a
// quiet machine, 5 minutes a step at most.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { LocalCluster } from "../lab/local-cluster.js";
import { metricValue as gauge, podIp, withNodeCluster } from "../lab/node-cluster.js";
import type { Mesh } from "../lab/topology/mesh.js";
import { REPO } from "../lab/repo.js";

const STEPS = [0, 100, 1000];
/** The DaemonSet's NODE_OPTIONS for the loader: a small young generation (see docs/loader.md, Memory). */
const MANIFEST_NODE_OPTIONS = "--max-semi-space-size=1";
const PER_SECOND = 50;
const MAX_IN_FLIGHT = 25;
const SETTLE_MS = 3000;
const STEP_DEADLINE_MS = 300_000;
const NAMESPACE = "memory";
const NODE = "node-a";
const OUT = join(REPO, "bench", "results", "loader-memory.json");

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

/** VmRSS and VmHWM (peak) of a process, from the kernel. */
function procMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status)![1]) * 1024;
  return { rss: kib("VmRSS"), peak: kib("VmHWM") };
}

/** Calls to the API server that failed once and were tried again (under load the local cluster drops one now and then). */
let retries = 0;

/**
 * A pod's creation or its status update, tried up to five times: a failed admission
 * call creates nothing and a status update can be repeated, so trying again is safe,
 * and one dropped call must not end a run of 1,000 pods.
 */
async function retried<T>(what: string, attempt: () => Promise<T>, tries = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (e) {
      if (i >= tries) throw new Error(`${what}: ${tries} attempts failed, the last with: ${(e as Error).message}`);
      retries++;
      process.stderr.write(`${what}: attempt ${i} failed (${(e as Error).message.split("\n")[0]}); trying again\n`);
      await sleep(1000 * i);
    }
  }
}

interface Step {
  pods: number;
  rssMiB: number;
  peakRssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  heapSpacesUsedMiB: Record<string, number>;
  /** The node's registry objects' documents, as JSON. */
  registryKiB: number;
}

async function main(): Promise<void> {
  const runs: { nodeOptions: string; steps: Step[]; error?: string }[] = [];
  const startLoad = loadavg();
  // Written after every step, so what was measured survives a step that does not finish.
  const write = () => {
    const result = {
      at: new Date().toISOString(),
      node: process.version,
      kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
      cpus: cpus().length,
      loadAverage: { atStart: startLoad.map((l) => Math.round(l * 100) / 100), atEnd: loadavg().map((l) => Math.round(l * 100) / 100) },
      podsPerSecond: PER_SECOND,
      settleMs: SETTLE_MS,
      retriedCalls: retries,
      runs,
    };
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
  };
  let failed: unknown;
  for (const nodeOptions of [MANIFEST_NODE_OPTIONS, ""]) {
    process.stdout.write(`loader with NODE_OPTIONS="${nodeOptions}"\n`);
    process.env.NODE_OPTIONS = nodeOptions;
    const run: (typeof runs)[number] = { nodeOptions, steps: [] };
    runs.push(run);
    try {
      await withNodeCluster(NODE, NAMESPACE, async (mesh, cluster) => {
        try {
          await measure(mesh, cluster, (step) => {
            run.steps.push(step);
            write();
          });
        } catch (e) {
          // What the loader said is the first thing to read when a step fails.
          process.stderr.write(`loader output, last lines:\n${cluster.node().loader?.output().split("\n").slice(-20).join("\n")}\n`);
          throw e;
        }
      });
    } catch (e) {
      run.error = (e as Error).message;
      failed ??= e;
    }
    write();
  }
  process.stdout.write(`load average (1, 5, 15 min): ${startLoad.map((l) => l.toFixed(1)).join(" ")} at start, ${loadavg().map((l) => l.toFixed(1)).join(" ")} at end\n`);
  process.stdout.write(`written to ${OUT}\n`);
  if (failed) throw failed;
}

async function measure(mesh: Mesh, cluster: LocalCluster, measured: (step: Step) => void): Promise<void> {
  const pid = cluster.node().loader!.child.pid!;
  let created = 0;
  for (const target of STEPS) {
    const started = performance.now();
    let inFlight = 0;
    const turns: (() => void)[] = [];
    const batch = Array.from({ length: target - created }, (_, j) => created + j);
    await Promise.all(batch.map(async (i, j) => {
      await sleep(Math.max(0, started + (j * 1000) / PER_SECOND - performance.now()));
      while (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => turns.push(resolve));
      inFlight++;
      try {
        const pod = await retried(`creating pod-${i}`, () => cluster.createPod(NAMESPACE, `pod-${i}`));
        mkdirSync(join(mesh.node.kubepods, `pod${pod.metadata!.uid}`));
        await retried(`reporting pod-${i}'s IP`, () => cluster.runPod(NAMESPACE, `pod-${i}`, [podIp(i)]));
      } finally {
        inFlight--;
        turns.shift()?.();
      }
    }));
    created = target;
    const deadline = performance.now() + STEP_DEADLINE_MS;
    while (gauge(await cluster.metrics("loader"), "meshlane_pods", 'state="registered",reason="applied"') !== target) {
      if (performance.now() > deadline) throw new Error(`the loader did not report ${target} pods registered within ${STEP_DEADLINE_MS / 1000} s`);
      await sleep(100);
    }
    await sleep(SETTLE_MS);
    const text = await cluster.metrics("loader");
    const proc = procMemory(pid);
    const spaces = Object.fromEntries(
      [...text.matchAll(/^meshlane_loader_nodejs_heap_space_size_used_bytes\{space="(\w+)"\} (\S+)$/gm)].map((m) => [m[1]!, mib(Number(m[2]))]),
    );
    const step: Step = {
      pods: target,
      rssMiB: mib(proc.rss),
      peakRssMiB: mib(proc.peak),
      heapUsedMiB: mib(gauge(text, "meshlane_loader_nodejs_heap_size_used_bytes")),
      heapTotalMiB: mib(gauge(text, "meshlane_loader_nodejs_heap_size_total_bytes")),
      externalMiB: mib(gauge(text, "meshlane_loader_nodejs_external_memory_bytes")),
      heapSpacesUsedMiB: spaces,
      registryKiB: Math.round(Buffer.byteLength(JSON.stringify(await cluster.nodeRegistry())) / 1024),
    };
    measured(step);
    process.stdout.write(`${String(target).padStart(5)} pods: RSS ${step.rssMiB} MiB (peak ${step.peakRssMiB}), heap used ${step.heapUsedMiB} of ${step.heapTotalMiB} MiB, external ${step.externalMiB} MiB, registry ${step.registryKiB} KiB\n`);
  }
}

await main();
