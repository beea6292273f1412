//go:build ignore

/* Network policy enforcement with cgroup v2 programs attached at the root
 * cgroup, so it works next to any CNI.
 *
 * The maps are written by networkpolicy/datapath from the engine's
 * flattened tables (networkpolicy.Engine.Flatten); policy_lookup below is the
 * algorithm networkpolicy.Tables.Lookup mirrors, and a property test checks
 * that lookup against the engine's verdict function.
 *
 *   connect4/6   TCP connect and UDP connect: a denied peer fails at once
 *                with EPERM.
 *   sendmsg4/6   unconnected UDP: a denied datagram fails with EPERM.
 *   cgroup_skb   packets of sockets in a selected pod: new TCP connections
 *                (SYN without ACK) and UDP/SCTP datagrams from or to
 *                disallowed peers are dropped. Replies of allowed UDP/SCTP
 *                exchanges are recognised by a small LRU table; TCP replies
 *                never carry a lone SYN.
 *
 * Denied and audited flows are reported through a ring buffer, rate limited
 * per CPU; what the limit suppresses is counted. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/addr.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define SOCK_STREAM 1
#define SOCK_DGRAM 2

enum np_direction {
	NP_INGRESS = 1,
	NP_EGRESS = 2,
};

enum np_verdict {
	NP_ALLOW = 1,
	NP_DENY = 2,
	NP_AUDIT = 3,
};

enum np_reason {
	NP_REASON_NO_POLICY = 1,
	NP_REASON_ALLOWED_BY_RULE = 2,
	NP_REASON_DENIED_BY_RULE = 3,
	NP_REASON_DEFAULT_DENY = 4,
	/* networkpolicy.ReasonDNSRefused: a DNS query for a name no rules.dns
	 * list of the rules opening the port allows (5 and 6 are decided in
	 * user space only). */
	NP_REASON_DNS_REFUSED = 7,
};

enum np_hook {
	NP_HOOK_CONNECT4 = 1,
	NP_HOOK_CONNECT6 = 2,
	NP_HOOK_SENDMSG4 = 3,
	NP_HOOK_SENDMSG6 = 4,
	NP_HOOK_SKB_INGRESS = 5,
	NP_HOOK_SKB_EGRESS = 6,
};

enum np_stat {
	NP_STAT_ALLOWED = 0,
	NP_STAT_DENIED = 1,
	NP_STAT_AUDITED = 2,
	NP_STAT_RECORDS = 3,
	NP_STAT_RECORDS_SUPPRESSED = 4,
	NP_STAT_RECORDS_LOST = 5,
	/* DNS answers for toFQDNs (lib/dns.h). */
	NP_STAT_DNS_ANSWERS = 6,      /* answers to a pod's queries parsed */
	NP_STAT_DNS_LEARNED = 7,      /* addresses recorded */
	NP_STAT_DNS_MALFORMED = 8,    /* answers refused by the parser */
	NP_STAT_DNS_TRUNCATED = 9,    /* answers longer than the parser reads */
	NP_STAT_DNS_MAP_FULL = 10,    /* addresses not recorded: np_fqdn is full */
	NP_STAT_DNS_SLOT_EVICTED = 11, /* a name of an address replaced another */
	NP_STAT_DNS_CAPPED = 12,      /* addresses beyond dns_max_ips of one answer */
	NP_STAT_FQDN_ALLOWED = 13,    /* flows allowed by a learned name */
	NP_STAT_DNS_QUERIES = 14,     /* queries checked against rules.dns */
	NP_STAT_DNS_REFUSED = 15,     /* queries dropped: name not allowed */
	NP_STAT_DNS_SPLIT = 16,       /* TCP answers not whole in a segment */
	NP_STAT_MAX = 17,
};

/* Reserved identities (networkpolicy.IdentityWorldIPv4/IPv6). */
#define NP_WORLD_IPV4 2
#define NP_WORLD_IPV6 3

/* ipcache: address prefix -> identity. IPv4 is stored IPv4-mapped
 * (::ffff:a.b.c.d), with the prefix length counted over 128 bits. */
struct ipcache_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* One policy map per local identity: an LPM trie over remote identity (32
 * bits), direction (8), protocol (8) and port (16), all big endian. Remote
 * identity 0 is the wildcard. */
