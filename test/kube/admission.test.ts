import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { after, before, describe, it, type TestContext } from "node:test";
import { AdmissionregistrationV1Api, CoreV1Api, type V1MutatingWebhook, type V1Pod } from "@kubernetes/client-node";
import type { AdmissionRequest } from "./apiserver/admission.js";
import { createTestCa, start, type StandIn } from "./apiserver/index.js";
import { istioInjectorFromFixture } from "./apiserver/istio-injector.js";
import { rejectionStatus } from "./client-errors.js";
import { annotate, patchResponse, TestWebhookServer } from "./webhook-server.js";
import { closedPort } from "../../lab/ports.js";

const INJECTED_POD_FIXTURE = fileURLToPath(new URL("../../../shared/fixtures/istio/pod.yaml.injected", import.meta.url));
const SERVICE_DNS_NAME = "meshlane-webhook.meshlane-system.svc";
const podCreate = [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] }];
const container = { name: "app", image: "registry.local/app:1" };

function hasProxy(request: AdmissionRequest): boolean {
  const spec = request.object.spec as { containers: Array<{ name: string }> };
  return spec.containers.some((c) => c.name === "istio-proxy");
}

describe("mutating admission on pod CREATE", () => {
  const ca = createTestCa();
  const caBundle = Buffer.from(ca.certPem).toString("base64");
  let server: StandIn;
  let core: CoreV1Api;
  let admission: AdmissionregistrationV1Api;
  let webhook: TestWebhookServer;

  const hook = (name: string, path: string, extra: Partial<V1MutatingWebhook> = {}): V1MutatingWebhook => ({
    name, sideEffects: "None", admissionReviewVersions: ["v1"], rules: podCreate,
    clientConfig: { url: `https://127.0.0.1:${webhook.port}${path}`, caBundle }, ...extra,
  });

  /** Installs a MutatingWebhookConfiguration for the duration of one test. */
  async function configure(t: TestContext, name: string, webhooks: V1MutatingWebhook[]): Promise<void> {
    await admission.createMutatingWebhookConfiguration({ body: { metadata: { name }, webhooks } });
    t.after(() => admission.deleteMutatingWebhookConfiguration({ name }));
  }

  const createPod = (namespace: string, body: V1Pod, dryRun?: string) =>
    core.createNamespacedPod({ namespace, body: { ...body, spec: body.spec ?? { containers: [container] } }, ...(dryRun ? { dryRun } : {}) });

  before(async () => {
    webhook = await TestWebhookServer.start(ca, [SERVICE_DNS_NAME]);
    server = await start({ tls: false, mutators: [istioInjectorFromFixture(INJECTED_POD_FIXTURE)] });
    core = server.kubeConfig.makeApiClient(CoreV1Api);
    admission = server.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    await core.createNamespace({ body: { metadata: { name: "plain" } } });
    await core.createNamespace({ body: { metadata: { name: "accel", labels: { "meshlane.io/accelerate": "enabled" } } } });
    await core.createNamespace({ body: { metadata: { name: "mesh", labels: { "meshlane.io/accelerate": "enabled", "istio-injection": "enabled" } } } });
  });
  after(async () => {
    await server.stop();
    await webhook.stop();
  });

  it("sends an admission.k8s.io/v1 AdmissionReview to a url webhook and applies its JSON patch", async (t) => {
    webhook.handle("/review", (request) => patchResponse([annotate(request, "seen/by", "review")]));
    await configure(t, "review", [hook("review.test.meshlane.io", "/review")]);
    const pod = await createPod("plain", { metadata: { generateName: "web-", labels: { app: "web" } } });
    assert.equal(pod.metadata?.annotations?.["seen/by"], "review");

    const [received] = webhook.received.filter((r) => r.path === "/review");
    assert.ok(received);
    assert.equal(received.search, "?timeout=10s");
    assert.equal(received.review.apiVersion, "admission.k8s.io/v1");
    assert.equal(received.review.kind, "AdmissionReview");
    const request = received.review.request;
    assert.match(request.uid, /^[0-9a-f-]{36}$/);
    assert.deepEqual(request.kind, { group: "", version: "v1", kind: "Pod" });
    assert.deepEqual(request.resource, { group: "", version: "v1", resource: "pods" });
    assert.equal(request.namespace, "plain");
    assert.equal(request.name, undefined, "a generateName pod has no name during admission");
    assert.equal(request.operation, "CREATE");
    assert.equal(request.userInfo.username, "kubernetes-admin");
    assert.equal(request.object.metadata.generateName, "web-");
    assert.equal(request.object.metadata.uid, undefined, "uid is assigned after admission");
    assert.equal(request.oldObject, null);
    assert.equal(request.dryRun, false);
    assert.deepEqual(request.options, { kind: "CreateOptions", apiVersion: "meta.k8s.io/v1" });
  });

  it("calls a service webhook at its registered address with the service DNS name as TLS server name", async (t) => {
    webhook.handle("/svc", (request) => patchResponse([annotate(request, "seen/by", "service")]));
    server.registerService("meshlane-system", "meshlane-webhook", { host: "127.0.0.1", port: webhook.port });
    await configure(t, "service", [hook("service.test.meshlane.io", "/svc", {
      clientConfig: { service: { namespace: "meshlane-system", name: "meshlane-webhook", path: "/svc" }, caBundle },
    })]);
    const pod = await createPod("plain", { metadata: { name: "via-service" } });
    assert.equal(pod.metadata?.annotations?.["seen/by"], "service");
    assert.equal(webhook.received.find((r) => r.path === "/svc")?.servername, SERVICE_DNS_NAME);
  });

  it("rejects the create with 500 InternalError when a Fail webhook's certificate is not from its caBundle", async (t) => {
    const otherCa = createTestCa("some other CA");
    await configure(t, "wrong-ca", [hook("wrong-ca.test.meshlane.io", "/review", {
      clientConfig: { url: `https://127.0.0.1:${webhook.port}/review`, caBundle: Buffer.from(otherCa.certPem).toString("base64") },
    })]);
    const status = await rejectionStatus(createPod("plain", { metadata: { name: "untrusted" } }));
    assert.equal(status.code, 500);
    assert.equal(status.reason, "InternalError");
    assert.match(status.message!, /^Internal error occurred: failed calling webhook "wrong-ca\.test\.meshlane\.io": failed to call webhook: Post "https:\/\/127\.0\.0\.1:\d+\/review\?timeout=10s": .*certificate/);
    assert.equal((await rejectionStatus(core.readNamespacedPod({ namespace: "plain", name: "untrusted" }))).code, 404, "nothing was stored");
  });

  it("creates the pod unmutated when an Ignore webhook is down, and fails it when the webhook is Fail", async (t) => {
    const url = `https://127.0.0.1:${await closedPort()}/down`;
    await configure(t, "down", [hook("down.test.meshlane.io", "/down", { failurePolicy: "Ignore", clientConfig: { url, caBundle } })]);
    const pod = await createPod("plain", { metadata: { name: "despite-down" } });
    assert.equal(pod.metadata?.annotations, undefined);
    await admission.patchMutatingWebhookConfiguration({ name: "down", body: [{ op: "replace", path: "/webhooks/0/failurePolicy", value: "Fail" }] });
    const status = await rejectionStatus(createPod("plain", { metadata: { name: "refused" } }));
    assert.equal(status.code, 500);
    assert.match(status.message!, /failed calling webhook "down\.test\.meshlane\.io".*ECONNREFUSED/);
  });

  it("honours timeoutSeconds: a slow Ignore webhook is skipped, a slow Fail webhook fails the create", async (t) => {
    webhook.handle("/slow", async (request) => {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return patchResponse([annotate(request, "seen/by", "slow")]);
    });
    await configure(t, "slow", [hook("slow.test.meshlane.io", "/slow", { timeoutSeconds: 1, failurePolicy: "Ignore" })]);
    const pod = await createPod("plain", { metadata: { name: "not-waited-for" } });
    assert.equal(pod.metadata?.annotations, undefined, "the answer that came after the timeout was not used");
    assert.equal(webhook.received.find((r) => r.path === "/slow")?.search, "?timeout=1s");

    await admission.patchMutatingWebhookConfiguration({ name: "slow", body: [{ op: "replace", path: "/webhooks/0/failurePolicy", value: "Fail" }] });
    const status = await rejectionStatus(createPod("plain", { metadata: { name: "timed-out" } }));
    assert.match(status.message!, /failed calling webhook "slow\.test\.meshlane\.io": .*context deadline exceeded/);
  });

  it("returns a webhook's denial with its code and message", async (t) => {
    webhook.handle("/deny", () => ({ allowed: false, status: { code: 403, reason: "Forbidden", message: "no pods on Fridays" } }));
    await configure(t, "deny", [hook("deny.test.meshlane.io", "/deny", { failurePolicy: "Ignore" })]);
    const status = await rejectionStatus(createPod("plain", { metadata: { name: "denied" } }));
    assert.equal(status.code, 403);
    assert.equal(status.reason, "Forbidden");
    assert.equal(status.message, 'admission webhook "deny.test.meshlane.io" denied the request: no pods on Fridays');
  });

  it("treats a reply for another request uid as a failed call", async (t) => {
    webhook.handle("/wrong-uid", () => ({ uid: "not-the-request", allowed: true }));
    await configure(t, "wrong-uid", [hook("wrong-uid.test.meshlane.io", "/wrong-uid")]);
    const status = await rejectionStatus(createPod("plain", { metadata: { name: "confused" } }));
    assert.match(status.message!, /received invalid webhook response: expected response\.uid="[0-9a-f-]+", got "not-the-request"/);
  });

  it("calls only webhooks whose namespaceSelector and objectSelector match", async (t) => {
    webhook.handle("/selective", (request) => patchResponse([annotate(request, "seen/by", "selective")]));
    await configure(t, "selective", [hook("selective.test.meshlane.io", "/selective", {
      namespaceSelector: { matchLabels: { "meshlane.io/accelerate": "enabled" } },
      objectSelector: { matchExpressions: [{ key: "meshlane.io/accelerate", operator: "NotIn", values: ["false"] }] },
    })]);
    const inPlain = await createPod("plain", { metadata: { name: "sel-plain" } });
    const inAccel = await createPod("accel", { metadata: { name: "sel-accel" } });
    const optedOut = await createPod("accel", { metadata: { name: "sel-out", labels: { "meshlane.io/accelerate": "false" } } });
    assert.deepEqual([inPlain, inAccel, optedOut].map((p) => p.metadata?.annotations?.["seen/by"]), [undefined, "selective", undefined]);
    assert.deepEqual(webhook.requestsTo("/selective").map((r) => r.object.metadata.name), ["sel-accel"]);
  });

  it("orders webhooks by configuration name and lets each see the earlier patches", async (t) => {
    webhook.handle("/first", (request) => patchResponse([annotate(request, "order", "first")]));
    webhook.handle("/second", (request) =>
      patchResponse([annotate(request, "order", `${request.object.metadata.annotations?.order ?? "none"},second`)]));
    await configure(t, "order-b", [hook("second.test.meshlane.io", "/second")]);
    await configure(t, "order-a", [hook("first.test.meshlane.io", "/first")]);
    const pod = await createPod("plain", { metadata: { name: "ordered" } });
    assert.equal(pod.metadata?.annotations?.order, "first,second");
  });

  it("reinvokes an IfNeeded webhook once when a later one (the Istio injector) changed the pod", async (t) => {
    const reinvocable = "/meshlane-ifneeded";
    webhook.handle(reinvocable, (request) => patchResponse([annotate(request, "meshlane/saw-proxy", String(hasProxy(request)))]));
    // "a-…" sorts before "istio-sidecar-injector", so the first call sees no sidecar yet.
    await configure(t, "a-meshlane", [hook("pods.meshlane.io", reinvocable, {
      reinvocationPolicy: "IfNeeded", namespaceSelector: { matchLabels: { "meshlane.io/accelerate": "enabled" } },
    })]);
    const pod = await createPod("mesh", { metadata: { name: "hello", labels: { app: "hello" } } });
    assert.deepEqual(webhook.requestsTo(reinvocable).map(hasProxy), [false, true]);
    assert.equal(pod.metadata?.annotations?.["meshlane/saw-proxy"], "true");
    assert.ok(pod.spec?.containers.some((c) => c.name === "istio-proxy"));
  });

  it("does not reinvoke a Never webhook, nor an IfNeeded one when nothing changed after it", async (t) => {
    const never = "/meshlane-never", last = "/meshlane-last";
    webhook.handle(never, (request) => patchResponse([annotate(request, "meshlane/saw-proxy", String(hasProxy(request)))]));
    webhook.handle(last, () => ({ allowed: true }));
    await configure(t, "a-meshlane-never", [hook("never.meshlane.io", never, { namespaceSelector: { matchLabels: { "istio-injection": "enabled" } } })]);
    await configure(t, "z-meshlane-last", [hook("last.meshlane.io", last, {
      reinvocationPolicy: "IfNeeded", namespaceSelector: { matchLabels: { "istio-injection": "enabled" } },
    })]);
    const pod = await createPod("mesh", { metadata: { name: "hello-never" } });
    assert.equal(pod.metadata?.annotations?.["meshlane/saw-proxy"], "false");
    assert.equal(webhook.requestsTo(never).length, 1);
    assert.deepEqual(webhook.requestsTo(last).map(hasProxy), [true]);
  });

  it("runs the chain with dryRun: true on a dry-run create and stores nothing", async (t) => {
    webhook.handle("/dry", () => ({ allowed: true }));
    await configure(t, "dry", [hook("dry.test.meshlane.io", "/dry")]);
    const pod = await createPod("plain", { metadata: { name: "dry" } }, "All");
    assert.equal(pod.metadata?.name, "dry");
    assert.equal(webhook.requestsTo("/dry")[0]?.dryRun, true);
    assert.equal((await rejectionStatus(core.readNamespacedPod({ namespace: "plain", name: "dry" }))).code, 404);
  });
});

