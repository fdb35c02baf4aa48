// `npm run demo`: meshlane's whole story on one machine.
//
// A Kubernetes API stand-in runs here with Istio's sidecar injector (fed by Istio's
// own fixtures) and meshlane's MutatingWebhookConfiguration; `meshlane-webhook serve
// --registrar` and `meshlane-loader run --node node-a` run as real processes against
// it. Pods are backed by test network namespaces with HAProxy sidecars as uid 1337
// and Istio's nat rules, in cgroups named after the UIDs the API server gave them.
//
// The story: pods in a namespace with Istio only talk through iptables. The
// namespace gets meshlane's label, the pods are rolled, the new ones are marked by
// the webhook, registered by the registrar and loaded by the loader, and the same
// traffic runs again, accelerated. Everything is removed at the end.

import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { V1Pod } from "@kubernetes/client-node";
import { DEFAULT_BPFFS } from "../loader/pins.js";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS } from "../registry/names.js";
import { nodeRegistrationsSelector, REGISTRY_NAMESPACE } from "../registry/configmap.js";
import { until } from "../lab/until.js";
import { interceptionOf, ISTIO_INJECTION_LABELS, LocalCluster, MESHLANE_LABELS } from "../lab/local-cluster.js";
import { TestNode, type TestPod, type TransferResult } from "../lab/topology/node.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const LOADER = join(REPO, "dist", "loader", "cli.js");
const TRAFFIC = { sizes: Array<number>(400).fill(256 << 10), concurrency: 8 };
const NAMESPACE = "shop";
const NODE = "node-a";