struct policy_key {
	__u32 prefixlen;
	__u32 remote; /* big endian */
	__u8 direction;
	__u8 protocol;
	__u16 port; /* big endian */
};

struct policy_value {
	__u8 verdict;
	__u8 reason;
	__u16 dns_groups; /* rules.dns lists restricting DNS queries (mask) */
	__u32 rule;
};

/* A UDP or SCTP exchange a local socket takes part in, by socket cookie and
 * remote address and port: packets the other way are replies. */
struct flow_key {
	__u64 cookie;
	__u8 remote[16];
	__u16 remote_port; /* big endian */
	__u8 protocol;
	__u8 pad[5];
};

/* The verdict record sent to user space. Addresses are IPv4-mapped for
 * IPv4; ports are in host order. */
struct np_record {
	__u64 time_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tgid;
	__u32 local_identity;
	__u32 remote_identity;
	__u32 rule;
	__u32 suppressed;
	__u8 verdict;
	__u8 reason;
	__u8 direction;
	__u8 protocol;
	__u8 hook;
	__u8 pad[3];
	__u16 src_port;
	__u16 dst_port;
	__u8 src_addr[16];
	__u8 dst_addr[16];
};

struct np_config {
	/* Records per second and CPU before suppression; 0: unlimited. */
	__u32 records_per_sec;
	__u32 burst;
	/* toFQDNs: the least time an address of an answer stays allowed, and
	 * the most addresses one answer records (0: no limit). */
	__u32 dns_min_ttl;
	__u32 dns_max_ips;
};

struct ratelimit {
	__u64 last_ns;
	__u64 tokens;
	__u32 suppressed;
	__u32 pad;
};

const volatile struct np_config np_cfg = {};

/* The inner map's key and value are reached through two pointers in the map
 * definition, where clang emits only forward declarations; these unused
 * constants give them their full BTF. */
const volatile struct policy_key np_btf_policy_key = {};
const volatile struct policy_value np_btf_policy_value = {};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, __u32);
	__uint(max_entries, 65536);
} np_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u32);
	__uint(max_entries, 65536);
} np_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, 16384);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);
		__uint(map_flags, BPF_F_NO_PREALLOC);
		__type(key, struct policy_key);
		__type(value, struct policy_value);
		__uint(max_entries, 16384);
	});
} np_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow_key);
	__type(value, __u64);
	__uint(max_entries, 65536);
} np_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} np_records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct ratelimit);
	__uint(max_entries, 1);
} np_ratelimit SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, NP_STAT_MAX);
} np_stats SEC(".maps");

/* Force BTF for the types user space decodes. */
const struct np_record *unused_np_record __attribute__((unused));
const enum np_verdict *unused_np_verdict __attribute__((unused));
const enum np_reason *unused_np_reason __attribute__((unused));
const enum np_direction *unused_np_direction __attribute__((unused));
const enum np_hook *unused_np_hook __attribute__((unused));
const enum np_stat *unused_np_stat __attribute__((unused));

/* A query: the flow as seen from the local socket. */
struct np_flow {
	__u8 local[16];
	__u8 remote[16];
	__u16 local_port;  /* host order */
	__u16 remote_port; /* host order */
	__u8 protocol;
	__u8 direction;
	__u8 hook;
	__u8 is_v6;
	__u32 l4off; /* of the transport header in the packet (skb programs) */
};

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&np_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline int has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

static __always_inline __u32 remote_identity(struct np_flow *f)
{
	struct ipcache_key k = { .prefixlen = 128 };
	__builtin_memcpy(k.addr, f->remote, 16);
	__u32 *id = bpf_map_lookup_elem(&np_ipcache, &k);
	if (id)
		return *id;
	return f->is_v6 ? NP_WORLD_IPV6 : NP_WORLD_IPV4;
}

/* The lookup of networkpolicy.Tables.Lookup: the remote identity's entries,
 * then the wildcard's; nothing found means no policy selects the pod. */
