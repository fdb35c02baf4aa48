// The resource types the stand-in serves: the subset meshlane touches. Everything the
// router, the store, discovery and error messages need to know about a type lives in
// one row here, so adding a type is one entry.

export type KubeObject = Record<string, unknown> & { metadata: ObjectMeta };

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface ResourceType {
  group: string;
  version: string;
  /** The URL segment, e.g. "pods". */
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  subresources: string[];
  /**
   * The real server answers DELETE with the object for types with graceful deletion
   * (pods, namespaces) and with a Status for the rest.
   */
  returnsDeletedObject: boolean;
  /** Field selector labels this type supports besides metadata.name/metadata.namespace. */
  fieldLabels: Record<string, (obj: KubeObject) => string>;
}

function nested(obj: KubeObject, path: string[]): string {
  let cur: unknown = obj;
  for (const key of path) cur = cur !== null && typeof cur === "object" ? (cur as Record<string, unknown>)[key] : undefined;
  return typeof cur === "string" ? cur : "";
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  {
    group: "", version: "v1", plural: "namespaces", singular: "namespace", kind: "Namespace",
    namespaced: false, shortNames: ["ns"], subresources: [], returnsDeletedObject: true,
    fieldLabels: { "status.phase": (o) => nested(o, ["status", "phase"]) },
  },
  {
    group: "", version: "v1", plural: "pods", singular: "pod", kind: "Pod",
    namespaced: true, shortNames: ["po"], subresources: ["status", "binding"], returnsDeletedObject: true,
    fieldLabels: {
      "spec.nodeName": (o) => nested(o, ["spec", "nodeName"]),
      "status.phase": (o) => nested(o, ["status", "phase"]),
      "status.podIP": (o) => nested(o, ["status", "podIP"]),
    },
  },
  {
    group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap",
    namespaced: true, shortNames: ["cm"], subresources: [], returnsDeletedObject: false, fieldLabels: {},
  },
  {
    group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret",
    namespaced: true, shortNames: [], subresources: [], returnsDeletedObject: false,
    fieldLabels: { type: (o) => (typeof o.type === "string" ? o.type : "") },
  },
  {
    group: "admissionregistration.k8s.io", version: "v1", plural: "mutatingwebhookconfigurations",
    singular: "mutatingwebhookconfiguration", kind: "MutatingWebhookConfiguration",
    namespaced: false, shortNames: [], subresources: [], returnsDeletedObject: false, fieldLabels: {},
  },
  {
    group: "coordination.k8s.io", version: "v1", plural: "leases", singular: "lease", kind: "Lease",
    namespaced: true, shortNames: [], subresources: [], returnsDeletedObject: false, fieldLabels: {},
  },
];

export function apiVersionOf(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

/** "pods" or "leases.coordination.k8s.io": how the real server names a type in messages. */
export function qualifiedName(type: ResourceType): string {
  return type.group ? `${type.plural}.${type.group}` : type.plural;
}

export function findResourceType(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((t) => t.group === group && t.version === version && t.plural === plural);
}

/** RFC 3339 with whole seconds, the way the API server writes metav1.Time. */
export function timestampNow(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}
