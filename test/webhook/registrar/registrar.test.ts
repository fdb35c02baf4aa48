// The registrar against the Kubernetes API stand-in: keys follow pods through their
// lives, resync repairs what others broke, and two replicas at once agree.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, type V1ConfigMap, type V1Pod } from "@kubernetes/client-node";
import { pino } from "pino";
import { Registry } from "prom-client";
import { defaultInterception, validateRegistration } from "../../../registry/document.js";
import { apiStatusCode } from "../../../registry/kube-errors.js";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS, nodeConfigMapName, PART_OF_LABEL, PART_OF_VALUE, SYSTEM_NAMESPACE } from "../../../registry/names.js";
import { desiredByNode } from "../../../webhook/registrar/desired.js";
import { createRegistrarMetrics } from "../../../webhook/registrar/metrics.js";
import { startRegistrar, type Registrar } from "../../../webhook/registrar/registrar.js";
import { ConfigMapWriter } from "../../../webhook/registrar/writer.js";
import { start, type StandIn } from "../../kube/apiserver/index.js";
import { until } from "../../../lab/until.js";

const NS = "shop";
const silent = pino({ level: "silent" });
const MARK = { [ANNOTATION_STATUS]: "accelerated", [ANNOTATION_INTERCEPTION]: JSON.stringify(defaultInterception()) };

