// npm run bench:propagation — how long a new pod waits for acceleration, and what
// the registry costs, on the real kube-apiserver and etcd (lab/controlplane).
//
// Propagation: 1,000 pods are created at 50 per second in one namespace, all on one
// node (the worst case for a node's loader), each gets a cgroup under a test kubepods
// and then an IP from the node's kubelet (pods/status with the node's identity); the
// time measured is from the moment that status update has been stored to the moment
// the pod's entry is in the loader's BPF map (polled every 5 ms). The pods are created
// already marked as meshlane's webhook marks them (lab/marked-pod.ts): admission is
// not on the path measured, and the webhook is not called for an unlabelled namespace.
// The webhook with its registrar and the loader are the real processes (built
// JavaScript, as deployed), with their own ServiceAccount tokens and the manifest's RBAC.
//
// Cluster scale (issue 14.6): then 10,000 unmarked pods are created in another
// namespace, and the registrar's memory is read again: its watch selects marked pods
// only, so they must not show. Memory is read from the processes' /metrics, each time
// after 3 s without work. Results go to bench/results/propagation.json for
// bench/README.md. Bounded: every phase has a deadline; about 5 minutes in all on a quiet machine.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { get as httpGet, type IncomingMessage } from "node:http";
import { get as httpsGet } from "node:https";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api, Watch, type V1ConfigMap } from "@kubernetes/client-node";
import { cgroupId } from "../loader/cgroup.js";
import * as bpf from "../loader/libbpf.js";
import { MAPS } from "../loader/maps/codecs.js";
import { listRegistrations, nodeRegistrationsSelector, readRegistrationObject, registrationObjectName, REGISTRY_NAMESPACE } from "../registry/configmap.js";
import { SYSTEM_NAMESPACE } from "../registry/names.js";
import { ControlPlane, Kubelet } from "../lab/controlplane/index.js";
import { ServiceProcess } from "../lab/local-cluster.js";
import { injectedPod, markedPod } from "../lab/marked-pod.js";
import { Mesh } from "../lab/topology/mesh.js";
import { cliCommand, REPO } from "../lab/repo.js";

const PODS = 1000;
const PER_SECOND = 50;
const UNMARKED_PODS = 10_000;
const NAMESPACE = "bench";
const CROWD_NAMESPACE = "crowd";
const NODE = "node-a";
const DEADLINE_MS = 420_000;
/** Pods between their create request and their IP at once; past this the generator waits, and the achieved rate shows it. */
const MAX_IN_FLIGHT = 25;
const SETTLE_MS = 3000;


interface Sample {
  name: string;
  uid?: string;
  ipAt?: number;
  /** When the bench's own watch saw the pod's registry object: splits the time into registrar and loader. */
  objectAt?: number;
  inMapAt?: number;
  key?: Buffer;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** One sample of a Prometheus text, e.g. meshlane_loader_process_resident_memory_bytes. */
function gauge(metrics: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(metrics);
  if (!m) throw new Error(`metric ${name} not found`);
  return Number(m[1]);
}

function fetchText(get: typeof httpGet | typeof httpsGet, options: object, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(options, (res: IncomingMessage) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${what} answered ${res.statusCode}: ${body}`))));
    });
    req.on("error", (e) => reject(new Error(`${what}: ${e.message}`)));
  });
}

const mib = (bytes: number) => bytes / 2 ** 20;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** 10.96.0.0/16, skipping .0 and .255 in each /24 so no address looks like a network or broadcast one. */
function podIp(i: number): string {
  return `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/** Runs `count` tasks, at most `parallel` at once. */
async function pool(count: number, parallel: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) await task(next++);
  }));
}

