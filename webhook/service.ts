// The webhook as a running service: certificates, their renewal and caBundle, and the
// HTTPS server, wired together. Importable, so the registrar can share the process and
// end-to-end tests can start the webhook in-process.

import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { kubeWebhookConfigurationApi, publishCaBundle } from "../certs/ca-bundle.js";
import { FileCertificateStore } from "../certs/file-store.js";
import { CertificateManager } from "../certs/manager.js";
import { DEFAULT_POLICY_TIMES } from "../certs/renewal.js";
import { SecretCertificateStore } from "../certs/secret-store.js";
import type { CertificateStore } from "../certs/store.js";
import { loadKubeConfig } from "../registry/kube-config.js";
import { SYSTEM_NAMESPACE } from "../registry/names.js";
import { createAuditLog } from "./audit.js";
import type { ServeOptions } from "./options.js";
import { startRegistrar, type Registrar } from "./registrar/registrar.js";
import { createWebhookServer, type WebhookServer } from "./server.js";

export interface RunningWebhook {
  server: WebhookServer;
  certificates: CertificateManager;
  port: number;
  /** Present when the options ask for it. */
  registrar: Registrar | undefined;
  stop(): Promise<void>;
}

export interface ServiceDeps {
  /** Operational messages (not the audit log). */
  log: Logger;
  /** Defaults to --kubeconfig, $KUBECONFIG or in-cluster credentials, loaded only when needed. */
  kubeConfig?: () => KubeConfig;
  /** Where certificates live; defaults from the options (Secret or directory). */
  store?: CertificateStore;
}

export async function startWebhook(options: ServeOptions, deps: ServiceDeps): Promise<RunningWebhook> {
  const kubeConfig = deps.kubeConfig ?? (() => loadKubeConfig(options.kubeconfig));
  const store =
    deps.store ??
    (options.certSecret ? new SecretCertificateStore(kubeConfig(), SYSTEM_NAMESPACE, options.certSecret) : new FileCertificateStore(options.certDir));
  const caBundleApi = options.webhookConfig ? kubeWebhookConfigurationApi(kubeConfig()) : undefined;
  const server = createWebhookServer({ bodyLimit: options.bodyLimit, audit: createAuditLog(options.auditLog) });

  const certificates = new CertificateManager({
    store,
    policy: options.selfSigned
      ? { caValidityMs: DEFAULT_POLICY_TIMES.caValidityMs, servingValidityMs: options.certValidityMs, renewBeforeMs: options.renewBeforeMs, names: options.names }
      : undefined,
    publish: async (set) => {
      if (!caBundleApi || !options.webhookConfig || !set.caBundlePem) return;
      const result = await publishCaBundle(caBundleApi, options.webhookConfig, set.caBundlePem);
      if (result === "patched") deps.log.info({ webhookConfig: options.webhookConfig }, "caBundle written");
    },
    onChange: async (set, why) => {
      server.setIdentity(set);
      deps.log.info({ why, store: store.where, ca: set.caBundlePem ? "present" : "absent" }, "serving certificate loaded");
    },
    onError: (e) => deps.log.error({ err: { message: e.message } }, "certificate check failed"),
  });

  const initial = await certificates.check();
  if (!initial) deps.log.warn({ store: store.where }, "no serving certificate yet; TLS handshakes fail and /readyz is unreachable until one appears");
  certificates.start(options.checkIntervalMs);
  const address = await server.listen(options.port, options.host);
  deps.log.info({ port: address.port, host: options.host }, "meshlane webhook listening (HTTPS)");
  // After the server: admission must not wait on the registrar's first resync.
  const registrar = options.registrar
    ? await startRegistrar({ kubeConfig: kubeConfig(), log: deps.log, metricsRegistry: server.metrics.registry, resyncMs: options.registrar.resyncMs })
    : undefined;

  return {
    server,
    certificates,
    port: address.port,
    registrar,
    async stop() {
      await registrar?.stop();
      certificates.stop();
      await server.close();
    },
  };
}
