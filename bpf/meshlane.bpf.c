// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * meshlane's data path (docs/design.md, "Data path rules"):
 *   connect4/connect6  steer app -> own sidecar (at 127.0.0.2 or the pod's address), and record
 *                      sidecar -> local pod, which that pod's REDIRECT takes inbound
 *   getpeername4/6,    keep the app's view of a steered socket: the peer it asked for,
 *   getsockname4/6     and the pod's own address
 *   sockops            hand the original destination to the accepting end, and pair
 *                      both ends of connections whose pods' redirect modes allow it
 *   sk_msg             move bytes socket-to-socket between paired sockets
 *   getsockopt         answer SO_ORIGINAL_DST for connections meshlane steered, and
 *                      never with the socket's own address
 * Anything these programs do not handle is left exactly as it was, so Istio's
 * iptables rules still see it: every failure here is a fallback, never an error.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/socket.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80      /* linux/netfilter_ipv4.h */
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */
#define TCPHDR_SYN 0x02
#define ENOENT 2
/* Left to iptables always: with DNS capture on, Istio's rules send port 53 to the
 * agent's DNS proxy (15053), not to the outbound listener, and the registration does
 * not say whether capture is on. Leaving it alone gives the pod exactly what its own
 * rules do, capture on or off. */
#define DNS_PORT 53
/* Where an app's connection reaches its sidecar's outbound listener (bound to every
 * address): a loopback address, so that the kernel may reuse its TIME_WAIT tuples as
 * it does 127.0.0.1's (tcp_tw_reuse=2), but not 127.0.0.1, where Istio's REDIRECT
 * sends the same connection (steer_connect), nor 127.0.0.6, Istio's inbound
 * passthrough source. */
#define MESH_OUTBOUND_IP4 0x7f000002 /* 127.0.0.2 */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void count(__u32 index, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&mesh_counters, &index);
	if (v)
		*v += n;
}

static __always_inline struct mesh_config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&mesh_config, &zero);
}

/* The registered pod the current task belongs to: its ancestor cgroup, at one of
 * the levels where the loader's pod cgroups are (mesh_config), that the loader
 * registered. Containers live below the pod's cgroup. */
static __always_inline struct pod_entry *current_pod(__u64 *cgroup_id)
{
	struct mesh_config *cfg = config();
	if (!cfg)
		return 0;
	__u32 min = cfg->pod_level_min, max = cfg->pod_level_max;
	if (!min || max > MESH_MAX_CGROUP_LEVEL)
		return 0;
#pragma unroll
	for (__u32 level = 1; level <= MESH_MAX_CGROUP_LEVEL; level++) {
		if (level < min)
			continue;
		if (level > max)
			return 0;
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id)
			return 0;
		struct pod_entry *pod = bpf_map_lookup_elem(&mesh_pods, &id);
		if (pod) {
			*cgroup_id = id;
			return pod;
		}
	}
	return 0;
}

static __always_inline int is_loopback(__u32 family, const __u32 *addr)
{
	if (family == AF_INET)
		return (bpf_ntohl(addr[0]) >> 24) == 127;
	return !addr[0] && !addr[1] && !addr[2] && addr[3] == bpf_htonl(1);
}

static __always_inline int port_listed(__u64 cgroup_id, __u8 list, __u16 port)
{
	struct port_key k = { .cgroup_id = cgroup_id, .port = port, .list = list };
	return bpf_map_lookup_elem(&mesh_ports, &k) != 0;
}

static __always_inline int cidr_listed(__u64 cgroup_id, __u8 list, __u32 family, const __u32 *addr)
{
	struct cidr_key k = {
		.prefixlen = CIDR_KEY_FIXED_BITS + (family == AF_INET ? 32 : 128),
		.cgroup_id = cgroup_id,
		.list = list,
		.family = family,
	};
	__builtin_memcpy(k.addr, addr, sizeof(k.addr));
	return bpf_map_lookup_elem(&mesh_cidrs, &k) != 0;
}

static __always_inline __u64 *pod_of_ip(__u32 family, const __u32 *addr)
{
	struct ip_key k = { .family = family };
	__builtin_memcpy(k.addr, addr, sizeof(k.addr));
	return bpf_map_lookup_elem(&mesh_pod_ips, &k);
}