async function main(): Promise<void> {
  const mesh = await Mesh.create();
  let cp: ControlPlane | undefined;
  const processes: ServiceProcess[] = [];
  try {
    mesh.attach();
    const workDir = join(mesh.node.workDir, "cluster");
    mkdirSync(workDir);
    cp = await ControlPlane.start();
    const core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
    await cp.kubectl(["apply", "--server-side", "-f", join(REPO, "manifests", "all-in-one.yaml")]);
    await cp.createNamespace(NAMESPACE);
    await cp.createNamespace(CROWD_NAMESPACE);
    const kubeconfig = async (sa: string) => {
      const path = join(workDir, `${sa}.kubeconfig`);
      writeFileSync(path, (await cp!.serviceAccount(SYSTEM_NAMESPACE, sa)).kubeConfig.exportConfig(), { mode: 0o600 });
      return path;
    };

    // Production resync periods: a resync lists every marked pod, which is not what is measured here.
    const certDir = join(workDir, "webhook-certs");
    const webhook = ServiceProcess.spawn("meshlane-webhook", [
      ...cliCommand("webhook"), "serve", "--self-signed", "--cert-dir", certDir, "--san", "localhost", "--port", "0", "--host", "127.0.0.1",
      "--audit-log", join(workDir, "audit.log"), "--registrar", "--registrar-resync", "1m", "--kubeconfig", await kubeconfig("meshlane-webhook"),
    ]);
    processes.push(webhook);
    const webhookPort = Number((await webhook.waitFor(/"port":(\d+)[^\n]*"msg":"meshlane webhook listening/, 60_000))[1]);
    await webhook.waitFor(/"msg":"registrar running"/, 60_000);
    const loader = ServiceProcess.spawn("meshlane-loader", [
      ...cliCommand("loader"), "run", "--node", NODE, "--kubeconfig", await kubeconfig("meshlane-loader"), "--pin-dir", mesh.pinDir, "--kubepods", mesh.node.kubepods,
      "--listen", "127.0.0.1:0", "--resync", "10",
    ]);
    processes.push(loader);
    const loaderPort = Number((await loader.waitFor(/"metrics":\{[^}]*"port":(\d+)[^\n]*"msg":"loader running"/, 60_000))[1]);
    const metrics = (of: "webhook" | "loader") =>
      of === "webhook"
        ? fetchText(httpsGet, { host: "127.0.0.1", port: webhookPort, path: "/metrics", servername: "localhost", ca: readFileSync(join(certDir, "ca.crt")) }, "webhook /metrics")
        : fetchText(httpGet, { host: "127.0.0.1", port: loaderPort, path: "/metrics" }, "loader /metrics");
    const memory = async () => {
      const of = async (which: "webhook" | "loader") => {
        const text = await metrics(which);
        return { rssMiB: round(mib(gauge(text, `meshlane_${which}_process_resident_memory_bytes`))), heapMiB: round(mib(gauge(text, `meshlane_${which}_nodejs_heap_size_used_bytes`))) };
      };
      await sleep(SETTLE_MS);
      return { webhook: await of("webhook"), loader: await of("loader") };
    };

    // The load average sets how fast pods arrive and how long each step takes: it goes with every figure.
    const loadAtStart = loadavg();
    const kubelet = new Kubelet(NODE, { node: cp.node(NODE), scheduler: cp.admin });
    await kubelet.register();
    const idle = await memory();
    const podsFd = mesh.fds().mesh_pods;

    const samples: Sample[] = Array.from({ length: PODS }, (_, i) => ({ name: `pod-${i}` }));
    const objectSeen = new Map<string, number>();
    const objectWatch = await new Watch(cp.admin.kubeConfig).watch(
      `/api/v1/namespaces/${REGISTRY_NAMESPACE}/configmaps`,
      { labelSelector: nodeRegistrationsSelector(NODE) },
      (type: string, cm: V1ConfigMap) => {
        const uid = readRegistrationObject(cm)?.uid;
        if (type === "ADDED" && uid && !objectSeen.has(uid)) objectSeen.set(uid, performance.now());
      },
      () => undefined,
    );
    const waiting = new Set<Sample>();
    const failures: string[] = [];
    const started = performance.now();
    const deadline = started + DEADLINE_MS;

    // Pod i is created at i / PER_SECOND seconds, unless MAX_IN_FLIGHT pods are still
    // on their way through the API: then it waits its turn, and the achieved rate shows it.
    let inFlight = 0;
    const turns: (() => void)[] = [];
    const creations = samples.map(async (s, i) => {
      await sleep(Math.max(0, started + (i * 1000) / PER_SECOND - performance.now()));
      while (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => turns.push(resolve));
      inFlight++;
      try {
        const pod = await core.createNamespacedPod({ namespace: NAMESPACE, body: markedPod(injectedPod(s.name, NAMESPACE)) });
        const dir = join(mesh.node.kubepods, `pod${pod.metadata!.uid}`);
        mkdirSync(dir); // kubelet makes the pod's cgroup before the network gives it an IP
        s.key = MAPS.mesh_pods.key.encode(cgroupId(dir));
        s.uid = pod.metadata!.uid!;
        await kubelet.run(NAMESPACE, s.name, [podIp(i)]);
        s.ipAt = performance.now();
        waiting.add(s);
      } catch (e) {
        failures.push(`${s.name}: ${(e as Error).message}`);
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
      if (performance.now() > deadline) {
        for (const p of [webhook, loader]) writeFileSync(join(tmpdir(), `meshlane-bench-propagation-${p.name}.log`), p.output());
        const registered = new Set((await listRegistrations(core, NODE)).map((r) => r.uid));
        const names = [...waiting].map((s) => s.name);
        const uids = await Promise.all(names.map(async (name) => (await core.readNamespacedPod({ namespace: NAMESPACE, name })).metadata!.uid!));
        const unregistered = names.filter((_, i) => !registered.has(uids[i]!));
        throw new Error(
          `after ${DEADLINE_MS / 1000} s, ${waiting.size} pods are still not in the map (${failures.length} creations failed; ` +
            `${unregistered.length} of them have no registry object: ${unregistered.slice(0, 5).join(", ")})\n` +
            `(whole outputs in ${tmpdir()}/meshlane-bench-propagation-*.log)\nregistrar, last lines:\n${webhook.output().split("\n").slice(-8).join("\n")}\nloader, last lines:\n${loader.output().split("\n").slice(-8).join("\n")}`,
        );
      }
      await sleep(5);
    }
    if (failures.length) throw new Error(`${failures.length} pods could not be created, first: ${failures[0]}`);
    const createSeconds = (Math.max(...samples.map((s) => s.ipAt ?? 0)) - started) / 1000;
    const latencies = samples.map((s) => s.inMapAt! - s.ipAt!).sort((a, b) => a - b);
    objectWatch.abort();
    for (const s of samples) s.objectAt = objectSeen.get(s.uid!);
    const split = samples.filter((s) => s.objectAt !== undefined);
    const registrarMs = split.map((s) => Math.max(0, s.objectAt! - s.ipAt!)).sort((a, b) => a - b);
    const loaderMs = split.map((s) => Math.max(0, s.inMapAt! - s.objectAt!)).sort((a, b) => a - b);
    const quantiles = (xs: number[]) => ({ p50: round(percentile(xs, 50)), p90: round(percentile(xs, 90)), p99: round(percentile(xs, 99)), max: round(xs.at(-1)!) });
    const withPods = await memory();

    // Per-write cost against the node's pod count: the registrar's own timing of each
    // write, first hundred against last hundred, and the size of what one write sends.
    const writes = webhook.logLines("registry write").map((l) => Number(l.ms));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const registered = await listRegistrations(core, NODE);
    if (registered.length !== PODS) throw new Error(`${registered.length} registry objects on ${NODE}, expected ${PODS}`);
    const object = await core.readNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, name: registrationObjectName(registered[0]!.uid) });
    const objectBytes = Buffer.byteLength(JSON.stringify(object));
    const webhookText = await metrics("webhook");
    const loaderText = await metrics("loader");
    const markedPodBytes = Buffer.byteLength(JSON.stringify(await core.readNamespacedPod({ namespace: NAMESPACE, name: "pod-0" })));

    // Cluster scale: pods meshlane did not mark must cost the registrar nothing.
    const crowdStarted = performance.now();
    await pool(UNMARKED_PODS, 32, async (i) => {
      await core.createNamespacedPod({ namespace: CROWD_NAMESPACE, body: injectedPod(`crowd-${i}`, CROWD_NAMESPACE) });
    });
    const crowdSeconds = (performance.now() - crowdStarted) / 1000;
    const withCrowd = await memory();
    const unmarkedPodBytes = Buffer.byteLength(JSON.stringify(await core.readNamespacedPod({ namespace: CROWD_NAMESPACE, name: "crowd-0" })));

    const loadDuring = loadavg();
    const result = {
      at: new Date().toISOString(),
      machine: { cpus: cpus().length, loadAverage: { beforePods: loadAtStart.map((l) => round(l, 2)), afterPods: loadDuring.map((l) => round(l, 2)), atEnd: loadavg().map((l) => round(l, 2)) } },
      apiserver: "real kube-apiserver + etcd (lab/controlplane), loopback",
      layout: "one ConfigMap per pod (registry/configmap.ts), the loader watching its node's by label selector",
      propagation: {
        pods: PODS,
        ratePerSecond: PER_SECOND,
        achievedPerSecond: round(PODS / createSeconds),
        ms: { p50: round(percentile(latencies, 50)), p90: round(percentile(latencies, 90)), p99: round(percentile(latencies, 99)), max: round(latencies.at(-1)!) },
        target: { p99Ms: 1000, met: percentile(latencies, 99) <= 1000 },
        // Of the same samples, as the bench's own watch saw the registry objects (its events arrive about when the loader's do).
        split: { samples: split.length, ipToObjectMs: quantiles(registrarMs), objectToMapMs: quantiles(loaderMs) },
      },
      perWrite: {
        writes: writes.length,
        meanMs: round(mean(writes), 2),
        first100MeanMs: round(mean(writes.slice(0, 100)), 2),
        last100MeanMs: round(mean(writes.slice(-100)), 2),
        objectBytes,
        loaderSyncs: gauge(loaderText, "meshlane_syncs_total"),
        loaderSyncMeanMs: round((1000 * gauge(loaderText, "meshlane_sync_duration_seconds_sum")) / gauge(loaderText, "meshlane_sync_duration_seconds_count"), 2),
        /** Syncs that took at most `le` seconds (cumulative, the loader's histogram): changes and resyncs together. */
        loaderSyncsAtMostSeconds: Object.fromEntries([...loaderText.matchAll(/^meshlane_sync_duration_seconds_bucket\{le="([^"]+)"\} (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])])),
        registrarWriteRequests: gauge(webhookText, "meshlane_registrar_write_duration_seconds_count"),
      },
      memoryMiB: { idle, [`with${PODS}Pods`]: withPods, [`plus${UNMARKED_PODS}Unmarked`]: withCrowd },
      clusterScale: { unmarkedPods: UNMARKED_PODS, createdInSeconds: round(crowdSeconds), markedPodBytes, unmarkedPodBytes },
    };
    const out = join(REPO, "bench", "results", "propagation.json");
    mkdirSync(join(REPO, "bench", "results"), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);

    const w = (s: string) => process.stdout.write(`${s}\n`);
    const p = result.propagation;
    w(`\npropagation on the real kube-apiserver: ${PODS} pods created at ${PER_SECOND}/s on one node (${p.achievedPerSecond}/s achieved)`);
    w(`time from IP assignment (stored in the API) to the pod's entry in the loader's BPF map:`);
    w(`  p50 ${p.ms.p50} ms   p90 ${p.ms.p90} ms   p99 ${p.ms.p99} ms   max ${p.ms.max} ms   (target p99 ≤ 1000 ms: ${p.target.met ? "met" : "missed"})`);
    w(`  of which IP → registry object (registrar): p50 ${p.split.ipToObjectMs.p50} ms, p99 ${p.split.ipToObjectMs.p99} ms; registry object → map entry (loader): p50 ${p.split.objectToMapMs.p50} ms, p99 ${p.split.objectToMapMs.p99} ms`);
    const c = result.perWrite;
    w(`registrar: ${c.writes} writes of one ${objectBytes}-byte object each, ${c.meanMs} ms on average (first 100: ${c.first100MeanMs} ms, last 100: ${c.last100MeanMs} ms)`);
    w(`loader: ${c.loaderSyncs} map syncs, ${c.loaderSyncMeanMs} ms each on average; at most (s) → syncs: ${Object.entries(c.loaderSyncsAtMostSeconds).map(([le, n]) => `${le} → ${n}`).join(", ")}`);
    w(`memory (RSS / heap used, MiB)     idle            ${PODS} marked pods   + ${UNMARKED_PODS} unmarked pods`);
    for (const [label, which] of [["webhook + registrar", "webhook"], ["loader", "loader"]] as const) {
      const f = (m: { rssMiB: number; heapMiB: number }) => `${m.rssMiB} / ${m.heapMiB}`.padEnd(18);
      w(`  ${label.padEnd(31)} ${f(idle[which])}${f(withPods[which])}${f(withCrowd[which])}`);
    }
    w(`pod objects: ${markedPodBytes} bytes marked, ${unmarkedPodBytes} unmarked (JSON); ${UNMARKED_PODS} created in ${round(crowdSeconds)} s`);
    const la = (l: number[]) => l.map((x) => x.toFixed(1)).join(" ");
    w(`load average (1, 5, 15 min) on ${cpus().length} CPUs: ${la(loadAtStart)} before the pods, ${la(loadDuring)} after them`);
    w(`results: ${out}`);
  } finally {
    for (const p of processes.reverse()) await p.stop();
    await cp?.stop();
    await mesh.destroy();
  }
}

await main();
