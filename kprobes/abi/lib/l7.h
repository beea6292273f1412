/* Redirection of L7-governed TCP connections to the HTTP proxy of the
 * agent (networkpolicy/l7proxy), included by netpol.bpf.c.
 *
 * A connect() of a pod that L3/L4 policy allowed is redirected when its
 * port is governed: np_l7_redirect has {0, 0, port} for every port some
 * rules.http or visibility names (the one lookup ungoverned ports cost) and
 * {local identity, remote identity, port} for the pairs rules.http
 * restricts. The socket is bound to 127.A.B.C, where A.B.C is a random
 * slot of np_l7_conns that keeps the original destination, the client's
 * cgroup and process, and its connection goes to 127.0.0.1:proxy_port in
 * the pod's own network namespace, where the proxy listens. The proxy reads
 * the slot from the peer address of the connection it accepts.
 *
 * Fail closed: with no proxy port configured, for IPv6 and for sockets
 * bound already, a governed connect fails with EPERM; with the proxy gone,
 * the connection is refused by the kernel (nothing listens). */
#ifndef VIGIL_L7_H
#define VIGIL_L7_H

enum np_l7_flag {
	NP_L7_GOVERNED = 1,   /* {0,0,port}: some pair on this port is */
	NP_L7_VISIBILITY = 2, /* {0,0,port}: every connection to it is */
	NP_L7_ENFORCE = 4,    /* {local,remote,port}: rules.http apply */
};

enum np_l7_stat {
	NP_L7_STAT_REDIRECTED = 0,
	NP_L7_STAT_NO_PROXY = 1,  /* refused: no proxy port configured */
	NP_L7_STAT_IPV6 = 2,      /* refused: IPv6 is not redirected */
	NP_L7_STAT_BIND = 3,      /* refused: the socket could not be bound */
	NP_L7_STAT_NO_SLOT = 4,   /* refused: no free slot */
	NP_L7_STAT_MAX = 5,
};

struct np_l7_key {
	__u32 local;
	__u32 remote;
	__u16 port; /* host order */
	__u16 pad;
};

/* What the proxy learns of a redirected connection. */
struct np_l7_conn {
	__u64 cgroup_id;
	__u64 time_ns;
	__u32 pid;
	__u32 tgid;
	__u32 local_identity;
	__u32 remote_identity;
	__u32 dst_ip4; /* network order */
	__u16 dst_port; /* host order */
	__u8 flags; /* np_l7_flag of the lookups that redirected */
	__u8 pad;
};

struct np_l7_config {
	__u32 proxy_port; /* 0: no proxy; governed connects fail */
	__u32 proxy_tgid; /* the proxy's own connects are never redirected */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct np_l7_key);
	__type(value, __u32);
	__uint(max_entries, 65536);
} np_l7_redirect SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32);
	__type(value, struct np_l7_conn);
	__uint(max_entries, 65536);
} np_l7_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct np_l7_config);
	__uint(max_entries, 1);
} np_l7_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_L7_STAT_MAX);
} np_l7_stats SEC(".maps");

const struct np_l7_conn *unused_np_l7_conn __attribute__((unused));
const struct np_l7_key *unused_np_l7_key __attribute__((unused));
const struct np_l7_config *unused_np_l7_config __attribute__((unused));
const enum np_l7_flag *unused_np_l7_flag __attribute__((unused));
const enum np_l7_stat *unused_np_l7_stat __attribute__((unused));

#define NP_L7_SLOT_MIN 2
#define NP_L7_SLOT_SPAN 0xfffffd /* slots 2 .. 0xfffffe: never 127.0.0.0/1 or .255 */

static __always_inline int l7_refuse(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&np_l7_stats, &stat);
	if (v)
		*v += 1;
	return 0;
}

/* l7_redirect is called for TCP connects that policy allowed from a pod;
 * it returns 1 to let the connect go on (redirected or not), 0 to fail it
 * with EPERM. */
static __always_inline int l7_redirect(struct bpf_sock_addr *ctx, struct np_flow *f, __u64 cgid, int v6)
{
	struct np_l7_key k = { .port = f->remote_port };
	__u32 *any = bpf_map_lookup_elem(&np_l7_redirect, &k);
	if (!any)
		return 1;
	__u32 *local = bpf_map_lookup_elem(&np_cgroups, &cgid);
	if (!local)
		return 1;
	__u32 flags = *any & NP_L7_VISIBILITY;
	k.local = *local;
	k.remote = remote_identity(f);
	__u32 *pair = bpf_map_lookup_elem(&np_l7_redirect, &k);
	if (pair)
		flags |= *pair;
	if (!flags)
		return 1;
	__u32 zero = 0;
	struct np_l7_config *cfg = bpf_map_lookup_elem(&np_l7_cfg, &zero);
	__u64 pt = bpf_get_current_pid_tgid();
	if (cfg && cfg->proxy_tgid && cfg->proxy_tgid == (__u32)(pt >> 32))
		return 1;
	if (!cfg || !cfg->proxy_port)
		return l7_refuse(NP_L7_STAT_NO_PROXY);
	if (v6)
		return l7_refuse(NP_L7_STAT_IPV6);
	struct np_l7_conn c = {
		.cgroup_id = cgid,
		.time_ns = bpf_ktime_get_ns(),
		.pid = (__u32)pt,
		.tgid = pt >> 32,
		.local_identity = k.local,
		.remote_identity = k.remote,
		.dst_ip4 = ctx->user_ip4,
		.dst_port = f->remote_port,
		.flags = flags,
	};
	__u32 slot = 0;
	int i;
	for (i = 0; i < 4; i++) {
		__u32 s = NP_L7_SLOT_MIN + bpf_get_prandom_u32() % NP_L7_SLOT_SPAN;
		if (bpf_map_update_elem(&np_l7_conns, &s, &c, BPF_NOEXIST) == 0) {
			slot = s;
			break;
		}
	}
	if (!slot)
		return l7_refuse(NP_L7_STAT_NO_SLOT);
	struct sockaddr_in sa = {};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = bpf_htonl(0x7f000000 | slot);
	if (bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa))) {
		bpf_map_delete_elem(&np_l7_conns, &slot);
		return l7_refuse(NP_L7_STAT_BIND);
	}
	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons((__u16)cfg->proxy_port);
	__u32 st = NP_L7_STAT_REDIRECTED;
	__u64 *v = bpf_map_lookup_elem(&np_l7_stats, &st);
	if (v)
		*v += 1;
	return 1;
}

#endif