/* ------------------------------------------------------------------ connect */

enum steer { STEER_NONE, STEER_OUTBOUND, STEER_INBOUND, STEER_PAIR_ONLY };

struct verdict {
	enum steer steer;
	__u16 new_port; /* where the server end is: the outbound listener, or the inbound one the destination's REDIRECT sends it to */
	__u8 pair;      /* both ends may join the sockhash */
	struct pod_entry *pod;
};

/* Istio's ISTIO_OUTPUT chain for an app (non-proxy) process, in the same order. */
static __always_inline int app_goes_to_sidecar(__u64 pod_id, const struct pod_entry *pod,
					       __u32 family, const __u32 *dst, __u16 port)
{
	if (port_listed(pod_id, PORTS_EXCLUDE_OUTBOUND, port))
		return 0;
	/* Loopback and the pod's own addresses leave through lo: Istio returns them. */
	if (is_loopback(family, dst))
		return 0;
	__u64 *owner = pod_of_ip(family, dst);
	if (owner && *owner == pod_id)
		return 0;
	if (cidr_listed(pod_id, CIDRS_EXCLUDE_OUTBOUND, family, dst))
		return 0;
	if (port_listed(pod_id, PORTS_INCLUDE_OUTBOUND, port))
		return 1;
	if (pod->flags & POD_OUTBOUND_ALL_CIDRS)
		return 1;
	return cidr_listed(pod_id, CIDRS_INCLUDE_OUTBOUND, family, dst);
}

/* Istio's ISTIO_INBOUND chain of the destination pod, for a sidecar connecting to it.
 * Its proxy's control ports are never sent to its inbound listener: they are the
 * proxy's own endpoints (health, metrics), which its rules let through. */
static __always_inline int pod_intercepts_inbound(__u64 pod_id, const struct pod_entry *pod, __u16 port)
{
	if (port_listed(pod_id, PORTS_CONTROL, port) || port_listed(pod_id, PORTS_EXCLUDE_INBOUND, port))
		return 0;
	if (pod->flags & POD_INBOUND_ALL_PORTS)
		return 1;
	return port_listed(pod_id, PORTS_INCLUDE_INBOUND, port);
}

/* Whether a socket of this pod may join the sockhash (enum redirect_mode): the
 * proxy's own sockets unless the pod says none, application sockets only if it
 * says all. A pair is made only when both ends may join, so an application socket
 * is never in the sockhash, not even alone, unless its pod chose that. */
static __always_inline int may_join(const struct pod_entry *pod, int is_proxy)
{
	return pod->redirect == REDIRECT_ALL || (is_proxy && pod->redirect == REDIRECT_PROXY);
}

/* Decides what to do with a TCP connect of the current task to dst:port. */
static __always_inline struct verdict connect_verdict(__u32 family, const __u32 *dst, __u16 port)
{
	struct verdict v = { .steer = STEER_NONE };
	struct mesh_config *cfg = config();
	if (!cfg || port == DNS_PORT)
		return v;

	__u64 pod_id = 0;
	struct pod_entry *pod = current_pod(&pod_id);
	if (!pod || port_listed(pod_id, PORTS_CONTROL, port))
		return v;
	v.pod = pod;

	/* The proxy is whoever runs as its uid OR its gid, as Istio's rules see it:
	 * ISTIO_OUTPUT returns both --uid-owner and --gid-owner, and TPROXY-style pods
	 * run the proxy as another uid in the proxy's group. */
	__u64 uid_gid = bpf_get_current_uid_gid();
	int is_proxy = (__u32)uid_gid == pod->proxy_uid || (__u32)(uid_gid >> 32) == pod->proxy_gid;
	if (!is_proxy) {
		if (!app_goes_to_sidecar(pod_id, pod, family, dst, port))
			return v;
		v.steer = STEER_OUTBOUND;
		v.new_port = pod->outbound_port;
		v.pair = may_join(pod, 0) && may_join(pod, 1);
		return v;
	}

	__u64 *dst_pod_id = pod_of_ip(family, dst);
	if (!dst_pod_id)
		return v;
	/* The sidecar reaching its own app: iptables decides (127.0.0.6 passthrough or
	 * its own inbound listener), and the accepting end is the app's socket or the
	 * proxy's: only a pod that lets apps join may pair it. */
	if (*dst_pod_id == pod_id) {
		if (may_join(pod, 0))
			v.steer = STEER_PAIR_ONLY, v.pair = 1;
		return v;
	}
	__u64 dst_id = *dst_pod_id;
	struct pod_entry *dst_pod = bpf_map_lookup_elem(&mesh_pods, &dst_id);
	if (!dst_pod || !pod_intercepts_inbound(dst_id, dst_pod, port))
		return v;
	v.steer = STEER_INBOUND;
	v.new_port = dst_pod->inbound_port;
	v.pair = may_join(pod, 1) && may_join(dst_pod, 1);
	return v;
}

