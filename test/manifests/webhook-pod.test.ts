// The webhook Deployment's container, run as the manifest says: the image's entrypoint
// with the Deployment's args (plus --san=127.0.0.1, see below), as uid 65532 without a
// capability on a read-only root filesystem, with its ServiceAccount's own token,
// against a real kube-apiserver with the whole manifest applied. The API server calls
// it through the manifest's selectors and path; its clientConfig is the one field
// changed, to a loopback URL (lab/local-cluster.ts, loopbackClientConfigPatch), which is
// why the certificate must also name 127.0.0.1. The audit log shows what it asked for.

import assert from "node:assert/strict";
import { type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { AdmissionregistrationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from "@kubernetes/client-node";
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
import { ControlPlane, Kubelet, type Identity } from "../../lab/controlplane/index.js";
import { istioInjector, type SidecarInjector } from "../../lab/istio-injector-webhook.js";
import { loopbackClientConfigPatch } from "../../lab/local-cluster.js";
import { execForm, lineage, parseDockerfile } from "./dockerfile.js";
import { find, loadManifest, MANIFEST_PATH } from "./manifest.js";
import { PodSandbox, RUN_ID } from "./pod-sandbox.js";
import { assertGrantsMatchUse, grantsFor } from "./rbac.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
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
  let cp: ControlPlane;
  let injector: SidecarInjector;
  let identity: Identity;
  let core: CoreV1Api;
  let admission: AdmissionregistrationV1Api;
  let sandbox: PodSandbox;
  let work: string;
  let webhook: ChildProcess;
  let output = "";

  const createPod = (namespace: string, name: string, labels: Record<string, string> = {}): Promise<V1Pod> =>
    core.createNamespacedPod({ namespace, body: { metadata: { name, labels: { app: name, ...labels } }, spec: { containers: [{ name: "app", image: "registry.local/app:1" }] } } });

  before(async () => {
    cp = await ControlPlane.start({ audit: true });
    await cp.kubectl(["apply", "-f", MANIFEST_PATH]);
    core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
    admission = cp.admin.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    injector = istioInjector();
    await admission.createMutatingWebhookConfiguration({ body: await injector.start() });
    await admission.patchMutatingWebhookConfiguration({ name: mwcName, body: loopbackClientConfigPatch(servingPort) }, setHeaderOptions("Content-Type", PatchStrategy.JsonPatch));
    identity = await cp.serviceAccount(SYSTEM_NAMESPACE, podSpec.serviceAccountName!);

    work = mkdtempSync(join(tmpdir(), `${RUN_ID}-webhook-pod-`));
    chmodSync(work, 0o755); // the container's user reads its KUBECONFIG here
    writeFileSync(join(work, "kubeconfig"), identity.kubeConfig.exportConfig(), { mode: 0o644 });
    sandbox = await PodSandbox.start({
      containers: [container],
      volumes: podSpec.volumes ?? [],
      podSecurityContext: podSpec.securityContext!,
      hostPaths: {},
      commands: { "meshlane-webhook": [process.execPath, join(ROOT, "dist/webhook/cli.js")] },
      checkout: ROOT.replace(/\/$/, ""),
      fieldRefs: {},
      env: { KUBECONFIG: join(work, "kubeconfig") },
    });
    webhook = sandbox.spawn(container, [...entrypoint, ...container.args!, "--san=127.0.0.1"]);
    webhook.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    webhook.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  });

  after(async () => {
    if (webhook && webhook.exitCode === null && webhook.signalCode === null) webhook.kill("SIGKILL");
    await sandbox?.stop();
    await injector?.stop();
    await cp?.stop();
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

  it("marks an Istio pod of a labelled namespace, called by the API server through the manifest's selectors and path", async () => {
    await cp.createNamespace("shop", { "istio-injection": "enabled", [NAMESPACE_LABEL]: NAMESPACE_LABEL_VALUE });
    // The API server reads webhook configurations from its informer: wait until a dry-run pod is marked.
    const probe = { metadata: { name: "probe" }, spec: { containers: [{ name: "app", image: "registry.local/app:1" }] } };
    await until("the API server calls the webhook", async () => (await core.createNamespacedPod({ namespace: "shop", dryRun: "All", body: probe })).metadata?.annotations?.[ANNOTATION_STATUS] === STATUS_ACCELERATED, 30_000, 250);
    const pod = await createPod("shop", "web-1");
    assert.ok(pod.spec!.containers.some((c) => c.name === "istio-proxy"), "Istio's injector ran");
    assert.equal(pod.metadata!.annotations![ANNOTATION_STATUS], STATUS_ACCELERATED, JSON.stringify(pod.metadata!.annotations));
  });

  it("never sees opted-out pods, unlabelled namespaces or kube-system", async () => {
    const optedOut = await createPod("shop", "web-2", { [POD_OPT_OUT_KEY]: "false" });
    await cp.createNamespace("plain", { "istio-injection": "enabled" });
    // kube-system's default ServiceAccount, which the controller-manager would have made.
    await core.createNamespacedServiceAccount({ namespace: "kube-system", body: { metadata: { name: "default" } } });
    const plain = await createPod("plain", "web-3");
    await cp.kubectl(["label", "namespace", "kube-system", "istio-injection=enabled", `${NAMESPACE_LABEL}=${NAMESPACE_LABEL_VALUE}`]);
    const system = await createPod("kube-system", "web-4");
    for (const pod of [optedOut, plain]) assert.ok(pod.spec!.containers.some((c) => c.name === "istio-proxy"), `${pod.metadata!.name}: Istio's injector ran`);
    // Istio's own injector leaves kube-system alone; meshlane would still have marked the
    // pod (skipped, not-injected) had the API server sent it.
    for (const pod of [optedOut, plain, system]) {
      assert.equal(pod.metadata!.annotations?.[ANNOTATION_STATUS], undefined, `${pod.metadata!.namespace}/${pod.metadata!.name} reached meshlane`);
    }
  });

  it("the registrar registers the running pod on its node, follows a change of its IP, and removes it once the pod is gone", async () => {
    const kubelet = new Kubelet("node-a", { node: cp.node("node-a"), scheduler: cp.admin });
    const pod = await kubelet.run("shop", "web-1", ["10.244.1.5"]);
    const registration = async () => (await listRegistrations(core, "node-a").catch(() => [])).find((r) => r.uid === pod.metadata!.uid);
    await until("node-a's registry holds the pod", async () => (await registration()) !== undefined, 20_000, 100);
    await kubelet.run("shop", "web-1", ["10.244.1.6"]);
    await until("the registration has the new IP", async () => (await registration())?.document?.includes("10.244.1.6") === true, 20_000, 100);
    await core.deleteNamespacedPod({ namespace: "shop", name: "web-1" });
    await kubelet.confirmDeletion("shop", "web-1");
    await until("the registration is gone", async () => (await registration()) === undefined, 20_000, 100);
  });

  it("stops cleanly on SIGTERM", async () => {
    const exited = new Promise<number | null>((resolve) => webhook.once("exit", (code) => resolve(code)));
    webhook.kill("SIGTERM");
    assert.equal(await exited, 0, output.slice(-2000));
  });

  it("every request the webhook made was granted to its service account, and it used every grant", () => {
    assertGrantsMatchUse(grantsFor(objects, { namespace: SYSTEM_NAMESPACE, name: podSpec.serviceAccountName! }), cp.auditEvents(identity.user), "the webhook");
  });
});
