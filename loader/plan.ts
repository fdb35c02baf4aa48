// Pure: "registrations in → map operations out". What the registry says the
// pod maps must hold. No I/O here: loader/pod-steps.ts orders the writes that get
// the maps there, loader/sync.ts reads the maps and applies them.

import type { ParsedRegistration } from "../registry/document.js";
import type { Cidr } from "../registry/ip.js";
import {
  AF_INET,
  AF_INET6,
  CIDR_KEY_FIXED_BITS,
  CidrList,
  MAPS,
  mapsWithRole,
  POD_INBOUND_ALL_PORTS,
  POD_OUTBOUND_ALL_CIDRS,
  PortList,
  RedirectMode,
  type MapsWithRole,
} from "./maps/codecs.js";

/** The maps the registry controls. The others belong to the programs. */
export const POD_MAPS = mapsWithRole("registry");
export type PodMap = MapsWithRole<"registry">;

/** Map contents as hex(key) → hex(value), so that contents compare as strings. */
export type MapContents = Map<string, string>;
export type Contents = Record<PodMap, MapContents>;

export interface Placement {
  registration: ParsedRegistration;
  cgroupId: bigint;
}

export interface PlanProblem {
  uid: string;
  problem: string;
}

/** How Contents keys and values spell a map entry's bytes. */
export const hex = (b: Buffer) => b.toString("hex");
const PRESENT = hex(MAPS.mesh_ports.value.encode(1));

function family(f: 4 | 6): number {
  return f === 4 ? AF_INET : AF_INET6;
}

export function emptyContents(): Contents {
  return Object.fromEntries(POD_MAPS.map((m) => [m, new Map()])) as Contents;
}

/**
 * The entries that placed registrations need. A pod whose IP another pod already
 * claimed is left out whole (and reported): half a pod would steer traffic by
 * the wrong pod's rules. Placements are taken in UID order so the outcome does
 * not depend on the registry's key order.
 */
export function desiredContents(placements: Placement[]): { contents: Contents; problems: PlanProblem[] } {
  const contents = emptyContents();
  const problems: PlanProblem[] = [];
  const owners = new Map<string, string>();
  for (const { registration: r, cgroupId } of [...placements].sort((a, b) => a.registration.uid.localeCompare(b.registration.uid))) {
    const ips = r.ips;
    const clash = ips.find((ip) => owners.has(ip.address));
    if (clash) {
      problems.push({ uid: r.uid, problem: `IP ${clash.address} is already registered by pod ${owners.get(clash.address)}` });
      continue;
    }
    ips.forEach((ip) => owners.set(ip.address, r.uid));
    const ic = r.interception;
    const cgId = MAPS.mesh_pods.key.encode(cgroupId);
    contents.mesh_pods.set(
      hex(cgId),
      hex(MAPS.mesh_pods.value.encode({
        flags: (ic.includeOutboundIPRanges === "*" ? POD_OUTBOUND_ALL_CIDRS : 0) | (ic.includeInboundPorts === "*" ? POD_INBOUND_ALL_PORTS : 0),
        proxy_uid: ic.proxyUid,
        proxy_gid: ic.proxyGid,
        outbound_port: ic.outboundPort,
        inbound_port: ic.inboundPort,
        redirect: RedirectMode[ic.redirect],
        // The first address of each family is the one a steered app socket is bound to; absent = zeros.
        ip4: ips.find((ip) => ip.family === 4)?.bytes ?? new Uint8Array(4),
        ip6: ips.find((ip) => ip.family === 6)?.bytes ?? new Uint8Array(16),
      })),
    );
    for (const ip of ips) {
      contents.mesh_pod_ips.set(hex(MAPS.mesh_pod_ips.key.encode({ family: family(ip.family), addr: ip.bytes })), hex(cgId));
    }
    const portLists: [number, number[]][] = [
      [PortList.PORTS_EXCLUDE_OUTBOUND, ic.excludeOutboundPorts],
      [PortList.PORTS_INCLUDE_OUTBOUND, ic.includeOutboundPorts],
      [PortList.PORTS_EXCLUDE_INBOUND, ic.excludeInboundPorts],
      [PortList.PORTS_INCLUDE_INBOUND, ic.includeInboundPorts === "*" ? [] : ic.includeInboundPorts],
      [PortList.PORTS_CONTROL, ic.controlPorts],
    ];
    for (const [list, ports] of portLists) {
      for (const port of ports) contents.mesh_ports.set(hex(MAPS.mesh_ports.key.encode({ cgroup_id: cgroupId, port, list })), PRESENT);
    }
    const cidrLists: [number, Cidr[]][] = [
      [CidrList.CIDRS_EXCLUDE_OUTBOUND, ic.excludeOutboundIPRanges],
      [CidrList.CIDRS_INCLUDE_OUTBOUND, ic.includeOutboundIPRanges === "*" ? [] : ic.includeOutboundIPRanges],
    ];
    for (const [list, cidrs] of cidrLists) {
      for (const c of cidrs) {
        const key = MAPS.mesh_cidrs.key.encode({
          prefixlen: CIDR_KEY_FIXED_BITS + c.prefix,
          cgroup_id: cgroupId,
          list,
          family: family(c.family),
          addr: c.bytes,
        });
        contents.mesh_cidrs.set(hex(key), PRESENT);
      }
    }
  }
  return { contents, problems };
}

export interface MapOp {
  map: PodMap;
  op: "put" | "delete";
  key: Buffer;
  value?: Buffer;
}
