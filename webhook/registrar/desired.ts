// What the registry should hold for a pod, decided from the pod alone. Pure: the
// same pod always gives the same document text, so "is the registry up to date" is a
// string comparison, and every replica of the registrar computes the same answer.
//
// The pod's markings are not trusted as they stand: anyone allowed to annotate a pod
// could otherwise change what meshlane steers it by after admission. The webhook's
// own decision is run again on the pod as it is now, and the pod is registered only
// when that decision accelerates it and would change none of its markings; the
// document is then built from the decision's settings, not from the annotation.

import type { V1Pod } from "@kubernetes/client-node";
import { encodeRegistration, parseInterception } from "../../registry/document.js";
import { parseIp, type Ip } from "../../registry/ip.js";
import { ANNOTATION_STATUS, STATUS_ACCELERATED } from "../../registry/names.js";
import { decide } from "../decision.js";

/** Where a pod's registration goes and what it says. */
export interface Registered {
  node: string;
  uid: string;
  /** The document as JSON text (encodeRegistration). */
  document: string;
}

/** Why a marked pod is kept out of the registry: these label a metric. */
export type RefusalReason = "decision-disagrees" | "bad-pod-ip";

export type Desired =
  | { registered: true; registration: Registered }
  /** `why` is for logs; `refused` when the pod is marked but must not be registered. */
  | { registered: false; why: string; refused?: RefusalReason };

const FINISHED_PHASES = new Set(["Succeeded", "Failed"]);

export function isMarked(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[ANNOTATION_STATUS] === STATUS_ACCELERATED;
}

/** Pod IPs as the kubelet reports them: status.podIPs, or status.podIP on older servers. */
function podIpTexts(pod: V1Pod): string[] {
  const listed = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => typeof ip === "string" && ip !== "");
  if (listed.length > 0) return listed;
  return pod.status?.podIP ? [pod.status.podIP] : [];
}

/** The webhook's judgement of this pod, as if it were being created now. */
function recheck(pod: V1Pod, namespace: string, name: string, uid: string) {
  return decide({
    uid,
    kind: { group: "", version: "v1", kind: "Pod" },
    subResource: undefined,
    operation: "CREATE",
    namespace,
    name,
    generateName: undefined,
    object: pod,
    dryRun: false,
    user: undefined,
  });
}

export function desiredFor(pod: V1Pod): Desired {
  const meta = pod.metadata ?? {};
  const where = `pod ${meta.namespace ?? "?"}/${meta.name ?? "?"}`;
  if (!isMarked(pod)) return { registered: false, why: `${where} is not marked ${ANNOTATION_STATUS}=${STATUS_ACCELERATED}` };
  if (!meta.uid || !meta.name || !meta.namespace) return { registered: false, why: `${where} has no uid, name or namespace yet` };
  const node = pod.spec?.nodeName;
  if (!node) return { registered: false, why: `${where} is not bound to a node yet` };
  // A terminating pod (deletionTimestamp set) keeps its registration until it is gone:
  // its containers may still serve, and its cgroup and IP are still its own.
  const phase = pod.status?.phase;
  if (phase && FINISHED_PHASES.has(phase)) return { registered: false, why: `${where} has finished (${phase})` };
  const ipTexts = podIpTexts(pod);
  if (ipTexts.length === 0) return { registered: false, why: `${where} has no IP yet` };
  let ips: Ip[];
  try {
    ips = ipTexts.map(parseIp);
  } catch (e) {
    return { registered: false, why: `${where} is marked but its IP cannot be registered: ${(e as Error).message}`, refused: "bad-pod-ip" };
  }
  const outcome = recheck(pod, meta.namespace, meta.name, meta.uid);
  if (outcome.decision !== STATUS_ACCELERATED || !outcome.interception || outcome.patch.length > 0) {
    const would = outcome.patch.map((op) => `${op.op} ${op.path}`).join(", ");
    return {
      registered: false,
      why: `${where} is marked ${STATUS_ACCELERATED} but the webhook's decision now is ${outcome.decision} (${outcome.reason}: ${outcome.detail})${would ? `; it would change ${would}` : ""}`,
      refused: "decision-disagrees",
    };
  }
  const document = encodeRegistration({ namespace: meta.namespace, name: meta.name, uid: meta.uid, ips }, parseInterception(outcome.interception));
  return { registered: true, registration: { node, uid: meta.uid, document } };
}
