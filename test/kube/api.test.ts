import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  AdmissionregistrationV1Api, CoordinationV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy, setHeaderOptions,
  type V1ConfigMap,
} from "@kubernetes/client-node";
import { start, type StandIn } from "./apiserver/index.js";
import { rejectionStatus } from "./client-errors.js";

const container = { name: "app", image: "registry.local/app:1" };

describe("the stand-in API server through @kubernetes/client-node (HTTPS)", () => {
  let server: StandIn;
  let core: CoreV1Api;

  before(async () => {
    server = await start();
    core = server.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "shop", labels: { team: "a" } } } });
  });
  after(() => server.stop());

  it("serves the namespaces of a new cluster, labelled with their own name", async () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const list = await core.listNamespace();
    assert.deepEqual(list.items.map((n) => n.metadata?.name), ["default", "kube-node-lease", "kube-public", "kube-system", "shop"]);
    const shop = await core.readNamespace({ name: "shop" });
    assert.deepEqual(shop.metadata?.labels, { team: "a", "kubernetes.io/metadata.name": "shop" });
    assert.equal(shop.status?.phase, "Active");
  });

  it("creates pods with generateName, a uid, a creation time and phase Pending, ignoring client-set system fields", async () => {
    const pod = await core.createNamespacedPod({
      namespace: "shop",
      body: { metadata: { generateName: "web-", uid: "client-chosen" }, spec: { containers: [container] }, status: { phase: "Running" } },
    });
    assert.match(pod.metadata!.name!, /^web-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    assert.match(pod.metadata!.uid!, /^[0-9a-f-]{36}$/);
    assert.ok(pod.metadata!.creationTimestamp instanceof Date);
    assert.match(pod.metadata!.resourceVersion!, /^\d+$/);
    assert.equal(pod.status?.phase, "Pending");
    assert.equal(pod.kind, "Pod");
  });

  it("answers a missing object with the real server's 404 Status", async () => {
    const status = await rejectionStatus(core.readNamespacedPod({ namespace: "shop", name: "nope" }));
    assert.deepEqual(status, {
      kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure",
      message: 'pods "nope" not found', reason: "NotFound", details: { name: "nope", kind: "pods" }, code: 404,
    });
  });

  it("refuses a pod in a namespace that does not exist", async () => {
    const status = await rejectionStatus(core.createNamespacedPod({ namespace: "ghost", body: { metadata: { name: "p" }, spec: { containers: [container] } } }));
    assert.equal(status.code, 404);
    assert.equal(status.message, 'namespaces "ghost" not found');
  });

  it("answers a second create of the same name with 409 AlreadyExists", async () => {
    await core.createNamespacedConfigMap({ namespace: "shop", body: { metadata: { name: "dup" } } });
    const status = await rejectionStatus(core.createNamespacedConfigMap({ namespace: "shop", body: { metadata: { name: "dup" } } }));
    assert.equal(status.code, 409);
    assert.equal(status.reason, "AlreadyExists");
    assert.equal(status.message, 'configmaps "dup" already exists');
  });

  it("validates pods and names with 422 Invalid and field causes", async () => {
    const noContainers = await rejectionStatus(core.createNamespacedPod({ namespace: "shop", body: { metadata: { name: "empty" }, spec: { containers: [] } } }));
    assert.equal(noContainers.code, 422);
    assert.equal(noContainers.reason, "Invalid");
    assert.equal(noContainers.message, 'Pod "empty" is invalid: spec.containers: Required value');
    assert.deepEqual(noContainers.details?.causes, [{ reason: "FieldValueRequired", message: "Required value", field: "spec.containers" }]);
    const badName = await rejectionStatus(core.createNamespacedConfigMap({ namespace: "shop", body: { metadata: { name: "Bad_Name" } } }));
    assert.equal(badName.code, 422);
    assert.equal(badName.details?.causes?.[0]?.field, "metadata.name");
  });

  it("enforces optimistic concurrency on PUT: stale resourceVersion → 409 Conflict, none → unconditional", async () => {
    const created = await core.createNamespacedConfigMap({ namespace: "shop", body: { metadata: { name: "occ" }, data: { a: "1" } } });
    const first = await core.replaceNamespacedConfigMap({ namespace: "shop", name: "occ", body: { ...created, data: { a: "2" } } });
    assert.ok(Number(first.metadata!.resourceVersion) > Number(created.metadata!.resourceVersion));
    const stale = await rejectionStatus(core.replaceNamespacedConfigMap({ namespace: "shop", name: "occ", body: { ...created, data: { a: "3" } } }));
    assert.equal(stale.code, 409);
    assert.equal(stale.reason, "Conflict");
    assert.equal(stale.message, 'Operation cannot be fulfilled on configmaps "occ": the object has been modified; please apply your changes to the latest version and try again');
    const blind = await core.replaceNamespacedConfigMap({ namespace: "shop", name: "occ", body: { metadata: { name: "occ" }, data: { a: "4" } } });
    assert.deepEqual(blind.data, { a: "4" });
    assert.equal(blind.metadata!.uid, created.metadata!.uid);
  });

  it("keeps the resourceVersion on an update that changes nothing", async () => {
    const cm = await core.createNamespacedConfigMap({ namespace: "shop", body: { metadata: { name: "same" }, data: { a: "1" } } });
    const again = await core.replaceNamespacedConfigMap({ namespace: "shop", name: "same", body: cm });
    assert.equal(again.metadata!.resourceVersion, cm.metadata!.resourceVersion);
  });

  it("refuses a PUT to a missing object with 404 and a name that differs from the URL with 400", async () => {
    assert.equal((await rejectionStatus(core.replaceNamespacedConfigMap({ namespace: "shop", name: "ghost", body: { metadata: { name: "ghost" } } }))).code, 404);
    const status = await rejectionStatus(core.replaceNamespacedConfigMap({ namespace: "shop", name: "same", body: { metadata: { name: "other" } } }));
    assert.equal(status.code, 400);
    assert.match(status.message!, /does not match the name on the URL/);
  });

  it("keeps pod status out of PUT and refuses spec changes other than images with 422", async () => {
    const pod = await core.createNamespacedPod({ namespace: "shop", body: { metadata: { name: "immutable" }, spec: { containers: [container] } } });
    const relabelled = await core.replaceNamespacedPod({
      namespace: "shop", name: "immutable",
      body: { ...pod, metadata: { ...pod.metadata, labels: { v: "2" } }, status: { phase: "Running" } },
    });
    assert.deepEqual(relabelled.metadata?.labels, { v: "2" });
    assert.equal(relabelled.status?.phase, "Pending");
    const moved = await rejectionStatus(core.replaceNamespacedPod({
      namespace: "shop", name: "immutable", body: { ...relabelled, spec: { ...relabelled.spec!, nodeName: "node-x" } },
    }));
    assert.equal(moved.code, 422);
    assert.match(moved.message!, /pod updates may not change fields/);
    const newImage = await core.replaceNamespacedPod({
      namespace: "shop", name: "immutable", body: { ...relabelled, spec: { containers: [{ ...container, image: "registry.local/app:2" }] } },
    });
    assert.equal(newImage.spec?.containers[0]?.image, "registry.local/app:2");
  });

  it("patches with merge patch, JSON patch (client-node's default) and list-free strategic merge", async () => {
    await core.createNamespacedConfigMap({ namespace: "shop", body: { metadata: { name: "patched" }, data: { a: "1", b: "2" } } });
    const merged = await core.patchNamespacedConfigMap({ namespace: "shop", name: "patched", body: { data: { b: null, c: "3" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    assert.deepEqual(merged.data, { a: "1", c: "3" });
    const jsonPatched = await core.patchNamespacedConfigMap({ namespace: "shop", name: "patched", body: [{ op: "replace", path: "/data/a", value: "9" }] });
    assert.deepEqual(jsonPatched.data, { a: "9", c: "3" });
    const strategic = await core.patchNamespacedConfigMap({ namespace: "shop", name: "patched", body: { metadata: { labels: { s: "1" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch));
    assert.deepEqual(strategic.metadata?.labels, { s: "1" });
  });

  it("answers patches that fail with 422, 415, 409 and 404", async () => {
    await core.createNamespacedConfigMap({ namespace: "shop", body: { metadata: { name: "patch-errors" }, data: { a: "1" } } });
    const failedTest = await rejectionStatus(core.patchNamespacedConfigMap({ namespace: "shop", name: "patch-errors", body: [{ op: "test", path: "/data/a", value: "2" }] }));
    assert.equal(failedTest.code, 422);
    const pod = await core.createNamespacedPod({ namespace: "shop", body: { metadata: { name: "smp" }, spec: { containers: [container] } } });
    const withList = await rejectionStatus(core.patchNamespacedPod({ namespace: "shop", name: "smp", body: { spec: { containers: [{ name: "app", image: "x" }] } } },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch)));
    assert.equal(withList.code, 415);
    const pinned = await rejectionStatus(core.patchNamespacedPod({
      namespace: "shop", name: "smp", body: { metadata: { resourceVersion: "1", labels: { x: "y" } } },
    }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch)));
    assert.equal(pinned.reason, "Conflict");
    assert.ok(pod.metadata?.resourceVersion !== "1");
    const missing = await rejectionStatus(core.patchNamespacedConfigMap({ namespace: "shop", name: "ghost", body: { data: {} } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch)));
    assert.equal(missing.code, 404);
  });

  it("lists with label and field selectors, across namespaces (in etcd key order) and within one", async () => {
    await core.createNamespace({ body: { metadata: { name: "lista" } } });
    await core.createNamespace({ body: { metadata: { name: "listb" } } });
    const make = (namespace: string, name: string, labels: Record<string, string>, nodeName?: string) =>
      core.createNamespacedPod({ namespace, body: { metadata: { name, labels }, spec: { containers: [container], ...(nodeName ? { nodeName } : {}) } } });
    await make("lista", "a1", { app: "a", "meshlane.io/status": "accelerated" }, "node-a");
    await make("lista", "a2", { app: "a" }, "node-b");
    await make("listb", "b1", { app: "b", "meshlane.io/status": "accelerated" }, "node-a");
    const names = (list: { items: Array<{ metadata?: { name?: string } }> }) => list.items.map((p) => p.metadata?.name);

    assert.deepEqual(names(await core.listNamespacedPod({ namespace: "lista" })), ["a1", "a2"]);
    assert.deepEqual(names(await core.listPodForAllNamespaces({ labelSelector: "meshlane.io/status=accelerated" })), ["a1", "b1"]);
    assert.deepEqual(names(await core.listPodForAllNamespaces({ labelSelector: "app in (a,b),!meshlane.io/status" })), ["a2"]);
    assert.deepEqual(names(await core.listPodForAllNamespaces({ fieldSelector: "spec.nodeName=node-a" })), ["a1", "b1"]);
    assert.deepEqual(names(await core.listNamespacedPod({ namespace: "lista", fieldSelector: "metadata.name!=a1,spec.nodeName!=node-a" })), ["a2"]);
    const list = await core.listNamespacedPod({ namespace: "lista" });
    assert.match(list.metadata!.resourceVersion!, /^\d+$/);
    assert.equal(list.kind, "PodList");
    const bad = await rejectionStatus(core.listPodForAllNamespaces({ fieldSelector: "spec.hostname=x" }));
    assert.equal(bad.code, 400);
    assert.equal(bad.message, "field label not supported: spec.hostname");
  });

  it("answers DELETE with a Status for config maps and with the object for pods; preconditions give 409", async () => {
    const cm = await core.createNamespacedConfigMap({ namespace: "shop", body: { metadata: { name: "doomed" } } });
    const wrongUid = await rejectionStatus(core.deleteNamespacedConfigMap({ namespace: "shop", name: "doomed", body: { preconditions: { uid: "other" } } }));
    assert.equal(wrongUid.code, 409);
    const status = await core.deleteNamespacedConfigMap({ namespace: "shop", name: "doomed" });
    assert.equal(status.status, "Success");
    assert.deepEqual({ ...status.details }, { name: "doomed", kind: "configmaps", uid: cm.metadata!.uid });
    assert.equal((await rejectionStatus(core.deleteNamespacedConfigMap({ namespace: "shop", name: "doomed" }))).code, 404);
    await core.createNamespacedPod({ namespace: "shop", body: { metadata: { name: "gone" }, spec: { containers: [container] } } });
    const deletedPod = await core.deleteNamespacedPod({ namespace: "shop", name: "gone" });
    assert.equal(deletedPod.metadata?.name, "gone");
  });

  it("deletes a namespace with everything in it", async () => {
    await core.createNamespace({ body: { metadata: { name: "temp" } } });
    await core.createNamespacedConfigMap({ namespace: "temp", body: { metadata: { name: "cm" } } });
    await core.createNamespacedPod({ namespace: "temp", body: { metadata: { name: "p" }, spec: { containers: [container] } } });
    await core.deleteNamespace({ name: "temp" });
    assert.equal((await core.listNamespacedConfigMap({ namespace: "temp" })).items.length, 0);
    assert.equal((await core.listNamespacedPod({ namespace: "temp" })).items.length, 0);
    assert.equal((await rejectionStatus(core.readNamespace({ name: "temp" }))).code, 404);
  });

  it("stores secrets with stringData folded into base64 data and an immutable type", async () => {
    const secret = await core.createNamespacedSecret({ namespace: "shop", body: { metadata: { name: "tls" }, stringData: { "ca.crt": "PEM" } } });
    assert.equal(secret.type, "Opaque");
    assert.deepEqual(secret.data, { "ca.crt": Buffer.from("PEM").toString("base64") });
    assert.equal(secret.stringData, undefined);
    const retyped = await rejectionStatus(core.replaceNamespacedSecret({ namespace: "shop", name: "tls", body: { ...secret, type: "kubernetes.io/tls" } }));
    assert.equal(retyped.code, 422);
  });

  it("stores leases with coordination.k8s.io/v1 error names", async () => {
    const leases = server.kubeConfig.makeApiClient(CoordinationV1Api);
    const lease = await leases.createNamespacedLease({ namespace: "shop", body: { metadata: { name: "registrar" }, spec: { holderIdentity: "a", leaseDurationSeconds: 15 } } });
    const renewed = await leases.replaceNamespacedLease({ namespace: "shop", name: "registrar", body: { ...lease, spec: { ...lease.spec, holderIdentity: "b" } } });
    assert.equal(renewed.spec?.holderIdentity, "b");
    const stale = await rejectionStatus(leases.replaceNamespacedLease({ namespace: "shop", name: "registrar", body: lease }));
    assert.equal(stale.message, 'Operation cannot be fulfilled on leases.coordination.k8s.io "registrar": the object has been modified; please apply your changes to the latest version and try again');
    assert.deepEqual(stale.details, { name: "registrar", group: "coordination.k8s.io", kind: "leases" });
  });

  it("defaults and validates mutating webhook configurations like the v1 API", async () => {
    const admission = server.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    const created = await admission.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: "meshlane" },
        webhooks: [{
          name: "pods.meshlane.io", sideEffects: "None", admissionReviewVersions: ["v1"],
          clientConfig: { service: { namespace: "meshlane-system", name: "meshlane-webhook", path: "/mutate" } },
          rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] }],
        }],
      },
    });
    const hook = created.webhooks![0]!;
    assert.deepEqual(
      [hook.failurePolicy, hook.matchPolicy, hook.reinvocationPolicy, hook.timeoutSeconds, hook.clientConfig.service?.port, hook.rules?.[0]?.scope],
      ["Fail", "Equivalent", "Never", 10, 443, "*"]);
    const invalid = await rejectionStatus(admission.createMutatingWebhookConfiguration({
      body: { metadata: { name: "broken" }, webhooks: [{ name: "short.io", admissionReviewVersions: ["v1"], clientConfig: { url: "http://x" }, sideEffects: "Some" }] },
    }));
    assert.equal(invalid.code, 422);
    assert.deepEqual(invalid.details?.causes?.map((c) => c.field), ["webhooks[0].name", "webhooks[0].sideEffects", "webhooks[0].clientConfig.url"]);
  });

  it("serves discovery, so KubernetesObjectApi maps kinds to URLs", async () => {
    const objects = server.kubeConfig.makeApiClient(KubernetesObjectApi);
    const created = await objects.create<V1ConfigMap>({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "generic", namespace: "shop" }, data: { k: "v" } });
    assert.equal(created.metadata?.uid !== undefined, true);
    const lease = await objects.create({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: "generic", namespace: "shop" } });
    assert.equal(lease.kind, "Lease");
    const read = await objects.read<V1ConfigMap>({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "generic", namespace: "shop" } });
    assert.deepEqual(read.data, { k: "v" });
  });

  it("exports a kubeconfig that another process can load", async () => {
    const loaded = new KubeConfig();
    loaded.loadFromString(server.kubeConfig.exportConfig());
    const names = (await loaded.makeApiClient(CoreV1Api).listNamespace()).items.map((n) => n.metadata?.name);
    assert.ok(names.includes("shop"));
  });

  it("answers unknown paths and verbs as the real server does", async () => {
    const headers = { Authorization: "Bearer x" };
    const { default: https } = await import("node:https");
    const get = (path: string, method = "GET") => new Promise<{ code: number; body: { reason?: string; code?: number } }>((resolve, reject) => {
      const cluster = server.kubeConfig.getCurrentCluster()!;
      const req = https.request(`${server.url}${path}`, { method, headers, ca: Buffer.from(cluster.caData!, "base64") }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c));
        res.on("end", () => resolve({ code: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on("error", reject);
      req.end();
    });
    assert.deepEqual(await get("/api/v1/services"), { code: 404, body: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: "the server could not find the requested resource", reason: "NotFound", details: {}, code: 404 } });
    assert.equal((await get("/api/v1/namespaces/shop/configmaps", "DELETE")).body.reason, "MethodNotAllowed");
    assert.equal((await get("/apis/coordination.k8s.io/v1")).code, 200);
  });
});

describe("the stand-in over plain HTTP", () => {
  it("works with a skipTLSVerify KubeConfig", async () => {
    const server = await start({ tls: false, namespaces: ["only"] });
    try {
      assert.match(server.url, /^http:\/\//);
      const core = server.kubeConfig.makeApiClient(CoreV1Api);
      assert.deepEqual((await core.listNamespace()).items.map((n) => n.metadata?.name), ["only"]);
    } finally {
      await server.stop();
    }
  });
});