static __always_inline struct policy_value *policy_lookup(__u32 local, __u8 dir, __u32 remote, __u8 proto, __u16 port)
{
	void *inner = bpf_map_lookup_elem(&np_policy, &local);
	if (!inner)
		return NULL;
	if (!has_ports(proto))
		port = 0;
	struct policy_key k = {
		.prefixlen = 64,
		.remote = bpf_htonl(remote),
		.direction = dir,
		.protocol = proto,
		.port = bpf_htons(port),
	};
	struct policy_value *v = bpf_map_lookup_elem(inner, &k);
	if (v)
		return v;
	k.remote = 0;
	return bpf_map_lookup_elem(inner, &k);
}

static __always_inline int take_token(__u32 *suppressed)
{
	__u32 zero = 0;
	struct ratelimit *rl = bpf_map_lookup_elem(&np_ratelimit, &zero);
	if (!rl)
		return 0;
	__u32 rate = np_cfg.records_per_sec;
	if (rate == 0) {
		*suppressed = rl->suppressed;
		rl->suppressed = 0;
		return 1;
	}
	__u64 burst = np_cfg.burst ? np_cfg.burst : rate;
	__u64 now = bpf_ktime_get_ns();
	__u64 elapsed = now - rl->last_ns;
	if (elapsed > 1000000000ULL)
		elapsed = 1000000000ULL;
	__u64 add = elapsed * rate / 1000000000ULL;
	if (add > 0) {
		rl->tokens += add;
		rl->last_ns = now;
	}
	if (rl->tokens > burst)
		rl->tokens = burst;
	if (rl->tokens == 0) {
		rl->suppressed++;
		stat_inc(NP_STAT_RECORDS_SUPPRESSED);
		return 0;
	}
	rl->tokens--;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return 1;
}

static __always_inline void report(struct np_flow *f, __u64 cgid, __u32 local, __u32 remote,
				   struct policy_value *v, int process_context)
{
	__u32 suppressed = 0;
	if (!take_token(&suppressed))
		return;
	struct np_record *r = bpf_ringbuf_reserve(&np_records, sizeof(*r), 0);
	if (!r) {
		stat_inc(NP_STAT_RECORDS_LOST);
		return;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->time_ns = bpf_ktime_get_ns();
	r->cgroup_id = cgid;
	if (process_context) {
		__u64 pt = bpf_get_current_pid_tgid();
		r->pid = (__u32)pt;
		r->tgid = pt >> 32;
	}
	r->local_identity = local;
	r->remote_identity = remote;
	r->rule = v->rule;
	r->suppressed = suppressed;
	r->verdict = v->verdict;
	r->reason = v->reason;
	r->direction = f->direction;
	r->protocol = f->protocol;
	r->hook = f->hook;
	if (f->direction == NP_EGRESS) {
		__builtin_memcpy(r->src_addr, f->local, 16);
		__builtin_memcpy(r->dst_addr, f->remote, 16);
		r->src_port = f->local_port;
		r->dst_port = f->remote_port;
	} else {
		__builtin_memcpy(r->src_addr, f->remote, 16);
		__builtin_memcpy(r->dst_addr, f->local, 16);
		r->src_port = f->remote_port;
		r->dst_port = f->local_port;
	}
	bpf_ringbuf_submit(r, 0);
	stat_inc(NP_STAT_RECORDS);
}

#include "lib/dns.h"

#define NP_UNMANAGED 2

/* decide returns 1 to let the flow through, 0 to drop it, and NP_UNMANAGED
 * when the socket is not in a pod's cgroup. */
static __always_inline int decide(struct np_flow *f, __u64 cgid, int process_context)
{
	__u32 *local = bpf_map_lookup_elem(&np_cgroups, &cgid);
	if (!local)
		return NP_UNMANAGED;
	__u32 remote = remote_identity(f);
	__u16 port = f->direction == NP_EGRESS ? f->remote_port : f->local_port;
	struct policy_value *v = policy_lookup(*local, f->direction, remote, f->protocol, port);
	if (!v || v->verdict == NP_ALLOW) {
		stat_inc(NP_STAT_ALLOWED);
		return 1;
	}
	if (f->direction == NP_EGRESS && v->reason == NP_REASON_DEFAULT_DENY && fqdn_allows(*local, f, port)) {
		stat_inc(NP_STAT_FQDN_ALLOWED);
		stat_inc(NP_STAT_ALLOWED);
		return 1;
	}
	struct policy_value copy = *v;
	report(f, cgid, *local, remote, &copy, process_context);
	if (copy.verdict == NP_AUDIT) {
		stat_inc(NP_STAT_AUDITED);
		return 1;
	}
	stat_inc(NP_STAT_DENIED);
	return 0;
}

static __always_inline void flow_remember(__u64 cookie, struct np_flow *f)
{
	struct flow_key k = { .cookie = cookie, .remote_port = bpf_htons(f->remote_port), .protocol = f->protocol };
	__builtin_memcpy(k.remote, f->remote, 16);
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&np_flows, &k, &now, BPF_ANY);
}

