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
  /** HAProxy's admin socket (a Unix path): the lab asks it which connections it still holds. */
  admin: string;
}

export interface SidecarOptions {
  /** TCP Fast Open on both listeners and towards the servers (needs net.ipv4.tcp_fastopen=3 in the pod). */
  tfo?: boolean;
  /**
   * HTTP mode: parse every request and response and keep upstream connections open
   * for reuse by later requests (to the same original destination), as Envoy's HTTP
   * connection manager and connection pool do; the benchmark's Envoy-like sidecar.
   */
  http?: boolean;
}

const HTTP_DEFAULTS = `
  mode http
  option http-keep-alive
  http-reuse always
  timeout http-keep-alive 120s`;

/** Log line: "<frontend> <client ip:port> -> <server ip:port> <bytes to client>". */
export const SIDECAR_LOG = /^(outbound|inbound) (\S+) -> (\S+) (\d+)$/;

export function haproxyConfig(ports: SidecarPorts, opts: SidecarOptions = {}): string {
  const tfo = opts.tfo ? " tfo" : "";
  return `global
  maxconn 4096
  log stdout format raw local0
  stats socket ${ports.admin} mode 600 level admin

defaults${opts.http ? HTTP_DEFAULTS : "\n  mode tcp"}
  log global
  log-format "%ft %ci:%cp -> %si:%sp %B"
  timeout connect 5s
  timeout client 120s
  timeout server 120s

frontend outbound
  bind 0.0.0.0:${ports.outbound}${tfo}
  bind :::${ports.outbound} v6only${tfo}
  default_backend original_destination

frontend inbound
  bind 0.0.0.0:${ports.inbound}${tfo}
  bind :::${ports.inbound} v6only${tfo}
  default_backend original_destination_from_passthrough

backend original_destination
  server orig 0.0.0.0:0${tfo}

backend original_destination_from_passthrough
  source 127.0.0.6
  server orig 0.0.0.0:0${tfo}
`;
}
