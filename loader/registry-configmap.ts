// Kubernetes mode's registry: this node's ConfigMap meshlane-node-<node> in
// meshlane-system, watched alone (field selector on its name), so a node's loader
// never receives other nodes' registrations.
//
// Until the first list has succeeded, read() fails, so the agent leaves the maps as
// they are rather than emptying them for a registry it has not seen. After that, a
// watch that breaks is restarted (registry/informer.ts) and read() answers from the
// last state seen: an unreachable API server does not stop acceleration.

import { CoreV1Api, type KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { resilientInformer } from "../registry/informer.js";
import { describeApiError } from "../registry/kube-errors.js";
import { nodeConfigMapName, SYSTEM_NAMESPACE } from "../registry/names.js";
import type { RegistrySource } from "./agent.js";

/** Values are parsed here; the agent validates them (a value that is not JSON stays a string and is reported invalid). */
export function registryOfConfigMap(configMap: V1ConfigMap | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(configMap?.data ?? {})) {
    try {
      out[key] = JSON.parse(text);
    } catch {
      out[key] = text;
    }
  }
  return out;
}

export function configMapRegistrySource(kubeConfig: KubeConfig, node: string, log: Logger): RegistrySource {
  const name = nodeConfigMapName(node);
  const fieldSelector = `metadata.name=${name}`;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  let onChange: () => void = () => undefined;
  const informer = resilientInformer<V1ConfigMap>({
    kubeConfig,
    path: `/api/v1/namespaces/${SYSTEM_NAMESPACE}/configmaps`,
    list: () => core.listNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, fieldSelector }),
    fieldSelector,
    onEvent: () => onChange(),
    onError: (e, retryInMs) => log.warn({ configMap: `${SYSTEM_NAMESPACE}/${name}`, err: describeApiError(e), retryInMs }, "ConfigMap watch failed; restarting"),
  });
  const where = `ConfigMap ${SYSTEM_NAMESPACE}/${name} at ${kubeConfig.getCurrentCluster()?.server ?? "?"}`;

  return {
    describe: () => where,
    read() {
      if (!informer.synced()) throw new Error(`${where} has not been listed yet (API server unreachable?)`);
      return registryOfConfigMap(informer.cache.get(name, SYSTEM_NAMESPACE));
    },
    async start(notify) {
      await informer.start();
      // Events of the first list come before the agent's first sync; later ones trigger syncs.
      onChange = notify;
    },
    stop: () => informer.stop(),
  };
}
