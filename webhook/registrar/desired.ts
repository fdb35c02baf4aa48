// What the registry should hold for a pod, decided from the pod alone. Pure: the
// same pod always gives the same key and the same value text, so "is the ConfigMap
// up to date" is a string comparison, and every replica of the registrar computes
// the same answer from the same pod.

import type { V1Pod } from "@kubernetes/client-node";
import { REGISTRATION_VERSION, validateRegistration } from "../../registry/document.js";
import { ANNOTATION_INTERCEPTION, ANNOTATION_STATUS, STATUS_ACCELERATED } from "../../registry/names.js";

/** The pod's key in ConfigMap meshlane-node-<node>, and the value it should hold there. */
export interface Placement {
  node: string;
  /** The pod UID: the data key. */
  key: string;
  /** The Registration document as JSON text. */
  value: string;
}

export type Desired =
  | { registered: true; placement: Placement }
  /** `why` is for logs: not marked, not running yet, finished; `invalid` when the mark itself does not validate. */
  | { registered: false; why: string; invalid?: true };

const FINISHED_PHASES = new Set(["Succeeded", "Failed"]);

export function isMarked(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[ANNOTATION_STATUS] === STATUS_ACCELERATED;
}

/** Pod IPs as the kubelet reports them: status.podIPs, or status.podIP on older servers. */
function podIps(pod: V1Pod): string[] {
  const listed = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => typeof ip === "string" && ip !== "");
  if (listed.length > 0) return listed;
  return pod.status?.podIP ? [pod.status.podIP] : [];
}

export function desiredFor(pod: V1Pod): Desired {
  const meta = pod.metadata ?? {};
  const where = `pod ${meta.namespace ?? "?"}/${meta.name ?? "?"}`;
  if (!isMarked(pod)) return { registered: false, why: `${where} is not marked ${ANNOTATION_STATUS}=${STATUS_ACCELERATED}` };
  if (!meta.uid || !meta.name || !meta.namespace) return { registered: false, why: `${where} has no uid, name or namespace yet` };
  const node = pod.spec?.nodeName;
  if (!node) return { registered: false, why: `${where} is not bound to a node yet` };
  // A terminating pod (deletionTimestamp set) keeps its key until it is gone: its
  // containers may still serve, and its cgroup and IP are still its own.
  const phase = pod.status?.phase;
  if (phase && FINISHED_PHASES.has(phase)) return { registered: false, why: `${where} has finished (${phase})` };
  const ips = podIps(pod);
  if (ips.length === 0) return { registered: false, why: `${where} has no IP yet` };
  const interceptionText = meta.annotations?.[ANNOTATION_INTERCEPTION];
  let value: string;
  try {
    if (interceptionText === undefined) throw new Error(`annotation ${ANNOTATION_INTERCEPTION} is missing`);
    // Validated (and so put in canonical form) exactly as the loader will read it:
    // the registry never holds a document the loader would reject.
    const registration = validateRegistration(
      { version: REGISTRATION_VERSION, namespace: meta.namespace, name: meta.name, uid: meta.uid, ips, interception: JSON.parse(interceptionText) },
      meta.uid,
    );
    value = JSON.stringify(registration);
  } catch (e) {
    return { registered: false, why: `${where} is marked but cannot be registered: ${(e as Error).message}`, invalid: true };
  }
  return { registered: true, placement: { node, key: meta.uid, value } };
}

/** node → pod UID → value: what every node's ConfigMap should hold, given all pods. */
export function desiredByNode(pods: Iterable<V1Pod>): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const pod of pods) {
    const d = desiredFor(pod);
    if (!d.registered) continue;
    const { node, key, value } = d.placement;
    let entries = out.get(node);
    if (!entries) out.set(node, (entries = new Map()));
    entries.set(key, value);
  }
  return out;
}
