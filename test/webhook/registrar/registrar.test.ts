// The registrar against the real kube-apiserver, with the webhook's own ServiceAccount
// token and the manifest's RBAC: registrations follow pods through their lives,
// only labelled pods are watched, markings the webhook's decision does not agree with
// are refused, resync repairs what others broke, and two replicas at once agree.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { pino } from "pino";
import { Registry } from "prom-client";
import { defaultInterception, parseRegistration } from "../../../registry/document.js";
import { listRegistrations, registrationObjectName, REGISTRY_NAMESPACE, type StoredRegistration } from "../../../registry/configmap.js";
import { ANNOTATION_INTERCEPTION, MARKED_POD_SELECTOR, POD_MARK_LABEL, SYSTEM_NAMESPACE } from "../../../registry/names.js";
import { desiredFor } from "../../../webhook/registrar/desired.js";
import { createRegistrarMetrics } from "../../../webhook/registrar/metrics.js";
import { startRegistrar, type Registrar } from "../../../webhook/registrar/registrar.js";
import { RegistryWriter } from "../../../webhook/registrar/writer.js";
import { ControlPlane, Kubelet } from "../../../lab/controlplane/index.js";
import { until } from "../../../lab/until.js";
import { injectedPod, markedPod } from "../../../lab/marked-pod.js";

const NS = "shop";
const silent = pino({ level: "silent" });
const MANIFEST = new URL("../../../manifests/all-in-one.yaml", import.meta.url).pathname;
let nextIp = 0;
const ip = () => `10.0.${Math.floor(++nextIp / 250)}.${(nextIp % 250) + 1}`;

