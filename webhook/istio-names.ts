// Names Istio puts on injected pods. They are Istio's, not meshlane's, so they live
// here rather than in registry/names.ts; spelled once so every check agrees.

export const ISTIO_STATUS_ANNOTATION = "sidecar.istio.io/status";
export const ISTIO_INTERCEPTION_MODE_ANNOTATION = "sidecar.istio.io/interceptionMode";
export const ISTIO_STATUS_PORT_ANNOTATION = "status.sidecar.istio.io/port";
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
