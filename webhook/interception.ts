// Istio's per-pod capture settings → the Interception document (registry/document.ts).
//
// The semantics follow what actually programs the pod's iptables: istio-cni's
// NewRedirect (cni/pkg/plugin) and the injection template's istio-iptables arguments.
//  - Absent annotations take Istio's defaults: include every outbound address and every
//    inbound port, exclude nothing else.
//  - An empty value is an empty list (includeInboundPorts "" captures no inbound port).
//  - "*" is accepted only where Istio accepts it as a whole value: the include lists.
//  - The status port (default 15020, `status.sidecar.istio.io/port`, 0 disables),
//    15021 and 15090 are always excluded inbound, as both capture paths do.
//  - istio-cni excludes outbound 15020 when excludeOutboundPorts is absent.
//  - The proxy uid/gid come from istio-proxy's securityContext; unset or 0 means 1337,
//    as istio-cni reads them.
// Where meshlane must guess, it excludes more rather than less: an excluded connection
// still meets Istio's iptables, while a wrongly included one would change its path.

import { defaultInterception, ISTIO_DEFAULTS, validateInterception, type Interception } from "../registry/document.js";
import {
  ISTIO_ALWAYS_EXCLUDED_INBOUND,
  ISTIO_INTERCEPTION_MODE_ANNOTATION,
  ISTIO_STATUS_PORT,
  ISTIO_STATUS_PORT_ANNOTATION,
  ISTIO_TRAFFIC_PREFIX,
  PROXY_INTERCEPTION_MODE_ENV,
  TRAFFIC_ANNOTATIONS,
} from "./istio-names.js";
import { CIDR, parseList, parsePort, PORT, Problems, sortedPorts, type TokenKind } from "./istio-lists.js";
import type { ContainerView } from "./pod.js";

export type ModeSource = "annotation" | "proxy-env" | "default";
export const KNOWN_MODES = ["REDIRECT", "TPROXY", "NONE"] as const;

export interface InterceptionMode {
  /** One of KNOWN_MODES, or "invalid" (the raw text is not repeated: it may come from an env value). */
  mode: (typeof KNOWN_MODES)[number] | "invalid";
  source: ModeSource;
}

/** The mode Istio uses: the pod annotation, else what the injector wrote into istio-proxy's env, else REDIRECT. */
export function interceptionMode(annotations: ReadonlyMap<string, string>, proxy: ContainerView | undefined): InterceptionMode {
  const fromAnnotation = annotations.get(ISTIO_INTERCEPTION_MODE_ANNOTATION);
  const fromEnv = proxy?.env.get(PROXY_INTERCEPTION_MODE_ENV);
  const [text, source]: [string, ModeSource] =
    fromAnnotation !== undefined ? [fromAnnotation, "annotation"] : fromEnv !== undefined ? [fromEnv, "proxy-env"] : ["REDIRECT", "default"];
  const mode = KNOWN_MODES.find((m) => m === text.trim());
  return { mode: mode ?? "invalid", source };
}

export type CaptureKind = "istio-init" | "istio-validation";

export type TrafficResult =
  | { ok: true; interception: Interception }
  | { ok: false; code: "bad-annotation" | "unsupported-annotation"; problems: string[] };

function proxyId(v: number | undefined): number {
  return v !== undefined && v > 0 && v <= 0xffffffff ? v : ISTIO_DEFAULTS.proxyUid;
}

/** A status port other than 15020 is excluded too; "0" means pilot-agent serves none. */
function statusPortExclusion(text: string | undefined, problems: Problems): number[] {
  const trimmed = text?.trim();
  if (trimmed === undefined || trimmed === "0") return [];
  const port = parsePort(trimmed);
  if (port === undefined) problems.add(ISTIO_STATUS_PORT_ANNOTATION, trimmed, PORT.what);
  return port === undefined ? [] : [port];
}

/**
 * The effective interception settings of an Istio-injected pod in REDIRECT mode, or every
 * annotation problem found (all of them, so one fix round is enough).
 */
export function parseTrafficAnnotations(
  annotations: ReadonlyMap<string, string>,
  proxy: ContainerView | undefined,
  capture: CaptureKind,
): TrafficResult {
  const problems = new Problems();
  const a = TRAFFIC_ANNOTATIONS;
  const list = <T>(key: string, kind: TokenKind<T>, wildcard: boolean, absent: T[] | "*"): T[] | "*" => {
    const value = annotations.get(key);
    return value === undefined ? absent : parseList(key, value, kind, wildcard, problems);
  };
  // Where "*" is not allowed parseList has already reported it; what is left is a list.
  const ports = (key: string, absent: number[]): number[] => {
    const v = list(key, PORT, false, absent);
    return v === "*" ? [] : sortedPorts(v);
  };
  const cidrs = (key: string): string[] => {
    const v = list(key, CIDR, false, []);
    return v === "*" ? [] : v;
  };
  const includedInbound = list(a.includeInboundPorts, PORT, true, "*");

  const interception: Interception = {
    ...defaultInterception(),
    proxyUid: proxyId(proxy?.runAsUser),
    proxyGid: proxyId(proxy?.runAsGroup),
    includeOutboundIPRanges: list(a.includeOutboundIPRanges, CIDR, true, "*"),
    excludeOutboundIPRanges: cidrs(a.excludeOutboundIPRanges),
    includeOutboundPorts: ports(a.includeOutboundPorts, []),
    excludeOutboundPorts: ports(a.excludeOutboundPorts, capture === "istio-validation" ? [ISTIO_STATUS_PORT] : []),
    includeInboundPorts: includedInbound === "*" ? "*" : sortedPorts(includedInbound),
    excludeInboundPorts: sortedPorts([
      ...ports(a.excludeInboundPorts, []),
      ...ISTIO_ALWAYS_EXCLUDED_INBOUND,
      ISTIO_STATUS_PORT, // istio-cni adds it whatever the status port is
      ...statusPortExclusion(annotations.get(ISTIO_STATUS_PORT_ANNOTATION), problems),
    ]),
  };
  if (problems.list.length > 0) return { ok: false, code: "bad-annotation", problems: problems.list };

  const known = new Set<string>(Object.values(a));
  const unsupported = [...annotations.keys()].filter((k) => k.startsWith(ISTIO_TRAFFIC_PREFIX) && !known.has(k) && annotations.get(k)?.trim() !== "");
  if (unsupported.length > 0) {
    // e.g. excludeInterfaces: capture depends on the egress interface, which meshlane
    // cannot see at connect(); accelerating could steer traffic iptables leaves alone.
    return { ok: false, code: "unsupported-annotation", problems: unsupported.map((k) => `${k} is not modelled by meshlane`) };
  }
  // The registry's validator is the loader's: a document that passes here is one it accepts.
  return { ok: true, interception: validateInterception(interception) };
}