/* Records the decision on the socket; 0 if there was no room, and then the
 * connection must be left alone so iptables handles it whole. */
static __always_inline int remember(struct bpf_sock *sk, const struct verdict *v, __u32 family, const __u32 *dst, __u16 port)
{
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(CNT_FALLBACK_NO_STORAGE, 1);
		return 0;
	}
	st->flags = v->pair ? SOCK_PAIRED : 0;
	st->key_port = v->steer == STEER_INBOUND ? v->new_port : 0;
	if (v->steer == STEER_OUTBOUND || v->steer == STEER_INBOUND) {
		/* Only the app's connection goes elsewhere than it asked (steer_connect). */
		st->flags |= SOCK_REDIRECTED | (v->steer == STEER_OUTBOUND ? SOCK_PEER_REWRITTEN : 0);
		st->orig_family = family;
		__builtin_memcpy(st->orig_ip, dst, sizeof(st->orig_ip));
		st->orig_port = port;
		count(v->steer == STEER_OUTBOUND ? CNT_CONNECT_OUTBOUND : CNT_CONNECT_INBOUND, 1);
		if (!v->pair)
			count(CNT_UNPAIRED_BY_MODE, 1);
	}
	return 1;
}

/* A socket connecting again (after connect(AF_UNSPEC)) must not keep what meshlane
 * recorded for its previous connection. */
static __always_inline void forget(struct bpf_sock *sk)
{
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	if (st) {
		st->flags = 0;
		st->key_port = 0;
	}
}

/* Binds a steered app socket that has no address yet to the pod's own, so that the
 * app's getsockname and the sidecar's view of the client are the pod IP, as under
 * iptables (REDIRECT changes only the destination). The port stays the kernel's
 * choice at connect. A socket the app bound itself keeps its address. Returns 1
 * where that is not possible (the app bound a port but no address, or the bind
 * failed): the kernel would pick a loopback source for a loopback listener, so the
 * caller steers it to the pod's own address instead, and getsockname is told to show
 * the pod's (SOCK_SHOW_POD_ADDR) all the same. */
static __always_inline int bind_to_pod(struct bpf_sock_addr *ctx, struct bpf_sock *sk, struct sockaddr *sa, int len, int unbound_addr, int unbound_port)
{
	if (!unbound_addr)
		return 0;
	if (unbound_port && !bpf_bind(ctx, sa, len))
		return 0;
	if (unbound_port)
		count(CNT_FALLBACK_BIND, 1);
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	if (st)
		st->flags |= SOCK_SHOW_POD_ADDR;
	return 1;
}

/* What both connect hooks do before their family's own address rewrite: take the verdict,
 * remember the original destination, point an app's socket at the outbound port.
 * Returns whether the caller must still give it the listener's address (STEER_OUTBOUND).
 * No connection may have a tuple the other path (iptables) makes too: a SYN that
 * meets the other path's TIME_WAIT or conntrack entry, with another socket's
 * timestamps, is dropped (PAWS) and retried for as long as TIME_WAIT lasts after
 * every switch (docs/datapath.md, "Two paths, two tuples"). So the proxy's
 * connection to another pod keeps its destination, and that pod's own REDIRECT takes
 * it to the inbound port: the very connection iptables makes. An app's connection
 * goes to an address iptables' REDIRECT (to 127.0.0.1 or ::1) never uses. */