static __always_inline int flow_known(__u64 cookie, struct np_flow *f)
{
	struct flow_key k = { .cookie = cookie, .remote_port = bpf_htons(f->remote_port), .protocol = f->protocol };
	__builtin_memcpy(k.remote, f->remote, 16);
	return bpf_map_lookup_elem(&np_flows, &k) != NULL;
}

static __always_inline int sock_addr_flow(struct bpf_sock_addr *ctx, struct np_flow *f, int v6, __u8 hook)
{
	__builtin_memset(f, 0, sizeof(*f));
	f->direction = NP_EGRESS;
	f->hook = hook;
	f->is_v6 = v6;
	if (ctx->type == SOCK_STREAM)
		f->protocol = ctx->protocol ? ctx->protocol : IPPROTO_TCP;
	else if (ctx->type == SOCK_DGRAM)
		f->protocol = IPPROTO_UDP;
	else
		return 0;
	if (f->protocol != IPPROTO_TCP && f->protocol != IPPROTO_UDP && f->protocol != IPPROTO_SCTP)
		return 0;
	f->remote_port = bpf_ntohs((__u16)ctx->user_port);
	sock_addr_peer(ctx, v6, f->remote);
	struct bpf_sock *sk = ctx->sk;
	if (sk) {
		f->local_port = sk->src_port;
		bpf_sock_local(sk, v6, f->local);
	}
	return 1;
}

#include "lib/l7.h"

static __always_inline int on_sock_addr(struct bpf_sock_addr *ctx, int v6, __u8 hook)
{
	struct np_flow f;
	if (!sock_addr_flow(ctx, &f, v6, hook))
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	if (f.protocol != IPPROTO_TCP && flow_known(cookie, &f))
		return 1; /* a reply of an exchange the peer started */
	__u64 cgid = bpf_get_current_cgroup_id();
	int ok = decide(&f, cgid, 1);
	if (!ok)
		return 0;
	if (ok == 1 && f.protocol == IPPROTO_TCP && (hook == NP_HOOK_CONNECT4 || hook == NP_HOOK_CONNECT6))
		return l7_redirect(ctx, &f, cgid, v6);
	if (ok == 1 && f.protocol != IPPROTO_TCP)
		flow_remember(cookie, &f);
	return 1;
}

