// `npm run demo`: meshlane's whole story on one machine.
//
// A real kube-apiserver and etcd run here (lab/controlplane/), with
// manifests/all-in-one.yaml applied by kubectl and Istio's own injector (istioctl
// kube-inject behind an admission webhook) called before meshlane's;
// `meshlane-webhook serve --registrar` and one `meshlane-loader run --node` per node
// run as real processes against it, each with its own ServiceAccount's token. Two
// nodes share one pod network; pods are test network namespaces with HAProxy sidecars
// as uid 1337 and the rules of Istio's istio-iptables, in cgroups named after the UIDs
// the API server gave them.
//
// The story: pods in a namespace with Istio only talk through iptables. The
// namespace gets meshlane's label, the pods are rolled, the new ones are marked by
// the webhook, registered by the registrar and loaded by their node's loader, and the
// same traffic runs again, accelerated; then to a pod on the other node, steered at
// connect time and never paired across nodes. Everything is removed at the end.

import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { V1Pod } from "@kubernetes/client-node";
import { DEFAULT_BPFFS } from "../loader/pins.js";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS } from "../registry/names.js";
import { nodeRegistrationsSelector, REGISTRY_NAMESPACE } from "../registry/configmap.js";
import { until } from "../lab/until.js";
import { interceptionOf, ISTIO_INJECTION_LABELS, LocalCluster, MESHLANE_LABELS, WEBHOOK_ARGS } from "../lab/local-cluster.js";
import { TestNode, type TestPod, type TransferResult } from "../lab/topology/node.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const LOADER = join(REPO, "dist", "loader", "cli.js");
const TRAFFIC = { sizes: Array<number>(400).fill(256 << 10), concurrency: 8 };
const NAMESPACE = "shop";

interface DemoNode {
  name: string;
  node: TestNode;
  pinDir: string;
}

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

