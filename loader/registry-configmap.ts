// Kubernetes mode's registry: this node's ConfigMap meshlane-node-<node> in
// meshlane-system, watched alone (field selector on its name), so a node's loader
// never receives other nodes' registrations.
//
// Until the first list has succeeded, read() fails, so the agent leaves the maps as
// they are rather than emptying them for a registry it has not seen. After that, a
// watch that breaks is restarted (loader/configmap-watch.ts) and read() answers from the
// last state seen: an unreachable API server does not stop acceleration.

import type { V1ConfigMap } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { watchConfigMap } from "./configmap-watch.js";
import type { KubeEndpoint } from "./kube-api.js";
import { nodeConfigMapName, SYSTEM_NAMESPACE } from "../registry/names.js";
import type { RegistrySource } from "./agent.js";

/** Values are parsed here; the agent validates them (a value that is not JSON stays a string and is reported invalid). */
export function registryOfConfigMap(configMap: Pick<V1ConfigMap, "data"> | undefined): Record<string, unknown> {
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

export function configMapRegistrySource(endpoint: KubeEndpoint, node: string, log: Logger): RegistrySource {
  const name = nodeConfigMapName(node);
  let onChange: () => void = () => undefined;
  const informer = watchConfigMap({
    endpoint,
    namespace: SYSTEM_NAMESPACE,
    name,
    onChange: () => onChange(),
    onError: (e, retryInMs) => log.warn({ configMap: `${SYSTEM_NAMESPACE}/${name}`, err: e.message, retryInMs }, "ConfigMap watch failed; restarting"),
  });
  const where = `ConfigMap ${SYSTEM_NAMESPACE}/${name} at ${endpoint.server}`;

  return {
    describe: () => where,
    read() {
      if (!informer.synced()) throw new Error(`${where} has not been listed yet (API server unreachable?)`);
      return registryOfConfigMap({ data: informer.data() });
    },
    async start(notify) {
      await informer.start();
      // Events of the first list come before the agent's first sync; later ones trigger syncs.
      onChange = notify;
    },
    stop: () => informer.stop(),
  };
}