describe("the Istio injector stand-in", () => {
  let server: StandIn;
  let core: CoreV1Api;

  before(async () => {
    server = await start({ tls: false, namespaces: ["default", "mesh"] });
    server.addMutator(istioInjectorFromFixture(INJECTED_POD_FIXTURE));
    core = server.kubeConfig.makeApiClient(CoreV1Api);
    await core.patchNamespace({ name: "mesh", body: [{ op: "add", path: "/metadata/labels/istio-injection", value: "enabled" }] });
  });
  after(() => server.stop());

  it("turns a plain pod in an istio-injection=enabled namespace into an injected one", async () => {
    const pod = await core.createNamespacedPod({ namespace: "mesh", body: { metadata: { name: "shop", labels: { app: "shop" } }, spec: { containers: [container] } } });
    assert.deepEqual(pod.spec?.initContainers?.map((c) => c.name), ["istio-init"]);
    assert.deepEqual(pod.spec?.containers.map((c) => c.name), ["app", "istio-proxy"]);
    assert.equal(pod.spec?.containers[1]?.securityContext?.runAsUser, 1337);
    const status = JSON.parse(pod.metadata!.annotations!["sidecar.istio.io/status"]!) as { volumes: string[] };
    assert.deepEqual(pod.spec?.volumes?.map((v) => v.name), status.volumes);
    assert.equal(pod.metadata?.annotations?.["kubectl.kubernetes.io/default-container"], "app");
    assert.equal(pod.metadata?.labels?.["service.istio.io/canonical-name"], "shop");
    assert.equal(pod.metadata?.labels?.["security.istio.io/tlsMode"], "istio");
  });

  it("leaves pods alone outside injection namespaces and when they opt out", async () => {
    const elsewhere = await core.createNamespacedPod({ namespace: "default", body: { metadata: { name: "x" }, spec: { containers: [container] } } });
    const optedOut = await core.createNamespacedPod({ namespace: "mesh", body: { metadata: { name: "y", labels: { "sidecar.istio.io/inject": "false" } }, spec: { containers: [container] } } });
    for (const pod of [elsewhere, optedOut]) {
      assert.deepEqual(pod.spec?.containers.map((c) => c.name), ["app"]);
      assert.equal(pod.metadata?.annotations?.["sidecar.istio.io/status"], undefined);
    }
  });
});
