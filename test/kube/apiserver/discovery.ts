// The discovery documents (/api, /apis, /api/v1, /apis/GROUP/VERSION, /version), built
// from the resource table. client-node's KubernetesObjectApi reads them to map a kind
// to its URL.

import { apiVersionOf, RESOURCE_TYPES, type ResourceType } from "./resources.js";

const VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"];
const SUBRESOURCES: Record<string, { kind: string; verbs: string[] }> = {
  status: { kind: "", verbs: ["get", "patch", "update"] },
  binding: { kind: "Binding", verbs: ["create"] },
};

function groups(): Map<string, ResourceType[]> {
  const byGroup = new Map<string, ResourceType[]>();
  for (const t of RESOURCE_TYPES) byGroup.set(t.group, [...(byGroup.get(t.group) ?? []), t]);
  return byGroup;
}

function apiGroup(name: string, types: ResourceType[]): Record<string, unknown> {
  const versions = [...new Set(types.map((t) => t.version))].map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { kind: "APIGroup", apiVersion: "v1", name, versions, preferredVersion: versions[0] };
}

/** The discovery document at `path`, or undefined when `path` is not a discovery path. */
export function discoveryDocument(path: string, serverAddress: string): unknown {
  const byGroup = groups();
  if (path === "/version") {
    return { major: "1", minor: "31", gitVersion: "v1.31.0+meshlane-stand-in", platform: `${process.platform}/${process.arch}` };
  }
  if (path === "/api") {
    return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }] };
  }
  if (path === "/apis") {
    const list = [...byGroup].filter(([name]) => name !== "").map(([name, types]) => apiGroup(name, types));
    return { kind: "APIGroupList", apiVersion: "v1", groups: list };
  }
  const group = /^\/apis\/([^/]+)$/.exec(path);
  if (group && byGroup.has(group[1]!) && group[1] !== "") return apiGroup(group[1]!, byGroup.get(group[1]!)!);
  const version = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(path);
  if (!version) return undefined;
  const [groupName, versionName] = version[1] ? ["", version[1]] : [version[2]!, version[3]!];
  const types = (byGroup.get(groupName) ?? []).filter((t) => t.version === versionName);
  if (types.length === 0) return undefined;
  return {
    kind: "APIResourceList", apiVersion: "v1", groupVersion: apiVersionOf(types[0]!),
    resources: types.flatMap((t) => [
      { name: t.plural, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: VERBS, shortNames: t.shortNames },
      ...t.subresources.map((sub) => ({
        name: `${t.plural}/${sub}`, singularName: "", namespaced: t.namespaced,
        kind: SUBRESOURCES[sub]!.kind || t.kind, verbs: SUBRESOURCES[sub]!.verbs,
      })),
    ]),
  };
}