static __always_inline int steer_connect(struct bpf_sock_addr *ctx, struct bpf_sock *sk, __u32 family, const __u32 *dst, __u16 port, struct verdict *v)
{
	*v = connect_verdict(family, dst, port);
	if (v->steer == STEER_NONE) {
		forget(sk);
		return 0;
	}
	if (!remember(sk, v, family, dst, port))
		return 0;
	if (v->steer != STEER_OUTBOUND)
		return 0;
	ctx->user_port = bpf_htons(v->new_port);
	return 1;
}

/* Writes an IPv6 sockaddr from four words already loaded into registers. Callers
 * load every word at a fixed offset before choosing: otherwise clang folds the
 * IPv4-mapped and IPv6 branches into one pointer with a variable offset, which the
 * verifier refuses to a loader holding only CAP_BPF and CAP_NET_ADMIN (the
 * DaemonSet's capabilities) as "pointer arithmetic prohibited for !root". */
static __always_inline void set_user_ip6(struct bpf_sock_addr *ctx, int v4_mapped, __u32 v4, __u32 a0, __u32 a1, __u32 a2, __u32 a3)
{
	ctx->user_ip6[0] = v4_mapped ? 0 : a0;
	ctx->user_ip6[1] = v4_mapped ? 0 : a1;
	ctx->user_ip6[2] = v4_mapped ? bpf_htonl(0xffff) : a2;
	ctx->user_ip6[3] = v4_mapped ? v4 : a3;
}

SEC("cgroup/connect4")
int mesh_connect4(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	if (ctx->type != SOCK_STREAM || !sk)
		return 1;
	__u32 dst[4] = { ctx->user_ip4, 0, 0, 0 };
	struct verdict v;
	if (!steer_connect(ctx, sk, AF_INET, dst, bpf_ntohs((__u16)ctx->user_port), &v))
		return 1;
	/* MESH_OUTBOUND_IP4, a loopback address of its own; or the pod's own address for a
	 * socket that could not be bound to it (bind_to_pod), so that the kernel picks that
	 * as its source. */
	int to_pod = 0;
	if (v.pod->ip4) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = v.pod->ip4 };
		to_pod = bind_to_pod(ctx, sk, (struct sockaddr *)&sa, sizeof(sa), !sk->src_ip4, !sk->src_port);
	}
	ctx->user_ip4 = to_pod ? v.pod->ip4 : bpf_htonl(MESH_OUTBOUND_IP4);
	return 1;
}

SEC("cgroup/connect6")
int mesh_connect6(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	if (ctx->type != SOCK_STREAM || !sk)
		return 1;
	__u32 dst[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	/* A dual-stack socket reaching an IPv4 peer (::ffff:a.b.c.d) is IPv4 on the wire
	 * and to iptables: decide, remember and answer it as IPv4. */
	int mapped = !dst[0] && !dst[1] && dst[2] == bpf_htonl(0xffff);
	__u32 family = AF_INET6;
	if (mapped) {
		family = AF_INET;
		dst[0] = dst[3];
		dst[1] = dst[2] = dst[3] = 0;
	}
	struct verdict v;
	if (!steer_connect(ctx, sk, family, dst, bpf_ntohs((__u16)ctx->user_port), &v))
		return 1;
	/* An IPv4 peer's connection goes where connect4 sends it, mapped. IPv6 has no
	 * loopback address but ::1, iptables' own: the pod's IPv6 address, unless the app
	 * bound the socket to ::1 (which could not reach it) or the pod has none. */
	__u32 ip4 = v.pod->ip4, a0 = v.pod->ip6[0], a1 = v.pod->ip6[1], a2 = v.pod->ip6[2], a3 = v.pod->ip6[3];
	int has_addr = mapped ? ip4 != 0 : (a0 | a1 | a2 | a3) != 0;
	__u32 src[4] = { sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3] };
	int to_pod = 0;
	if (has_addr) {
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
		if (mapped) {
			sa.sin6_addr.in6_u.u6_addr32[2] = bpf_htonl(0xffff);
			sa.sin6_addr.in6_u.u6_addr32[3] = ip4;
		} else {
			__builtin_memcpy(&sa.sin6_addr, v.pod->ip6, sizeof(sa.sin6_addr));
		}
		int unbound = !(src[0] | src[1] | src[2] | src[3]);
		to_pod = bind_to_pod(ctx, sk, (struct sockaddr *)&sa, sizeof(sa), unbound, !sk->src_port);
		if (!mapped && !is_loopback(AF_INET6, src))
			to_pod = 1;
	}
	if (!to_pod) {
		ip4 = bpf_htonl(MESH_OUTBOUND_IP4);
		a0 = a1 = a2 = 0;
		a3 = bpf_htonl(1);
	}
	set_user_ip6(ctx, mapped, ip4, a0, a1, a2, a3);
	return 1;
}

