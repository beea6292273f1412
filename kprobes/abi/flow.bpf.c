//go:build ignore

/* Flow visibility: TCP connections (through sock:inet_sock_set_state) and
 * UDP exchanges (through the cgroup socket-address hooks), each attributed
 * to the process and cgroup that own the local socket. A server-side
 * connection is completed by the kernel in softirq context, where "current"
 * is whatever ran: its owner is the listening socket's, recorded when the
 * listener was set up in process context. Records go to the shared ring
 * buffer, so that a flow is read after the exec of its process. */

#include "lib/common.h"
#include "lib/addr.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

/* Socket states, from include/net/tcp_states.h. */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

enum flow_phase {
	FLOW_START = 1,
	FLOW_END = 2,
};

enum flow_direction {
	FLOW_INGRESS = 1,
	FLOW_EGRESS = 2,
};

/* What to report, set by user space. */
enum flow_report {
	FLOW_REPORT_OFF = 0,
	FLOW_REPORT_START = 1,
	FLOW_REPORT_START_END = 2,
};

struct flow_event {
	struct event_header hdr; /* pid: the owning process */
	__u8 phase;              /* enum flow_phase */
	__u8 direction;          /* enum flow_direction */
	__u8 protocol;
	__u8 family;
	__u32 pad;
	__u64 cgroup_id;
	__u8 local[16]; /* IPv4 is v4-mapped */
	__u8 remote[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 pad2;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 packets_sent;
	__u64 packets_received;
	__u64 duration_ns; /* FLOW_END: since the connection was established */
};

struct flow_owner {
	__u32 tgid;
	__u8 direction;
	__u8 established;
	__u16 pad;
	__u64 cgroup_id;
	__u64 established_ktime;
};

struct listener_key {
	__u32 netns;
	__u16 port;
	__u16 family;
};

struct udp_key {
	__u64 cookie;
	__u8 remote[16];
	__u16 remote_port;
	__u16 pad[3];
};

const volatile __u32 agent_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} flow_report_mode SEC(".maps");

/* Owners of TCP sockets, by socket address. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct flow_owner);
} flow_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, struct flow_owner);
} flow_listeners SEC(".maps");

/* UDP (socket, peer) pairs already reported. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct udp_key);
	__type(value, __u64);
} flow_udp_seen SEC(".maps");

const struct flow_event *unused_flow_event __attribute__((unused));
const enum flow_phase *unused_flow_phase __attribute__((unused));
const enum flow_direction *unused_flow_direction __attribute__((unused));
const enum flow_report *unused_flow_report __attribute__((unused));

static __always_inline __u32 report_mode(void)
{
	__u32 zero = 0, *m = bpf_map_lookup_elem(&flow_report_mode, &zero);

	return m ? *m : FLOW_REPORT_OFF;
}

static __always_inline __u32 sk_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* A TCP socket's change of state, as both flavours of the tracepoint
 * give it. */
struct tcp_change {
	const struct sock *sk;
	int oldstate, newstate;
	__u16 family, sport;
};

