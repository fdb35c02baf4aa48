/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map meshlane shares between its programs and the loader, in one place.
 * The loader's codecs (loader/maps/) mirror these structs; at load time the
 * loader compares its layouts with the BTF of the built object, field by field,
 * and refuses to start when they differ. Change a struct here and the loader
 * tells you which codec to change.
 *
 * Conventions: addresses are in network byte order in __u32[4] (IPv4 in [0]),
 * ports are in host byte order, families are AF_INET (2) / AF_INET6 (10).
 */
#ifndef MESHLANE_MAPS_H
#define MESHLANE_MAPS_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MESH_MAX_PODS 4096
#define MESH_MAX_POD_IPS (MESH_MAX_PODS * 2)
#define MESH_MAX_PORT_RULES 65536
#define MESH_MAX_CIDR_RULES 16384
#define MESH_MAX_PENDING 65536
#define MESH_MAX_SOCKETS 65536
#define MESH_CONTROL_PORTS 8

/* ---- runtime configuration: ARRAY, one entry, written by the loader ---- */

/* Set while `detach` drains: sk_msg stops redirecting so the peers' ingress
 * queues empty before the sockhash (and the queued bytes with it) goes away. */
#define MESH_CFG_DRAINING (1u << 0)

struct mesh_config {
	__u32 flags;
	/* Ports of the proxy's own endpoints (admin, health, stats): never steered. 0 = unused slot. */
	__u16 control_ports[MESH_CONTROL_PORTS];
};

/* ---- registered pods: HASH, cgroup id -> pod ---- */

/* includeOutboundIPRanges is "*": every destination not excluded goes to the sidecar. */
#define POD_OUTBOUND_ALL_CIDRS (1u << 0)
/* includeInboundPorts is "*": every inbound port not excluded goes to the sidecar. */
#define POD_INBOUND_ALL_PORTS (1u << 1)

struct pod_entry {
	__u32 flags;
	__u32 proxy_uid;
	__u32 proxy_gid;
	__u16 outbound_port; /* Istio: 15001 */
	__u16 inbound_port;  /* Istio: 15006 */
};

/* ---- pod IPs on this node: HASH, address -> cgroup id of the pod ---- */

struct ip_key {
	__u32 family;
	__u32 addr[4];
};

/* ---- per-pod port lists: HASH, (pod, list, port) -> 1 ---- */

enum port_list {
	PORTS_EXCLUDE_OUTBOUND = 1,
	PORTS_INCLUDE_OUTBOUND = 2,
	PORTS_EXCLUDE_INBOUND = 3,
	PORTS_INCLUDE_INBOUND = 4,
};

struct port_key {
	__u64 cgroup_id;
	__u16 port;
	__u8 list;
	__u8 pad[5];
};

/* ---- per-pod CIDR lists: LPM_TRIE, (pod, list, family, prefix) -> 1 ----
 * The trie matches bit prefixes of everything after prefixlen, so the pod and
 * list come first and are always matched in full: prefixlen = CIDR_KEY_FIXED_BITS
 * + the CIDR's own prefix length. */

enum cidr_list {
	CIDRS_EXCLUDE_OUTBOUND = 1,
	CIDRS_INCLUDE_OUTBOUND = 2,
};

#define CIDR_KEY_FIXED_BITS 128 /* pad0 + cgroup_id + list + family + pad1 */

struct cidr_key {
	__u32 prefixlen;
	__u32 pad0;
	__u64 cgroup_id;
	__u8 list;
	__u8 family;
	__u16 pad1;
	__u32 addr[4];
};

/* ---- socket identity: the 4-tuple as seen from one end ----
 * netns is the network namespace cookie when either address is loopback (those
 * tuples repeat in every pod) and 0 otherwise, so that both ends of a
 * connection between two pods compute the same key from different namespaces. */

struct sock_key {
	__u32 src_ip[4];
	__u32 dst_ip[4];
	__u16 src_port;
	__u16 dst_port;
	__u32 family;
	__u64 netns;
};

/* ---- what meshlane knows about one socket: SK_STORAGE ---- */

