// The certs code against a fake API server through the real @kubernetes/client-node:
// caBundle patching, the Secret store, and the webhook started with both.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { request } from "node:https";
import type { TLSSocket } from "node:tls";
import pino from "pino";
import { kubeWebhookConfigurationApi, publishCaBundle } from "../../certs/ca-bundle.js";
import { SecretCertificateStore } from "../../certs/secret-store.js";
import { renew } from "../../certs/renewal.js";
import { StoreConflictError } from "../../certs/store.js";
import { SYSTEM_NAMESPACE } from "../../registry/names.js";
import { parseServeArgs, type ServeOptions } from "../../webhook/options.js";
import { startWebhook } from "../../webhook/service.js";
import { FakeKube } from "./fake-kube.js";

const DAY = 86_400_000;
const policy = { caValidityMs: 10 * DAY, servingValidityMs: 2 * DAY, renewBeforeMs: DAY, names: ["localhost"] };
const kube = new FakeKube();
before(() => kube.start());
after(() => kube.stop());

function webhookConfig(name: string) {
  const hook = (n: string) => ({ name: n, clientConfig: { service: { name: "meshlane-webhook", namespace: SYSTEM_NAMESPACE, path: "/mutate" } }, admissionReviewVersions: ["v1"], sideEffects: "None" });
  return { apiVersion: "admissionregistration.k8s.io/v1", kind: "MutatingWebhookConfiguration", metadata: { name }, webhooks: [hook("pods.meshlane.io"), hook("pods-reinvoked.meshlane.io")] };
}

test("caBundle: every webhook gets the CA by JSON patch; a second publish changes nothing", async () => {
  kube.webhookConfigs.set("mwc-a", webhookConfig("mwc-a"));
  const api = kubeWebhookConfigurationApi(kube.kubeConfig());
  const pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  assert.equal(await publishCaBundle(api, "mwc-a", pem), "patched");
  const patchRequest = kube.requests.find((r) => r.method === "PATCH");
  assert.equal(patchRequest?.contentType, "application/json-patch+json");
  const stored = kube.webhookConfigs.get("mwc-a")!;
  for (const w of stored.webhooks) assert.equal(Buffer.from(w.clientConfig.caBundle, "base64").toString(), pem);
  assert.equal(stored.webhooks[0].clientConfig.service.path, "/mutate", "the rest of clientConfig is kept");
  const patches = kube.requests.filter((r) => r.method === "PATCH").length;
  assert.equal(await publishCaBundle(api, "mwc-a", pem), "unchanged");
  assert.equal(kube.requests.filter((r) => r.method === "PATCH").length, patches);
});

test("caBundle: a webhook list reordered under us fails the patch instead of mis-writing", async () => {
  kube.webhookConfigs.set("mwc-b", webhookConfig("mwc-b"));
  kube.beforePatch = (config) => config.webhooks.reverse();
  try {
    await assert.rejects(publishCaBundle(kubeWebhookConfigurationApi(kube.kubeConfig()), "mwc-b", "PEM"), /MutatingWebhookConfiguration mwc-b: caBundle patch failed/);
  } finally {
    kube.beforePatch = undefined;
  }
  await assert.rejects(publishCaBundle(kubeWebhookConfigurationApi(kube.kubeConfig()), "missing", "PEM"), /MutatingWebhookConfiguration missing: read failed/);
});

test("Secret store: absent, created, read back, and a stale write is a conflict", async () => {
  const store = new SecretCertificateStore(kube.kubeConfig(), SYSTEM_NAMESPACE, "certs-a");
  assert.equal(await store.load(), undefined);
  const set = renew(undefined, { action: "new-ca", why: "test" }, new Date(), policy);
  await store.save(set);
  const secret = kube.secrets.get(`${SYSTEM_NAMESPACE}/certs-a`)!;
  assert.equal(secret.type, "kubernetes.io/tls");
  assert.equal(secret.metadata.labels["app.kubernetes.io/part-of"], "meshlane");
  assert.deepEqual(await store.load(), set);

  const other = new SecretCertificateStore(kube.kubeConfig(), SYSTEM_NAMESPACE, "certs-a");
  await other.load();
  await store.save(renew(set, { action: "issue-serving", why: "test" }, new Date(), policy));
  await assert.rejects(other.save(set), StoreConflictError);
  const fresh = new SecretCertificateStore(kube.kubeConfig(), SYSTEM_NAMESPACE, "certs-a");
  await assert.rejects(fresh.save(set), StoreConflictError, "create over an existing Secret conflicts too");
});

test("webhook with --cert-secret and --webhook-config: serves a certificate the published caBundle verifies", async () => {
  kube.webhookConfigs.set("meshlane-webhook", webhookConfig("meshlane-webhook"));
  const parsed = parseServeArgs([
    "serve", "--self-signed", "--cert-secret", "webhook-certs", "--webhook-config", "meshlane-webhook",
    "--port", "0", "--host", "127.0.0.1", "--san", "127.0.0.1", "--audit-log", "/dev/null",
  ]);
  const options = (parsed as { options: ServeOptions }).options;
  const running = await startWebhook(options, { log: pino({ level: "silent" }), kubeConfig: () => kube.kubeConfig() });
  try {
    assert.ok(kube.secrets.has(`${SYSTEM_NAMESPACE}/webhook-certs`));
    const caBundle = Buffer.from(kube.webhookConfigs.get("meshlane-webhook")!.webhooks[1].clientConfig.caBundle, "base64").toString();
    const serial = await new Promise<string>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: running.port, path: "/readyz", agent: false, ca: caBundle, servername: "meshlane-webhook.meshlane-system.svc" }, (res) => {
        res.resume();
        assert.equal(res.statusCode, 200);
        resolve((res.socket as TLSSocket).getPeerCertificate().serialNumber);
      });
      req.on("error", reject);
      req.end();
    });
    const secretCert = Buffer.from(kube.secrets.get(`${SYSTEM_NAMESPACE}/webhook-certs`)!.data["tls.crt"], "base64").toString();
    assert.equal(serial, new X509Certificate(secretCert).serialNumber);

    // `kubectl apply` of the manifest empties caBundle again; the next check restores it.
    kube.webhookConfigs.set("meshlane-webhook", webhookConfig("meshlane-webhook"));
    await running.certificates.check();
    const restored = kube.webhookConfigs.get("meshlane-webhook")!.webhooks[0].clientConfig.caBundle;
    assert.equal(Buffer.from(restored, "base64").toString(), caBundle);
  } finally {
    await running.stop();
  }
});
