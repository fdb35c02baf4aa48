// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * meshlane's data path (design.md, "Data path rules"):
 *   connect4/connect6  steer app -> own sidecar, and sidecar -> local pod's inbound port
 *   sockops            pair both ends of connections meshlane knows into the sockhash
 *   sk_msg             move bytes socket-to-socket between paired sockets
 *   getsockopt         answer SO_ORIGINAL_DST for connections meshlane steered
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
#define TCP_ESTABLISHED 1
#define DNS_PORT 53
/* Pod cgroups sit a few levels below the root; containers one or two below them. */
#define MAX_CGROUP_DEPTH 16

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

static __always_inline int is_control_port(const struct mesh_config *cfg, __u16 port)
{
#pragma unroll
	for (int i = 0; i < MESH_CONTROL_PORTS; i++)
		if (cfg->control_ports[i] && cfg->control_ports[i] == port)
			return 1;
	return 0;
}

/* The registered pod the current task belongs to: the nearest ancestor cgroup
 * that the loader registered. Containers live below the pod's cgroup. */
static __always_inline struct pod_entry *current_pod(__u64 *cgroup_id)
{
#pragma unroll
	for (int level = 1; level < MAX_CGROUP_DEPTH; level++) {
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

/* Istio's ISTIO_INBOUND chain of the destination pod, for a sidecar connecting to it. */
static __always_inline int pod_intercepts_inbound(__u64 pod_id, const struct pod_entry *pod, __u16 port)
{
	if (port_listed(pod_id, PORTS_EXCLUDE_INBOUND, port))
		return 0;
	if (pod->flags & POD_INBOUND_ALL_PORTS)
		return 1;
	return port_listed(pod_id, PORTS_INCLUDE_INBOUND, port);
}

/* Decides what to do with a TCP connect of the current task to dst:port.
 * Writes the port to connect to instead into *new_port. */
static __always_inline enum steer decide(__u32 family, const __u32 *dst, __u16 port, __u16 *new_port)
{
	struct mesh_config *cfg = config();
	if (!cfg || port == DNS_PORT || is_control_port(cfg, port))
		return STEER_NONE;

	__u64 pod_id = 0;
	struct pod_entry *pod = current_pod(&pod_id);
	if (!pod)
		return STEER_NONE;

	__u64 uid_gid = bpf_get_current_uid_gid();
	int is_proxy = (__u32)uid_gid == pod->proxy_uid || (__u32)(uid_gid >> 32) == pod->proxy_gid;
	if (!is_proxy) {
		if (!app_goes_to_sidecar(pod_id, pod, family, dst, port))
			return STEER_NONE;
		*new_port = pod->outbound_port;
		return STEER_OUTBOUND;
	}

	__u64 *dst_pod_id = pod_of_ip(family, dst);
	if (!dst_pod_id)
		return STEER_NONE;
	/* The sidecar reaching its own app: iptables decides (127.0.0.6 passthrough or
	 * its own inbound listener); both ends are ours, so the bytes may still be paired. */
	if (*dst_pod_id == pod_id)
		return STEER_PAIR_ONLY;
	__u64 dst_id = *dst_pod_id;
	struct pod_entry *dst_pod = bpf_map_lookup_elem(&mesh_pods, &dst_id);
	if (!dst_pod || !pod_intercepts_inbound(dst_id, dst_pod, port))
		return STEER_NONE;
	*new_port = dst_pod->inbound_port;
	return STEER_INBOUND;
}

/* Records the decision on the socket; 0 if there was no room, and then the
 * connection must be left alone so iptables handles it whole. */
static __always_inline int remember(struct bpf_sock *sk, enum steer s, __u32 family, const __u32 *dst, __u16 port)
{
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(CNT_FALLBACK_NO_STORAGE, 1);
		return 0;
	}
	st->flags = SOCK_PAIRED;
	if (s == STEER_OUTBOUND || s == STEER_INBOUND) {
		st->flags |= SOCK_REDIRECTED;
		st->orig_family = family;
		__builtin_memcpy(st->orig_ip, dst, sizeof(st->orig_ip));
		st->orig_port = port;
		count(s == STEER_OUTBOUND ? CNT_CONNECT_OUTBOUND : CNT_CONNECT_INBOUND, 1);
	}
	return 1;
}

SEC("cgroup/connect4")
int mesh_connect4(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	if (ctx->type != SOCK_STREAM || !sk)
		return 1;
	__u32 dst[4] = { ctx->user_ip4, 0, 0, 0 };
	__u16 port = bpf_ntohs((__u16)ctx->user_port), new_port = 0;
	enum steer s = decide(AF_INET, dst, port, &new_port);
	if (s == STEER_NONE || !remember(sk, s, AF_INET, dst, port))
		return 1;
	if (s == STEER_OUTBOUND)
		ctx->user_ip4 = bpf_htonl(0x7f000001); /* 127.0.0.1, where Istio's REDIRECT sends it */
	if (s != STEER_PAIR_ONLY)
		ctx->user_port = bpf_htons(new_port);
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
	__u16 port = bpf_ntohs((__u16)ctx->user_port), new_port = 0;
	enum steer s = decide(family, dst, port, &new_port);
	if (s == STEER_NONE || !remember(sk, s, family, dst, port))
		return 1;
	if (s == STEER_OUTBOUND) {
		/* ::1, or ::ffff:127.0.0.1 for an IPv4 peer */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = mapped ? bpf_htonl(0xffff) : 0;
		ctx->user_ip6[3] = mapped ? bpf_htonl(0x7f000001) : bpf_htonl(1);
	}
	if (s != STEER_PAIR_ONLY)
		ctx->user_port = bpf_htons(new_port);
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

/* sock_ops and sk_msg contexts name a socket's tuple alike (local_port in host
 * order, remote_port in network order in the upper half), so one definition fills
 * a key from either, as this end sees it (local, remote) or as the peer does
 * (remote, local). Both ends must compute keys the same way to find each other. */
#define PORT_local(ctx) ((__u16)(ctx)->local_port)
#define PORT_remote(ctx) ((__u16)bpf_ntohl((ctx)->remote_port))
#define FILL_KEY(ctx, k, src, dst)                                                              \
	do {                                                                                    \
		(k)->family = (ctx)->family;                                                    \
		if ((ctx)->family == AF_INET) {                                                 \
			(k)->src_ip[0] = (ctx)->src##_ip4;                                      \
			(k)->dst_ip[0] = (ctx)->dst##_ip4;                                      \
		} else {                                                                        \
			_Pragma("unroll") for (int i = 0; i < 4; i++) {                         \
				(k)->src_ip[i] = (ctx)->src##_ip6[i];                           \
				(k)->dst_ip[i] = (ctx)->dst##_ip6[i];                           \
			}                                                                       \
		}                                                                               \
		(k)->src_port = PORT_##src(ctx);                                                \
		(k)->dst_port = PORT_##dst(ctx);                                                \
		unmap_v4(k);                                                                    \
		if (is_loopback((k)->family, (k)->src_ip) || is_loopback((k)->family, (k)->dst_ip)) \
			(k)->netns = bpf_get_netns_cookie(ctx);                                 \
	} while (0)

static __always_inline void pair(struct bpf_sock_ops *skops, struct sock_key *k)
{
	if (bpf_sock_hash_update(skops, &mesh_socks, k, BPF_ANY))
		count(CNT_FALLBACK_SOCKHASH, 1);
	else
		count(CNT_SOCKETS_PAIRED, 1);
}

/* The handover key as both ends compute it; `client` and `server` are the two ends' views. */
static __always_inline void handover_key(struct handover_key *h, const __u32 *client_ip, const __u32 *server_ip,
					 __u16 server_port, __u32 client_seq, __u32 server_seq, const struct sock_key *k)
{
	__builtin_memcpy(h->client_ip, client_ip, sizeof(h->client_ip));
	__builtin_memcpy(h->server_ip, server_ip, sizeof(h->server_ip));
	h->server_port = server_port;
	h->client_seq = client_seq;
	h->server_seq = server_seq;
	h->family = k->family;
	h->netns = k->netns;
}

/* Client end: established, so its tuple and both sequence numbers are known. Hand
 * the original destination over to the accepting end (which runs on the server
 * side right after this, when our ACK arrives) and pair the socket. */
static __always_inline void on_active(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return;
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	if (!st || !(st->flags & SOCK_PAIRED))
		return;
	struct sock_key k = {};
	FILL_KEY(skops, &k, local, remote);
	struct handover_key hk = {};
	handover_key(&hk, k.src_ip, k.dst_ip, k.dst_port, skops->snd_una, skops->rcv_nxt, &k);
	struct handover h = {
		.flags = st->flags,
		.orig_family = st->orig_family,
		.orig_port = st->orig_port,
		.client_port = k.src_port,
	};
	__builtin_memcpy(h.orig_ip, st->orig_ip, sizeof(h.orig_ip));
	bpf_map_update_elem(&mesh_pending, &hk, &h, BPF_ANY);
	pair(skops, &k);
}

/* Server end: accepted a connection meshlane set up. Keep the original
 * destination on the socket for getsockopt, and pair the socket only if it sees
 * the client's own tuple: after NAT, a peer looked up by tuple could be another
 * connection's socket. */
static __always_inline void on_passive(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return;
	struct sock_key k = {};
	FILL_KEY(skops, &k, local, remote);
	struct handover_key hk = {};
	handover_key(&hk, k.dst_ip, k.src_ip, k.src_port, skops->rcv_nxt, skops->snd_una, &k);
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
	st->flags = h.flags;
	st->orig_family = h.orig_family;
	__builtin_memcpy(st->orig_ip, h.orig_ip, sizeof(st->orig_ip));
	st->orig_port = h.orig_port;
	if (h.client_port != k.dst_port) {
		st->flags &= ~SOCK_PAIRED;
		count(CNT_FALLBACK_NAT, 1);
		return;
	}
	pair(skops, &k);
}

SEC("sockops")
int mesh_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != AF_INET && skops->family != AF_INET6)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_active(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_passive(skops);
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
	FILL_KEY(msg, &peer, remote, local);
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

SEC("cgroup/getsockopt")
int mesh_getsockopt(struct bpf_sockopt *ctx)
{
	if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return 1;
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	struct sock_state *st = bpf_sk_storage_get(&mesh_sock_state, sk, 0, 0);
	if (!st || !(st->flags & SOCK_REDIRECTED))
		return 1;

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
