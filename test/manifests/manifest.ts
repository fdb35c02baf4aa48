// manifests/all-in-one.yaml as the tests see it: every document parsed, and typed
// lookups of the objects by kind and name (a missing object fails the test that asks).

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1DaemonSet,
  V1Deployment,
  V1MutatingWebhookConfiguration,
  V1Namespace,
  V1PodDisruptionBudget,
  V1Role,
  V1RoleBinding,
  V1Secret,
  V1Service,
  V1ServiceAccount,
} from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

export const MANIFEST_PATH = fileURLToPath(new URL("../../manifests/all-in-one.yaml", import.meta.url));

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** Every document of the file, in order; YAML errors and non-object documents throw. */
export function loadManifest(path = MANIFEST_PATH): KubeObject[] {
  return parseAllDocuments(readFileSync(path, "utf8")).map((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`document ${i}: ${doc.errors.map((e) => e.message).join("; ")}`);
    const o = doc.toJS({ maxAliasCount: 10 }) as KubeObject | null;
    if (!o || typeof o !== "object" || typeof o.kind !== "string" || typeof o.apiVersion !== "string" || typeof o.metadata?.name !== "string") {
      throw new Error(`document ${i} is not a Kubernetes object with apiVersion, kind and metadata.name`);
    }
    return o;
  });
}

interface Kinds {
  Namespace: V1Namespace;
  ServiceAccount: V1ServiceAccount;
  ClusterRole: V1ClusterRole;
  ClusterRoleBinding: V1ClusterRoleBinding;
  Role: V1Role;
  RoleBinding: V1RoleBinding;
  Secret: V1Secret;
  Deployment: V1Deployment;
  PodDisruptionBudget: V1PodDisruptionBudget;
  Service: V1Service;
  MutatingWebhookConfiguration: V1MutatingWebhookConfiguration;
  DaemonSet: V1DaemonSet;
}

/** The one object of this kind and name (any namespace); throws if there is not exactly one. */
export function find<K extends keyof Kinds>(objects: KubeObject[], kind: K, name: string): Kinds[K] {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind} named ${name} in the manifest, found ${found.length}`);
  return found[0] as unknown as Kinds[K];
}

export function all<K extends keyof Kinds>(objects: KubeObject[], kind: K): Kinds[K][] {
  return objects.filter((o) => o.kind === kind) as unknown as Kinds[K][];
}
