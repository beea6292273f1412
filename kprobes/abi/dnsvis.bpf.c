//go:build ignore

/* DNS visibility: the head of every DNS message a local socket sends to
 * port 53 or receives from it (UDP and TCP), copied to the shared ring
 * buffer for user space to parse (flows.DNSDecoder). Nothing is parsed or
 * decided here: the programs only find the transport payload, so their
 * cost is a header read and one ring buffer copy of at most DNSVIS_HEAD
 * bytes, and a packet user space cannot read is counted, never trusted.
 *
 * cgroup_skb programs run in softirq context on receive, so the process is
 * not "current" there: the socket address hooks (connect, sendmsg) record
 * the process that owns a socket talking to port 53, by socket cookie, and
 * the skb programs look it up. */

#include "lib/common.h"
#include "lib/addr.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define DNS_PORT 53

/* DNSVIS_HEAD bounds the bytes of a message copied (a power of two). A
 * longer message is copied up to it and counted; UDP answers without
 * EDNS are at most 512 bytes, and EDNS servers default to 1232. */
#define DNSVIS_HEAD 2048
#define DNSVIS_MASK (DNSVIS_HEAD - 1)

enum dnsvis_direction {
	DNSVIS_INGRESS = 1, /* received from port 53: an answer */
	DNSVIS_EGRESS = 2,  /* sent to port 53: a query */
};

enum dnsvis_stat {
	DNSVIS_STAT_PACKETS = 0, /* copied to the ring buffer */
	DNSVIS_STAT_CUT = 1,     /* longer than DNSVIS_HEAD: copied up to it */
	DNSVIS_STAT_LOST = 2,    /* the ring buffer was full */
	DNSVIS_STAT_MAX = 4,
};

struct dns_event {
	struct event_header hdr; /* pid: the owning process (0: unknown) */
	__u64 cgroup_id;         /* of the socket */
	__u64 cookie;            /* socket cookie: pairs a query and its answer */
	__u8 local[16];          /* IPv4 is v4-mapped */
	__u8 remote[16];
	__u16 local_port;
	__u16 remote_port;
	__u8 direction; /* enum dnsvis_direction */
	__u8 protocol;
	__u8 family;
	__u8 pad;
	__u32 len;     /* bytes of transport payload in the packet */
	__u32 cap_len; /* bytes of it in data */
	__u8 data[DNSVIS_HEAD];
};

struct dnsvis_owner {
	__u32 tgid;
	__u32 pad;
};

const volatile __u32 agent_tgid = 0;

/* Owners of sockets that talk to port 53, by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct dnsvis_owner);
} dnsvis_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_event);
} dnsvis_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DNSVIS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} dnsvis_stats SEC(".maps");

const struct dns_event *unused_dns_event __attribute__((unused));
const enum dnsvis_direction *unused_dnsvis_direction __attribute__((unused));
const enum dnsvis_stat *unused_dnsvis_stat __attribute__((unused));

static __always_inline void dnsvis_count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&dnsvis_stats, &stat);

	if (v)
		(*v)++;
}

/* owner_note records the process of a socket that connects or sends to
 * port 53; the agent's own sockets are marked so that they are skipped. */
static __always_inline int owner_note(struct bpf_sock_addr *ctx)
{
	struct dnsvis_owner o = {};
	__u64 cookie;

	if (bpf_ntohs(ctx->user_port) != DNS_PORT)
		return 1;
	if (ctx->protocol != IPPROTO_UDP && ctx->protocol != IPPROTO_TCP)
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	o.tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_map_update_elem(&dnsvis_owners, &cookie, &o, BPF_ANY);
	return 1;
}

SEC("cgroup/connect4")
int dnsvis_connect4(struct bpf_sock_addr *ctx)
{
	return owner_note(ctx);
}

SEC("cgroup/connect6")
int dnsvis_connect6(struct bpf_sock_addr *ctx)
{
	return owner_note(ctx);
}

SEC("cgroup/sendmsg4")
int dnsvis_sendmsg4(struct bpf_sock_addr *ctx)
{
	return owner_note(ctx);
}

SEC("cgroup/sendmsg6")
int dnsvis_sendmsg6(struct bpf_sock_addr *ctx)
{
	return owner_note(ctx);
}

/* dnsvis_copy loads n bytes (1 to DNSVIS_HEAD) of the packet at off into
 * e->data. The length reaches the helper through arithmetic that bounds it
 * on every verifier. */
