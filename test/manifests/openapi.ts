// Validation of manifest objects against the Kubernetes API, by two maintained sets of
// models generated from its OpenAPI document:
//  - kubernetes-models: JSON-schema validation (types, required fields, enums, formats);
//  - @kubernetes/client-node: the field names of every type, to refuse unknown fields
//    as `kubectl apply` (strict field validation) does. The schemas alone accept
//    them: a misspelt `readOnlyRootFileSystem` would pass silently.

import * as client from "@kubernetes/client-node";
import { MutatingWebhookConfiguration } from "kubernetes-models/admissionregistration.k8s.io/v1";
import { DaemonSet, Deployment } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { Namespace, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import type { KubeObject } from "./manifest.js";

type Model = new (data: never) => { validate(): void };

/** apiVersion/kind → the kubernetes-models class; a kind missing here fails validation. */
const MODELS: Record<string, Model> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "apps/v1/Deployment": Deployment,
  "apps/v1/DaemonSet": DaemonSet,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration": MutatingWebhookConfiguration,
};

interface Attribute {
  baseName: string;
  type: string;
}

function attributesOf(type: string): Attribute[] | undefined {
  const model = (client as unknown as Record<string, { getAttributeTypeMap?: () => Attribute[] } | undefined>)[type];
  return typeof model?.getAttributeTypeMap === "function" ? model.getAttributeTypeMap() : undefined;
}

/** Paths of fields that the API type does not have, walking nested types, arrays and maps. */
export function unknownFields(value: unknown, type: string, path = ""): string[] {
  if (value === null || typeof value !== "object") return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`));
  const attributes = attributesOf(type);
  if (!attributes) return []; // string, number, IntOrString, any, ...
  const byName = new Map(attributes.map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([k, v]) => {
    const t = byName.get(k);
    return t === undefined ? [`${path}.${k}`] : unknownFields(v, t, `${path}.${k}`);
  });
}

/** client-node's name for the type of a top-level object: apps/v1 Deployment → V1Deployment. */
export function clientTypeName(o: Pick<KubeObject, "apiVersion" | "kind">): string {
  const version = o.apiVersion.split("/").pop()!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${o.kind}`;
}

/** Every problem the two validators find in one object; [] when it is valid. */
export function validateObject(o: KubeObject): string[] {
  const key = `${o.apiVersion}/${o.kind}`;
  const Model = MODELS[key];
  if (!Model) return [`no model for ${key}: add it to test/manifests/openapi.ts`];
  const problems: string[] = [];
  try {
    new Model(o as never).validate();
  } catch (e) {
    problems.push((e as Error).message);
  }
  const type = clientTypeName(o);
  if (!attributesOf(type)) problems.push(`@kubernetes/client-node has no type ${type}`);
  else problems.push(...unknownFields(o, type).map((p) => `unknown field ${p}`));
  return problems;
}
