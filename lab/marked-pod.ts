// Pods for the registrar's tests and the propagation benchmark: Istio-injected the way Istio's injector does it
// (its status annotation, an istio-proxy container running as 1337, istio-init with
// istio-iptables' arguments for the default capture), then marked exactly as the
// webhook marks them, by running the webhook's own decision on them.

import type { V1Pod } from "@kubernetes/client-node";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS, POD_MARK_LABEL, STATUS_ACCELERATED } from "../registry/names.js";
import { decide } from "../webhook/decision.js";

const ISTIO_STATUS = '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":[],"imagePullSecrets":null,"revision":"default"}';
const ISTIO_INIT_ARGS = ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"];

/** An Istio-injected pod, not yet marked by meshlane. */
export function injectedPod(name: string, namespace = "shop"): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, annotations: { "sidecar.istio.io/status": ISTIO_STATUS }, labels: { app: name } },
    spec: {
      initContainers: [{ name: "istio-init", image: "proxyv2:1", args: ISTIO_INIT_ARGS }],
      containers: [
        { name: "app", image: "app:1" },
        { name: "istio-proxy", image: "proxyv2:1", securityContext: { runAsUser: 1337, runAsGroup: 1337 } },
      ],
    },
  };
}

/** The pod with the markings the webhook gives it at admission (annotations and label). */
export function markedPod(pod: V1Pod): V1Pod {
  const outcome = decide({
    uid: "review",
    kind: { group: "", version: "v1", kind: "Pod" },
    subResource: undefined,
    operation: "CREATE",
    namespace: pod.metadata?.namespace,
    name: pod.metadata?.name,
    generateName: undefined,
    object: pod,
    dryRun: false,
    user: undefined,
  });
  if (outcome.decision !== STATUS_ACCELERATED) throw new Error(`test pod is not accelerated by the webhook: ${outcome.reason}: ${outcome.detail}`);
  const metadata = pod.metadata ?? {};
  return {
    ...pod,
    metadata: {
      ...metadata,
      annotations: { ...metadata.annotations, [ANNOTATION_STATUS]: STATUS_ACCELERATED, [ANNOTATION_INTERCEPTION]: JSON.stringify(outcome.interception) },
      labels: { ...metadata.labels, [POD_MARK_LABEL]: STATUS_ACCELERATED },
    },
  };
}
