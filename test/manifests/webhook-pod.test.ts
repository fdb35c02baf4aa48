// The webhook Deployment's container, run as the manifest says: the image's entrypoint
// with the Deployment's args, as uid 65532 without a capability on a read-only root
// filesystem, against the stand-in API server holding the manifest's own Namespace,
// Secret and MutatingWebhookConfiguration, through a proxy that records every request
// for the RBAC check. The API server's admission chain then uses the manifest's
// selectors, Service port and path to reach it, as a cluster would.

import assert from "node:assert/strict";
import { type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { AdmissionregistrationV1Api, CoreV1Api, type V1MutatingWebhookConfiguration, type V1Namespace, type V1Pod, type V1Secret } from "@kubernetes/client-node";
import { SERVICE_DNS_NAMES } from "../../certs/authority.js";
import {
  ANNOTATION_STATUS,
  NAMESPACE_LABEL,
  NAMESPACE_LABEL_VALUE,
  POD_OPT_OUT_KEY,
  STATUS_ACCELERATED,
  SYSTEM_NAMESPACE,
} from "../../registry/names.js";
import { until } from "../../lab/until.js";
import { listRegistrations } from "../../registry/configmap.js";
import { istioInjectorFromFixture, start, type StandIn } from "../kube/apiserver/index.js";
import { execForm, lineage, parseDockerfile } from "./dockerfile.js";
import { find, loadManifest } from "./manifest.js";
import { PodSandbox, RUN_ID } from "./pod-sandbox.js";
import { allowedBy, grantsFor } from "./rbac.js";
import { startRecordingProxy, type RecordingProxy } from "./recording-proxy.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ISTIO_FIXTURE = join(ROOT, "..", "shared", "fixtures", "istio", "pod.yaml.injected");
const objects = loadManifest();
const podSpec = find(objects, "Deployment", "meshlane-webhook").spec!.template.spec!;
const container = podSpec.containers[0]!;
const service = find(objects, "Service", "meshlane-webhook");
const mwcName = find(objects, "MutatingWebhookConfiguration", "meshlane-webhook").metadata!.name!;
const servingPort = container.ports!.find((p) => p.name === service.spec!.ports![0]!.targetPort)!.containerPort;
const entrypoint = execForm(lineage(parseDockerfile(join(ROOT, "Dockerfile")), "webhook"), "ENTRYPOINT")!;

/** Status of an HTTPS GET to the container port; 0 when it cannot connect. With a CA, the server is verified as the API server verifies it. */
function probe(path: string, caPem?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get(
      { host: "127.0.0.1", port: servingPort, path, ...(caPem ? { ca: caPem, servername: SERVICE_DNS_NAMES[0] } : { rejectUnauthorized: false }) },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", () => resolve(0));
  });
}

