// Issue 4 end to end, in the real kernel: a labelled namespace, pods created through
// the API stand-in (Istio's injector, then meshlane's webhook over TLS), the
// registrar writing the node ConfigMap, the loader (Kubernetes mode) filling the BPF
// maps, and traffic between two test pods taking meshlane's path, then iptables'
// again once a pod is deleted. Also: a webhook nobody can reach costs nothing but
// acceleration, and a ConfigMap deleted by hand comes back.
//
// The API server assigns pod UIDs, so each pod is created in the API first and its
// test network namespace and cgroup (kubepods/pod<uid>) are made with that UID.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import { cgroupId } from "../../loader/cgroup.js";
import * as bpf from "../../loader/libbpf.js";
import { MAPS } from "../../loader/maps/codecs.js";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS } from "../../registry/names.js";
import { registrationObjectName, REGISTRY_NAMESPACE } from "../../registry/configmap.js";
import { Mesh } from "../../lab/topology/mesh.js";
import type { TestPod } from "../../lab/topology/node.js";
import { until } from "../../lab/until.js";
import { interceptionOf, ISTIO_INJECTION_LABELS, LocalCluster, MESHLANE_LABELS } from "../../lab/local-cluster.js";

const NS = "shop";
const NODE = "node-a";
const TRAFFIC = { sizes: Array<number>(8).fill(64 << 10), concurrency: 4 };

