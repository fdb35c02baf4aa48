// The certs code against a real kube-apiserver through @kubernetes/client-node:
// caBundle patching (the API server applies the JSON patch and its `test` ops), the
// Secret store (real resourceVersion conflicts), and the webhook started as the
// manifest runs it, with its own ServiceAccount's token and the manifest's RBAC.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { request } from "node:https";
import type { TLSSocket } from "node:tls";
import { AdmissionregistrationV1Api, CoreV1Api, type V1MutatingWebhookConfiguration } from "@kubernetes/client-node";
import pino from "pino";
import { stringify } from "yaml";
import { kubeWebhookConfigurationApi, publishCaBundle } from "../../certs/ca-bundle.js";
import { SecretCertificateStore } from "../../certs/secret-store.js";
import { renew } from "../../certs/renewal.js";
import { StoreConflictError } from "../../certs/store.js";
import { SYSTEM_NAMESPACE } from "../../registry/names.js";
import { parseServeArgs, type ServeOptions } from "../../webhook/options.js";
import { startWebhook } from "../../webhook/service.js";
import { ControlPlane } from "../../lab/controlplane/index.js";
import { find, loadManifest, MANIFEST_PATH } from "../manifests/manifest.js";

const DAY = 86_400_000;
const policy = { caValidityMs: 10 * DAY, servingValidityMs: 2 * DAY, renewBeforeMs: DAY, names: ["localhost"] };
const objects = loadManifest();
const MWC = find(objects, "MutatingWebhookConfiguration", "meshlane-webhook");
const SECRET = find(objects, "Secret", "meshlane-webhook-certs").metadata!.name!;
const WEBHOOK_SA = find(objects, "Deployment", "meshlane-webhook").spec!.template.spec!.serviceAccountName!;

let cp: ControlPlane;
let admission: AdmissionregistrationV1Api;
let core: CoreV1Api;
before(async () => {
  cp = await ControlPlane.start();
  admission = cp.admin.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  core = cp.admin.kubeConfig.makeApiClient(CoreV1Api);
  await cp.kubectl(["apply", "-f", MANIFEST_PATH]);
});
after(() => cp?.stop());

/** A configuration of two webhooks that nobody calls (it matches no namespace). */
function webhookConfig(name: string): V1MutatingWebhookConfiguration {
  const hook = (n: string) => ({
    name: n, clientConfig: { service: { name: "meshlane-webhook", namespace: SYSTEM_NAMESPACE, path: "/mutate" } },
    admissionReviewVersions: ["v1"], sideEffects: "None", failurePolicy: "Ignore",
    namespaceSelector: { matchLabels: { "nobody.example/here": "x" } },
  });
  return { metadata: { name }, webhooks: [hook("pods.meshlane.io"), hook("pods-reinvoked.meshlane.io")] };
}

const caBundleOf = (config: V1MutatingWebhookConfiguration, i: number) => Buffer.from(config.webhooks![i]!.clientConfig.caBundle ?? "", "base64").toString();

test("caBundle: every webhook gets the CA by JSON patch; a second publish writes nothing", async () => {
  await admission.createMutatingWebhookConfiguration({ body: webhookConfig("mwc-a") });
  const api = kubeWebhookConfigurationApi(cp.admin.kubeConfig);
  const pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  assert.equal(await publishCaBundle(api, "mwc-a", pem), "patched");
  const stored = await admission.readMutatingWebhookConfiguration({ name: "mwc-a" });
  for (const i of [0, 1]) assert.equal(caBundleOf(stored, i), pem);
  assert.equal(stored.webhooks![0]!.clientConfig.service!.path, "/mutate", "the rest of clientConfig is kept");
  assert.equal(await publishCaBundle(api, "mwc-a", pem), "unchanged");
  const again = await admission.readMutatingWebhookConfiguration({ name: "mwc-a" });
  assert.equal(again.metadata!.resourceVersion, stored.metadata!.resourceVersion, "no write at all");
});

test("caBundle: a webhook list reordered between read and patch fails the patch instead of mis-writing", async () => {
  await admission.createMutatingWebhookConfiguration({ body: webhookConfig("mwc-b") });
  const real = kubeWebhookConfigurationApi(cp.admin.kubeConfig);
  const racing = {
    read: async (name: string) => {
      const seen = await real.read(name);
      const reordered = structuredClone(seen);
      reordered.webhooks!.reverse();
      await admission.replaceMutatingWebhookConfiguration({ name, body: reordered });
      return seen;
    },
    patch: real.patch,
  };
  await assert.rejects(publishCaBundle(racing, "mwc-b", "PEM"), /MutatingWebhookConfiguration mwc-b: caBundle patch failed/);
  const after = await admission.readMutatingWebhookConfiguration({ name: "mwc-b" });
  assert.deepEqual(after.webhooks!.map((w) => w.clientConfig.caBundle), [undefined, undefined], "nothing written");
  await assert.rejects(publishCaBundle(real, "missing", "PEM"), /MutatingWebhookConfiguration missing: read failed/);
});