describe("webhook Deployment pod, run as the manifest says", { timeout: 120_000 }, () => {
  let api: StandIn;
  let proxy: RecordingProxy;
  let core: CoreV1Api;
  let admission: AdmissionregistrationV1Api;
  let sandbox: PodSandbox;
  let work: string;
  let webhook: ChildProcess;
  let output = "";

  const createPod = (namespace: string, name: string, labels: Record<string, string> = {}): Promise<V1Pod> =>
    core.createNamespacedPod({ namespace, body: { metadata: { name, labels: { app: name, ...labels } }, spec: { containers: [{ name: "app", image: "registry.local/app:1" }] } } });

  before(async () => {
    api = await start({ tls: false, mutators: [istioInjectorFromFixture(ISTIO_FIXTURE)] });
    proxy = await startRecordingProxy(api.url);
    core = api.kubeConfig.makeApiClient(CoreV1Api);
    admission = api.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    // What `kubectl apply -f manifests/all-in-one.yaml` creates of the kinds the stand-in serves.
    await core.createNamespace({ body: find(objects, "Namespace", SYSTEM_NAMESPACE) as V1Namespace });
    await core.createNamespacedSecret({ namespace: SYSTEM_NAMESPACE, body: find(objects, "Secret", "meshlane-webhook-certs") as V1Secret });
    await admission.createMutatingWebhookConfiguration({ body: find(objects, "MutatingWebhookConfiguration", mwcName) as V1MutatingWebhookConfiguration });
    api.registerService(SYSTEM_NAMESPACE, service.metadata!.name!, { host: "127.0.0.1", port: servingPort }, service.spec!.ports![0]!.port);

    work = mkdtempSync(join(tmpdir(), `${RUN_ID}-webhook-pod-`));
    chmodSync(work, 0o755); // the container's user reads its KUBECONFIG here
    writeFileSync(join(work, "kubeconfig"), proxy.kubeConfigText, { mode: 0o644 });
    sandbox = await PodSandbox.start({
      containers: [container],
      volumes: podSpec.volumes ?? [],
      podSecurityContext: podSpec.securityContext!,
      hostPaths: {},
      commands: { "meshlane-webhook": [process.execPath, join(ROOT, "dist/webhook/cli.js")] },
      fieldRefs: {},
      env: { KUBECONFIG: join(work, "kubeconfig") },
    });
    webhook = sandbox.spawn(container, [...entrypoint, ...container.args!]);
    webhook.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    webhook.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  });

  after(async () => {
    if (webhook && webhook.exitCode === null && webhook.signalCode === null) webhook.kill("SIGKILL");
    await sandbox?.stop();
    await proxy?.close();
    await api?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(`becomes ready on ${container.readinessProbe!.httpGet!.path} and live on ${container.livenessProbe!.httpGet!.path}`, async () => {
    await until(`readiness answers 200 (webhook output: ${output.slice(-2000)})`, async () => (await probe(container.readinessProbe!.httpGet!.path!)) === 200, 30_000, 200);
    assert.equal(await probe(container.livenessProbe!.httpGet!.path!), 200);
  });

  it("fills the manifest's Secret and writes its CA into the manifest's webhook configuration; the Service name verifies", async () => {
    const secret = await core.readNamespacedSecret({ namespace: SYSTEM_NAMESPACE, name: "meshlane-webhook-certs" });
    const caPem = Buffer.from(secret.data!["ca.crt"]!, "base64").toString();
    assert.match(caPem, /BEGIN CERTIFICATE/);
    await until("caBundle is set", async () => {
      const mwc = await admission.readMutatingWebhookConfiguration({ name: mwcName });
      return mwc.webhooks![0]!.clientConfig.caBundle === Buffer.from(caPem).toString("base64");
    }, 20_000, 100);
    assert.equal(await probe(container.readinessProbe!.httpGet!.path!, caPem), 200);
  });

  it("marks an Istio pod of a labelled namespace, through the manifest's selectors, Service and path", async () => {
    await core.createNamespace({ body: { metadata: { name: "shop", labels: { "istio-injection": "enabled", [NAMESPACE_LABEL]: NAMESPACE_LABEL_VALUE } } } });
    const pod = await createPod("shop", "web-1");
    assert.ok(pod.spec!.containers.some((c) => c.name === "istio-proxy"), "Istio's injector ran");
    assert.equal(pod.metadata!.annotations![ANNOTATION_STATUS], STATUS_ACCELERATED, JSON.stringify(pod.metadata!.annotations));
  });

  it("never sees opted-out pods, unlabelled namespaces or kube-system", async () => {
    const optedOut = await createPod("shop", "web-2", { [POD_OPT_OUT_KEY]: "false" });
    await core.createNamespace({ body: { metadata: { name: "plain", labels: { "istio-injection": "enabled" } } } });
    const plain = await createPod("plain", "web-3");
    await core.patchNamespace({ name: "kube-system", body: [{ op: "add", path: "/metadata/labels", value: { "istio-injection": "enabled", [NAMESPACE_LABEL]: NAMESPACE_LABEL_VALUE } }] });
    const system = await createPod("kube-system", "web-4");
    for (const pod of [optedOut, plain, system]) {
      assert.ok(pod.spec!.containers.some((c) => c.name === "istio-proxy"), `${pod.metadata!.name}: Istio's injector ran`);
      assert.equal(pod.metadata!.annotations?.[ANNOTATION_STATUS], undefined, `${pod.metadata!.namespace}/${pod.metadata!.name} reached meshlane`);
    }
  });

  it("the registrar registers the running pod on its node", async () => {
    const pod = await api.kubelet("node-a").run("shop", "web-1", ["10.244.1.5"]);
    await until("node-a's registry holds the pod", async () => {
      const registered = await listRegistrations(core, "node-a").catch(() => []);
      return registered.some((r) => r.uid === pod.metadata!.uid);
    }, 20_000, 100);
  });

  it("stops cleanly on SIGTERM", async () => {
    const exited = new Promise<number | null>((resolve) => webhook.once("exit", (code) => resolve(code)));
    webhook.kill("SIGTERM");
    assert.equal(await exited, 0, output.slice(-2000));
  });

  it("every request the webhook made is granted to its service account, and it used every grant", () => {
    const grants = grantsFor(objects, { namespace: SYSTEM_NAMESPACE, name: podSpec.serviceAccountName! });
    for (const request of proxy.requests) assert.ok(allowedBy(grants, request), `not granted: ${JSON.stringify(request)}`);
    // Discovery paths, which every authenticated client may read.
    for (const path of proxy.nonResource) assert.match(path, /^\/(api|apis|version|openapi)(\/|$)/);
    const used = new Set(proxy.requests.map((r) => `${r.resource} ${r.verb}`));
    for (const g of grants) for (const resource of g.rule.resources!) for (const verb of g.rule.verbs) assert.ok(used.has(`${resource} ${verb}`), `${resource} ${verb} is granted but never used`);
  });
});
