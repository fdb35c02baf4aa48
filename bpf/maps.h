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

/* ---- runtime configuration: ARRAY, one entry, written by the loader ---- */

/* Set while `detach` drains: sk_msg stops redirecting so the peers' ingress
 * queues empty before the sockhash (and the queued bytes with it) goes away. */
#define MESH_CFG_DRAINING (1u << 0)

/* Node-wide: only what is not a pod's setting. Control ports are per pod (PORTS_CONTROL). */
/* Deepest cgroup level current_pod() ever looks at. */
#define MESH_MAX_CGROUP_LEVEL 15

/* Node-wide: only what is not a pod's setting. Control ports are per pod (PORTS_CONTROL).
 * pod_level_min..pod_level_max: the cgroup levels (the root is 0) at which the
 * loader's pod cgroups can be: kubelet puts them right below kubepods or below its
 * QoS cgroup. current_pod() looks only there, so a task in no registered pod costs
 * one or two lookups instead of one per level of its cgroup path. 0 (never written)
 * is no level at all: nothing is steered and traffic takes iptables. */
struct mesh_config {
	__u32 flags;
	__u32 pod_level_min;
	__u32 pod_level_max;
};

/* ---- registered pods: HASH, cgroup id -> pod ---- */

/* includeOutboundIPRanges is "*": every destination not excluded goes to the sidecar. */
#define POD_OUTBOUND_ALL_CIDRS (1u << 0)
/* includeInboundPorts is "*": every inbound port not excluded goes to the sidecar. */
#define POD_INBOUND_ALL_PORTS (1u << 1)

/* What sk_msg may redirect into (the registration's interception.redirect). A
 * redirected message waits on the receiver's psock queue, which recv/read see and
 * splice does not, and a socket in the sockhash is read through the sockmap receive
 * path, whose blocking and end-of-file behaviour differ from TCP's: so only sockets
 * whose reader is known (the proxy) join the sockhash unless the pod says all. */
enum redirect_mode {
	REDIRECT_PROXY = 0, /* only the proxy's own sockets join the sockhash (the default) */
	REDIRECT_ALL = 1,   /* application sockets too: the app must read with recv/read only */
	REDIRECT_NONE = 2,  /* connect-time steering only: none of the pod's sockets join */
};

struct pod_entry {
	__u32 flags;
	__u32 proxy_uid;
	__u32 proxy_gid;
	__u16 outbound_port; /* Istio: 15001 */
	__u16 inbound_port;  /* Istio: 15006 */
	__u32 redirect;      /* enum redirect_mode */
	/* The pod's own addresses (0 = none): a steered app socket is bound to them so
	 * that it, and the sidecar, see the pod IP as the source, as under iptables. */
	__u32 ip4;
	__u32 ip6[4];
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
	/* The proxy's own ports (admin, health, metrics): never steered, either way. */
	PORTS_CONTROL = 5,
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

/* meshlane steered this connection; orig_* holds where the app wanted to go. */
#define SOCK_REDIRECTED (1u << 0)
/* Both ends are registered local sockets: eligible for socket-to-socket redirection. */
#define SOCK_PAIRED (1u << 1)
/* The socket sent bytes through the TCP stack once; redirecting later bytes would
 * let them overtake those, so it stays on the stack for good. */
#define SOCK_STACK_ONLY (1u << 2)
/* This end called connect() and meshlane changed where to: getpeername reports orig_*. */
#define SOCK_PEER_REWRITTEN (1u << 3)
/* Its local address is loopback only because meshlane rewrote the destination (the
 * app had bound a port but no address): getsockname reports the pod's address. */
#define SOCK_SHOW_POD_ADDR (1u << 4)

struct sock_state {
	__u32 flags;
	__u32 orig_family;
	__u32 orig_ip[4];
	__u16 orig_port;
	/* Only for a proxy's connection to another registered pod, which meshlane leaves
	 * for that pod's REDIRECT to its inbound port (0 on every other socket):
	 *  - on the connecting end until its SYN leaves: that inbound port, which the
	 *    accepting end will have and which keys the handover;
	 *  - on the accepting end: the port the client connected to. Both ends are in the
	 *    sockhash under the client's own tuple, which the kernel keeps unique: the
	 *    inbound port stands for every port of the pod, and one source port may serve
	 *    connections to two of them at once, so a key naming it could name both. */
	__u16 key_port;
};

/* ---- handover from the connecting socket to the accepted one: LRU_HASH ----
 * The accepted end must not be found by the client's tuple: conntrack in the
 * server's namespace may give the connection another source port (it does when
 * an older connection's entry holds the same reply tuple, e.g. right after a pod
 * switches from iptables to meshlane). What NAT never changes is the client's
 * initial sequence number, so the key is that with the addresses and the server's
 * port as the accepting end has it (for a connection the destination's REDIRECT
 * takes to its inbound port, the client's key_port): client_seq is the client's
 * ISN + 1, which is the accepted end's rcv_nxt when it is established.
 * The client writes it before its SYN leaves (sockops TIMEOUT_INIT, where snd_nxt
 * is the ISN), not when it is established: with TCP Fast Open the server's end is
 * established when the SYN arrives (tcp_fastopen_create_child), before the client
 * has seen the SYN-ACK, and the server's own sequence number is not known yet. */

struct handover_key {
	__u32 client_ip[4];
	__u32 server_ip[4];
	__u32 client_seq;
	__u16 server_port;
	__u16 pad;
	__u32 family;
	__u32 pad1;
	__u64 netns;
};

/* In a handover's flags only (never on a socket): the client connected to orig_port
 * and the destination's REDIRECT took it to the accepting end's inbound port. */
#define HANDOVER_VIA_INBOUND_PORT (1u << 16)

struct handover {
	__u32 flags;
	__u32 orig_family;
	__u32 orig_ip[4];
	__u16 orig_port;
	/* The client's own source port: the accepted end pairs only if it sees the same. */
	__u16 client_port;
};

/* ---- counters: PERCPU_ARRAY, index -> __u64 ----
 * Each slot's number is part of the loader's and the metrics' contract: never
 * renumber one, never reuse a retired one (leave it, marked retired), add new
 * ones before CNT_MAX. */

enum mesh_counter {
	CNT_CONNECT_OUTBOUND = 0,     /* app connections steered to the sidecar */
	CNT_CONNECT_INBOUND = 1,      /* sidecar connections to a local pod's intercepted port (its REDIRECT takes them inbound) */
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
	CNT_ORIGDST_REFUSED = 12,     /* SO_ORIGINAL_DST failed instead of naming the socket's own address */
	CNT_UNPAIRED_BY_MODE = 13,    /* steered connections a pod's redirect mode keeps out of the sockhash */
	CNT_FALLBACK_SYN_DATA = 14,   /* the SYN carried data (TCP Fast Open): the connection stays on the stack */
	CNT_FALLBACK_BIND = 15,       /* could not bind a steered app socket to the pod IP: source stays loopback */
	CNT_MAX = 16,
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