SEC("cgroup/connect4")
int np_connect4(struct bpf_sock_addr *ctx)
{
	return on_sock_addr(ctx, 0, NP_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int np_connect6(struct bpf_sock_addr *ctx)
{
	return on_sock_addr(ctx, 1, NP_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int np_sendmsg4(struct bpf_sock_addr *ctx)
{
	return on_sock_addr(ctx, 0, NP_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int np_sendmsg6(struct bpf_sock_addr *ctx)
{
	return on_sock_addr(ctx, 1, NP_HOOK_SENDMSG6);
}

/* skb_flow parses the network and transport headers; it returns 0 for
 * packets policy does not look at. */
static __always_inline int skb_flow(struct __sk_buff *skb, struct np_flow *f, __u8 dir, __u8 *tcp_flags)
{
	__builtin_memset(f, 0, sizeof(*f));
	f->direction = dir;
	f->hook = dir == NP_INGRESS ? NP_HOOK_SKB_INGRESS : NP_HOOK_SKB_EGRESS;
	__u32 l4off;
	__u8 src[16], dst[16];
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		if (ip.frag_off & bpf_htons(0x1fff))
			return 0; /* a later fragment: no ports */
		f->protocol = ip.protocol;
		l4off = ip.ihl * 4;
		addr_v4mapped(src, ip.saddr);
		addr_v4mapped(dst, ip.daddr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 0;
		f->is_v6 = 1;
		f->protocol = ip6.nexthdr;
		l4off = sizeof(ip6);
		__builtin_memcpy(src, &ip6.saddr, 16);
		__builtin_memcpy(dst, &ip6.daddr, 16);
	} else {
		return 0;
	}
	if (!has_ports(f->protocol))
		return 0;
	f->l4off = l4off;
	__u16 ports[2];
	if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)))
		return 0;
	if (f->protocol == IPPROTO_TCP) {
		__u8 flags;
		if (bpf_skb_load_bytes(skb, l4off + 13, &flags, 1))
			return 0;
		*tcp_flags = flags;
	}
	if (dir == NP_INGRESS) {
		__builtin_memcpy(f->remote, src, 16);
		__builtin_memcpy(f->local, dst, 16);
		f->remote_port = bpf_ntohs(ports[0]);
		f->local_port = bpf_ntohs(ports[1]);
	} else {
		__builtin_memcpy(f->local, src, 16);
		__builtin_memcpy(f->remote, dst, 16);
		f->local_port = bpf_ntohs(ports[0]);
		f->remote_port = bpf_ntohs(ports[1]);
	}
	return 1;
}

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

static __always_inline int on_skb(struct __sk_buff *skb, __u8 dir)
{
	struct np_flow f;
	__u8 flags = 0;
	if (!skb_flow(skb, &f, dir, &flags))
		return 1;
	if (f.protocol == IPPROTO_TCP) {
		if (dir == NP_INGRESS && f.remote_port == 53) {
			/* An answer over TCP (large ones): learned like over UDP. */
			__u64 cgid = bpf_skb_cgroup_id(skb);
			__u32 *local = bpf_map_lookup_elem(&np_cgroups, &cgid);
			if (local)
				dns_tcp_answer(skb, f.l4off, *local);
		}
		/* Only a new incoming connection is policed here: outgoing ones
		 * were decided at connect(), and replies and the rest of a
		 * stream never carry a lone SYN. */
		if (dir == NP_EGRESS || (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
			return 1;
		return decide(&f, bpf_skb_cgroup_id(skb), 0) != 0;
	}
	if (dir == NP_EGRESS && f.protocol == IPPROTO_UDP && f.remote_port == 53 && !dns_query_allowed(skb, &f))
		return 0;
	__u64 cookie = bpf_get_socket_cookie(skb);
	if (flow_known(cookie, &f)) {
		/* An answer to a query of the pod (the socket asked this server):
		 * learn its addresses before the socket can read it. */
		if (dir == NP_INGRESS && f.protocol == IPPROTO_UDP && f.remote_port == 53) {
			__u64 cgid = bpf_skb_cgroup_id(skb);
			__u32 *local = bpf_map_lookup_elem(&np_cgroups, &cgid);
			if (local)
				dns_udp_answer(skb, f.l4off, *local);
		}
		return 1;
	}
	int ok = decide(&f, bpf_skb_cgroup_id(skb), 0);
	if (!ok)
		return 0;
	if (ok == 1)
		flow_remember(cookie, &f);
	return 1;
}

SEC("cgroup_skb/ingress")
int np_ingress(struct __sk_buff *skb)
{
	return on_skb(skb, NP_INGRESS);
}

SEC("cgroup_skb/egress")
int np_egress(struct __sk_buff *skb)
{
	return on_skb(skb, NP_EGRESS);
}

/* The DNS parser alone, for tests through BPF_PROG_TEST_RUN (never
 * attached): a UDP datagram from port 53 is parsed as an answer received by
 * a pod of local identity np_dns_test_local, without the checks that a
 * socket of a pod asked. */
volatile __u32 np_dns_test_local = 0;

SEC("cgroup_skb/ingress")
int np_dns_test(struct __sk_buff *skb)
{
	struct np_flow f;
	__u8 flags = 0;
	if (!skb_flow(skb, &f, NP_INGRESS, &flags))
		return 1;
	if (f.protocol == IPPROTO_UDP && f.remote_port == 53)
		dns_udp_answer(skb, f.l4off, np_dns_test_local);
	return 1;
}