/* ------------------------------------------------------- getpeername/getsockname */

static __always_inline struct sock_state *rewritten(struct bpf_sock_addr *ctx, __u32 flag)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk || ctx->type != SOCK_STREAM)
		return 0;
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	return st && (st->flags & flag) ? st : 0;
}

/* The peer a steered socket asked for, not the listener meshlane sent it to. */
SEC("cgroup/getpeername4")
int mesh_getpeername4(struct bpf_sock_addr *ctx)
{
	struct sock_state *st = rewritten(ctx, SOCK_PEER_REWRITTEN);
	if (st && st->orig_family == AF_INET) {
		ctx->user_ip4 = st->orig_ip[0];
		ctx->user_port = bpf_htons(st->orig_port);
	}
	return 1;
}

SEC("cgroup/getpeername6")
int mesh_getpeername6(struct bpf_sock_addr *ctx)
{
	struct sock_state *st = rewritten(ctx, SOCK_PEER_REWRITTEN);
	if (!st)
		return 1;
	__u32 a0 = st->orig_ip[0], a1 = st->orig_ip[1], a2 = st->orig_ip[2], a3 = st->orig_ip[3];
	set_user_ip6(ctx, st->orig_family == AF_INET, a0, a0, a1, a2, a3);
	ctx->user_port = bpf_htons(st->orig_port);
	return 1;
}

/* Only for a socket that could not be bound to the pod IP at connect (bound sockets
 * already report it): the address the kernel would have picked under iptables. */
SEC("cgroup/getsockname4")
int mesh_getsockname4(struct bpf_sock_addr *ctx)
{
	if (!rewritten(ctx, SOCK_SHOW_POD_ADDR))
		return 1;
	__u64 pod_id;
	struct pod_entry *pod = current_pod(&pod_id);
	if (pod && pod->ip4)
		ctx->user_ip4 = pod->ip4;
	return 1;
}

SEC("cgroup/getsockname6")
int mesh_getsockname6(struct bpf_sock_addr *ctx)
{
	struct sock_state *st = rewritten(ctx, SOCK_SHOW_POD_ADDR);
	if (!st)
		return 1;
	__u64 pod_id;
	struct pod_entry *pod = current_pod(&pod_id);
	if (!pod)
		return 1;
	int v4 = st->orig_family == AF_INET;
	__u32 ip4 = pod->ip4, a0 = pod->ip6[0], a1 = pod->ip6[1], a2 = pod->ip6[2], a3 = pod->ip6[3];
	if (v4 ? !ip4 : !(a0 | a1 | a2 | a3))
		return 1;
	set_user_ip6(ctx, v4, ip4, a0, a1, a2, a3);
	return 1;
}

/* ------------------------------------------------------------------ sockops */

/* Dual-stack sockets carry IPv4 peers as ::ffff:a.b.c.d. Keys use the IPv4 form so
 * both ends agree whatever family each end's socket has (a dual-stack app
 * accepting from an IPv4-only sidecar is the common case). */
static __always_inline void unmap_v4(struct sock_key *k)
{
	if (k->family != AF_INET6 || k->src_ip[0] || k->src_ip[1] || k->src_ip[2] != bpf_htonl(0xffff))
		return;
	k->family = AF_INET;
	k->src_ip[0] = k->src_ip[3];
	k->dst_ip[0] = k->dst_ip[3];
	k->src_ip[1] = k->src_ip[2] = k->src_ip[3] = 0;
	k->dst_ip[1] = k->dst_ip[2] = k->dst_ip[3] = 0;
}

/* What makes a copied tuple a key both ends compute alike: the IPv4 form of mapped
 * addresses, and the namespace where loopback addresses make the tuple repeat. */