static __always_inline int dnsvis_copy(struct __sk_buff *skb, __u32 off, __u32 n, struct dns_event *e)
{
	__u64 m = n;

	asm volatile("" : "+r"(m));
	m = ((m - 1) & DNSVIS_MASK) + 1;
	return bpf_skb_load_bytes(skb, off, e->data, m);
}

static __always_inline int on_skb(struct __sk_buff *skb, __u8 dir)
{
	__u32 zero = 0, l4off, start;
	__u8 src[16], dst[16], proto;
	__u16 ports[2], local_port, remote_port;
	struct dnsvis_owner *o;
	struct dns_event *e;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 1;
		if (ip.frag_off & bpf_htons(0x1fff))
			return 1;
		proto = ip.protocol;
		l4off = ip.ihl * 4;
		addr_v4mapped(src, ip.saddr);
		addr_v4mapped(dst, ip.daddr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 1;
		proto = ip6.nexthdr;
		l4off = sizeof(ip6);
		__builtin_memcpy(src, &ip6.saddr, 16);
		__builtin_memcpy(dst, &ip6.daddr, 16);
	} else {
		return 1;
	}
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
		return 1;
	if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)))
		return 1;
	if (dir == DNSVIS_INGRESS) {
		remote_port = bpf_ntohs(ports[0]);
		local_port = bpf_ntohs(ports[1]);
	} else {
		local_port = bpf_ntohs(ports[0]);
		remote_port = bpf_ntohs(ports[1]);
	}
	if (remote_port != DNS_PORT)
		return 1;
	if (proto == IPPROTO_UDP) {
		start = l4off + 8;
	} else {
		__u8 doff = 0;

		if (bpf_skb_load_bytes(skb, l4off + 12, &doff, 1))
			return 1;
		start = l4off + (doff >> 4) * 4;
	}
	if (skb->len <= start)
		return 1; /* no payload: a TCP ACK, SYN or FIN */

	e = bpf_map_lookup_elem(&dnsvis_scratch, &zero);
	if (!e)
		return 1;
	e->cookie = bpf_get_socket_cookie(skb);
	o = bpf_map_lookup_elem(&dnsvis_owners, &e->cookie);
	e->hdr.pid = o ? o->tgid : 0;
	if (o && o->tgid == agent_tgid)
		return 1;
	e->hdr.op = VIGIL_OP_DNS;
	e->hdr.tid = 0;
	e->hdr.ktime = bpf_ktime_get_ns();
	e->cgroup_id = bpf_skb_cgroup_id(skb);
	if (dir == DNSVIS_INGRESS) {
		__builtin_memcpy(e->local, dst, 16);
		__builtin_memcpy(e->remote, src, 16);
	} else {
		__builtin_memcpy(e->local, src, 16);
		__builtin_memcpy(e->remote, dst, 16);
	}
	e->local_port = local_port;
	e->remote_port = remote_port;
	e->direction = dir;
	e->protocol = proto;
	e->family = skb->protocol == bpf_htons(ETH_P_IPV6) ? 6 : 4;
	e->len = skb->len - start;
	e->cap_len = e->len;
	if (e->cap_len > DNSVIS_HEAD) {
		e->cap_len = DNSVIS_HEAD;
		dnsvis_count(DNSVIS_STAT_CUT);
	}
	if (dnsvis_copy(skb, start, e->cap_len, e))
		return 1;
	__u64 size = offsetof(struct dns_event, data) + (e->cap_len & (DNSVIS_HEAD * 2 - 1));
	if (size > sizeof(*e))
		size = sizeof(*e);
	e->hdr.size = size;
	if (bpf_ringbuf_output(&events, e, size, wakeup_flags()) < 0) {
		count_lost(VIGIL_OP_DNS);
		dnsvis_count(DNSVIS_STAT_LOST);
		return 1;
	}
	wake_reader();
	dnsvis_count(DNSVIS_STAT_PACKETS);
	return 1;
}

SEC("cgroup_skb/ingress")
int dnsvis_ingress(struct __sk_buff *skb)
{
	return on_skb(skb, DNSVIS_INGRESS);
}

SEC("cgroup_skb/egress")
int dnsvis_egress(struct __sk_buff *skb)
{
	return on_skb(skb, DNSVIS_EGRESS);
}

SEC_LICENSE;
