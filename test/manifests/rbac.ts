// What the manifest's RBAC grants a service account (its bindings resolved to rules, as
// written in the file), held against what the API server's audit log shows the component
// really did. Whether a request is allowed is the API server's decision, never ours.

import assert from "node:assert/strict";
import type { V1PolicyRule } from "@kubernetes/client-node";
import type { AuditEvent } from "../../lab/controlplane/index.js";
import type { KubeObject } from "./manifest.js";

export interface Grant {
  /** undefined: cluster-wide. */
  namespace: string | undefined;
  rule: V1PolicyRule;
  /** "Role/meshlane-loader" etc., for messages. */
  from: string;
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

/**
 * The component's requests, from the API server's audit log: none was refused (so RBAC
 * granted each), and every (resource, verb) the manifest grants it was used at least once.
 */
export function assertGrantsMatchUse(grants: Grant[], events: AuditEvent[], who: string): void {
  assert.ok(events.length > 0, `${who} made no request`);
  const refused = events.filter((e) => (e.responseStatus?.code ?? 0) === 403);
  assert.deepEqual(refused.map((e) => `${e.verb} ${e.requestURI}`), [], `${who} was refused`);
  const used = new Set(events.filter((e) => e.objectRef?.resource).map((e) => `${e.objectRef!.resource}${e.objectRef!.subresource ? `/${e.objectRef!.subresource}` : ""} ${e.verb}`));
  for (const g of grants) for (const resource of g.rule.resources!) for (const verb of g.rule.verbs) {
    assert.ok(used.has(`${resource} ${verb}`), `${who}: ${resource} ${verb} is granted (${g.from}) but never used; used: ${[...used].join(", ")}`);
  }
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
