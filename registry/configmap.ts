// The registry object (docs/registry.md): one ConfigMap per registered pod, in
// meshlane-system, named after the pod's UID and labelled with its node. Named,
// labelled, selected, encoded and decoded here only; the registrar writes these
// objects, the loader watches its node's with a label selector.
//
// Why one object per pod and not one per node: a write then costs the same whatever
// the node's pod count (one small object, and one small watch event to one loader),
// there is no object size limit to reach (1 MiB: about 2,000 pods in a node-wide
// ConfigMap), and writers never touch each other's objects.

import { createHash } from "node:crypto";
import type { CoreV1Api, V1ConfigMap } from "@kubernetes/client-node";
import { PART_OF_LABEL, PART_OF_VALUE, SYSTEM_NAMESPACE } from "./names.js";

export const REGISTRY_NAMESPACE = SYSTEM_NAMESPACE;
const NAME_PREFIX = "meshlane-pod-";
/** The node label: a registry object is the one ConfigMap of ours that carries it. */
export const NODE_LABEL = "meshlane.io/node";
/** The node's name in full (a label value holds at most 63 characters; a node name up to 253). */
const NODE_ANNOTATION = "meshlane.io/node";
/** The data key holding the document (registry/document.ts) as JSON text. */
const DOCUMENT_KEY = "registration";

const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** The node label's value: the node name when it fits in a label, else a hash of it. */
export function nodeLabelValue(node: string): string {
  return LABEL_VALUE.test(node) ? node : `h-${createHash("sha256").update(node).digest("hex").slice(0, 60)}`;
}

export function registrationObjectName(uid: string): string {
  return `${NAME_PREFIX}${uid}`;
}

/** Every registry object, of every node (the registrar's resync). */
export const ALL_REGISTRATIONS_SELECTOR = `${PART_OF_LABEL}=${PART_OF_VALUE},${NODE_LABEL}`;

/** The registry objects of one node (what its loader watches). */
export function nodeRegistrationsSelector(node: string): string {
  return `${PART_OF_LABEL}=${PART_OF_VALUE},${NODE_LABEL}=${nodeLabelValue(node)}`;
}

function metadata(node: string, uid: string): Required<Pick<NonNullable<V1ConfigMap["metadata"]>, "name" | "namespace" | "labels" | "annotations">> {
  return {
    name: registrationObjectName(uid),
    namespace: REGISTRY_NAMESPACE,
    labels: { [PART_OF_LABEL]: PART_OF_VALUE, [NODE_LABEL]: nodeLabelValue(node) },
    annotations: { [NODE_ANNOTATION]: node },
  };
}

/** The object that registers pod `uid` on `node`; `document` is encodeRegistration's text. */
export function registrationObject(node: string, uid: string, document: string): V1ConfigMap {
  return { metadata: metadata(node, uid), data: { [DOCUMENT_KEY]: document } };
}

/**
 * The JSON merge patch that turns an existing object into registrationObject(node,
 * uid, document): labels, node and document only, so whatever else is on it stays.
 */
export function registrationPatch(node: string, uid: string, document: string): object {
  const { labels, annotations } = metadata(node, uid);
  return { metadata: { labels, annotations }, data: { [DOCUMENT_KEY]: document } };
}

/** A registry object read back: the pod UID, the node and the document text it holds. */
export interface StoredRegistration {
  uid: string;
  node: string;
  /** undefined when the object holds no document. */
  document: string | undefined;
}

/** Undefined for a ConfigMap that is not a registry object. */
export function readRegistrationObject(cm: V1ConfigMap): StoredRegistration | undefined {
  const name = cm.metadata?.name ?? "";
  const labels = cm.metadata?.labels ?? {};
  if (!name.startsWith(NAME_PREFIX) || labels[PART_OF_LABEL] !== PART_OF_VALUE || labels[NODE_LABEL] === undefined) return undefined;
  const node = cm.metadata?.annotations?.[NODE_ANNOTATION] ?? labels[NODE_LABEL];
  return { uid: name.slice(NAME_PREFIX.length), node, document: cm.data?.[DOCUMENT_KEY] };
}

/**
 * What a node's objects say, as the loader's registry: pod UID → the document parsed
 * as JSON (the agent validates it: a value that is not JSON stays text, and a missing
 * document is undefined, both reported invalid there). An object whose hashed label
 * matches but whose node is another one's is not this node's.
 */
export function registryOfObjects(objects: Iterable<V1ConfigMap>, node: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const cm of objects) {
    const stored = readRegistrationObject(cm);
    if (!stored || stored.node !== node) continue;
    if (stored.document === undefined) {
      out[stored.uid] = undefined;
      continue;
    }
    try {
      out[stored.uid] = JSON.parse(stored.document);
    } catch {
      out[stored.uid] = stored.document;
    }
  }
  return out;
}

/** The registry objects of one node, or of every node, read fresh from the API server. */
export async function listRegistrations(core: CoreV1Api, node?: string): Promise<StoredRegistration[]> {
  const labelSelector = node === undefined ? ALL_REGISTRATIONS_SELECTOR : nodeRegistrationsSelector(node);
  const list = await core.listNamespacedConfigMap({ namespace: REGISTRY_NAMESPACE, labelSelector });
  return list.items.map(readRegistrationObject).filter((r): r is StoredRegistration => r !== undefined && (node === undefined || r.node === node));
}