static __always_inline void finish_key(struct sock_key *k, __u64 netns_cookie)
{
	unmap_v4(k);
	if (is_loopback(k->family, k->src_ip) || is_loopback(k->family, k->dst_ip))
		k->netns = netns_cookie;
}

/* sock_ops and sk_msg contexts name a socket's tuple alike (local_port in host
 * order, remote_port in network order in the upper half), so one definition copies
 * it from either, as this end sees it (local, remote) or as the peer does (remote,
 * local). It only copies fields: finish_key() does the rest. */
#define PORT_local(ctx) ((__u16)(ctx)->local_port)
#define PORT_remote(ctx) ((__u16)bpf_ntohl((ctx)->remote_port))
#define COPY_TUPLE(ctx, k, src, dst)                                            \
	do {                                                                    \
		(k)->family = (ctx)->family;                                    \
		if ((ctx)->family == AF_INET) {                                 \
			(k)->src_ip[0] = (ctx)->src##_ip4;                      \
			(k)->dst_ip[0] = (ctx)->dst##_ip4;                      \
		} else { /* constant offsets: the verifier takes no ctx pointer arithmetic */ \
			(k)->src_ip[0] = (ctx)->src##_ip6[0];                   \
			(k)->src_ip[1] = (ctx)->src##_ip6[1];                   \
			(k)->src_ip[2] = (ctx)->src##_ip6[2];                   \
			(k)->src_ip[3] = (ctx)->src##_ip6[3];                   \
			(k)->dst_ip[0] = (ctx)->dst##_ip6[0];                   \
			(k)->dst_ip[1] = (ctx)->dst##_ip6[1];                   \
			(k)->dst_ip[2] = (ctx)->dst##_ip6[2];                   \
			(k)->dst_ip[3] = (ctx)->dst##_ip6[3];                   \
		}                                                               \
		(k)->src_port = PORT_##src(ctx);                                \
		(k)->dst_port = PORT_##dst(ctx);                                \
	} while (0)

static __always_inline void pair(struct bpf_sock_ops *skops, struct sock_key *k)
{
	if (bpf_sock_hash_update(skops, &mesh_socks, k, BPF_ANY))
		count(CNT_FALLBACK_SOCKHASH, 1);
	else
		count(CNT_SOCKETS_PAIRED, 1);
}

static __always_inline void handover_key(struct handover_key *h, const __u32 *client_ip, const __u32 *server_ip,
					 __u16 server_port, __u32 client_seq, const struct sock_key *k)
{
	__builtin_memcpy(h->client_ip, client_ip, sizeof(h->client_ip));
	__builtin_memcpy(h->server_ip, server_ip, sizeof(h->server_ip));
	h->server_port = server_port;
	h->client_seq = client_seq;
	h->family = k->family;
	h->netns = k->netns;
}

/* Client end, about to send its SYN (tuple and ISN known, nothing sent yet): hand
 * what meshlane knows over to the accepting end, which may be established by that
 * very SYN (TCP Fast Open). */
static __always_inline void on_connecting(struct bpf_sock_ops *skops, const struct sock_key *k)
{
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return;
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	if (!st || !(st->flags & (SOCK_PAIRED | SOCK_REDIRECTED)))
		return;
	struct handover_key hk = {};
	handover_key(&hk, k->src_ip, k->dst_ip, st->key_port ? st->key_port : k->dst_port, skops->snd_nxt + 1, k);
	struct handover h = {
		.flags = (st->flags & (SOCK_PAIRED | SOCK_REDIRECTED)) | (st->key_port ? HANDOVER_VIA_INBOUND_PORT : 0),
		.orig_family = st->orig_family,
		.orig_port = st->orig_port,
		.client_port = k->src_port,
	};
	__builtin_memcpy(h.orig_ip, st->orig_ip, sizeof(h.orig_ip));
	bpf_map_update_elem(&mesh_pending, &hk, &h, BPF_ANY);
	/* Its last use on this end: the pair is keyed by this socket's own tuple (maps.h). */
	st->key_port = 0;
}

/* Client end established. A SYN that carried data (Fast Open) sent bytes through
 * the stack before the socket could be paired: later bytes redirected past them
 * would overtake them at the receiver, so this connection stays on the stack. */
