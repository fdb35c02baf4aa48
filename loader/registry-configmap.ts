// Kubernetes mode's registry: this node's registry objects (registry/configmap.ts),
// one ConfigMap per pod in meshlane-system, watched through a label selector on the
// node, so a node's loader never receives other nodes' registrations and each change
// arrives as one small object.
//
// Until the first list has succeeded, read() fails, so the agent leaves the maps as
// they are rather than emptying them for a registry it has not seen. After that, a
// watch that breaks is restarted (registry/informer.ts) and read() answers from the
// last state seen: an unreachable API server does not stop acceleration.

import { CoreV1Api, type KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { resilientInformer } from "../registry/informer.js";
import { describeApiError } from "../registry/kube-errors.js";
import { nodeRegistrationsSelector, REGISTRY_NAMESPACE, registryOfObjects } from "../registry/configmap.js";
import type { RegistrySource } from "./agent.js";

export function configMapRegistrySource(kubeConfig: KubeConfig, node: string, log: Logger): RegistrySource {
  const labelSelector = nodeRegistrationsSelector(node);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  let onChange: () => void = () => undefined;
  const informer = resilientInformer<V1ConfigMap>({
    kubeConfig,
    path: `/api/v1/namespaces/${REGISTRY_NAMESPACE}/configmaps`,
    list: () => core.listNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, labelSelector }),
    labelSelector,
    onEvent: () => onChange(),
    onError: (e, retryInMs) => log.warn({ namespace: REGISTRY_NAMESPACE, labelSelector, err: describeApiError(e), retryInMs }, "registry watch failed; restarting"),
  });
  const where = `registry objects ${labelSelector} in ${REGISTRY_NAMESPACE} at ${kubeConfig.getCurrentCluster()?.server ?? "?"}`;

  return {
    describe: () => where,
    read() {
      if (!informer.synced()) throw new Error(`${where} have not been listed yet (API server unreachable?)`);
      return registryOfObjects(informer.cache.list(REGISTRY_NAMESPACE), node);
    },
    async start(notify) {
      await informer.start();
      // Events of the first list come before the agent's first sync; later ones trigger syncs.
      onChange = notify;
    },
    stop: () => informer.stop(),
  };
}