describe("registrar", () => {
  let cluster: StandIn;
  let core: CoreV1Api;
  let registrar: Registrar;
  let metrics: Registry;

  const createPod = (name: string, annotations: Record<string, string> = MARK): Promise<V1Pod> =>
    core.createNamespacedPod({ namespace: NS, body: { metadata: { name, annotations }, spec: { containers: [{ name: "app", image: "app:1" }] } } });

  /** The data of a node's ConfigMap; undefined when there is none. */
  async function configMap(node: string): Promise<V1ConfigMap | undefined> {
    try {
      return await core.readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: nodeConfigMapName(node) });
    } catch (e) {
      if (apiStatusCode(e) === 404) return undefined;
      throw e;
    }
  }
  const keysOf = async (node: string) => Object.keys((await configMap(node))?.data ?? {}).sort();

  /** Every node ConfigMap holds exactly what the pods say it should. */
  async function registryIsExact(): Promise<boolean> {
    const desired = desiredByNode((await core.listPodForAllNamespaces()).items);
    const cms = (await core.listNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE })).items;
    for (const cm of cms) {
      const node = cm.metadata!.name!.slice(nodeConfigMapName("").length);
      const want = Object.fromEntries(desired.get(node) ?? []);
      if (JSON.stringify(Object.entries(cm.data ?? {}).sort()) !== JSON.stringify(Object.entries(want).sort())) return false;
      desired.delete(node);
    }
    return [...desired.values()].every((entries) => entries.size === 0);
  }

  before(async () => {
    cluster = await start();
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: SYSTEM_NAMESPACE } } });
    await core.createNamespace({ body: { metadata: { name: NS } } });
    metrics = new Registry();
    // Resync only when a test asks: the pod events alone must keep the registry right.
    registrar = await startRegistrar({ kubeConfig: cluster.kubeConfig, log: silent, metricsRegistry: metrics, resyncMs: 3_600_000, retryMinMs: 50 });
  });
  after(async () => {
    await registrar?.stop();
    await cluster?.stop();
  });

  test("a marked pod's key appears once it runs on a node, as a document the loader accepts; unmarked pods never appear", async () => {
    await createPod("web-1");
    await createPod("plain-1", {});
    await createPod("skipped-1", { [ANNOTATION_STATUS]: "skipped" });
    await registrar.idle();
    assert.equal(await configMap("node-a"), undefined, "no IP, no node: nothing registered yet");

    const running = await cluster.kubelet("node-a").run(NS, "web-1", ["10.0.0.11", "fd00::11"]);
    await cluster.kubelet("node-a").run(NS, "plain-1");
    await cluster.kubelet("node-a").run(NS, "skipped-1");
    const uid = running.metadata!.uid!;
    await until("web-1's key is in node-a's ConfigMap", async () => (await keysOf("node-a")).includes(uid));
    const cm = (await configMap("node-a"))!;
    assert.equal(cm.metadata?.labels?.[PART_OF_LABEL], PART_OF_VALUE);
    assert.deepEqual(Object.keys(cm.data!), [uid], "only the marked pod");
    const doc = validateRegistration(JSON.parse(cm.data![uid]!), uid);
    assert.deepEqual([doc.namespace, doc.name, doc.ips], [NS, "web-1", ["10.0.0.11", "fd00::11"]]);
  });

  test("finished and deleted pods lose their keys; a pod recreated on another node is registered there", async () => {
    const done = await createPod("job-1");
    await cluster.kubelet("node-a").run(NS, "job-1");
    await until("job-1 registered", async () => (await keysOf("node-a")).includes(done.metadata!.uid!));
    await cluster.kubelet("node-a").finish(NS, "job-1", "Succeeded");
    await until("job-1's key removed when it finished", async () => !(await keysOf("node-a")).includes(done.metadata!.uid!));

    const first = await createPod("db-0");
    await cluster.kubelet("node-a").run(NS, "db-0");
    await until("db-0 registered on node-a", async () => (await keysOf("node-a")).includes(first.metadata!.uid!));
    await core.deleteNamespacedPod({ namespace: NS, name: "db-0" });
    await until("db-0's key removed when deleted", async () => !(await keysOf("node-a")).includes(first.metadata!.uid!));

    const second = await createPod("db-0");
    await cluster.kubelet("node-b").run(NS, "db-0");
    await until("db-0 registered on node-b", async () => (await keysOf("node-b")).includes(second.metadata!.uid!));
    assert.ok(!(await keysOf("node-a")).includes(second.metadata!.uid!));
    assert.ok(await registryIsExact());
  });

  test("a marked pod whose mark does not validate is left out", async () => {
    const bad = await createPod("tampered-1", { ...MARK, [ANNOTATION_INTERCEPTION]: JSON.stringify({ ...defaultInterception(), proxyUid: -1 }) });
    await cluster.kubelet("node-a").run(NS, "tampered-1");
    await registrar.resync();
    await registrar.idle();
    assert.ok(!(await keysOf("node-a")).includes(bad.metadata!.uid!));
  });

  test("the periodic resync restores a ConfigMap deleted by hand", async () => {
    const repairing = await startRegistrar({ kubeConfig: cluster.kubeConfig, log: silent, metricsRegistry: new Registry(), resyncMs: 300 });
    try {
      const before = (await configMap("node-a"))!.data;
      await core.deleteNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: nodeConfigMapName("node-a") });
      await until("node-a's ConfigMap is back", async () => (await configMap("node-a")) !== undefined, 5000);
      assert.deepEqual((await configMap("node-a"))!.data, before);
    } finally {
      await repairing.stop();
    }
  });

  test("resync removes a stale replica's re-added key of a deleted pod and stray keys, and fixes stale values", async () => {
    // What a replica whose informer lags behind does: writes keys from its old view.
    const stale = new ConfigMapWriter({ core, log: silent, metrics: createRegistrarMetrics(new Registry()) });
    const web = (await core.readNamespacedPod({ namespace: NS, name: "web-1" })).metadata!.uid!;
    stale.set("node-a", "uid-of-a-deleted-pod", '{"version":1}');
    stale.set("node-a", web, '{"version":1,"stale":true}');
    stale.set("node-c", "uid-of-a-pod-on-another-node", '{"version":1}');
    await stale.idle();
    assert.equal(await registryIsExact(), false);
    const report = await registrar.resync();
    await registrar.idle();
    const byNode = Object.fromEntries(report.repairs.map((r) => [r.node, [r.missing, r.stale, r.stray]]));
    assert.deepEqual(byNode, { "node-a": [0, 1, 1], "node-c": [0, 0, 1] });
    assert.ok(await registryIsExact());
    const counted = (await metrics.getSingleMetric("meshlane_registrar_repairs_total")!.get()).values;
    assert.deepEqual(Object.fromEntries(counted.map((v) => [v.labels.kind, v.value])), { missing: 0, stale: 1, stray: 2 });
  });

  test("two replicas at once: creates race on new ConfigMaps, pods come and go, the registry ends exact", async () => {
    const other = await startRegistrar({ kubeConfig: cluster.kubeConfig, log: silent, metricsRegistry: new Registry(), resyncMs: 60_000, retryMinMs: 50 });
    try {
      const names = Array.from({ length: 30 }, (_, i) => `burst-${i}`);
      await Promise.all(names.map((name) => createPod(name)));
      await Promise.all(names.map((name, i) => cluster.kubelet(`node-${["x", "y", "z"][i % 3]}`).run(NS, name)));
      await Promise.all(names.slice(0, 10).map((name) => core.deleteNamespacedPod({ namespace: NS, name })));
      await Promise.all(names.slice(10, 15).map((name, i) => cluster.kubelet(`node-${["x", "y", "z"][(i + 10) % 3]}`).finish(NS, name, "Failed")));
      await until("both replicas are done and the registry is exact", async () => {
        await Promise.all([registrar.idle(), other.idle()]);
        return registryIsExact();
      });
      assert.deepEqual((await keysOf("node-x")).length + (await keysOf("node-y")).length + (await keysOf("node-z")).length, 15);
    } finally {
      await other.stop();
    }
  });

  test("writers racing to create the same ConfigMap: exactly one create succeeds, both keys land", async () => {
    const registries = [new Registry(), new Registry()];
    const writers = registries.map((r) => new ConfigMapWriter({ core, log: silent, metrics: createRegistrarMetrics(r) }));
    writers[0]!.set("node-race", "k1", "v1");
    writers[1]!.set("node-race", "k2", "v2");
    await Promise.all(writers.map((w) => w.idle()));
    assert.deepEqual((await configMap("node-race"))?.data, { k1: "v1", k2: "v2" });
    const creates = await Promise.all(registries.map(async (r) => (await r.getSingleMetric("meshlane_registrar_writes_total")!.get()).values.filter((v) => v.labels.op === "create" && v.labels.result === "ok").reduce((n, v) => n + v.value, 0)));
    assert.equal(creates[0]! + creates[1]!, 1);
  });
});