static __always_inline void on_active(struct bpf_sock_ops *skops, struct sock_key *k)
{
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return;
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	if (!st || !(st->flags & SOCK_PAIRED))
		return;
	/* bytes_acked counts the SYN itself: more means the SYN-ACK acked data, and
	 * snd_nxt past snd_una means data is still in flight. */
	if (skops->bytes_acked > 1 || skops->snd_nxt != skops->snd_una) {
		st->flags &= ~SOCK_PAIRED;
		count(CNT_FALLBACK_SYN_DATA, 1);
		return;
	}
	pair(skops, k);
}

/* Server end: accepted a connection meshlane set up. Keep the original
 * destination on the socket for getsockopt, and pair the socket only if it sees
 * the client's own tuple (after NAT, a peer looked up by tuple could be another
 * connection's socket) and was established by a SYN without data. */
static __always_inline void on_passive(struct bpf_sock_ops *skops, struct sock_key *k)
{
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return;
	struct handover_key hk = {};
	handover_key(&hk, k->dst_ip, k->src_ip, k->src_port, skops->rcv_nxt, k);
	struct handover *found = bpf_map_lookup_elem(&mesh_pending, &hk);
	if (!found)
		return;
	struct handover h = *found;
	bpf_map_delete_elem(&mesh_pending, &hk);
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(h.flags & SOCK_REDIRECTED ? CNT_FALLBACK_PENDING_LOST : CNT_FALLBACK_NO_STORAGE, 1);
		return;
	}
	st->flags = h.flags & (SOCK_PAIRED | SOCK_REDIRECTED);
	st->orig_family = h.orig_family;
	__builtin_memcpy(st->orig_ip, h.orig_ip, sizeof(st->orig_ip));
	st->orig_port = h.orig_port;
	if (!(h.flags & SOCK_PAIRED))
		return;
	if (h.client_port != k->dst_port) {
		st->flags &= ~SOCK_PAIRED;
		count(CNT_FALLBACK_NAT, 1);
		return;
	}
	/* A Fast Open child is established by the SYN itself (the ordinary end by the
	 * handshake's ACK), with the SYN's data queued. */
	if (skops->skb_tcp_flags & TCPHDR_SYN) {
		st->flags &= ~SOCK_PAIRED;
		count(CNT_FALLBACK_SYN_DATA, 1);
		return;
	}
	/* Under the client's tuple (maps.h, key_port), which the client's sk_msg looks up. */
	if (h.flags & HANDOVER_VIA_INBOUND_PORT) {
		st->key_port = h.orig_port;
		k->src_port = h.orig_port;
	}
	pair(skops, k);
}

static __always_inline int connect_marked(struct bpf_sock *sk)
{
	if (!sk)
		return 0;
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	return st && (st->flags & (SOCK_PAIRED | SOCK_REDIRECTED));
}

SEC("sockops")
int mesh_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != AF_INET && skops->family != AF_INET6)
		return 1;
	__u32 op = skops->op;
	if (op != BPF_SOCK_OPS_TIMEOUT_INIT && op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	/* The connecting end has state only if connect steered or paired it: every
	 * other socket (all of an unregistered pod's) leaves before the tuple copy. */
	if (op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && !connect_marked(skops->sk))
		return 1;
	/* One copy of the tuple for all three: the verifier rejects the ctx pointer
	 * arithmetic the compiler makes when it merges several copies. */
	struct sock_key k = {};
	COPY_TUPLE(skops, &k, local, remote);
	finish_key(&k, bpf_get_netns_cookie(skops));
	switch (op) {
	case BPF_SOCK_OPS_TIMEOUT_INIT:
		/* Also run for request sockets (no full socket): on_connecting skips those.
		 * skops->reply stays 0, which keeps the kernel's default SYN timeout. */
		on_connecting(skops, &k);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_active(skops, &k);
		break;
	default:
		on_passive(skops, &k);
		break;
	}
	return 1;
}

/* ------------------------------------------------------------------ sk_msg */

