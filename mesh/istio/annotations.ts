// Effective interception settings of an istio-cni pod: the rules istio-cni installs come
// from the pod's annotations, read as istio-cni's NewRedirect reads them
// (cni/pkg/plugin/sidecar_redirect.go of the pinned Istio), with its defaults:
//  - includeOutboundIPRanges "*", excludeOutboundIPRanges "", includeInboundPorts "*",
//    includeOutboundPorts "", excludeOutboundPorts and excludeInboundPorts "15020";
//  - 15020, 15021 and 15090 are always added to excludeInboundPorts;
//  - targets 15001/15006; uid/gid from istio-proxy's securityContext, unset or 0 → 1337;
//  - dual stack from istio-proxy's ISTIO_DUAL_STACK; without it meshlane excludes IPv6
//    outbound (::/0), as for classic pods (classic.ts says why).
// An empty value is an empty list; "*" only where istio-cni accepts it as a whole value.
// (A classic pod's settings come from its istio-init arguments instead: classic.ts.)

import type { Interception } from "../../registry/document.js";
import type { SettingsResult } from "../mesh.js";
import type { ContainerView } from "../pod.js";
import {
  controlPorts,
  ISTIO_ALWAYS_EXCLUDED_INBOUND,
  ISTIO_LISTENERS,
  ISTIO_PROXY,
  ISTIO_REROUTE_INTERFACES_ANNOTATION,
  ISTIO_STATUS_PORT,
  ISTIO_STATUS_PORT_ANNOTATION,
  ISTIO_TRAFFIC_PREFIX,
  ISTIO_TUNNEL_PORT,
  TRAFFIC_ANNOTATIONS,
} from "./names.js";
import { goBool } from "./iptables-args.js";
import { CIDR, parseList, parsePort, PORT, Problems, sortedPorts, Steps, type TokenKind } from "./lists.js";

function proxyId(v: number | undefined): number {
  return v !== undefined && v > 0 && v <= 0xffffffff ? v : ISTIO_PROXY.uid;
}

/** The pod's status port (`status.sidecar.istio.io/port`); undefined for the default or "0" (none served). */
export function statusPort(annotations: ReadonlyMap<string, string>, problems: Problems): number | undefined {
  const trimmed = annotations.get(ISTIO_STATUS_PORT_ANNOTATION)?.trim();
  if (trimmed === undefined || trimmed === "0") return undefined;
  const port = parsePort(trimmed);
  if (port === undefined) problems.add(ISTIO_STATUS_PORT_ANNOTATION, trimmed, PORT.what);
  return port;
}

export function cniSettings(annotations: ReadonlyMap<string, string>, proxy: ContainerView | undefined, steps = new Steps()): SettingsResult {
  const problems = new Problems();
  const a = TRAFFIC_ANNOTATIONS;
  const list = <T>(key: string, kind: TokenKind<T>, wildcard: boolean, absent: T[] | "*"): T[] | "*" => {
    const value = annotations.get(key);
    return value === undefined ? absent : parseList(key, value, kind, wildcard, problems, steps);
  };
  // Where "*" is not allowed parseList has already reported it; what is left is a list.
  const ports = (key: string, absent: number[]): number[] => {
    const v = list(key, PORT, false, absent);
    return v === "*" ? [] : sortedPorts(v, steps);
  };
  const cidrs = (key: string): string[] => {
    const v = list(key, CIDR, false, []);
    return v === "*" ? [] : v;
  };
  const includedInbound = list(a.includeInboundPorts, PORT, true, "*");
  const status = statusPort(annotations, problems);

  const interception: Interception = {
    mode: "REDIRECT",
    proxyUid: proxyId(proxy?.runAsUser),
    proxyGid: proxyId(proxy?.runAsGroup),
    outboundPort: ISTIO_LISTENERS.outbound,
    inboundPort: ISTIO_LISTENERS.inbound,
    includeOutboundIPRanges: list(a.includeOutboundIPRanges, CIDR, true, "*"),
    excludeOutboundIPRanges: goBool(proxy?.env.get("ISTIO_DUAL_STACK") ?? "") === true ? cidrs(a.excludeOutboundIPRanges) : [...new Set([...cidrs(a.excludeOutboundIPRanges), "::/0"])],
    includeOutboundPorts: ports(a.includeOutboundPorts, []),
    excludeOutboundPorts: ports(a.excludeOutboundPorts, [ISTIO_STATUS_PORT]),
    includeInboundPorts: includedInbound === "*" ? "*" : sortedPorts(includedInbound, steps),
    excludeInboundPorts: sortedPorts(
      [...ports(a.excludeInboundPorts, [ISTIO_STATUS_PORT]), ...ISTIO_ALWAYS_EXCLUDED_INBOUND, ISTIO_STATUS_PORT, ISTIO_TUNNEL_PORT],
      steps,
    ),
    controlPorts: controlPorts(status),
    redirect: "proxy",
  };
  if (problems.list.length > 0) return { ok: false, code: "bad-annotation", detail: problems.all().join("; ") };

  const known = new Set<string>(Object.values(a));
  const unsupported: string[] = [];
  for (const [k, v] of annotations) {
    steps.count += 1;
    // e.g. excludeInterfaces: capture depends on the egress interface, which meshlane
    // cannot see at connect(); accelerating could steer traffic iptables leaves alone.
    const modelled = known.has(k) || !(k.startsWith(ISTIO_TRAFFIC_PREFIX) || k === ISTIO_REROUTE_INTERFACES_ANNOTATION);
    if (!modelled && v.trim() !== "") unsupported.push(`${k} is not modelled by meshlane`);
  }
  if (unsupported.length > 0) return { ok: false, code: "unsupported-annotation", detail: unsupported.join("; ") };
  // Canonical already (the tests check that the registry's validator returns it unchanged):
  // parsing every CIDR twice would double the cost of a 256 KiB pod.
  return { ok: true, interception };
}