test("Secret store: absent, created, read back, and a stale write is a conflict", async () => {
  const store = new SecretCertificateStore(cp.admin.kubeConfig, SYSTEM_NAMESPACE, "certs-a");
  assert.equal(await store.load(), undefined);
  const set = renew(undefined, { action: "new-ca", why: "test" }, new Date(), policy);
  await store.save(set);
  const secret = await core.readNamespacedSecret({ namespace: SYSTEM_NAMESPACE, name: "certs-a" });
  assert.equal(secret.type, "kubernetes.io/tls");
  assert.equal(secret.metadata!.labels!["app.kubernetes.io/part-of"], "meshlane");
  assert.deepEqual(await store.load(), set);

  const other = new SecretCertificateStore(cp.admin.kubeConfig, SYSTEM_NAMESPACE, "certs-a");
  await other.load();
  await store.save(renew(set, { action: "issue-serving", why: "test" }, new Date(), policy));
  await assert.rejects(other.save(set), StoreConflictError);
  const fresh = new SecretCertificateStore(cp.admin.kubeConfig, SYSTEM_NAMESPACE, "certs-a");
  await assert.rejects(fresh.save(set), StoreConflictError, "create over an existing Secret conflicts too");
});

test("Secret store: an existing Secret keeps its type (the API server refuses a change), as the manifest's empty Opaque one", async () => {
  await core.createNamespacedSecret({ namespace: SYSTEM_NAMESPACE, body: { metadata: { name: "certs-opaque" }, type: "Opaque" } });
  const store = new SecretCertificateStore(cp.admin.kubeConfig, SYSTEM_NAMESPACE, "certs-opaque");
  assert.equal(await store.load(), undefined, "no data: no certificates yet");
  const set = renew(undefined, { action: "new-ca", why: "test" }, new Date(), policy);
  await store.save(set);
  assert.equal((await core.readNamespacedSecret({ namespace: SYSTEM_NAMESPACE, name: "certs-opaque" })).type, "Opaque");
  assert.deepEqual(await new SecretCertificateStore(cp.admin.kubeConfig, SYSTEM_NAMESPACE, "certs-opaque").load(), set);
});

test("the webhook as the manifest runs it, with its ServiceAccount's token: fills the manifest's Secret, and the published caBundle verifies it", async () => {
  const identity = await cp.serviceAccount(SYSTEM_NAMESPACE, WEBHOOK_SA);
  const parsed = parseServeArgs([
    "serve", "--self-signed", "--cert-secret", SECRET, "--webhook-config", MWC.metadata!.name!,
    "--port", "0", "--host", "127.0.0.1", "--san", "127.0.0.1", "--audit-log", "/dev/null",
  ]);
  const options = (parsed as { options: ServeOptions }).options;
  const running = await startWebhook(options, { log: pino({ level: "silent" }), kubeConfig: () => identity.kubeConfig });
  try {
    const mwc = await admission.readMutatingWebhookConfiguration({ name: MWC.metadata!.name! });
    const caBundle = caBundleOf(mwc, 0);
    assert.match(caBundle, /BEGIN CERTIFICATE/);
    const serial = await new Promise<string>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: running.port, path: "/readyz", agent: false, ca: caBundle, servername: "meshlane-webhook.meshlane-system.svc" }, (res) => {
        res.resume();
        assert.equal(res.statusCode, 200);
        resolve((res.socket as TLSSocket).getPeerCertificate().serialNumber);
      });
      req.on("error", reject);
      req.end();
    });
    const secret = await core.readNamespacedSecret({ namespace: SYSTEM_NAMESPACE, name: SECRET });
    assert.equal(serial, new X509Certificate(Buffer.from(secret.data!["tls.crt"]!, "base64").toString()).serialNumber);

    // An upgrade re-applies the whole manifest: the certificates the webhook made, and the
    // caBundle that trusts them, must come through untouched (the manifest owns no data key).
    await cp.kubectl(["apply", "-f", MANIFEST_PATH]);
    const reapplied = await core.readNamespacedSecret({ namespace: SYSTEM_NAMESPACE, name: SECRET });
    const keys = (data: Record<string, string> | undefined) => Object.entries(data ?? {}).map(([k, v]) => `${k}: ${v ? createHash("sha256").update(v).digest("hex").slice(0, 12) : "(empty)"}`);
    assert.deepEqual(keys(reapplied.data), keys(secret.data), "re-applying the manifest kept every key of the Secret");
    assert.equal(caBundleOf(await admission.readMutatingWebhookConfiguration({ name: MWC.metadata!.name! }), 0), caBundle, "and the caBundle");
    const before = running.certificates.certificates;
    assert.equal(await running.certificates.check(), before, "the webhook's next check keeps its set: no new CA");
    assert.equal(caBundleOf(await admission.readMutatingWebhookConfiguration({ name: MWC.metadata!.name! }), 0), caBundle);

    // Re-applying the manifest keeps caBundle (apply merges webhooks by name and never set
    // the field); replacing the object, as a tool that owns it whole does, empties it.
    await cp.kubectl(["apply", "-f", "-"], { input: stringify(MWC) });
    assert.equal(caBundleOf(await admission.readMutatingWebhookConfiguration({ name: MWC.metadata!.name! }), 0), caBundle, "apply kept it");
    await cp.kubectl(["replace", "-f", "-"], { input: stringify(MWC) });
    assert.equal(caBundleOf(await admission.readMutatingWebhookConfiguration({ name: MWC.metadata!.name! }), 0), "", "replace removed it");
    // The next check restores it.
    await running.certificates.check();
    assert.equal(caBundleOf(await admission.readMutatingWebhookConfiguration({ name: MWC.metadata!.name! }), 0), caBundle);
  } finally {
    await running.stop();
  }
});
