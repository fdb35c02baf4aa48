// The sidecar stand-in: HAProxy with Istio's two listeners. Like Envoy it forwards
// each connection to its original destination, which it reads with
// getsockopt(SO_ORIGINAL_DST) ("server 0.0.0.0:0"), for IPv4 and IPv6 alike.
// Inbound, it reaches the app from 127.0.0.6 as Envoy's passthrough cluster does,
// which Istio's rules let through (IPv6 inbound passthrough, from ::6, is not
// modelled: IPv6 tests exclude the inbound port). Every connection is logged on
// stdout with the destination it used.

export interface SidecarPorts {
  outbound: number;
  inbound: number;
}

/** Log line: "<frontend> <client ip:port> -> <server ip:port> <bytes to client>". */
export const SIDECAR_LOG = /^(outbound|inbound) (\S+) -> (\S+) (\d+)$/;

/**
 * tcp: forwards bytes, one upstream connection per downstream one.
 * http: parses every request and response and keeps upstream connections open for
 * reuse by later requests (to the same original destination), as Envoy's HTTP
 * connection manager and connection pool do; the benchmark's Envoy-like sidecar.
 */
export type SidecarMode = "tcp" | "http";

const HTTP_DEFAULTS = `
  option http-keep-alive
  http-reuse always
  timeout http-keep-alive 120s`;

export function haproxyConfig(ports: SidecarPorts, mode: SidecarMode = "tcp"): string {
  return `global
  maxconn 4096
  log stdout format raw local0

defaults
  mode ${mode}${mode === "http" ? HTTP_DEFAULTS : ""}
  log global
  log-format "%ft %ci:%cp -> %si:%sp %B"
  timeout connect 5s
  timeout client 120s
  timeout server 120s

frontend outbound
  bind 0.0.0.0:${ports.outbound}
  bind :::${ports.outbound} v6only
  default_backend original_destination

frontend inbound
  bind 0.0.0.0:${ports.inbound}
  bind :::${ports.inbound} v6only
  default_backend original_destination_from_passthrough

backend original_destination
  server orig 0.0.0.0:0

backend original_destination_from_passthrough
  source 127.0.0.6
  server orig 0.0.0.0:0
`;
}