describe("registrar", () => {
  let cp: ControlPlane;
  let kubeConfig: ControlPlane["admin"]["kubeConfig"];
  let core: CoreV1Api;
  const kubelets = new Map<string, Kubelet>();
  const kubelet = (node: string) => {
    if (!kubelets.has(node)) kubelets.set(node, new Kubelet(node, { node: cp.node(node), scheduler: cp.admin }));
    return kubelets.get(node)!;
  };
  const run = (node: string, name: string, ips = [ip()]) => kubelet(node).run(NS, name, ips);
  const deletePod = (name: string) => core.deleteNamespacedPod({ namespace: NS, name, gracePeriodSeconds: 0 });
  let registrar: Registrar;
  let metrics: Registry;

  const createPod = (name: string, edit: (p: V1Pod) => void = () => undefined): Promise<V1Pod> => {
    const body = markedPod(injectedPod(name, NS));
    edit(body);
    return core.createNamespacedPod({ namespace: NS, body });
  };
  const uidsOn = async (node: string) => (await listRegistrations(core, node)).map((r) => r.uid).sort();
  const byUid = async () => new Map((await listRegistrations(core)).map((r) => [r.uid, r] as const));

  /** The registry holds exactly what the marked pods say it should. */
  async function registryIsExact(): Promise<boolean> {
    const want = new Map<string, string>();
    for (const pod of (await core.listPodForAllNamespaces({ labelSelector: MARKED_POD_SELECTOR })).items) {
      const d = desiredFor(pod);
      if (d.registered) want.set(d.registration.uid, `${d.registration.node} ${d.registration.document}`);
    }
    const have = new Map([...(await byUid())].map(([uid, r]) => [uid, `${r.node} ${r.document}`]));
    return JSON.stringify([...have].sort()) === JSON.stringify([...want].sort());
  }

  before(async () => {
    cp = await ControlPlane.start();
    core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
    await cp.kubectl(["apply", "--server-side", "-f", MANIFEST]);
    await cp.createNamespace(NS);
    kubeConfig = (await cp.serviceAccount(SYSTEM_NAMESPACE, "meshlane-webhook")).kubeConfig;
    metrics = new Registry();
    // Resync only when a test asks: the pod events alone must keep the registry right.
    registrar = await startRegistrar({ kubeConfig, log: silent, metricsRegistry: metrics, resyncMs: 3_600_000, retryMinMs: 50 });
  });
  after(async () => {
    await registrar?.stop();
    await cp?.stop();
  });

  test("a marked pod is registered once it runs on a node, as a document the loader accepts; unmarked pods never are", async () => {
    await createPod("web-1");
    await core.createNamespacedPod({ namespace: NS, body: injectedPod("plain-1", NS) });
    await registrar.idle();
    assert.deepEqual(await uidsOn("node-a"), [], "no IP, no node: nothing registered yet");

    const running = await run("node-a", "web-1", ["10.0.0.11", "fd00::11"]);
    await run("node-a", "plain-1");
    const uid = running.metadata!.uid!;
    await until("web-1 is registered on node-a", async () => (await uidsOn("node-a")).includes(uid));
    await registrar.idle();
    assert.deepEqual(await uidsOn("node-a"), [uid], "only the marked pod");
    const cm = await core.readNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, name: registrationObjectName(uid) });
    const doc = parseRegistration(JSON.parse(cm.data!.registration!), uid);
    assert.deepEqual([doc.namespace, doc.name, doc.ips.map((ip) => ip.address)], [NS, "web-1", ["10.0.0.11", "fd00::11"]]);
  });

  test("finished and deleted pods lose their registration; a pod recreated on another node is registered there", async () => {
    const done = await createPod("job-1");
    await run("node-a", "job-1");
    await until("job-1 registered", async () => (await uidsOn("node-a")).includes(done.metadata!.uid!));
    await kubelet("node-a").finish(NS, "job-1", "Succeeded");
    await until("job-1 removed when it finished", async () => !(await uidsOn("node-a")).includes(done.metadata!.uid!));

    const first = await createPod("db-0");
    await run("node-a", "db-0");
    await until("db-0 registered on node-a", async () => (await uidsOn("node-a")).includes(first.metadata!.uid!));
    await deletePod("db-0");
    await until("db-0 removed when deleted", async () => !(await uidsOn("node-a")).includes(first.metadata!.uid!));

    const second = await createPod("db-0");
    await run("node-b", "db-0");
    await until("db-0 registered on node-b", async () => (await uidsOn("node-b")).includes(second.metadata!.uid!));
    assert.ok(!(await uidsOn("node-a")).includes(second.metadata!.uid!));
    assert.ok(await registryIsExact());
  });

  test("re-check: a pod whose markings were changed after admission is refused, with a metric reason; removing the label deregisters", async () => {
    const tampered = JSON.stringify({ ...defaultInterception(), excludeInboundPorts: [] });
    const bad = await createPod("tampered-1", (p) => (p.metadata!.annotations![ANNOTATION_INTERCEPTION] = tampered));
    await run("node-a", "tampered-1");
    const web = (await core.readNamespacedPod({ namespace: NS, name: "web-1" })).metadata!.uid!;
    await until("the refusal is counted", async () => {
      const refused = (await metrics.getSingleMetric("meshlane_registrar_refused_pods")!.get()).values;
      return refused.find((v) => v.labels.reason === "decision-disagrees")?.value === 1;
    });
    await registrar.resync();
    await registrar.idle();
    assert.ok(!(await uidsOn("node-a")).includes(bad.metadata!.uid!));

    // Unlabelled, a registered pod leaves the registrar's watch, which is a deletion to it.
    await core.patchNamespacedPod({ namespace: NS, name: "web-1", body: [{ op: "remove", path: `/metadata/labels/${POD_MARK_LABEL.replace("/", "~1")}` }] });
    await until("web-1 deregistered", async () => !(await uidsOn("node-a")).includes(web));
    await core.patchNamespacedPod({ namespace: NS, name: "web-1", body: [{ op: "add", path: `/metadata/labels/${POD_MARK_LABEL.replace("/", "~1")}`, value: "accelerated" }] });
    await until("web-1 registered again", async () => (await uidsOn("node-a")).includes(web));
  });

  test("the periodic resync restores a registry object deleted by hand", async () => {
    const repairing = await startRegistrar({ kubeConfig, log: silent, metricsRegistry: new Registry(), resyncMs: 300 });
    try {
      const web = (await core.readNamespacedPod({ namespace: NS, name: "web-1" })).metadata!.uid!;
      const before = (await byUid()).get(web)!;
      await core.deleteNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, name: registrationObjectName(web) });
      await until("web-1's object is back", async () => (await byUid()).has(web), 5000);
      assert.deepEqual((await byUid()).get(web), before);
    } finally {
      await repairing.stop();
    }
  });

  test("resync removes a stale replica's re-added registration of a deleted pod and strays, and fixes stale documents", async () => {
    // What a replica whose informer lags behind does: writes registrations from its old view.
    const stale = new RegistryWriter({ core, log: silent, metrics: createRegistrarMetrics(new Registry()) });
    const web = (await core.readNamespacedPod({ namespace: NS, name: "web-1" })).metadata!.uid!;
    stale.set("uid-of-a-deleted-pod", { node: "node-a", document: '{"version":1}' });
    stale.set(web, { node: "node-a", document: '{"version":1,"stale":true}' });
    stale.set("uid-of-a-pod-on-another-node", { node: "node-c", document: '{"version":1}' });
    await stale.idle();
    assert.equal(await registryIsExact(), false);
    const repairs = async () => new Map((await metrics.getSingleMetric("meshlane_registrar_repairs_total")!.get()).values.map((v) => [v.labels.kind, v.value]));
    const before = await repairs();
    const report = await registrar.resync();
    await registrar.idle();
    assert.deepEqual(report.repairs, { missing: 0, stale: 1, stray: 2 });
    assert.ok(await registryIsExact());
    const counted = await repairs();
    const delta = (kind: string) => (counted.get(kind) ?? 0) - (before.get(kind) ?? 0);
    assert.deepEqual([delta("missing"), delta("stale"), delta("stray")], [0, 1, 2]);
  });

  test("two replicas at once: creates race, pods come and go, the registry ends exact", async () => {
    const other = await startRegistrar({ kubeConfig, log: silent, metricsRegistry: new Registry(), resyncMs: 60_000, retryMinMs: 50 });
    try {
      const names = Array.from({ length: 30 }, (_, i) => `burst-${i}`);
      await Promise.all(names.map((name) => createPod(name)));
      await Promise.all(names.map((name, i) => run(`node-${["x", "y", "z"][i % 3]}`, name)));
      await Promise.all(names.slice(0, 10).map((name) => deletePod(name)));
      await Promise.all(names.slice(10, 15).map((name, i) => kubelet(`node-${["x", "y", "z"][(i + 10) % 3]}`).finish(NS, name, "Failed")));
      await until("both replicas are done and the registry is exact", async () => {
        await Promise.all([registrar.idle(), other.idle()]);
        return registryIsExact();
      }, 30_000).catch(async (e) => {
        const have = await byUid();
        const pods = (await core.listNamespacedPod({ namespace: NS })).items.map((p) => `${p.metadata!.name} ${p.metadata!.uid} ${p.status?.phase} ${p.spec?.nodeName} ${have.has(p.metadata!.uid!)}`);
        throw new Error(`${(e as Error).message}\n${pods.join("\n")}\nobjects: ${[...have.keys()].join(" ")}`);
      });
      const counts = await Promise.all(["node-x", "node-y", "node-z"].map(async (n) => (await uidsOn(n)).length));
      assert.equal(counts.reduce((a, b) => a + b, 0), 15);
    } finally {
      await other.stop();
    }
  });

  test("writers racing to create the same pod's object: one create succeeds, the other patches, the document lands", async () => {
    const registries = [new Registry(), new Registry()];
    const writers = registries.map((r) => new RegistryWriter({ core, log: silent, metrics: createRegistrarMetrics(r) }));
    for (const w of writers) w.set("race-uid", { node: "node-race", document: "same" });
    await Promise.all(writers.map((w) => w.idle()));
    assert.deepEqual((await byUid()).get("race-uid"), { uid: "race-uid", node: "node-race", document: "same" } satisfies StoredRegistration);
    const ok = async (r: Registry, op: string) =>
      (await r.getSingleMetric("meshlane_registrar_writes_total")!.get()).values.filter((v) => v.labels.op === op && v.labels.result === "ok").reduce((n, v) => n + v.value, 0);
    const creates = (await ok(registries[0]!, "create")) + (await ok(registries[1]!, "create"));
    const patches = (await ok(registries[0]!, "patch")) + (await ok(registries[1]!, "patch"));
    assert.deepEqual([creates, patches], [1, 1]);
    for (const w of writers) await w.stop();
  });
});
