// What the manifest's RBAC grants a service account, and whether a request is allowed,
// by the rules of Kubernetes' RBAC authorizer: a ClusterRole bound by a
// ClusterRoleBinding applies everywhere, a Role (or a ClusterRole bound by a
// RoleBinding) in the binding's namespace; resourceNames, when present, must name
// the object; "*" matches anything.

import type { V1PolicyRule } from "@kubernetes/client-node";
import type { KubeObject } from "./manifest.js";

export interface Grant {
  /** undefined: cluster-wide. */
  namespace: string | undefined;
  rule: V1PolicyRule;
  /** "Role/meshlane-loader" etc., for messages. */
  from: string;
}

export interface ApiRequest {
  verb: string;
  group: string;
  /** "pods", or "pods/status" for a subresource. */
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
}

interface Binding {
  metadata: { namespace?: string };
  roleRef: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

interface RoleObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: V1PolicyRule[];
}

export function grantsFor(objects: KubeObject[], serviceAccount: { namespace: string; name: string }): Grant[] {
  const roles = objects.filter((o) => o.kind === "Role" || o.kind === "ClusterRole") as unknown as RoleObject[];
  const grants: Grant[] = [];
  for (const o of objects) {
    if (o.kind !== "RoleBinding" && o.kind !== "ClusterRoleBinding") continue;
    const binding = o as unknown as Binding;
    const bound = (binding.subjects ?? []).some(
      (s) => s.kind === "ServiceAccount" && s.name === serviceAccount.name && s.namespace === serviceAccount.namespace,
    );
    if (!bound) continue;
    const namespace = o.kind === "RoleBinding" ? binding.metadata.namespace : undefined;
    const role = roles.find(
      (r) => r.kind === binding.roleRef.kind && r.metadata.name === binding.roleRef.name && (r.kind === "ClusterRole" || r.metadata.namespace === namespace),
    );
    if (!role) throw new Error(`${o.kind} ${o.metadata.name} refers to ${binding.roleRef.kind} ${binding.roleRef.name}, which the manifest lacks`);
    for (const rule of role.rules ?? []) grants.push({ namespace, rule, from: `${role.kind}/${role.metadata.name}` });
  }
  return grants;
}

const has = (list: string[] | undefined, value: string): boolean => (list ?? []).some((v) => v === "*" || v === value);

export function ruleAllows(grant: Grant, request: ApiRequest): boolean {
  const { rule } = grant;
  if (grant.namespace !== undefined && grant.namespace !== request.namespace) return false;
  if (!has(rule.apiGroups, request.group) || !has(rule.resources, request.resource) || !has(rule.verbs, request.verb)) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0) return request.name !== undefined && rule.resourceNames.includes(request.name);
  return true;
}

export function allowedBy(grants: Grant[], request: ApiRequest): Grant | undefined {
  return grants.find((g) => ruleAllows(g, request));
}

/** Each grant expanded to one entry per (group, resource, verb), for exact comparisons. */
export function flatten(grants: Grant[]): string[] {
  return grants
    .flatMap((g) =>
      (g.rule.apiGroups ?? []).flatMap((group) =>
        (g.rule.resources ?? []).flatMap((resource) =>
          g.rule.verbs.map((verb) => `${g.namespace ?? "(cluster)"} ${group || "core"}/${resource} ${verb}${g.rule.resourceNames ? ` [${g.rule.resourceNames.join(",")}]` : ""}`),
        ),
      ),
    )
    .sort();
}