/* meshlane rewrote this connection's destination; orig_* holds where the app wanted to go. */
#define SOCK_REDIRECTED (1u << 0)
/* Both ends are registered local sockets: eligible for socket-to-socket redirection. */
#define SOCK_PAIRED (1u << 1)
/* The socket sent bytes through the TCP stack once; redirecting later bytes would
 * let them overtake those, so it stays on the stack for good. */
#define SOCK_STACK_ONLY (1u << 2)

struct sock_state {
	__u32 flags;
	__u32 orig_family;
	__u32 orig_ip[4];
	__u16 orig_port;
	__u16 pad;
};

/* ---- handover from the connecting socket to the accepted one: LRU_HASH ----
 * The accepted end must not be found by the client's tuple: conntrack in the
 * server's namespace may give the connection another source port (it does when
 * an older connection's entry holds the same reply tuple, e.g. right after a pod
 * switches from iptables to meshlane). What NAT never changes is each side's
 * initial sequence number, so the key is the two handshake sequence numbers with
 * the addresses and the server's port: client_seq is the client's snd_una (the
 * server's rcv_nxt), server_seq the client's rcv_nxt (the server's snd_una). */

struct handover_key {
	__u32 client_ip[4];
	__u32 server_ip[4];
	__u32 client_seq;
	__u32 server_seq;
	__u16 server_port;
	__u16 pad;
	__u32 family;
	__u64 netns;
};

struct handover {
	__u32 flags;
	__u32 orig_family;
	__u32 orig_ip[4];
	__u16 orig_port;
	/* The client's own source port: the accepted end pairs only if it sees the same. */
	__u16 client_port;
};

/* ---- counters: PERCPU_ARRAY, index -> __u64 ---- */

enum mesh_counter {
	CNT_CONNECT_OUTBOUND = 0,     /* app connections steered to the sidecar */
	CNT_CONNECT_INBOUND = 1,      /* sidecar connections steered to a local pod's inbound port */
	CNT_SOCKETS_PAIRED = 2,       /* sockets added to the sockhash */
	CNT_ORIGDST_ANSWERED = 3,     /* SO_ORIGINAL_DST answered from meshlane's record */
	CNT_MSG_REDIRECTED = 4,       /* sendmsg calls delivered socket-to-socket */
	CNT_BYTES_REDIRECTED = 5,
	CNT_FALLBACK_NO_STORAGE = 6,  /* could not record a socket: connection left to iptables */
	CNT_FALLBACK_SOCKHASH = 7,    /* sockhash full: connection stays on the TCP stack */
	CNT_FALLBACK_NO_PEER = 8,     /* peer socket not (yet) paired: bytes took the TCP stack */
	CNT_FALLBACK_DRAINING = 9,    /* detach in progress: bytes took the TCP stack */
	CNT_FALLBACK_PENDING_LOST = 10, /* no room to keep the handed-over original destination at accept */
	CNT_FALLBACK_NAT = 11,        /* NAT changed the tuple between the ends: not paired, stack path */
	CNT_MAX = 12,
};

/* ---- the maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mesh_config);
} mesh_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESH_MAX_PODS);
	__type(key, __u64);
	__type(value, struct pod_entry);
} mesh_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESH_MAX_POD_IPS);
	__type(key, struct ip_key);
	__type(value, __u64);
} mesh_pod_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESH_MAX_PORT_RULES);
	__type(key, struct port_key);
	__type(value, __u8);
} mesh_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MESH_MAX_CIDR_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cidr_key);
	__type(value, __u8);
} mesh_cidrs SEC(".maps");

/* Per-socket state, freed with the socket: nothing to clean up, nothing to leak. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_state);
} mesh_sock_state SEC(".maps");

/* Lives for one handshake; LRU so a handshake that never completes cannot leak. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MESH_MAX_PENDING);
	__type(key, struct handover_key);
	__type(value, struct handover);
} mesh_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, MESH_MAX_SOCKETS);
	__type(key, struct sock_key);
	__type(value, __u64);
} mesh_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mesh_counters SEC(".maps");

#endif /* MESHLANE_MAPS_H */
