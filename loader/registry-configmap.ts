// Kubernetes mode's registry: this node's registry objects (registry/configmap.ts),
// one ConfigMap per pod in meshlane-system, watched through a label selector on the
// node, so a node's loader never receives other nodes' registrations and each change
// arrives as one small object, reported to the agent as the one key it changes.
//
// Until the first list has succeeded, read() fails, so the agent leaves the maps as
// they are rather than emptying them for a registry it has not seen. After that, a
// watch that breaks is restarted (loader/configmap-watch.ts) and read() answers from
// the last state seen: an unreachable API server does not stop acceleration.

import type { Logger } from "pino";
import { nodeRegistrationsSelector, readRegistrationObject, registrationObjectName, REGISTRY_NAMESPACE, registryOfObjects } from "../registry/configmap.js";
import type { RegistrySource } from "./agent.js";
import { watchConfigMaps } from "./configmap-watch.js";
import type { KubeEndpoint } from "./kube-api.js";

export function configMapRegistrySource(endpoint: KubeEndpoint, node: string, log: Logger): RegistrySource {
  const labelSelector = nodeRegistrationsSelector(node);
  let onChange: (keys?: readonly string[]) => void = () => undefined;
  const informer = watchConfigMaps({
    endpoint,
    namespace: REGISTRY_NAMESPACE,
    labelSelector,
    // An object that no longer reads as a registry object (it left the selector) says no key: the agent compares all then.
    onChange: (cm) => {
      const uid = cm && readRegistrationObject(cm)?.uid;
      onChange(uid === undefined ? undefined : [uid]);
    },
    onError: (e, retryInMs) => log.warn({ namespace: REGISTRY_NAMESPACE, labelSelector, err: e.message, retryInMs }, "registry watch failed; restarting"),
  });
  const where = `registry objects ${labelSelector} in ${REGISTRY_NAMESPACE} at ${endpoint.server}`;

  return {
    describe: () => where,
    read(keys) {
      if (!informer.synced()) throw new Error(`${where} have not been listed yet (API server unreachable?)`);
      if (!keys) return registryOfObjects(informer.objects(), node);
      return registryOfObjects(keys.flatMap((uid) => informer.get(registrationObjectName(uid)) ?? []), node);
    },
    async start(notify) {
      await informer.start();
      // Events of the first list come before the agent's first sync; later ones trigger syncs.
      onChange = notify;
    },
    stop: () => informer.stop(),
  };
}
