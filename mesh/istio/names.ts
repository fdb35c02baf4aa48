// Names Istio puts on injected pods. They are Istio's, not meshlane's, so they live
// here rather than in registry/names.ts; spelled once so every check agrees.

export const ISTIO_STATUS_ANNOTATION = "sidecar.istio.io/status";
export const ISTIO_INTERCEPTION_MODE_ANNOTATION = "sidecar.istio.io/interceptionMode";
export const ISTIO_STATUS_PORT_ANNOTATION = "status.sidecar.istio.io/port";
/** istio-cni reads it beside traffic.sidecar.istio.io/kubevirtInterfaces (interface-based capture). */
export const ISTIO_REROUTE_INTERFACES_ANNOTATION = "istio.io/reroute-virtual-interfaces";
/** Prefix of the annotations that istio-iptables and istio-cni turn into capture rules. */
export const ISTIO_TRAFFIC_PREFIX = "traffic.sidecar.istio.io/";

export const TRAFFIC_ANNOTATIONS = {
  includeOutboundIPRanges: `${ISTIO_TRAFFIC_PREFIX}includeOutboundIPRanges`,
  excludeOutboundIPRanges: `${ISTIO_TRAFFIC_PREFIX}excludeOutboundIPRanges`,
  includeOutboundPorts: `${ISTIO_TRAFFIC_PREFIX}includeOutboundPorts`,
  excludeOutboundPorts: `${ISTIO_TRAFFIC_PREFIX}excludeOutboundPorts`,
  includeInboundPorts: `${ISTIO_TRAFFIC_PREFIX}includeInboundPorts`,
  excludeInboundPorts: `${ISTIO_TRAFFIC_PREFIX}excludeInboundPorts`,
} as const;

export const PROXY_CONTAINER = "istio-proxy";
/** Init container that runs istio-iptables (classic capture). */
export const IPTABLES_INIT_CONTAINER = "istio-init";
/** Init container that only checks the rules istio-cni installed (CNI capture). */
export const CNI_VALIDATION_CONTAINER = "istio-validation";
/** Env var the injector sets on istio-proxy to the effective interception mode. */
export const PROXY_INTERCEPTION_MODE_ENV = "ISTIO_META_INTERCEPTION_MODE";

/** Pilot-agent's status/health port; istio-cni and the injector exclude it inbound by default. */
export const ISTIO_STATUS_PORT = 15020;
/** Ports both istio-cni and the injection template always exclude from inbound capture (health, Prometheus). */
export const ISTIO_ALWAYS_EXCLUDED_INBOUND = [15021, 15090] as const;
/** istio-iptables' tunnel port (-e, HBONE): always returned before any inbound capture. */
export const ISTIO_TUNNEL_PORT = 15008;

/** The sidecar's identity and listeners when nothing says otherwise (the injection template's and istio-iptables' defaults). */
export const ISTIO_PROXY = { uid: 1337, gid: 1337 } as const;
export const ISTIO_LISTENERS = { outbound: 15001, inbound: 15006 } as const;

/**
 * The proxy's own ports, never steered in either direction: Envoy admin (15000),
 * pilot-agent debug (15004), status and merged metrics (15020), health (15021),
 * Envoy's Prometheus endpoint (15090).
 */
export const ISTIO_CONTROL_PORTS = [15000, 15004, 15020, 15021, 15090] as const;

/** The control ports of one pod: a status port moved by `status.sidecar.istio.io/port` is the proxy's too. */
export function controlPorts(statusPort: number | undefined): number[] {
  const ports = new Set<number>(ISTIO_CONTROL_PORTS);
  if (statusPort !== undefined) ports.add(statusPort);
  return [...ports].sort((a, b) => a - b);
}
