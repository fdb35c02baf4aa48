// Writes the CA bundle into the MutatingWebhookConfiguration, so the API server trusts
// the webhook's serving certificate. A JSON patch names each webhook by index and
// guards the index with a `test` of its name, so a concurrent reordering fails the
// patch instead of writing the bundle into the wrong entry.

import { AdmissionregistrationV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1MutatingWebhookConfiguration } from "@kubernetes/client-node";

export type CaBundleOp = { op: "test" | "add"; path: string; value: string };

/** The kube API calls this module needs; a test can stand in for them. */
export interface WebhookConfigurationApi {
  read(name: string): Promise<V1MutatingWebhookConfiguration>;
  patch(name: string, ops: CaBundleOp[]): Promise<void>;
}

/** Pure: the ops that set every webhook's caBundle to `pem`; [] when all already hold it. */
export function caBundlePatch(config: V1MutatingWebhookConfiguration, pem: string): CaBundleOp[] {
  const value = Buffer.from(pem).toString("base64");
  return (config.webhooks ?? []).flatMap((w, i) =>
    w.clientConfig.caBundle === value
      ? []
      : [
          { op: "test" as const, path: `/webhooks/${i}/name`, value: w.name },
          // "add" sets the member whether or not it exists yet.
          { op: "add" as const, path: `/webhooks/${i}/clientConfig/caBundle`, value },
        ],
  );
}

export async function publishCaBundle(api: WebhookConfigurationApi, name: string, pem: string): Promise<"patched" | "unchanged"> {
  let config: V1MutatingWebhookConfiguration;
  try {
    config = await api.read(name);
  } catch (e) {
    throw new Error(`MutatingWebhookConfiguration ${name}: read failed: ${(e as Error).message}`);
  }
  const ops = caBundlePatch(config, pem);
  if (ops.length === 0) return "unchanged";
  try {
    await api.patch(name, ops);
  } catch (e) {
    throw new Error(`MutatingWebhookConfiguration ${name}: caBundle patch failed: ${(e as Error).message}`);
  }
  return "patched";
}

export function kubeWebhookConfigurationApi(kubeConfig: KubeConfig): WebhookConfigurationApi {
  const api = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  return {
    read: (name) => api.readMutatingWebhookConfiguration({ name }),
    patch: async (name, ops) => {
      await api.patchMutatingWebhookConfiguration({ name, body: ops }, setHeaderOptions("Content-Type", PatchStrategy.JsonPatch));
    },
  };
}