SEC("sk_msg")
int mesh_sk_msg(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	if (!sk)
		return SK_PASS;
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	if (!st || (st->flags & SOCK_STACK_ONLY))
		return SK_PASS;
	struct mesh_config *cfg = config();
	if (!cfg || (cfg->flags & MESH_CFG_DRAINING)) {
		st->flags |= SOCK_STACK_ONLY;
		count(CNT_FALLBACK_DRAINING, 1);
		return SK_PASS;
	}
	struct sock_key peer = {};
	COPY_TUPLE(msg, &peer, remote, local);
	if (st->key_port)
		peer.dst_port = st->key_port;
	finish_key(&peer, bpf_get_netns_cookie(msg));
	__u32 size = msg->size;
	if (bpf_msg_redirect_hash(msg, &mesh_socks, &peer, BPF_F_INGRESS) != SK_PASS) {
		st->flags |= SOCK_STACK_ONLY;
		count(CNT_FALLBACK_NO_PEER, 1);
		return SK_PASS;
	}
	count(CNT_MSG_REDIRECTED, 1);
	count(CNT_BYTES_REDIRECTED, size);
	return SK_PASS;
}

/* ------------------------------------------------------------------ getsockopt */

/* Whether the kernel's SO_ORIGINAL_DST answer is the socket's own address: conntrack
 * saw no NAT, so this is no destination a proxy may forward to. In a registered pod
 * that means meshlane steered the connection and lost its record (a handover that
 * never arrived, storage that was full); the proxy would connect to itself, and
 * that connection again, until it runs out of ports. */
static __always_inline int names_itself(struct bpf_sockopt *ctx, struct bpf_sock *sk)
{
	if (ctx->level == SOL_IP) {
		struct sockaddr_in *sa = ctx->optval;
		if ((void *)(sa + 1) > ctx->optval_end)
			return 0;
		return sa->sin_family == AF_INET && sa->sin_addr.s_addr == sk->src_ip4 && sa->sin_port == bpf_htons(sk->src_port);
	}
	struct sockaddr_in6 *sa = ctx->optval;
	if ((void *)(sa + 1) > ctx->optval_end)
		return 0;
	if (sa->sin6_family != AF_INET6 || sa->sin6_port != bpf_htons(sk->src_port))
		return 0;
	return sa->sin6_addr.in6_u.u6_addr32[0] == sk->src_ip6[0] && sa->sin6_addr.in6_u.u6_addr32[1] == sk->src_ip6[1] &&
	       sa->sin6_addr.in6_u.u6_addr32[2] == sk->src_ip6[2] && sa->sin6_addr.in6_u.u6_addr32[3] == sk->src_ip6[3];
}

SEC("cgroup/getsockopt")
int mesh_getsockopt(struct bpf_sockopt *ctx)
{
	if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return 1;
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	if (!st || !(st->flags & SOCK_REDIRECTED)) {
		__u64 pod_id;
		if (ctx->retval || !names_itself(ctx, sk) || !current_pod(&pod_id))
			return 1;
		/* Fail as for a socket without a conntrack entry. (Kernels before 5.18
		 * take only the rejection and report EPERM: a failure all the same.) */
		ctx->retval = -ENOENT;
		count(CNT_ORIGDST_REFUSED, 1);
		return 0;
	}

	if (ctx->level == SOL_IP && st->orig_family == AF_INET) {
		struct sockaddr_in *sa = ctx->optval;
		if ((void *)(sa + 1) > ctx->optval_end)
			return 1;
		sa->sin_family = AF_INET;
		sa->sin_port = bpf_htons(st->orig_port);
		sa->sin_addr.s_addr = st->orig_ip[0];
		__builtin_memset(sa->sin_zero, 0, sizeof(sa->sin_zero));
		ctx->optlen = sizeof(*sa);
	} else if (ctx->level == SOL_IPV6 && st->orig_family == AF_INET6) {
		struct sockaddr_in6 *sa = ctx->optval;
		if ((void *)(sa + 1) > ctx->optval_end)
			return 1;
		sa->sin6_family = AF_INET6;
		sa->sin6_port = bpf_htons(st->orig_port);
		sa->sin6_flowinfo = 0;
		__builtin_memcpy(&sa->sin6_addr, st->orig_ip, sizeof(sa->sin6_addr));
		sa->sin6_scope_id = 0;
		ctx->optlen = sizeof(*sa);
	} else {
		return 1;
	}
	ctx->retval = 0;
	count(CNT_ORIGDST_ANSWERED, 1);
	return 1;
}