static __always_inline void emit_tcp(struct tcp_change *c, struct flow_owner *o, __u8 phase)
{
	struct flow_event e = {};
	const struct sock *sk = c->sk;

	e.hdr.op = VIGIL_OP_FLOW;
	e.hdr.size = sizeof(e);
	e.hdr.pid = o->tgid;
	e.hdr.ktime = bpf_ktime_get_ns();
	e.phase = phase;
	e.direction = o->direction;
	e.protocol = IPPROTO_TCP;
	e.family = c->family == AF_INET6 ? 6 : 4;
	e.cgroup_id = o->cgroup_id;
	if (c->family == AF_INET6) {
		BPF_CORE_READ_INTO(&e.local, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e.remote, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		addr_v4mapped(e.local, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		addr_v4mapped(e.remote, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	}
	e.local_port = c->sport;
	e.remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (phase == FLOW_END) {
		const struct tcp_sock *tp = (const struct tcp_sock *)sk;

		/* Payload bytes: bytes_sent (4.19+) counts data, bytes_acked also
		 * the sequence numbers of SYN and FIN. */
		if (bpf_core_field_exists(tp->bytes_sent))
			e.bytes_sent = BPF_CORE_READ(tp, bytes_sent);
		else
			e.bytes_sent = BPF_CORE_READ(tp, bytes_acked);
		e.bytes_received = BPF_CORE_READ(tp, bytes_received);
		e.packets_sent = BPF_CORE_READ(tp, segs_out);
		e.packets_received = BPF_CORE_READ(tp, segs_in);
		if (o->established_ktime)
			e.duration_ns = e.hdr.ktime - o->established_ktime;
	}
	submit(&e, sizeof(e), VIGIL_OP_FLOW);
}

/* on_tcp_state follows a TCP socket from its connect() or accept to its
 * close. Most changes (FIN_WAIT1 and the like) are dismissed by the switch
 * before any map is touched. */
static __always_inline int on_tcp_state(struct tcp_change *c)
{
	__u64 sk = (__u64)c->sk;
	struct flow_owner *o, owner = {};
	__u32 mode = report_mode();

	if (mode == FLOW_REPORT_OFF)
		return 0;

	switch (c->newstate) {
	case TCP_SYN_SENT: /* connect(): in the connecting process */
		owner.tgid = bpf_get_current_pid_tgid() >> 32;
		if (owner.tgid == agent_tgid)
			return 0;
		owner.direction = FLOW_EGRESS;
		owner.cgroup_id = bpf_get_current_cgroup_id();
		bpf_map_update_elem(&flow_socks, &sk, &owner, BPF_ANY);
		return 0;
	case TCP_LISTEN: { /* listen(): in the listening process */
		struct listener_key lk = { .netns = sk_netns(c->sk), .port = c->sport, .family = c->family };

		owner.tgid = bpf_get_current_pid_tgid() >> 32;
		if (owner.tgid == agent_tgid)
			return 0;
		owner.direction = FLOW_INGRESS;
		owner.cgroup_id = bpf_get_current_cgroup_id();
		bpf_map_update_elem(&flow_listeners, &lk, &owner, BPF_ANY);
		return 0;
	}
	case TCP_SYN_RECV: { /* a new connection to a listener, in softirq */
		struct listener_key lk = { .netns = sk_netns(c->sk), .port = c->sport, .family = c->family };

		o = bpf_map_lookup_elem(&flow_listeners, &lk);
		if (!o)
			return 0;
		owner = *o;
		bpf_map_update_elem(&flow_socks, &sk, &owner, BPF_ANY);
		return 0;
	}
	case TCP_ESTABLISHED:
		o = bpf_map_lookup_elem(&flow_socks, &sk);
		if (!o || o->established)
			return 0;
		o->established = 1;
		o->established_ktime = bpf_ktime_get_ns();
		emit_tcp(c, o, FLOW_START);
		return 0;
	case TCP_CLOSE:
		if (c->oldstate == TCP_LISTEN) {
			struct listener_key lk = { .netns = sk_netns(c->sk), .port = c->sport, .family = c->family };

			bpf_map_delete_elem(&flow_listeners, &lk);
			return 0;
		}
		o = bpf_map_lookup_elem(&flow_socks, &sk);
		if (!o)
			return 0;
		if (o->established && mode == FLOW_REPORT_START_END)
			emit_tcp(c, o, FLOW_END);
		bpf_map_delete_elem(&flow_socks, &sk);
		return 0;
	}
	return 0;
}

/* The tracepoint as a perf event: every kernel with tracepoints. */
SEC("tracepoint/sock/inet_sock_set_state")
int flow_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct tcp_change c;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	c.sk = ctx->skaddr;
	c.oldstate = ctx->oldstate;
	c.newstate = ctx->newstate;
	c.family = ctx->family;
	c.sport = ctx->sport;
	return on_tcp_state(&c);
}

/* The same tracepoint called directly with its arguments (tp_btf): no perf
 * record is built for it, which costs the tracepoint about half. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(flow_tcp_state_btf, const struct sock *sk, const int oldstate, const int newstate)
{
	struct tcp_change c;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	c.sk = sk;
	c.oldstate = oldstate;
	c.newstate = newstate;
	c.family = sk->__sk_common.skc_family;
	c.sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	return on_tcp_state(&c);
}

/* UDP: one record per (socket, peer), in the process's context. */
static __always_inline int udp_seen(struct bpf_sock_addr *ctx, __u8 direction, bool v6)
{
	struct udp_key k = {};
	struct flow_event e = {};
	struct bpf_sock *sk;
	__u64 now, *last;

	if (ctx->protocol != IPPROTO_UDP || report_mode() == FLOW_REPORT_OFF)
		return 1;
	e.hdr.pid = bpf_get_current_pid_tgid() >> 32;
	if (e.hdr.pid == agent_tgid)
		return 1;
	k.cookie = bpf_get_socket_cookie(ctx);
	sock_addr_peer(ctx, v6, k.remote);
	k.remote_port = bpf_ntohs(ctx->user_port);
	now = bpf_ktime_get_ns();
	last = bpf_map_lookup_elem(&flow_udp_seen, &k);
	if (last)
		return 1;
	bpf_map_update_elem(&flow_udp_seen, &k, &now, BPF_ANY);

	e.hdr.op = VIGIL_OP_FLOW;
	e.hdr.size = sizeof(e);
	e.hdr.tid = (__u32)bpf_get_current_pid_tgid();
	e.hdr.ktime = now;
	e.phase = FLOW_START;
	e.direction = direction;
	e.protocol = IPPROTO_UDP;
	e.family = v6 ? 6 : 4;
	e.cgroup_id = bpf_get_current_cgroup_id();
	__builtin_memcpy(e.remote, k.remote, 16);
	e.remote_port = k.remote_port;
	sk = ctx->sk;
	if (sk) {
		e.local_port = sk->src_port;
		bpf_sock_local(sk, v6, e.local);
	}
	submit(&e, sizeof(e), VIGIL_OP_FLOW);
	return 1;
}

SEC("cgroup/connect4")
int flow_udp_connect4(struct bpf_sock_addr *ctx)
{
	return udp_seen(ctx, FLOW_EGRESS, false);
}

SEC("cgroup/connect6")
int flow_udp_connect6(struct bpf_sock_addr *ctx)
{
	return udp_seen(ctx, FLOW_EGRESS, true);
}

SEC("cgroup/sendmsg4")
int flow_udp_sendmsg4(struct bpf_sock_addr *ctx)
{
	return udp_seen(ctx, FLOW_EGRESS, false);
}

SEC("cgroup/sendmsg6")
int flow_udp_sendmsg6(struct bpf_sock_addr *ctx)
{
	return udp_seen(ctx, FLOW_EGRESS, true);
}

SEC("cgroup/recvmsg4")
int flow_udp_recvmsg4(struct bpf_sock_addr *ctx)
{
	return udp_seen(ctx, FLOW_INGRESS, false);
}

SEC("cgroup/recvmsg6")
int flow_udp_recvmsg6(struct bpf_sock_addr *ctx)
{
	return udp_seen(ctx, FLOW_INGRESS, true);
}

SEC_LICENSE;