describe("from a namespace label to accelerated traffic", { timeout: 180_000 }, () => {
  let mesh: Mesh;
  let cluster: LocalCluster;
  let server: TestPod, client: TestPod;

  const inPodMap = (pod: TestPod): boolean =>
    bpf.mapLookup(mesh.fds().mesh_pods, MAPS.mesh_pods.key.encode(cgroupId(pod.cgroup)), MAPS.mesh_pods.value.size) !== null;
  const registeredUids = async (): Promise<string[]> => (await cluster.nodeRegistry()).map((r) => r.uid);

  /** Creates the pod in the API, then its test namespace, cgroup and sidecar under the UID the API server gave it, then runs it. */
  async function podOnNode(name: string): Promise<{ api: V1Pod; pod: TestPod }> {
    const api = await cluster.createPod(NS, name);
    const marked = api.metadata?.annotations?.[ANNOTATION_STATUS] === "accelerated";
    // An unmarked pod still has Istio's capture, with Istio's defaults: take a marked sibling's settings.
    const interception = marked ? interceptionOf(api) : server.interception;
    const pod = await mesh.node.addPod(name, { uid: api.metadata!.uid!, interception });
    await cluster.runPod(NS, name, [pod.ip]);
    return { api, pod };
  }

  /** Sends TRAFFIC from one pod to the server's app; returns what each path counted. */
  async function exchange(from: TestPod): Promise<{ iptablesOutbound: number; steered: bigint; bytesRedirected: bigint }> {
    const ipt = await from.redirectCounters();
    const before = mesh.counters();
    const results = await from.send(server.ip, 80, TRAFFIC);
    assert.deepEqual(results.filter((r) => !r.ok), [], "every transfer completes");
    const after = mesh.counters();
    return {
      iptablesOutbound: (await from.redirectCounters()).outbound - ipt.outbound,
      steered: after.CNT_CONNECT_OUTBOUND - before.CNT_CONNECT_OUTBOUND,
      bytesRedirected: after.CNT_BYTES_REDIRECTED - before.CNT_BYTES_REDIRECTED,
    };
  }

  before(async () => {
    mesh = await Mesh.create();
    mesh.attach();
    const workDir = join(mesh.node.workDir, "cluster");
    mkdirSync(workDir);
    cluster = await LocalCluster.start({ workDir, nodeName: NODE, kubepods: mesh.node.kubepods, pinDir: mesh.pinDir, registrarResync: "1s", loaderResyncSeconds: 2 });
  });
  after(async () => {
    await cluster?.stop();
    await mesh?.destroy();
  });

  test("pods of a labelled namespace are injected by Istio, marked by meshlane, registered on their node and in the loader's map", async () => {
    await cluster.createNamespace(NS, { ...ISTIO_INJECTION_LABELS, ...MESHLANE_LABELS });
    const s = await cluster.createPod(NS, "server");
    assert.ok(s.spec!.containers.some((c) => c.name === "istio-proxy"), "Istio's injector ran");
    assert.equal(s.metadata!.annotations![ANNOTATION_STATUS], "accelerated", "meshlane's webhook marked the pod after Istio injected it");
    assert.ok(s.metadata!.annotations![ANNOTATION_INTERCEPTION]);
    server = await mesh.node.addPod("server", { uid: s.metadata!.uid!, interception: interceptionOf(s) });
    await server.startApp(80);
    ({ pod: client } = await podOnNode("client"));
    await cluster.runPod(NS, "server", [server.ip]);

    await until("both pods are registered", async () => (await registeredUids()).length === 2);
    assert.deepEqual((await registeredUids()).sort(), [server.uid, client.uid].sort());
    await until("the loader put both pods in the map", () => inPodMap(server) && inPodMap(client));

    const audited = cluster.auditLines().filter((l) => l.namespace === NS);
    assert.deepEqual(audited.map((l) => [l.name, l.decision]), [["server", "accelerated"], ["client", "accelerated"]], "one audit line per pod");
  });

  test("traffic between the two pods is accelerated: steered by meshlane, never redirected by iptables", async () => {
    const r = await exchange(client);
    assert.equal(r.iptablesOutbound, 0, "the client's iptables REDIRECT saw none of the connections");
    assert.equal(r.steered, BigInt(TRAFFIC.sizes.length), "meshlane steered every connection");
    assert.ok(r.bytesRedirected >= 2n * BigInt(TRAFFIC.sizes.reduce((a, b) => a + b, 0)), "the payload moved socket to socket");
  });

  test("deleting the client pod removes its key and map entry, and its traffic falls back to iptables", async () => {
    await cluster.core.deleteNamespacedPod({ namespace: NS, name: "client" });
    await until("the client's key is gone", async () => !(await registeredUids()).includes(client.uid));
    await until("the client's map entry is gone", () => !inPodMap(client));
    assert.ok(inPodMap(server), "the server stays registered");
    const r = await exchange(client);
    assert.equal(r.iptablesOutbound, TRAFFIC.sizes.length, "iptables redirected every connection to the sidecar");
    assert.equal(r.steered, 0n);
  });

  test("a registry object deleted by hand is restored by the registrar's resync, and the loader follows", async () => {
    await cluster.core.deleteNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, name: registrationObjectName(server.uid) });
    await until("the server's registration is back", async () => (await registeredUids()).includes(server.uid));
    await until("the server is in the loader's map", () => inPodMap(server));
  });

  test("a registered pod whose cgroup the kubelet has not made yet is retried, not dropped", async () => {
    const api = await cluster.createPod(NS, "late");
    const uid = api.metadata!.uid!;
    await cluster.runPod(NS, "late", ["10.77.0.250"]);
    await until("the loader reports the pod pending its cgroup", () => {
      const state = JSON.parse(readFileSync(cluster.loaderStateFile, "utf8")) as { pods: { uid: string; state: string }[] };
      return state.pods.some((p) => p.uid === uid && p.state === "pending-cgroup");
    });
    const cgroup = join(mesh.node.kubepods, `pod${uid}`);
    mkdirSync(cgroup);
    const key = MAPS.mesh_pods.key.encode(cgroupId(cgroup));
    await until("the pod is in the map once its cgroup exists", () => bpf.mapLookup(mesh.fds().mesh_pods, key, MAPS.mesh_pods.value.size) !== null);
    await cluster.core.deleteNamespacedPod({ namespace: NS, name: "late" });
    await until("and out of it once deleted", () => bpf.mapLookup(mesh.fds().mesh_pods, key, MAPS.mesh_pods.value.size) === null);
  });

  test("with the webhook unreachable, a pod is still created (failurePolicy Ignore) and simply not accelerated", async () => {
    await cluster.makeWebhookUnreachable();
    const { api, pod: unmarked } = await podOnNode("unmarked");
    cluster.makeWebhookReachable();
    assert.ok(api.spec!.containers.some((c) => c.name === "istio-proxy"), "Istio still injected its sidecar");
    assert.equal(api.metadata!.annotations?.[ANNOTATION_STATUS], undefined, "meshlane never saw it");
    const { pod: later } = await podOnNode("later");
    await until("a pod created after the webhook came back is registered", async () => (await registeredUids()).includes(later.uid));
    await sleep(2500); // two more registrar resyncs and a loader resync
    assert.ok(!(await registeredUids()).includes(unmarked.uid), "the unmarked pod has no key");
    assert.ok(!inPodMap(unmarked));
    const r = await exchange(unmarked);
    assert.equal(r.iptablesOutbound, TRAFFIC.sizes.length, "its traffic takes Istio's iptables path");
    assert.equal(r.steered, 0n);
  });
});