function table(runs: [string, Run][]): string {
  const steered = (r: Run) => String(BigInt(r.counters.connect_outbound!) + BigInt(r.counters.connect_inbound!));
  const rows: string[][] = [
    ["", ...runs.map(([name]) => name)],
    ["wall time of 400 × 256 KiB echoes", ...runs.map(([, r]) => `${r.seconds.toFixed(2)} s`)],
    ["throughput (payload, one way)", ...runs.map(([, r]) => `${r.mbPerSecond.toFixed(0)} MiB/s`)],
    ["client's iptables REDIRECT to 15001", ...runs.map(([, r]) => String(r.iptablesOutbound))],
    ["server's iptables REDIRECT to 15006", ...runs.map(([, r]) => String(r.iptablesInbound))],
    ["connections steered by meshlane", ...runs.map(([, r]) => steered(r))],
    ["SO_ORIGINAL_DST answered by meshlane", ...runs.map(([, r]) => r.counters.origdst_answered!)],
    ["sockets paired", ...runs.map(([, r]) => r.counters.sockets_paired!)],
    ["bytes moved socket-to-socket", ...runs.map(([, r]) => r.counters.bytes_redirected!)],
  ];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
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
 * Creates a pod in the API on a node (the admission chain runs), then its test
 * namespace, cgroup and sidecar under the UID the API server gave it, then reports it
 * Running with its IP, as that node's kubelet would.
 */
async function podOn(cluster: LocalCluster, at: DemoNode, name: string, app: boolean): Promise<{ pod: TestPod; api: V1Pod }> {
  const api = await cluster.createPod(NAMESPACE, name, at.name);
  const marked = api.metadata?.annotations?.[ANNOTATION_STATUS] === "accelerated";
  // Unmarked pods keep Istio's defaults, which is also what the test topology uses.
  const pod = await at.node.addPod(name, { uid: api.metadata!.uid!, ...(marked ? { interception: interceptionOf(api) } : {}) });
  if (app) await pod.startApp(80);
  await cluster.runPod(NAMESPACE, name, [pod.ip], at.name);
  return { pod, api };
}

async function loadedPods(pinDir: string): Promise<number> {
  return (JSON.parse(loader(["status", "--json", "--pin-dir", pinDir])).pods as unknown[]).length;
}

async function main(): Promise<void> {
  heading("meshlane-loader doctor");
  process.stdout.write(indent(loader(["doctor"]).split("\n").slice(-1).join("\n") || "ok"));

  const nodes: DemoNode[] = [];
  let cluster: LocalCluster | undefined;
  try {
    for (const name of ["node-a", "node-b"]) {
      // node-b's pods join node-a's pod network: two nodes of one cluster.
      const node = await TestNode.create(nodes[0] ? { network: nodes[0].node.network } : {});
      nodes.push({ name, node, pinDir: join(DEFAULT_BPFFS, `meshlane-demo-${node.id}`) });
    }
    const [a, b] = nodes as [DemoNode, DemoNode];
    for (const n of nodes) {
      heading(`${n.name}: meshlane-loader attach --cgroup ${n.node.kubepods}   (the loader DaemonSet's init container)`);
      process.stdout.write(indent(loader(["attach", "--cgroup", n.node.kubepods, "--pin-dir", n.pinDir])));
    }

    heading("a cluster on this machine");
    const workDir = join(a.node.workDir, "cluster");
    mkdirSync(workDir);
    cluster = await LocalCluster.start({ workDir, nodes: nodes.map((n) => ({ name: n.name, kubepods: n.node.kubepods, pinDir: n.pinDir })), registrarResync: "10s" });
    const version = JSON.parse(await cluster.cp.kubectl(["version", "-o", "json"])) as { serverVersion: { gitVersion: string } };
    process.stdout.write(indent([
      `the real Kubernetes API server: kube-apiserver ${version.serverVersion.gitVersion} with etcd, at ${cluster.cp.server}`,
      "  (Node+RBAC authorization, default admission plugins; built by scripts/build-kube.sh)",
      "kubectl apply -f manifests/all-in-one.yaml   (all of it; the webhook's clientConfig then pointed at 127.0.0.1)",
      "sidecar injector: Istio's own (istioctl kube-inject behind an admission webhook), called by the API server first",
      "MutatingWebhookConfiguration meshlane-webhook: pods of namespaces labelled meshlane.io/accelerate=enabled,",
      "  called after Istio's injector, failurePolicy Ignore; its caBundle written by the webhook at start",
      `meshlane-webhook ${WEBHOOK_ARGS.join(" ")}   (HTTPS webhook, audit log, registrar; ServiceAccount meshlane-webhook's token)`,
      ...nodes.map((n) => `meshlane-loader run --node ${n.name}   (watches ConfigMaps ${nodeRegistrationsSelector(n.name)} in ${REGISTRY_NAMESPACE}; ServiceAccount meshlane-loader's token)`),
      `two nodes, ${a.name} and ${b.name}: each its own kubepods cgroup tree, pins and loader; their pods on one pod network`,
    ].join("\n")));

    heading(`namespace ${NAMESPACE} with Istio only (istio-injection=enabled): two pods on ${a.name}, Istio's iptables path`);
    await cluster.createNamespace(NAMESPACE, ISTIO_INJECTION_LABELS);
    const before = [await podOn(cluster, a, "client-v1", false), await podOn(cluster, a, "server-v1", true)];
    process.stdout.write(indent(before.map((p) => describePod(p.api)).join("\n")));
    const viaIptables = await traffic(before[0]!.pod, before[1]!.pod, a.pinDir);
    process.stdout.write(indent(`client sidecar forwarded to: ${[...new Set(before[0]!.pod.sidecarLog.map((l) => l.server))].join(", ")}`));

    heading(`kubectl label namespace ${NAMESPACE} meshlane.io/accelerate=enabled, then roll the pods (meshlane marks pods as they are created)`);
    await cluster.labelNamespace(NAMESPACE, MESHLANE_LABELS);
    for (const p of before) {
      await cluster.deletePod(NAMESPACE, p.api.metadata!.name!);
      await p.pod.stopProcesses();
    }
    const client = await podOn(cluster, a, "client-v2", false);
    const server = await podOn(cluster, a, "server-v2", true);
    const remote = await podOn(cluster, b, "server-v2-b", true);
    process.stdout.write(indent([client, server, remote].map((p) => `${describePod(p.api)}\n  on ${p.api.spec!.nodeName}`).join("\n")));

    heading("the webhook's audit log: one line per review");
    for (const line of cluster.auditLines().filter((l) => l.namespace === NAMESPACE)) process.stdout.write(indent(JSON.stringify(line)));

    heading(`the registrar's writes and the registry objects in ${REGISTRY_NAMESPACE}, one per pod, labelled with its node`);
    const placed: [DemoNode, string[]][] = [[a, [client, server].map((p) => p.api.metadata!.uid!)], [b, [remote.api.metadata!.uid!]]];
    await until("every pod is registered on its node", async () => {
      for (const [n, uids] of placed) {
        const registered = new Set((await cluster!.nodeRegistry(n.name)).map((r) => r.uid));
        if (!uids.every((uid) => registered.has(uid))) return false;
      }
      return true;
    });
    for (const write of cluster.webhook!.logLines("registry write")) {
      process.stdout.write(indent(`registry write: ${write.object} ${write.outcome}, ${write.ms} ms`));
    }
    for (const n of nodes) for (const r of await cluster.nodeRegistry(n.name)) process.stdout.write(indent(`pod ${r.uid} on ${r.node}: ${r.document}`));

    for (const [n, uids] of placed) {
      heading(`meshlane-loader status on ${n.name}   (its own node's pods only)`);
      await until(`the loader of ${n.name} registered its pods`, async () => (await loadedPods(n.pinDir)) === uids.length);
      process.stdout.write(indent(loader(["status", "--pin-dir", n.pinDir, "--state-file", cluster.node(n.name).loaderStateFile])));
    }

    heading(`the same traffic, accelerated (both pods on ${a.name}; redirect mode ${interceptionOf(client.api).redirect})`);
    const viaMeshlane = await traffic(client.pod, server.pod, a.pinDir);
    process.stdout.write(indent(`client sidecar forwarded to: ${[...new Set(client.pod.sidecarLog.map((l) => l.server))].join(", ")} (original destination from meshlane)`));

    heading(`from ${a.name} to a pod on ${b.name}: steered at connect time on ${a.name}, then the network as usual`);
    const toRemote = await traffic(client.pod, remote.pod, a.pinDir);
    const remoteCounters = JSON.parse(loader(["status", "--json", "--pin-dir", b.pinDir])).counters as Record<string, string>;
    process.stdout.write(indent(`${b.name}'s loader: sockets paired ${remoteCounters.sockets_paired}, bytes moved socket-to-socket ${remoteCounters.bytes_redirected} (nothing is paired across nodes)`));

    heading("comparison (counters are each run's increments on the client's node)");
    process.stdout.write(indent(table([["iptables only", viaIptables], ["meshlane, same node", viaMeshlane], [`meshlane, to ${b.name}`, toRemote]])));
    process.stdout.write(indent(
      "\nThe server's REDIRECT still counts one packet per connection on the same node: the handshake to\n" +
      "15006 crosses its nat table (a no-op rewrite 15006 -> 15006); every payload byte between the\n" +
      "sidecars goes socket to socket. A pod on another node is reached over the pod network as without\n" +
      "meshlane: its own iptables hand each connection to its sidecar.",
    ));
  } finally {
    heading("cleaning up");
    await cluster?.stop();
    for (const n of nodes) process.stdout.write(indent(loader(["detach", "--pin-dir", n.pinDir, "--drain-ms", "200"])));
    // node-b joined node-a's pod network: node-a, which made it, goes last.
    for (const n of [...nodes].reverse()) await n.node.destroy();
    process.stdout.write(indent("kube-apiserver, etcd, webhook and loaders stopped; namespaces, cgroups, pins and sidecars removed"));
  }
}

await main();
