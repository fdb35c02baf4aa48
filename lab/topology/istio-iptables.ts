// The nat rules Istio's istio-iptables (REDIRECT mode) installs in a pod, built
// from the same interception settings meshlane registers, as an iptables-restore
// (family 4) or ip6tables-restore (family 6) document. Chain names, order and
// owner/loopback rules follow Istio's capture code, so a test pod falls back
// exactly as an Istio pod does.

import type { Interception } from "../../registry/document.js";

/** Istio's inbound ports that are never redirected (HBONE, stats, health, agent). */
const ISTIO_INBOUND_SKIP = [15008, 15090, 15021, 15020];

/** Istio's loopback destination and inbound-passthrough source, per family. */
const FAMILY = {
  4: { loopback: "127.0.0.1/32", passthrough: "127.0.0.6/32" },
  6: { loopback: "::1/128", passthrough: "::6/128" },
} as const;

export function istioNatRules(ic: Interception, family: 4 | 6 = 4): string {
  const { loopback, passthrough } = FAMILY[family];
  const ofFamily = (cidr: string) => cidr.includes(":") === (family === 6);
  const r: string[] = [
    "*nat",
    ":ISTIO_INBOUND - [0:0]",
    ":ISTIO_REDIRECT - [0:0]",
    ":ISTIO_IN_REDIRECT - [0:0]",
    ":ISTIO_OUTPUT - [0:0]",
    "-A PREROUTING -p tcp -j ISTIO_INBOUND",
    "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
    `-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports ${ic.outboundPort}`,
    `-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${ic.inboundPort}`,
  ];
  for (const p of ISTIO_INBOUND_SKIP) r.push(`-A ISTIO_INBOUND -p tcp --dport ${p} -j RETURN`);
  for (const p of ic.excludeInboundPorts) r.push(`-A ISTIO_INBOUND -p tcp --dport ${p} -j RETURN`);
  if (ic.includeInboundPorts === "*") r.push("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT");
  else for (const p of ic.includeInboundPorts) r.push(`-A ISTIO_INBOUND -p tcp --dport ${p} -j ISTIO_IN_REDIRECT`);

  for (const p of ic.excludeOutboundPorts) r.push(`-A ISTIO_OUTPUT -p tcp --dport ${p} -j RETURN`);
  r.push(`-A ISTIO_OUTPUT -s ${passthrough} -o lo -j RETURN`);
  for (const [match, id] of [["--uid-owner", ic.proxyUid], ["--gid-owner", ic.proxyGid]] as const) {
    r.push(`-A ISTIO_OUTPUT ! -d ${loopback} -o lo -p tcp -m owner ${match} ${id} -j ISTIO_IN_REDIRECT`);
    r.push(`-A ISTIO_OUTPUT -o lo -m owner ! ${match} ${id} -j RETURN`);
    r.push(`-A ISTIO_OUTPUT -m owner ${match} ${id} -j RETURN`);
  }
  r.push(`-A ISTIO_OUTPUT -d ${loopback} -j RETURN`);
  for (const c of ic.excludeOutboundIPRanges.filter(ofFamily)) r.push(`-A ISTIO_OUTPUT -d ${c} -j RETURN`);
  for (const p of ic.includeOutboundPorts) r.push(`-A ISTIO_OUTPUT -p tcp --dport ${p} -j ISTIO_REDIRECT`);
  if (ic.includeOutboundIPRanges === "*") r.push("-A ISTIO_OUTPUT -j ISTIO_REDIRECT");
  else for (const c of ic.includeOutboundIPRanges.filter(ofFamily)) r.push(`-A ISTIO_OUTPUT -d ${c} -j ISTIO_REDIRECT`);
  r.push("COMMIT", "");
  return r.join("\n");
}
