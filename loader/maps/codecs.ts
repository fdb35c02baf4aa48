// TypeScript mirror of bpf/maps.h. Struct layouts are checked against the
// object's BTF at load time (loader/object.ts); the constants are checked against
// the header's text by test/loader/maps-header.test.ts.

import { bytes, scalar, struct, u16, u32, u64, u8, type Codec } from "./layout.js";

export const AF_INET = 2;
export const AF_INET6 = 10;

export const MESH_CFG_DRAINING = 1 << 0;
export const POD_OUTBOUND_ALL_CIDRS = 1 << 0;
export const POD_INBOUND_ALL_PORTS = 1 << 1;
export const CIDR_KEY_FIXED_BITS = 128;

export const PortList = {
  PORTS_EXCLUDE_OUTBOUND: 1,
  PORTS_INCLUDE_OUTBOUND: 2,
  PORTS_EXCLUDE_INBOUND: 3,
  PORTS_INCLUDE_INBOUND: 4,
  PORTS_CONTROL: 5,
} as const;

/** enum redirect_mode, by the registration's names for the modes. */
export const RedirectMode = {
  proxy: 0,
  all: 1,
  none: 2,
} as const;

export const CidrList = {
  CIDRS_EXCLUDE_OUTBOUND: 1,
  CIDRS_INCLUDE_OUTBOUND: 2,
} as const;

/** enum mesh_counter, in index order. */
export const COUNTERS = [
  "CNT_CONNECT_OUTBOUND",
  "CNT_CONNECT_INBOUND",
  "CNT_SOCKETS_PAIRED",
  "CNT_ORIGDST_ANSWERED",
  "CNT_MSG_REDIRECTED",
  "CNT_BYTES_REDIRECTED",
  "CNT_FALLBACK_NO_STORAGE",
  "CNT_FALLBACK_SOCKHASH",
  "CNT_FALLBACK_NO_PEER",
  "CNT_FALLBACK_DRAINING",
  "CNT_FALLBACK_PENDING_LOST",
  "CNT_FALLBACK_NAT",
  "CNT_ORIGDST_REFUSED",
  "CNT_UNPAIRED_BY_MODE",
  "CNT_FALLBACK_SYN_DATA",
  "CNT_FALLBACK_BIND",
] as const;
export type CounterName = (typeof COUNTERS)[number];

const addr = bytes(16, 4);

export const meshConfig = struct("mesh_config", { flags: u32, pod_level_min: u32, pod_level_max: u32 });

export const podEntry = struct("pod_entry", {
  flags: u32,
  proxy_uid: u32,
  proxy_gid: u32,
  outbound_port: u16,
  inbound_port: u16,
  redirect: u32,
  ip4: bytes(4, 4),
  ip6: addr,
});

export const ipKey = struct("ip_key", { family: u32, addr });

export const portKey = struct("port_key", {
  cgroup_id: u64,
  port: u16,
  list: u8,
  pad: bytes(5, 1),
});

export const cidrKey = struct("cidr_key", {
  prefixlen: u32,
  pad0: u32,
  cgroup_id: u64,
  list: u8,
  family: u8,
  pad1: u16,
  addr,
});

export const sockKey = struct("sock_key", {
  src_ip: addr,
  dst_ip: addr,
  src_port: u16,
  dst_port: u16,
  family: u32,
  netns: u64,
});

export const sockState = struct("sock_state", {
  flags: u32,
  orig_family: u32,
  orig_ip: addr,
  orig_port: u16,
  key_port: u16,
});

export const handoverKey = struct("handover_key", {
  client_ip: addr,
  server_ip: addr,
  client_seq: u32,
  server_port: u16,
  pad: u16,
  family: u32,
  pad1: u32,
  netns: u64,
});

export const handover = struct("handover", {
  flags: u32,
  orig_family: u32,
  orig_ip: addr,
  orig_port: u16,
  client_port: u16,
});

const index = scalar("__u32", u32);
const cgroupId = scalar("__u64", u64);
const present = scalar("__u8", u8);
const sk_storage_key = scalar("int", u32);

/**
 * Who fills a map, which decides what the loader does with it: `registry` maps are
 * kept equal to the registrations, `config` is written by attach, `counters` is
 * per-CPU, `programs` maps are filled by the data path, and `socket-storage` lives
 * in the sockets themselves (user space cannot walk it or count it).
 */
export type MapRole = "registry" | "config" | "counters" | "programs" | "socket-storage";

export interface MapSpec {
  key: Codec<any>;
  value: Codec<any>;
  role: MapRole;
}

/** Every map of bpf/maps.h with its key and value layout. */
export const MAPS = {
  mesh_config: { key: index, value: meshConfig, role: "config" },
  mesh_pods: { key: cgroupId, value: podEntry, role: "registry" },
  mesh_pod_ips: { key: ipKey, value: cgroupId, role: "registry" },
  mesh_ports: { key: portKey, value: present, role: "registry" },
  mesh_cidrs: { key: cidrKey, value: present, role: "registry" },
  mesh_sock_state: { key: sk_storage_key, value: sockState, role: "socket-storage" },
  mesh_pending: { key: handoverKey, value: handover, role: "programs" },
  mesh_socks: { key: sockKey, value: cgroupId, role: "programs" },
  mesh_counters: { key: index, value: scalar("__u64", u64), role: "counters" },
} satisfies Record<string, MapSpec>;

export type MapName = keyof typeof MAPS;
export const MAP_NAMES = Object.keys(MAPS) as MapName[];
export type MapsWithRole<R extends MapRole> = { [N in MapName]: (typeof MAPS)[N]["role"] extends R ? N : never }[MapName];
export function mapsWithRole<R extends MapRole>(...roles: R[]): MapsWithRole<R>[] {
  return MAP_NAMES.filter((n) => (roles as MapRole[]).includes(MAPS[n].role)) as MapsWithRole<R>[];
}

/** The programs of bpf/meshlane.bpf.c and how each is attached. */
export const PROGRAMS = {
  mesh_connect4: { attach: "cgroup", attachType: 10 /* BPF_CGROUP_INET4_CONNECT */ },
  mesh_connect6: { attach: "cgroup", attachType: 11 /* BPF_CGROUP_INET6_CONNECT */ },
  mesh_getpeername4: { attach: "cgroup", attachType: 29 /* BPF_CGROUP_INET4_GETPEERNAME */ },
  mesh_getpeername6: { attach: "cgroup", attachType: 30 /* BPF_CGROUP_INET6_GETPEERNAME */ },
  mesh_getsockname4: { attach: "cgroup", attachType: 31 /* BPF_CGROUP_INET4_GETSOCKNAME */ },
  mesh_getsockname6: { attach: "cgroup", attachType: 32 /* BPF_CGROUP_INET6_GETSOCKNAME */ },
  mesh_sockops: { attach: "cgroup", attachType: 3 /* BPF_CGROUP_SOCK_OPS */ },
  mesh_getsockopt: { attach: "cgroup", attachType: 21 /* BPF_CGROUP_GETSOCKOPT */ },
  mesh_sk_msg: { attach: "sockhash", attachType: 7 /* BPF_SK_MSG_VERDICT */ },
} as const;
export type ProgramName = keyof typeof PROGRAMS;
export const PROGRAM_NAMES = Object.keys(PROGRAMS) as ProgramName[];