function loader(args: string[]): string {
  const r = spawnSync("node", [LOADER, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`meshlane-loader ${args[0]} failed (${r.status}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function heading(text: string): void {
  process.stdout.write(`\n=== ${text}\n`);
}

function indent(text: string): string {
  return text.trimEnd().split("\n").map((l) => `  ${l}`).join("\n") + "\n";
}

interface Run {
  seconds: number;
  mbPerSecond: number;
  iptablesOutbound: number;
  iptablesInbound: number;
  counters: Record<string, string>;
}

async function traffic(client: TestPod, server: TestPod, pinDir: string): Promise<Run> {
  const counters = () => JSON.parse(loader(["status", "--json", "--pin-dir", pinDir])).counters as Record<string, string>;
  const before = { ...(await client.redirectCounters()), server: await server.redirectCounters(), c: counters() };
  const results: TransferResult[] = await client.send(server.ip, 80, TRAFFIC);
  const failed = results.filter((r) => !r.ok);
  if (failed.length) throw new Error(`${failed.length} transfers failed: ${failed[0]!.error}`);
  const start = Math.min(...results.map((r) => r.start));
  const end = Math.max(...results.map((r) => r.start + r.ms));
  const bytes = results.reduce((n, r) => n + r.size, 0);
  const after = { ...(await client.redirectCounters()), server: await server.redirectCounters(), c: counters() };
  const delta = Object.fromEntries(Object.keys(after.c).map((k) => [k, String(BigInt(after.c[k]!) - BigInt(before.c[k]!))]));
  return {
    seconds: (end - start) / 1000,
    mbPerSecond: bytes / 2 ** 20 / ((end - start) / 1000),
    iptablesOutbound: after.outbound - before.outbound,
    iptablesInbound: after.server.inbound - before.server.inbound,
    counters: delta,
  };
}

function table(iptables: Run, meshlane: Run): string {
  const rows: [string, string, string][] = [
    ["", "iptables only", "meshlane"],
    ["wall time of 400 × 256 KiB echoes", `${iptables.seconds.toFixed(2)} s`, `${meshlane.seconds.toFixed(2)} s`],
    ["throughput (payload, one way)", `${iptables.mbPerSecond.toFixed(0)} MiB/s`, `${meshlane.mbPerSecond.toFixed(0)} MiB/s`],
    ["client's iptables REDIRECT to 15001", String(iptables.iptablesOutbound), String(meshlane.iptablesOutbound)],
    ["server's iptables REDIRECT to 15006", String(iptables.iptablesInbound), String(meshlane.iptablesInbound)],
    ["connections steered by meshlane", String(BigInt(iptables.counters.connect_outbound!) + BigInt(iptables.counters.connect_inbound!)), String(BigInt(meshlane.counters.connect_outbound!) + BigInt(meshlane.counters.connect_inbound!))],
    ["SO_ORIGINAL_DST answered by meshlane", iptables.counters.origdst_answered!, meshlane.counters.origdst_answered!],
    ["bytes moved socket-to-socket", iptables.counters.bytes_redirected!, meshlane.counters.bytes_redirected!],
  ];
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("   ")).join("\n");
}

/** What `kubectl get pod` would show of interest here: Istio's containers and meshlane's marks. */
function describePod(pod: V1Pod): string {
  const containers = pod.spec!.containers.map((c) => c.name).join(", ");
  const inits = (pod.spec!.initContainers ?? []).map((c) => c.name).join(", ");
  const annotations = pod.metadata!.annotations ?? {};
  const marks = [ANNOTATION_STATUS, ANNOTATION_INTERCEPTION].filter((k) => k in annotations).map((k) => `    ${k}: ${annotations[k]}`);
  return [
    `pod ${pod.metadata!.namespace}/${pod.metadata!.name}  uid ${pod.metadata!.uid}`,
    `  containers: ${containers}   init containers: ${inits || "none"}`,
    marks.length ? `  annotations:\n${marks.join("\n")}` : "  no meshlane annotations",
  ].join("\n");
}

/**
 * Creates a client and a server pod in the API (the admission chain runs), then their
 * test namespaces, cgroups and sidecars under the UIDs the API server gave them, then
 * reports them Running with those IPs, as the kubelet would.
 */
async function podPair(cluster: LocalCluster, node: TestNode, suffix: string): Promise<{ client: TestPod; server: TestPod; api: V1Pod[] }> {
  const api: V1Pod[] = [];
  const pods: TestPod[] = [];
  for (const role of ["client", "server"]) {
    const name = `${role}-${suffix}`;
    const created = await cluster.createPod(NAMESPACE, name);
    const marked = created.metadata?.annotations?.[ANNOTATION_STATUS] === "accelerated";
    // Unmarked pods keep Istio's defaults, which is also what the test topology uses.
    const pod = await node.addPod(name, { uid: created.metadata!.uid!, ...(marked ? { interception: interceptionOf(created) } : {}) });
    if (role === "server") await pod.startApp(80);
    await cluster.runPod(NAMESPACE, name, [pod.ip]);
    api.push(created);
    pods.push(pod);
  }
  return { client: pods[0]!, server: pods[1]!, api };
}

async function main(): Promise<void> {
  heading("meshlane-loader doctor");
  process.stdout.write(indent(loader(["doctor"]).split("\n").slice(-1).join("\n") || "ok"));

  const node = await TestNode.create();
  const pinDir = join(DEFAULT_BPFFS, `meshlane-demo-${node.id}`);
  let cluster: LocalCluster | undefined;
  try {
    heading(`meshlane-loader attach --cgroup ${node.kubepods}   (the loader DaemonSet's init container)`);
    process.stdout.write(indent(loader(["attach", "--cgroup", node.kubepods, "--pin-dir", pinDir])));

    heading("a cluster on this machine");
    const workDir = join(node.workDir, "cluster");
    mkdirSync(workDir);
    cluster = await LocalCluster.start({ workDir, nodeName: NODE, kubepods: node.kubepods, pinDir, registrarResync: "10s" });
    process.stdout.write(indent([
      `Kubernetes API stand-in at ${cluster.api.url}, with Istio's sidecar injector`,
      "MutatingWebhookConfiguration meshlane-webhook (from manifests/all-in-one.yaml): pods of namespaces labelled",
      "  meshlane.io/accelerate=enabled, called after Istio's injector, failurePolicy Ignore; its caBundle written by",
      "  the webhook at start",
      "meshlane-webhook serve --self-signed --registrar   (HTTPS webhook, audit log, registrar)",
      `meshlane-loader run --node ${NODE}   (watches ConfigMaps ${nodeRegistrationsSelector(NODE)} in ${REGISTRY_NAMESPACE})`,
    ].join("\n")));

    heading(`namespace ${NAMESPACE} with Istio only (istio-injection=enabled): two pods, Istio's iptables path`);
    await cluster.createNamespace(NAMESPACE, ISTIO_INJECTION_LABELS);
    const before = await podPair(cluster, node, "v1");
    process.stdout.write(indent(before.api.map(describePod).join("\n")));
    const viaIptables = await traffic(before.client, before.server, pinDir);
    process.stdout.write(indent(`client sidecar forwarded to: ${[...new Set(before.client.sidecarLog.map((l) => l.server))].join(", ")}`));

    heading(`kubectl label namespace ${NAMESPACE} meshlane.io/accelerate=enabled, then roll the pods (meshlane marks pods as they are created)`);
    await cluster.labelNamespace(NAMESPACE, MESHLANE_LABELS);
    for (const pod of before.api) await cluster.core.deleteNamespacedPod({ namespace: NAMESPACE, name: pod.metadata!.name! });
    await before.client.stopProcesses();
    await before.server.stopProcesses();
    const after = await podPair(cluster, node, "v2");
    process.stdout.write(indent(after.api.map(describePod).join("\n")));

    heading("the webhook's audit log: one line per review");
    for (const line of cluster.auditLines().filter((l) => l.namespace === NAMESPACE)) process.stdout.write(indent(JSON.stringify(line)));

    heading(`the registrar's writes and the registry objects ${nodeRegistrationsSelector(NODE)} in ${REGISTRY_NAMESPACE}`);
    const uids = after.api.map((p) => p.metadata!.uid!);
    await until("both pods are registered", async () => {
      const registered = new Set((await cluster!.nodeRegistry()).map((r) => r.uid));
      return uids.every((uid) => registered.has(uid));
    });
    for (const write of cluster.webhook!.logLines("registry write")) {
      process.stdout.write(indent(`registry write: ${write.object} ${write.outcome}, ${write.ms} ms`));
    }
    for (const r of await cluster.nodeRegistry()) process.stdout.write(indent(`pod ${r.uid} on ${r.node}: ${r.document}`));

    heading("meshlane-loader status");
    await until("the loader registered both pods", () => (JSON.parse(loader(["status", "--json", "--pin-dir", pinDir])).pods as unknown[]).length === 2);
    process.stdout.write(indent(loader(["status", "--pin-dir", pinDir, "--state-file", cluster.loaderStateFile])));

    heading("the same traffic, accelerated");
    const viaMeshlane = await traffic(after.client, after.server, pinDir);
    process.stdout.write(indent(`client sidecar forwarded to: ${[...new Set(after.client.sidecarLog.map((l) => l.server))].join(", ")} (original destination from meshlane)`));

    heading("comparison (counters are each run's increments)");
    process.stdout.write(indent(table(viaIptables, viaMeshlane)));
    process.stdout.write(indent(
      "\nThe server's REDIRECT still counts one packet per connection: the handshake to 15006 crosses its\n" +
      "nat table (a no-op rewrite 15006 -> 15006); every payload byte goes socket to socket.",
    ));
  } finally {
    heading("cleaning up");
    await cluster?.stop();
    process.stdout.write(indent(loader(["detach", "--pin-dir", pinDir, "--drain-ms", "200"])));
    await node.destroy();
    process.stdout.write(indent("API stand-in, webhook and loader stopped; namespaces, cgroups, pins and sidecars removed"));
  }
}

await main();
