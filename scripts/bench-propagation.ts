// npm run bench:propagation — how long a new pod waits for acceleration. 1,000 pods
// are created at 50 per second through the API stand-in (Istio's injector and
// meshlane's webhook in the admission chain), each gets a cgroup under a test
// kubepods and then an IP on the node; the time measured is from the moment the
// kubelet's status update with the IP has been stored to the moment the pod's entry
// is in the loader's BPF map (polled every 5 ms). The webhook with its registrar and
// the loader are the real processes (built JavaScript, as deployed) of the local
// cluster; their memory is read from their /metrics before the first pod and after
// the last (each time after 3 s without work, so garbage has a chance to go).
//
// All pods are on one node: the worst case for the node's ConfigMap (every write
// sends the whole ConfigMap to the loader's watch) and for the loader (each sync
// validates every registration). The API stand-in, which shares this process with
// the load generator, serves plain HTTP here (see LocalClusterOptions.apiTls); the
// webhook is still called over TLS. Bounded: about 30 s, 3 minutes at most.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cgroupId } from "../loader/cgroup.js";
import * as bpf from "../loader/libbpf.js";
import { MAPS } from "../loader/maps/codecs.js";
import type { LocalCluster } from "../lab/local-cluster.js";
import { metricValue as gauge, podIp, withNodeCluster } from "../lab/node-cluster.js";

const PODS = 1000;
const PER_SECOND = 50;
const NAMESPACE = "bench";
const NODE = "node-a";
const DEADLINE_MS = 180_000;
/** Pods between their create request and their IP at once; past this the generator waits (it never needs to on an idle machine). */
const MAX_IN_FLIGHT = 25;
const SETTLE_MS = 3000;

interface Sample {
  name: string;
  ipAt?: number;
  inMapAt?: number;
  key?: Buffer;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function memory(cluster: LocalCluster): Promise<Record<"webhook" | "loader", { rss: number; heap: number }>> {
  const of = async (which: "webhook" | "loader") => {
    const text = await cluster.metrics(which);
    return { rss: gauge(text, `meshlane_${which}_process_resident_memory_bytes`), heap: gauge(text, `meshlane_${which}_nodejs_heap_size_used_bytes`) };
  };
  return { webhook: await of("webhook"), loader: await of("loader") };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function main(): Promise<void> {
  await withNodeCluster(NODE, NAMESPACE, async (mesh, cluster) => {
    await sleep(SETTLE_MS); // memory is read after the same quiet time before and after
    const before = await memory(cluster);
    const podsFd = mesh.fds().mesh_pods;

    const samples: Sample[] = Array.from({ length: PODS }, (_, i) => ({ name: `pod-${i}` }));
    const waiting = new Set<Sample>();
    const failures: string[] = [];
    const started = performance.now();
    const deadline = started + DEADLINE_MS;

    // Pod i is created at i / PER_SECOND seconds, unless MAX_IN_FLIGHT pods are still
    // on their way through the API: then it waits its turn, and the rate printed at the
    // end (when the last pod got its IP) shows that the API stand-in could not keep up.
    let inFlight = 0;
    const turns: (() => void)[] = [];
    const creations = samples.map(async (s, i) => {
      await sleep(Math.max(0, started + (i * 1000) / PER_SECOND - performance.now()));
      while (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => turns.push(resolve));
      inFlight++;
      try {
        const api = await cluster.createPod(NAMESPACE, s.name);
        const dir = join(mesh.node.kubepods, `pod${api.metadata!.uid}`);
        mkdirSync(dir); // kubelet makes the pod's cgroup before the network gives it an IP
        s.key = MAPS.mesh_pods.key.encode(cgroupId(dir));
        await cluster.runPod(NAMESPACE, s.name, [podIp(i)]);
        s.ipAt = performance.now();
        waiting.add(s);
      } catch (e) {
        const cause = (e as Error).cause;
        failures.push(`${s.name}: ${(e as Error).message}${cause instanceof Error ? ` (${cause.message})` : ""}`);
      } finally {
        inFlight--;
        turns.shift()?.();
      }
    });
    let created = false;
    void Promise.all(creations).then(() => (created = true));

    while (!created || waiting.size > 0) {
      for (const s of waiting) {
        if (bpf.mapLookup(podsFd, s.key!, MAPS.mesh_pods.value.size) !== null) {
          s.inMapAt = performance.now();
          waiting.delete(s);
        }
      }
      if (performance.now() > deadline) throw new Error(`after ${DEADLINE_MS / 1000} s, ${waiting.size} pods are still not in the map (${failures.length} creations failed)`);
      await sleep(5);
    }
    const createSeconds = Math.max(...samples.map((s) => s.ipAt ?? 0)) / 1000 - started / 1000;
    if (failures.length) throw new Error(`${failures.length} pods could not be created, first: ${failures[0]}`);

    await sleep(SETTLE_MS);
    const after = await memory(cluster);
    const latencies = samples.map((s) => s.inMapAt! - s.ipAt!).sort((a, b) => a - b);
    const webhookMetrics = await cluster.metrics("webhook");
    const loaderMetrics = await cluster.metrics("loader");
    const configMapBytes = Buffer.byteLength(JSON.stringify(await cluster.nodeRegistry()));

    const out = process.stdout;
    out.write(`\npropagation: ${PODS} pods created at ${PER_SECOND}/s, all on one node; the last got its IP after ${createSeconds.toFixed(1)} s (${(PODS / createSeconds).toFixed(0)}/s achieved)\n`);
    out.write(`time from IP assignment (stored in the API) to the pod's entry in the loader's BPF map:\n`);
    out.write(`  p50 ${percentile(latencies, 50).toFixed(1)} ms   p90 ${percentile(latencies, 90).toFixed(1)} ms   p99 ${percentile(latencies, 99).toFixed(1)} ms   max ${latencies.at(-1)!.toFixed(1)} ms\n`);
    const mean = (text: string, histogram: string) => (1000 * gauge(text, `${histogram}_sum`)) / gauge(text, `${histogram}_count`);
    out.write(`registrar: ${gauge(webhookMetrics, "meshlane_registrar_write_duration_seconds_count")} ConfigMap writes, ${mean(webhookMetrics, "meshlane_registrar_write_duration_seconds").toFixed(1)} ms each on average\n`);
    out.write(`loader: ${gauge(loaderMetrics, "meshlane_syncs_total")} map syncs, ${mean(loaderMetrics, "meshlane_sync_duration_seconds").toFixed(1)} ms each on average; the node ConfigMap holds ${(configMapBytes / 1024).toFixed(0)} KiB\n`);
    out.write(`memory                            idle          with ${PODS} pods\n`);
    for (const [label, which] of [["webhook + registrar process", "webhook"], ["loader process", "loader"]] as const) {
      out.write(`  ${label.padEnd(30)} RSS ${mib(before[which].rss).padStart(9)}   RSS ${mib(after[which].rss).padStart(9)}   (heap used ${mib(before[which].heap)} → ${mib(after[which].heap)})\n`);
    }
  });
}

await main();
