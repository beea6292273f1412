//go:build ignore

/* Tracing policies: one program body serves every hook a policy asks for.
 * The loader attaches a copy per hook (kprobe, fentry/fexit, fmod_ret, LSM,
 * tracepoint) with hook_id set in its read-only data, or one kprobe.multi
 * program whose attach cookies carry the hook ids. Selectors are compiled by
 * user space into maps; a call that matches no selector costs the map
 * lookups of its filters and never reaches user space. */

#include "lib/common.h"
#include "lib/path.h"
#include "lib/process.h"
#include "lib/generic.h"

#define GEN_DATA_MASK 16383
#define GEN_ARG_MAX 4095 /* largest single argument in a record */
#define GEN_DATA (GEN_DATA_MASK + 1 + GEN_ARG_MAX + 1)
#define GEN_IOVEC_MAX 8

/* File types (include/uapi/linux/stat.h) and pseudo file systems
 * (include/uapi/linux/magic.h). */
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFIFO 0010000
#define SOCKFS_MAGIC 0x534F434B
#define PIPEFS_MAGIC 0x50495045

#define PF_KTHREAD 0x00200000
#define MAX_ERRNO 4095
#define AF_INET 2
#define AF_INET6 10

/* Set by the loader for each program copy. */
const volatile __u32 hook_id = 0;
const volatile __u32 nparams = 0; /* parameters of the target (fentry, fexit, fmod_ret, lsm) */
const volatile __u32 agent_tgid = 0;
/* The agent run (generation) that loaded this copy. Only the copies of the
 * generation gen_active names act and report: a restarted agent that adopts
 * pinned programs (--keep-enforcement-on-exit) loads its own copies with the
 * next generation, then switches gen_active in one write, so that there is
 * neither a moment without enforcement nor one with two. */
const volatile __u32 generation = 0;

enum gen_phase {
	GEN_PHASE_ENTRY = 1,  /* entry of a call reported at return: skip return filters */
	GEN_PHASE_RETURN = 2, /* return of a call that passed its entry filters: only return filters */
	GEN_PHASE_ALL = 3,    /* everything at once */
};

struct gen_record {
	struct gen_event ev;
	char data[GEN_DATA];
};

/* Working state of the call being handled on this CPU. */
struct gen_state {
	__u64 param[GEN_MAX_ARGS];
	__s64 ret;
	__u64 task;
	__u64 tp_ctx;
	__u32 hook_id;
	__u32 pos;
	__u32 read_mask;
	__u32 tgid;
	__u32 phase;
	/* Progress of a char_iovec read, in map memory so that the loop's
	 * iterations stay equivalent for the verifier. */
	__u32 iov_n;
	__u32 iov_state;
	__u32 pad;
};

struct gen_pending_key {
	__u32 tid;
	__u32 hook_id;
};

/* A call reported at return, saved at its entry. */
struct gen_pending {
	__u64 param[GEN_MAX_ARGS];
	__u32 sel_mask;
	__u32 pad;
};

struct gen_rate_key {
	__u32 hook_id;
	__u32 tgid;
	__u32 selector;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GEN_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct gen_hook);
} gen_hooks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GEN_MAX_HOOKS *GEN_MAX_SELECTORS);
	__type(key, __u32);
	__type(value, struct gen_selector);
} gen_selectors SEC(".maps");

/* Tracked sockets (TrackSock): struct sock * -> the thread group that
 * owns it. Events whose first sock argument is tracked are the owner's,
 * whatever task the kernel runs them in (softirq, a kernel thread). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u64);
	__type(value, __u32);
} gen_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GEN_MAX_HOOKS *GEN_MAX_ARGS);
	__type(key, __u32);
	__type(value, struct gen_resolve);
} gen_resolves SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GEN_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct gen_usdt);
} gen_usdts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GEN_MAX_POLICIES);
	__type(key, __u32);
	__type(value, struct gen_policy);
} gen_policies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gen_int_key);
	__type(value, __u8);
} gen_int_sets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gen_str_key);
	__type(value, __u8);
} gen_str_sets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gen_addr_key);
	__type(value, __u8);
} gen_addr_sets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gen_port_key);
	__type(value, __u8);
} gen_port_sets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gen_scope_key);
	__type(value, __u8);
} gen_policy_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct gen_rate_key);
	__type(value, __u64);
} gen_post_rate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct gen_pending_key);
	__type(value, struct gen_pending);
} gen_pending_calls SEC(".maps");

/* Runs of identical calls, folded (see gen_fold_call). Not preallocated:
 * an entry user space deletes is freed only after every program that may
 * hold it has finished. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* set by the loader */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gen_fold_key);
	__type(value, struct gen_fold);
} gen_folds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gen_head_key);
	__type(value, __u8);
} gen_str_heads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_record);
} gen_record_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_state);
} gen_state_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_str_key);
} gen_key_scratch SEC(".maps");

/* Counters per hook: calls that matched a selector, events suppressed by a
 * rate limit. Read by `vigil policy list` and the metrics. */
struct gen_hook_stats {
	__u64 matched;
	__u64 rate_limited;
	__u64 actions;
	__u64 action_errors;
	__u64 folded;      /* repeats counted instead of reported */
	__u64 fold_full;   /* runs reported call by call: gen_folds was full */
	__u64 protected;   /* enforcements skipped: the process is protected */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GEN_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct gen_hook_stats);
} gen_stats SEC(".maps");

/* Executables whose processes policies never act on unless a selector names
 * them exactly (container runtimes, kubelet): the path as procs holds it,
 * NUL padded. Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[BINARY_MAX]);
	__type(value, __u8);
} protected_bins SEC(".maps");

/* One entry: the generation whose copies act. Shared by the generations of
 * a handover (the agent pins it next to their programs). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} gen_active SEC(".maps");

/* Force the record types into BTF so bpf2go generates Go types for them. */
const struct gen_event *unused_gen_event __attribute__((unused));
const struct gen_file_arg *unused_gen_file_arg __attribute__((unused));
const struct gen_sock_arg *unused_gen_sock_arg __attribute__((unused));
const struct task_creds *unused_task_creds __attribute__((unused));
const enum gen_arg_type *unused_gen_arg_type __attribute__((unused));
const enum gen_arg_flags *unused_gen_arg_flags __attribute__((unused));
const enum gen_hook_flags *unused_gen_hook_flags __attribute__((unused));
const enum gen_op *unused_gen_op __attribute__((unused));
const enum gen_bin_op *unused_gen_bin_op __attribute__((unused));
const enum gen_ns *unused_gen_ns __attribute__((unused));
const enum gen_cap_set *unused_gen_cap_set __attribute__((unused));
const enum gen_action *unused_gen_action __attribute__((unused));
const enum gen_policy_mode *unused_gen_policy_mode __attribute__((unused));
const enum gen_event_flags *unused_gen_event_flags __attribute__((unused));
const enum gen_arg_state *unused_gen_arg_state __attribute__((unused));
const enum gen_limit *unused_gen_limit __attribute__((unused));
const struct gen_head_key *unused_gen_head_key __attribute__((unused));
const struct gen_fold_key *unused_gen_fold_key __attribute__((unused));
const struct gen_fold *unused_gen_fold __attribute__((unused));
const enum gen_repeats *unused_gen_repeats __attribute__((unused));

static __always_inline struct gen_state *gen_state(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&gen_state_scratch, &zero);
}

static __always_inline struct gen_record *gen_record(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&gen_record_scratch, &zero);
}

static __always_inline struct gen_hook_stats *gen_hook_stats(__u32 id)
{
	return bpf_map_lookup_elem(&gen_stats, &id);
}

/* ---- reading arguments into the record ---- */

static __always_inline long read_mem(void *dst, __u32 size, const void *src, bool user)
{
	if (user)
		return bpf_probe_read_user(dst, size, src);
	if (bpf_probe_read_kernel(dst, size, src) == 0)
		return 0;
	return bpf_probe_read_user(dst, size, src);
}

static __always_inline long read_str(void *dst, __u32 size, const void *src, bool user)
{
	long n;

	if (user)
		return bpf_probe_read_user_str(dst, size, src);
	n = bpf_probe_read_kernel_str(dst, size, src);
	if (n >= 0)
		return n;
	return bpf_probe_read_user_str(dst, size, src);
}

/* put_path resolves (dentry, mnt) and appends a gen_file_arg and the path. */
static __always_inline __u32 put_path(struct gen_record *rec, __u32 pos, struct dentry *dentry, struct vfsmount *mnt,
				      __u32 flags, __u32 mode, __u8 *state)
{
	struct gen_file_arg fa = { .flags = flags, .mode = mode };
	struct path_scratch *ps = path_scratch(1);
	__u32 off, len;

	if (!ps) {
		*state |= GEN_ARGS_ERROR;
		return 0;
	}
	__builtin_memcpy(&rec->data[pos & GEN_DATA_MASK], &fa, sizeof(fa));
	/* Sockets and pipes live on pseudo file systems whose dentries have no
	 * name: report them as /proc/PID/fd does, without the inode. */
	if ((mode & S_IFMT) == S_IFSOCK || (mode & S_IFMT) == S_IFIFO) {
		unsigned long magic = BPF_CORE_READ(dentry, d_sb, s_magic);

		if (magic == SOCKFS_MAGIC) {
			__builtin_memcpy(&rec->data[(pos + sizeof(fa)) & GEN_DATA_MASK], "socket:", 7);
			return sizeof(fa) + 7;
		}
		if (magic == PIPEFS_MAGIC) {
			__builtin_memcpy(&rec->data[(pos + sizeof(fa)) & GEN_DATA_MASK], "pipe:", 5);
			return sizeof(fa) + 5;
		}
	}
	off = resolve_path((__u64)dentry, (__u64)mnt, bpf_get_current_task(), 1);
	if (ps->flags & PATH_F_TRUNCATED)
		*state |= GEN_ARGS_TRUNCATED;
	if (ps->flags & PATH_F_ERROR)
		*state |= GEN_ARGS_ERROR;
	len = PATH_BUF - off;
	if (len > PATH_MASK)
		len = PATH_MASK;
	if (len > GEN_ARG_MAX - sizeof(fa))
		len = GEN_ARG_MAX - sizeof(fa);
	bpf_probe_read_kernel(&rec->data[(pos + sizeof(fa)) & GEN_DATA_MASK], len & GEN_ARG_MAX,
			      &ps->buf[off & PATH_MASK]);
	return sizeof(fa) + len;
}

static __always_inline struct file *fd_file(__u64 taskp, __u64 fd)
{
	struct task_struct *task = (struct task_struct *)taskp;
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	struct file *f = 0;

	if (fd >= max)
		return 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

static __always_inline void sock_info(struct gen_sock_arg *s, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	s->family = family;
	s->type = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_type);
	s->protocol = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	s->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	s->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	s->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	s->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (family == AF_INET) {
		__u32 sa = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 da = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		s->saddr[10] = s->saddr[11] = 0xff;
		s->daddr[10] = s->daddr[11] = 0xff;
		__builtin_memcpy(&s->saddr[12], &sa, 4);
		__builtin_memcpy(&s->daddr[12], &da, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&s->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&s->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

static __always_inline void skb_info(struct gen_sock_arg *s, struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u8 ver = 0;
	__u8 proto = 0;

	bpf_probe_read_kernel(&ver, 1, head + nh);
	ver >>= 4;
	if (ver == 4) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) < 0)
			return;
		s->family = AF_INET;
		proto = ip.protocol;
		s->saddr[10] = s->saddr[11] = 0xff;
		s->daddr[10] = s->daddr[11] = 0xff;
		__builtin_memcpy(&s->saddr[12], &ip.saddr, 4);
		__builtin_memcpy(&s->daddr[12], &ip.daddr, 4);
	} else if (ver == 6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh) < 0)
			return;
		s->family = AF_INET6;
		proto = ip6.nexthdr;
		__builtin_memcpy(s->saddr, &ip6.saddr, 16);
		__builtin_memcpy(s->daddr, &ip6.daddr, 16);
	} else {
		return;
	}
	s->protocol = proto;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__be16 ports[2];

		if (bpf_probe_read_kernel(ports, sizeof(ports), head + th) == 0) {
			s->sport = bpf_ntohs(ports[0]);
			s->dport = bpf_ntohs(ports[1]);
		}
	}
}

/* sockaddr_info reads a struct sockaddr: its address and port are reported
 * as the source, the one address such an argument holds. */
static __always_inline void sockaddr_info(struct gen_sock_arg *s, const void *addr, bool user)
{
	__u16 family = 0;

	if (read_mem(&family, sizeof(family), addr, user) < 0)
		return;
	s->family = family;
	if (family == AF_INET) {
		struct sockaddr_in in;

		if (read_mem(&in, sizeof(in), addr, user) < 0)
			return;
		s->saddr[10] = s->saddr[11] = 0xff;
		__builtin_memcpy(&s->saddr[12], &in.sin_addr.s_addr, 4);
		s->sport = bpf_ntohs(in.sin_port);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 in6;

		if (read_mem(&in6, sizeof(in6), addr, user) < 0)
			return;
		__builtin_memcpy(s->saddr, &in6.sin6_addr, 16);
		s->sport = bpf_ntohs(in6.sin6_port);
	}
}

static __always_inline struct file *binprm_file(__u64 v)
{
	struct linux_binprm *b = (struct linux_binprm *)v;

	return BPF_CORE_READ(b, file);
}

static __always_inline struct sock *socket_sk(__u64 v)
{
	struct socket *s = (struct socket *)v;

	return BPF_CORE_READ(s, sk);
}

/* Argument readers. Each writes one argument at pos in the record's data and
 * returns its length | its gen_arg_state << 16. They are global functions so
 * the verifier checks each once, apart from the others. */

#define PUT(n, state) ((int)((n) | ((state) << 16)))

#define TS_COMPAT 0x0002 /* x86 thread_info.status: in a 32-bit compat syscall */

/* compat_task reports whether the current task is in a 32-bit compat
 * syscall (in_ia32_syscall). */
static __always_inline bool compat_task(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(t, thread_info.status) & TS_COMPAT;
}

__noinline int gen_put_int(__u64 v, __u64 type, __u64 pos)
{
	struct gen_record *rec = gen_record();
	__u64 val = v;

	if (!rec)
		return PUT(0, GEN_ARGS_ERROR);
	if (type == GEN_ARG_CAP_T && v > 0xffff)
		bpf_probe_read_kernel(&val, sizeof(val), (void *)v);
	if (type == GEN_ARG_SYSCALL64 && compat_task())
		val |= 0x80000000ULL;
	__builtin_memcpy(&rec->data[pos & GEN_DATA_MASK], &val, sizeof(val));
	return PUT(sizeof(val), 0);
}

__noinline int gen_put_string(__u64 v, __u64 type, __u64 pos, __u64 user)
{
	struct gen_record *rec = gen_record();
	long r;

	if (!rec)
		return PUT(0, GEN_ARGS_ERROR);
	if (type == GEN_ARG_FILENAME) {
		struct filename *f = (struct filename *)v;
		const char *name = BPF_CORE_READ(f, name);

		r = bpf_probe_read_kernel_str(&rec->data[pos & GEN_DATA_MASK], GEN_ARG_MAX, name);
	} else {
		r = read_str(&rec->data[pos & GEN_DATA_MASK], GEN_ARG_MAX, (void *)v, user);
	}
	if (r <= 0)
		return PUT(0, GEN_ARGS_ERROR);
	return PUT(r - 1, r == GEN_ARG_MAX ? GEN_ARGS_TRUNCATED : 0);
}

__noinline int gen_put_buf(__u64 v, __u64 size, __u64 pos, __u64 flags)
{
	struct gen_record *rec = gen_record();
	__u64 max = (flags & GEN_ARGF_MAX_DATA) ? GEN_ARG_MAX : 1024;
	__u32 state = 0;

	if (!rec)
		return PUT(0, GEN_ARGS_ERROR);
	if (size > max) {
		size = max;
		state |= GEN_ARGS_TRUNCATED;
	}
	if (size > 0 && read_mem(&rec->data[pos & GEN_DATA_MASK], size & GEN_ARG_MAX, (void *)v, flags & GEN_ARGF_USER) < 0)
		return PUT(0, GEN_ARGS_ERROR);
	return PUT(size & GEN_ARG_MAX, state);
}

/* gen_iovec_one appends iovec k of the array at v to a char_iovec argument
 * being read at pos; it returns 0 to go on, 1 to stop. */
__noinline int gen_iovec_one(__u64 v, __u64 k, __u64 pos, __u64 flags)
{
	struct gen_record *rec = gen_record();
	struct gen_state *st = gen_state();
	__u32 budget = (flags & GEN_ARGF_MAX_DATA) ? GEN_ARG_MAX : 1024;
	bool user = flags & GEN_ARGF_USER;
	struct iovec iov;
	__u64 l;
	__u32 n;

	if (!rec || !st)
		return 1;
	n = st->iov_n;
	if (n >= budget)
		return 1;
	if (read_mem(&iov, sizeof(iov), (void *)(v + k * sizeof(iov)), user) < 0) {
		st->iov_state |= GEN_ARGS_ERROR;
		return 1;
	}
	l = iov.iov_len;
	if (l > budget - n) {
		l = budget - n;
		st->iov_state |= GEN_ARGS_TRUNCATED;
	}
	if (l > 0 && read_mem(&rec->data[(pos + n) & GEN_DATA_MASK], l & GEN_ARG_MAX, iov.iov_base, user) < 0) {
		st->iov_state |= GEN_ARGS_ERROR;
		return 1;
	}
	st->iov_n = n + l;
	return 0;
}

__noinline int gen_put_iovec(__u64 v, __u64 cnt, __u64 pos, __u64 flags)
{
	struct gen_state *st = gen_state();
	int k;

	if (!st)
		return PUT(0, GEN_ARGS_ERROR);
	st->iov_n = 0;
	st->iov_state = 0;
	for (k = 0; k < GEN_IOVEC_MAX; k++) {
		if (k >= cnt || gen_iovec_one(v, k, pos, flags))
			break;
	}
	if (k == GEN_IOVEC_MAX && k < cnt)
		st->iov_state |= GEN_ARGS_TRUNCATED;
	return PUT(st->iov_n & GEN_ARG_MAX, st->iov_state & 0xff);
}

__noinline int gen_put_file(__u64 v, __u64 type, __u64 pos, __u64 task)
{
	struct gen_record *rec = gen_record();
	struct dentry *dentry;
	struct vfsmount *mnt;
	__u32 flags = 0, mode = 0;
	__u8 state = 0;
	__u32 n;

	if (!rec)
		return PUT(0, GEN_ARGS_ERROR);
	if (type == GEN_ARG_PATH) {
		struct path *p = (struct path *)v;

		dentry = BPF_CORE_READ(p, dentry);
		mnt = BPF_CORE_READ(p, mnt);
		mode = BPF_CORE_READ(dentry, d_inode, i_mode);
	} else if (type == GEN_ARG_DENTRY) {
		/* No mount: the walk stops at the root of the dentry's file
		 * system, as Tetragon reports a dentry. */
		dentry = (struct dentry *)v;
		mnt = 0;
		mode = BPF_CORE_READ(dentry, d_inode, i_mode);
	} else {
		struct file *f;

		if (type == GEN_ARG_FD)
			f = fd_file(task, v);
		else if (type == GEN_ARG_BINPRM)
			f = binprm_file(v);
		else
			f = (struct file *)v;
		if (!f)
			return PUT(0, GEN_ARGS_ERROR);
		dentry = BPF_CORE_READ(f, f_path.dentry);
		mnt = BPF_CORE_READ(f, f_path.mnt);
		flags = BPF_CORE_READ(f, f_flags);
		mode = BPF_CORE_READ(f, f_inode, i_mode);
	}
	n = put_path(rec, pos, dentry, mnt, flags, mode, &state);
	return PUT(n & GEN_ARG_MAX, state);
}

__noinline int gen_put_net(__u64 v, __u64 type, __u64 pos, __u64 user)
{
	struct gen_record *rec = gen_record();
	struct gen_sock_arg sa = {};

	if (!rec)
		return PUT(0, GEN_ARGS_ERROR);
	if (type == GEN_ARG_SOCK)
		sock_info(&sa, (struct sock *)v);
	else if (type == GEN_ARG_SOCKET)
		sock_info(&sa, socket_sk(v));
	else if (type == GEN_ARG_SKB)
		skb_info(&sa, (struct sk_buff *)v);
	else
		sockaddr_info(&sa, (void *)v, user);
	__builtin_memcpy(&rec->data[pos & GEN_DATA_MASK], &sa, sizeof(sa));
	return PUT(sizeof(sa), 0);
}

__noinline int gen_put_cred(__u64 v, __u64 pos)
{
	struct gen_record *rec = gen_record();
	struct cred *c = (struct cred *)v;
	struct task_creds ca = {};

	if (!rec)
		return PUT(0, GEN_ARGS_ERROR);
	read_creds(c, &ca);
	__builtin_memcpy(&rec->data[pos & GEN_DATA_MASK], &ca, sizeof(ca));
	return PUT(sizeof(ca), 0);
}

/* gen_resolve_arg follows the resolve steps of argument key (hook id *
 * GEN_MAX_ARGS + argument) from the parameter v; it returns 0 when a read
 * fails or a pointer on the way is NULL. */
__noinline __u64 gen_resolve_arg(__u64 v, __u64 key)
{
	__u32 k = key;
	struct gen_resolve *r = bpf_map_lookup_elem(&gen_resolves, &k);
	int j;

	if (!r)
		return 0;
	for (j = 0; j < GEN_MAX_RESOLVE; j++) {
		struct gen_resolve_step *s = &r->steps[j];
		__u64 addr, out = 0;
		long err = 0;

		if (j >= r->n)
			break;
		if (!v)
			return 0;
		addr = v + s->off;
		switch (s->size) {
		case 0:
			out = addr;
			break;
		case 1:
			err = bpf_probe_read_kernel(&out, 1, (void *)addr);
			break;
		case 2:
			err = bpf_probe_read_kernel(&out, 2, (void *)addr);
			break;
		case 4:
			err = bpf_probe_read_kernel(&out, 4, (void *)addr);
			break;
		default:
			err = bpf_probe_read_kernel(&out, 8, (void *)addr);
		}
		if (err < 0)
			return 0;
		v = out;
	}
	return v;
}

/* gen_read_arg reads argument i of the current hook into the record, once. */
__noinline int gen_read_arg(__u64 i)
{
	struct gen_state *st = gen_state();
	struct gen_record *rec = gen_record();
	struct gen_hook *h;
	struct gen_arg_desc *d;
	__u64 v = 0, size = 0, pos;
	__u32 id, flags;
	int r;
	__u8 type;

	if (!st || !rec || i >= GEN_MAX_ARGS)
		return -1;
	if (st->read_mask & (1 << i))
		return 0;
	id = st->hook_id;
	h = bpf_map_lookup_elem(&gen_hooks, &id);
	if (!h)
		return -1;
	d = &h->args[i];
	st->read_mask |= 1 << i;
	pos = st->pos;
	if (pos > GEN_DATA_MASK) {
		rec->ev.arg_state[i] = GEN_ARGS_TRUNCATED;
		rec->ev.arg_off[i] = 0;
		rec->ev.arg_len[i] = 0;
		return 0;
	}
	flags = d->flags;
	type = d->type;
	if (flags & GEN_ARGF_DATALOC) {
		__u32 loc = 0;

		bpf_probe_read_kernel(&loc, sizeof(loc), (void *)(st->tp_ctx + d->tp_offset));
		v = st->tp_ctx + (loc & 0xffff);
	} else if ((__u64)d->index < GEN_MAX_ARGS) {
		__u64 pi = d->index;

		v = st->param[pi];
	}
	if (flags & GEN_ARGF_RESOLVE)
		v = gen_resolve_arg(v, (__u64)id * GEN_MAX_ARGS + i);
	if (d->size_arg > 0) {
		__u64 si = d->size_arg - 1;

		if (si < GEN_MAX_ARGS)
			size = st->param[si];
	}
	if ((flags & GEN_ARGF_RETURN_COPY) && st->phase != GEN_PHASE_ENTRY && st->ret >= 0)
		size = st->ret;
	else if (type == GEN_ARG_CHAR_BUF && !d->size_arg)
		size = (flags & GEN_ARGF_MAX_DATA) ? GEN_ARG_MAX : 1024;

	switch (type) {
	case GEN_ARG_S8:
	case GEN_ARG_U8:
	case GEN_ARG_S16:
	case GEN_ARG_U16:
	case GEN_ARG_S32:
	case GEN_ARG_U32:
	case GEN_ARG_S64:
	case GEN_ARG_U64:
	case GEN_ARG_CAP_T:
	case GEN_ARG_SYSCALL64:
		r = gen_put_int(v, type, pos);
		break;
	case GEN_ARG_NONE: /* nop: holds its place, not read */
		r = PUT(0, 0);
		break;
	case GEN_ARG_STRING:
	case GEN_ARG_FILENAME:
		r = gen_put_string(v, type, pos, flags & GEN_ARGF_USER);
		break;
	case GEN_ARG_CHAR_BUF:
		r = gen_put_buf(v, size, pos, flags);
		break;
	case GEN_ARG_CHAR_IOVEC:
		r = gen_put_iovec(v, size, pos, flags);
		break;
	case GEN_ARG_FD:
	case GEN_ARG_FILE:
	case GEN_ARG_PATH:
	case GEN_ARG_BINPRM:
	case GEN_ARG_DENTRY:
		r = gen_put_file(v, type, pos, st->task);
		break;
	case GEN_ARG_SOCK:
	case GEN_ARG_SOCKET:
	case GEN_ARG_SKB:
	case GEN_ARG_SOCKADDR:
		r = gen_put_net(v, type, pos, flags & GEN_ARGF_USER);
		break;
	case GEN_ARG_CRED:
		r = gen_put_cred(v, pos);
		break;
	default:
		r = PUT(0, GEN_ARGS_ERROR);
	}
	rec->ev.arg_off[i] = pos;
	rec->ev.arg_len[i] = r & GEN_ARG_MAX;
	rec->ev.arg_state[i] = (r >> 16) & 0xff;
	st->pos = pos + (r & GEN_ARG_MAX);
	return 0;
}

/* ---- filters ---- */

/* The value of an argument as an integer (sign-extended per its type). */
static __always_inline __u64 arg_int(struct gen_record *rec, struct gen_hook *h, __u64 i)
{
	__u64 v = 0;
	__u32 off;

	if (i >= GEN_MAX_ARGS)
		return 0;
	off = rec->ev.arg_off[i];
	bpf_probe_read_kernel(&v, sizeof(v), &rec->data[off & GEN_DATA_MASK]);
	switch (h->args[i].type) {
	case GEN_ARG_S8:
		return (__u64)(__s64)(__s8)v;
	case GEN_ARG_U8:
		return (__u8)v;
	case GEN_ARG_S16:
		return (__u64)(__s64)(__s16)v;
	case GEN_ARG_U16:
		return (__u16)v;
	case GEN_ARG_S32:
		return (__u64)(__s64)(__s32)v;
	case GEN_ARG_U32:
		return (__u32)v;
	}
	return v;
}

static __always_inline bool is_path_type(__u8 t)
{
	return t == GEN_ARG_FD || t == GEN_ARG_FILE || t == GEN_ARG_PATH || t == GEN_ARG_BINPRM || t == GEN_ARG_DENTRY;
}

#define GEN_POSTFIX_MAX 128 /* bytes compared by Postfix */

enum gen_str_source {
	GEN_SRC_RECORD = 0, /* the record's data, at an offset */
	GEN_SRC_BINARY = 1, /* the calling process's executable path */
};

/* gen_str_lookup looks a string up in string set set: len bytes of the
 * record data at off, or the caller's binary path (their last
 * GEN_POSTFIX_MAX bytes reversed, for postfix). */
__noinline int gen_str_lookup(__u64 set, __u64 source, __u64 off, __u64 len, __u64 op)
{
	__u32 zero = 0;
	struct gen_str_key *k = bpf_map_lookup_elem(&gen_key_scratch, &zero);
	__u64 n = len;
	void *src;
	int j;

	if (!k)
		return 0;
	if (len > GEN_ARG_MAX)
		n = len = GEN_ARG_MAX;
	if (source == GEN_SRC_BINARY) {
		struct gen_state *st = gen_state();
		struct proc_entry *proc;
		__u32 tgid;

		if (!st)
			return 0;
		tgid = st->tgid;
		proc = bpf_map_lookup_elem(&procs, &tgid);
		if (!proc)
			return 0;
		n = len = proc->bin_len;
		if (n > BINARY_MAX - 1)
			n = len = BINARY_MAX - 1;
		src = proc->bin;
	} else {
		struct gen_record *rec = gen_record();

		if (!rec)
			return 0;
		/* Keep the offset from being added before the null check, which
		 * verifiers before 6.13 refuse. */
		barrier_var(rec);
		src = &rec->data[off & GEN_DATA_MASK];
	}
	k->set_id = set;
	if (op == GEN_OP_STR_POSTFIX) {
		char tail[GEN_POSTFIX_MAX];

		if (n > GEN_POSTFIX_MAX)
			n = GEN_POSTFIX_MAX;
		if (n == 0 || bpf_probe_read_kernel(tail, n & (GEN_POSTFIX_MAX - 1) ? n & (GEN_POSTFIX_MAX - 1) : GEN_POSTFIX_MAX,
						     src + ((len - n) & GEN_ARG_MAX)) < 0)
			return 0;
		for (j = 0; j < GEN_POSTFIX_MAX; j++) {
			if (j >= n)
				break;
			k->data[j] = tail[(n - 1 - j) & (GEN_POSTFIX_MAX - 1)];
		}
		k->prefixlen = 32 + n * 8;
	} else if (op == GEN_OP_STR_EQ) {
		/* Exact: stored values end with a NUL, so compare one more byte. */
		if (n > GEN_STR_MAX - 1)
			return 0;
		bpf_probe_read_kernel(k->data, n & 0xff, src);
		k->data[n & 0xff] = 0;
		k->prefixlen = 32 + (n + 1) * 8;
	} else {
		if (n > GEN_STR_MAX)
			n = GEN_STR_MAX;
		bpf_probe_read_kernel(k->data, n & 0xff, src);
		k->prefixlen = 32 + n * 8;
	}
	return bpf_map_lookup_elem(&gen_str_sets, k) != 0;
}

/* The value of a plain integer parameter, extended per its type, as
 * gen_put_int would record it and arg_int read it back. */
static __always_inline __u64 extend_int(__u64 v, __u8 type)
{
	switch (type) {
	case GEN_ARG_S8:
		return (__u64)(__s64)(__s8)v;
	case GEN_ARG_U8:
		return (__u8)v;
	case GEN_ARG_S16:
		return (__u64)(__s64)(__s16)v;
	case GEN_ARG_U16:
		return (__u16)v;
	case GEN_ARG_S32:
		return (__u64)(__s64)(__s32)v;
	case GEN_ARG_U32:
		return (__u32)v;
	}
	return v;
}

/* gen_fast_arg decides filter flt on argument i without recording it, when
 * that is cheap and certain: an integer comparison on a plain parameter, or
 * a Prefix or Equal string filter whose set the string's head is not in
 * (the head read from the record when the string is read whole anyway). It
 * returns false when the filter needs the full argument. */
static __always_inline bool gen_fast_arg(struct gen_state *st, struct gen_hook *h, struct gen_arg_filter *flt, __u32 i,
					 bool *match)
{
	struct gen_arg_desc *d;
	__u32 pi;
	__u8 type;

	if (i >= GEN_MAX_ARGS)
		return false;
	d = &h->args[i];
	pi = d->index;
	type = d->type;
	if ((d->flags & (GEN_ARGF_DATALOC | GEN_ARGF_RETURN_COPY | GEN_ARGF_RESOLVE)) || pi >= GEN_MAX_ARGS)
		return false;
	switch (flt->op) {
	case GEN_OP_GT:
	case GEN_OP_LT:
	case GEN_OP_MASK:
	case GEN_OP_INT_IN: {
		__u64 v;

		if (type < GEN_ARG_S8 || type > GEN_ARG_U64)
			return false;
		v = extend_int(st->param[pi], type);
		if (flt->op == GEN_OP_MASK) {
			*match = (v & flt->value) != 0;
		} else if (flt->op == GEN_OP_GT) {
			*match = flt->is_signed ? (__s64)v > (__s64)flt->value : v > flt->value;
		} else if (flt->op == GEN_OP_LT) {
			*match = flt->is_signed ? (__s64)v < (__s64)flt->value : v < flt->value;
		} else {
			struct gen_int_key ik = { .set_id = flt->set_id, .value = v };

			*match = bpf_map_lookup_elem(&gen_int_sets, &ik) != 0;
		}
		return true;
	}
	case GEN_OP_STR_PREFIX:
	case GEN_OP_STR_EQ: {
		struct gen_head_key hk = { .set_id = flt->set_id };
		char head[9] = {};
		long n;
		int j;

		if (type != GEN_ARG_STRING || flt->value == 0 || flt->value > 8)
			return false;
		hk.len = flt->value;
		if ((d->flags & GEN_ARGF_WHOLE) || (st->read_mask & (1 << i))) {
			/* The string is read whole anyway (or was): the head comes
			 * from the record rather than from a second read of the
			 * call's memory. */
			struct gen_record *rec = gen_record();
			__u32 off;

			if (!rec || gen_read_arg(i) < 0)
				return false;
			off = rec->ev.arg_off[i];
			n = rec->ev.arg_len[i] + 1;
			for (j = 0; j < 8; j++)
				head[j] = rec->data[(off + j) & GEN_DATA_MASK];
		} else {
			n = read_str(head, sizeof(head), (void *)st->param[pi], d->flags & GEN_ARGF_USER);
			if (n <= 0)
				return false;
		}
		if (n - 1 < hk.len) {
			/* Shorter than every value of the set. */
			*match = false;
			return true;
		}
		for (j = 0; j < 8; j++)
			hk.head[j] = j < hk.len ? head[j] : 0;
		if (bpf_map_lookup_elem(&gen_str_heads, &hk))
			return false;
		*match = false;
		return true;
	}
	}
	return false;
}

/* gen_tail_known reports whether the last bytes of the len bytes of record
 * data at off are the tail of a value of Postfix filter flt's set: when
 * they are not, no value ends the string, found with one hash lookup
 * instead of reversing the string's end into a trie key. A set without
 * tails (an empty value) is always worth the full comparison. */
static __always_inline bool gen_tail_known(struct gen_arg_filter *flt, __u32 off, __u32 len)
{
	struct gen_head_key hk = { .set_id = flt->set_id };
	struct gen_record *rec = gen_record();
	__u32 n = flt->value, start;
	int j;

	if (n == 0 || n > 8)
		return true;
	if (len < n)
		return false; /* shorter than every value */
	if (!rec)
		return true;
	hk.len = n;
	start = off + len - n;
	for (j = 0; j < 8; j++) {
		if (j >= n)
			break;
		hk.head[j] = rec->data[(start + j) & GEN_DATA_MASK];
	}
	return bpf_map_lookup_elem(&gen_str_heads, &hk) != 0;
}

/* gen_match_arg evaluates filter f of selector sel of the current hook. */
__noinline int gen_match_arg(__u64 sel, __u64 f)
{
	struct gen_state *st = gen_state();
	struct gen_record *rec = gen_record();
	struct gen_selector *s;
	struct gen_arg_filter *flt;
	struct gen_hook *h;
	__u32 id, key, i, off, len;
	bool match = false;
	__u8 type;

	if (!st || !rec || f >= GEN_MAX_ARG_FILTERS)
		return 0;
	id = st->hook_id;
	key = id * GEN_MAX_SELECTORS + sel;
	s = bpf_map_lookup_elem(&gen_selectors, &key);
	h = bpf_map_lookup_elem(&gen_hooks, &id);
	if (!s || !h)
		return 0;
	flt = &s->args[f];
	i = flt->arg;

	if (i == GEN_ARG_RETURN) {
		__u64 v = st->ret;
		struct gen_int_key ik = { .set_id = flt->set_id, .value = v };

		switch (flt->op) {
		case GEN_OP_INT_IN:
			match = bpf_map_lookup_elem(&gen_int_sets, &ik) != 0;
			break;
		case GEN_OP_GT:
			match = flt->is_signed ? (__s64)v > (__s64)flt->value : v > flt->value;
			break;
		case GEN_OP_LT:
			match = flt->is_signed ? (__s64)v < (__s64)flt->value : v < flt->value;
			break;
		case GEN_OP_MASK:
			match = (v & flt->value) != 0;
			break;
		}
		return match != flt->negate;
	}
	if (i >= GEN_MAX_ARGS)
		return 0;
	if (gen_fast_arg(st, h, flt, i, &match))
		return match != flt->negate;
	if (gen_read_arg(i) < 0)
		return 0;
	type = h->args[i].type;
	off = rec->ev.arg_off[i];
	len = rec->ev.arg_len[i];

	switch (flt->op) {
	case GEN_OP_INT_IN: {
		struct gen_int_key ik = { .set_id = flt->set_id, .value = arg_int(rec, h, i) };

		match = bpf_map_lookup_elem(&gen_int_sets, &ik) != 0;
		break;
	}
	case GEN_OP_GT: {
		__u64 v = arg_int(rec, h, i);

		match = flt->is_signed ? (__s64)v > (__s64)flt->value : v > flt->value;
		break;
	}
	case GEN_OP_LT: {
		__u64 v = arg_int(rec, h, i);

		match = flt->is_signed ? (__s64)v < (__s64)flt->value : v < flt->value;
		break;
	}
	case GEN_OP_MASK:
		match = (arg_int(rec, h, i) & flt->value) != 0;
		break;
	case GEN_OP_STR_EQ:
	case GEN_OP_STR_PREFIX:
	case GEN_OP_STR_POSTFIX:
		if (is_path_type(type)) {
			if (len < sizeof(struct gen_file_arg))
				break;
			off += sizeof(struct gen_file_arg);
			len -= sizeof(struct gen_file_arg);
		}
		if (flt->op == GEN_OP_STR_POSTFIX && !gen_tail_known(flt, off, len))
			break;
		match = gen_str_lookup(flt->set_id, GEN_SRC_RECORD, off, len, flt->op);
		break;
	case GEN_OP_SADDR:
	case GEN_OP_DADDR: {
		struct gen_addr_key ak = { .prefixlen = 32 + 128, .set_id = flt->set_id };
		struct gen_sock_arg *sa = (struct gen_sock_arg *)&rec->data[off & GEN_DATA_MASK];

		if (flt->op == GEN_OP_SADDR)
			__builtin_memcpy(ak.addr, sa->saddr, 16);
		else
			__builtin_memcpy(ak.addr, sa->daddr, 16);
		match = bpf_map_lookup_elem(&gen_addr_sets, &ak) != 0;
		break;
	}
	case GEN_OP_SPORT:
	case GEN_OP_DPORT: {
		struct gen_sock_arg *sa = (struct gen_sock_arg *)&rec->data[off & GEN_DATA_MASK];
		struct gen_port_key pk = { .prefixlen = 32 + 16, .set_id = flt->set_id };
		__u16 port = flt->op == GEN_OP_SPORT ? sa->sport : sa->dport;

		pk.port = bpf_htons(port);
		match = bpf_map_lookup_elem(&gen_port_sets, &pk) != 0;
		break;
	}
	case GEN_OP_PROTOCOL:
	case GEN_OP_FAMILY:
	case GEN_OP_STATE: {
		struct gen_sock_arg *sa = (struct gen_sock_arg *)&rec->data[off & GEN_DATA_MASK];
		struct gen_int_key ik = { .set_id = flt->set_id };

		if (flt->op == GEN_OP_STATE)
			ik.value = sa->state;
		else
			ik.value = flt->op == GEN_OP_PROTOCOL ? sa->protocol : sa->family;
		match = bpf_map_lookup_elem(&gen_int_sets, &ik) != 0;
		break;
	}
	}
	return match != flt->negate;
}

/* gen_ns_inum returns the inode of namespace ns of the task at taskp. */
__noinline __u32 gen_ns_inum(__u64 taskp, __u64 ns)
{
	struct task_struct *task = (struct task_struct *)taskp;
	struct nsproxy *nsp = BPF_CORE_READ(task, nsproxy);

	switch (ns) {
	case GEN_NS_UTS:
		return BPF_CORE_READ(nsp, uts_ns, ns.inum);
	case GEN_NS_IPC:
		return BPF_CORE_READ(nsp, ipc_ns, ns.inum);
	case GEN_NS_MNT:
		return BPF_CORE_READ(nsp, mnt_ns, ns.inum);
	case GEN_NS_PID:
		return task_pidns_inum(task);
	case GEN_NS_PID_FOR_CHILDREN:
		return BPF_CORE_READ(nsp, pid_ns_for_children, ns.inum);
	case GEN_NS_NET:
		return BPF_CORE_READ(nsp, net_ns, ns.inum);
	case GEN_NS_TIME:
		if (bpf_core_field_exists(nsp->time_ns))
			return BPF_CORE_READ(nsp, time_ns, ns.inum);
		return 0;
	case GEN_NS_TIME_FOR_CHILDREN:
		if (bpf_core_field_exists(nsp->time_ns_for_children))
			return BPF_CORE_READ(nsp, time_ns_for_children, ns.inum);
		return 0;
	case GEN_NS_CGROUP:
		return BPF_CORE_READ(nsp, cgroup_ns, ns.inum);
	case GEN_NS_USER:
		return BPF_CORE_READ(task, cred, user_ns, ns.inum);
	}
	return 0;
}

/* gen_match_binary evaluates matchBinaries entry f of selector sel against
 * the calling process's executable. */
__noinline int gen_match_binary(__u64 sel, __u64 f)
{
	struct gen_state *st = gen_state();
	struct gen_selector *s;
	struct gen_bin_filter *b;
	struct proc_entry *proc;
	__u32 key, tgid;
	bool m = false;
	__u8 op;

	if (!st || sel >= GEN_MAX_SELECTORS || f >= GEN_MAX_BIN_FILTERS)
		return 0;
	key = st->hook_id * GEN_MAX_SELECTORS + sel;
	s = bpf_map_lookup_elem(&gen_selectors, &key);
	if (!s)
		return 0;
	b = &s->bins[f];
	tgid = st->tgid;
	op = b->op == GEN_BIN_IN ? GEN_OP_STR_EQ : b->op == GEN_BIN_PREFIX ? GEN_OP_STR_PREFIX : GEN_OP_STR_POSTFIX;
	m = gen_str_lookup(b->set_id, GEN_SRC_BINARY, 0, 0, op);
	if (!m && b->follow) {
		proc = bpf_map_lookup_elem(&procs, &tgid);
		if (proc && (proc->follow_mask & (1ULL << (b->follow_bit & 63))))
			m = true;
	}
	return m != b->negate;
}

static __always_inline struct gen_selector *cur_selector(struct gen_state *st, __u64 sel)
{
	__u32 key;

	if (sel >= GEN_MAX_SELECTORS)
		return 0;
	key = st->hook_id * GEN_MAX_SELECTORS + sel;
	return bpf_map_lookup_elem(&gen_selectors, &key);
}

/* gen_match_pid evaluates matchPIDs entry f of selector sel. */
__noinline int gen_match_pid(__u64 sel, __u64 f)
{
	struct gen_state *st = gen_state();
	struct gen_selector *s;
	struct gen_pid_filter *p;
	struct gen_int_key ik = {};
	__u32 tgid;
	bool m;

	if (!st || f >= GEN_MAX_PID_FILTERS)
		return 0;
	s = cur_selector(st, sel);
	if (!s)
		return 0;
	p = &s->pids[f];
	tgid = st->tgid;
	ik.set_id = p->set_id;
	ik.value = tgid;
	if (p->ns_pid) {
		/* The thread group's pid (not the calling thread's) in the
		 * innermost pid namespace, the process's own. */
		struct task_struct *task = (struct task_struct *)st->task;
		struct pid *pp = BPF_CORE_READ(task, group_leader, thread_pid);
		unsigned int level = BPF_CORE_READ(pp, level);
		struct upid up = {};

		bpf_core_read(&up, sizeof(up), &pp->numbers[level & 31]);
		ik.value = up.nr;
	}
	m = bpf_map_lookup_elem(&gen_int_sets, &ik) != 0;
	if (!m && p->follow) {
		struct proc_entry *proc = bpf_map_lookup_elem(&procs, &tgid);

		if (proc && (proc->follow_mask & (1ULL << (p->follow_bit & 63))))
			m = true;
	}
	return m != p->negate;
}

/* gen_match_ns evaluates matchNamespaces entry f of selector sel. */
__noinline int gen_match_ns(__u64 sel, __u64 f)
{
	struct gen_state *st = gen_state();
	struct gen_selector *s;
	struct gen_ns_filter *n;
	struct gen_int_key ik = {};

	if (!st || f >= GEN_MAX_NS_FILTERS)
		return 0;
	s = cur_selector(st, sel);
	if (!s)
		return 0;
	n = &s->ns[f];
	ik.set_id = n->set_id;
	ik.value = gen_ns_inum(st->task, n->ns);
	return (bpf_map_lookup_elem(&gen_int_sets, &ik) != 0) != n->negate;
}

/* gen_match_cap evaluates matchCapabilities entry f of selector sel. */
__noinline int gen_match_cap(__u64 sel, __u64 f)
{
	struct gen_state *st = gen_state();
	struct gen_selector *s;
	struct gen_cap_filter *c;
	struct task_struct *task;
	const struct cred *cred;
	__u64 caps = 0;

	if (!st || f >= GEN_MAX_CAP_FILTERS)
		return 0;
	s = cur_selector(st, sel);
	if (!s)
		return 0;
	c = &s->caps[f];
	/* isNamespaceCapability: only processes outside the host's user
	 * namespace match, whatever the operator. */
	if (c->host_userns && gen_ns_inum(st->task, GEN_NS_USER) == c->host_userns)
		return 0;
	task = (struct task_struct *)st->task;
	cred = BPF_CORE_READ(task, cred);
	if (c->set == GEN_CAP_EFFECTIVE)
		bpf_core_read(&caps, sizeof(caps), &cred->cap_effective);
	else if (c->set == GEN_CAP_PERMITTED)
		bpf_core_read(&caps, sizeof(caps), &cred->cap_permitted);
	else
		bpf_core_read(&caps, sizeof(caps), &cred->cap_inheritable);
	return ((caps & c->mask) != 0) != c->negate;
}

/* gen_match_selector evaluates selector sel of the current hook for the
 * given phase. */
__noinline int gen_match_selector(__u64 sel)
{
	struct gen_state *st = gen_state();
	struct gen_selector *s;
	__u32 key, phase;
	int k;

	if (!st || sel >= GEN_MAX_SELECTORS)
		return 0;
	key = st->hook_id * GEN_MAX_SELECTORS + sel;
	s = bpf_map_lookup_elem(&gen_selectors, &key);
	if (!s)
		return 0;
	phase = st->phase;

	if (phase != GEN_PHASE_RETURN) {
		for (k = 0; k < GEN_MAX_PID_FILTERS; k++) {
			if (k >= s->npids)
				break;
			if (!gen_match_pid(sel, k))
				return 0;
		}
		for (k = 0; k < GEN_MAX_BIN_FILTERS; k++) {
			if (k >= s->nbins)
				break;
			if (!gen_match_binary(sel, k))
				return 0;
		}
		for (k = 0; k < GEN_MAX_NS_FILTERS; k++) {
			if (k >= s->nns)
				break;
			if (!gen_match_ns(sel, k))
				return 0;
		}
		for (k = 0; k < GEN_MAX_CAP_FILTERS; k++) {
			if (k >= s->ncaps)
				break;
			if (!gen_match_cap(sel, k))
				return 0;
		}
	}
	for (k = 0; k < GEN_MAX_ARG_FILTERS; k++) {
		bool is_ret;

		if (k >= s->nargs)
			break;
		is_ret = s->args[k].arg == GEN_ARG_RETURN;
		if ((phase == GEN_PHASE_ENTRY && is_ret) || (phase == GEN_PHASE_RETURN && !is_ret))
			continue;
		if (!gen_match_arg(sel, k))
			return 0;
	}
	return 1;
}

/* gen_select returns a bit mask of the selectors that match for the phase,
 * stopping at the first match unless all are wanted; 0 when none does. A
 * hook without selectors matches every call (bit 31). */
__noinline int gen_select(__u32 want_all, __u32 candidates)
{
	struct gen_state *st = gen_state();
	struct gen_hook *h;
	__u32 id, mask = 0;
	int k;

	if (!st)
		return 0;
	id = st->hook_id;
	h = bpf_map_lookup_elem(&gen_hooks, &id);
	if (!h)
		return 0;
	if (h->nsel == 0)
		return 1u << 31;
	for (k = 0; k < GEN_MAX_SELECTORS; k++) {
		if (k >= h->nsel)
			break;
		if (!(candidates & (1u << k)))
			continue;
		if (gen_match_selector(k)) {
			mask |= 1u << k;
			if (!want_all)
				break;
		}
	}
	return mask;
}

/* ---- the call path ---- */

/* gen_begin sets up the state for a call of hook id. It returns false when
 * the call is out of scope (the agent's own, or outside the policy's pods) or
 * this copy's generation is not the active one. */
static __always_inline bool gen_begin(struct gen_state *st, __u32 id, __u32 phase)
{
	struct gen_hook *h = bpf_map_lookup_elem(&gen_hooks, &id);
	struct gen_policy *pol;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0, *active = bpf_map_lookup_elem(&gen_active, &zero);

	if (!h || tgid == agent_tgid || !active || *active != generation)
		return false;
	pol = bpf_map_lookup_elem(&gen_policies, &h->policy_id);
	if (!pol)
		return false;
	if (pol->scoped) {
		struct gen_scope_key sk = { .policy_id = h->policy_id, .cgroup_id = bpf_get_current_cgroup_id() };

		if (!bpf_map_lookup_elem(&gen_policy_cgroups, &sk))
			return false;
	}
	st->hook_id = id;
	st->tgid = tgid;
	st->task = bpf_get_current_task();
	st->pos = 0;
	st->read_mask = 0;
	st->phase = phase;
	return true;
}

/* protected_task reports whether the calling process is one policies do not
 * act on unless a selector names it exactly: the agent, its parents and PID
 * 1 (protected_tgids), a process running a protected executable
 * (protected_bins), or a kernel thread. It is checked only when an action is
 * about to be taken. */
static __always_inline bool protected_task(struct gen_state *st)
{
	struct task_struct *task = (struct task_struct *)st->task;
	struct proc_entry *proc;
	__u32 tgid = st->tgid;

	if (tgid == agent_tgid || tgid == 1 || (BPF_CORE_READ(task, flags) & PF_KTHREAD))
		return true;
	if (bpf_map_lookup_elem(&protected_tgids, &tgid))
		return true;
	proc = bpf_map_lookup_elem(&procs, &tgid);
	return proc && bpf_map_lookup_elem(&protected_bins, proc->bin);
}

static __always_inline bool rate_limited(struct gen_state *st, __u32 sel, __u32 rate_ms, __u64 now)
{
	struct gen_rate_key rk = { .hook_id = st->hook_id, .tgid = st->tgid, .selector = sel };
	__u64 *last;

	if (!rate_ms)
		return false;
	last = bpf_map_lookup_elem(&gen_post_rate, &rk);
	if (last && now - *last < (__u64)rate_ms * 1000000ULL)
		return true;
	bpf_map_update_elem(&gen_post_rate, &rk, &now, BPF_ANY);
	return false;
}

#define GEN_FOLD_MAX 4096 /* record data hashed for folding; longer records are reported */

/* gen_record_hash hashes what makes two calls' records identical: the
 * arguments (pos bytes of data with their offsets and states), the return
 * value, the action and its outcome. 0 means "do not fold" (too long). */
__noinline __u64 gen_record_hash(__u64 pos)
{
	struct gen_record *rec = gen_record();
	__u64 h = 0xcbf29ce484222325ULL, w;
	__u32 j, words, tail;

	if (!rec || pos > GEN_FOLD_MAX)
		return 0;
	h = (h ^ (__u64)rec->ev.ret) * 0x100000001b3ULL;
	h = (h ^ ((__u64)rec->ev.action << 32 | rec->ev.flags)) * 0x100000001b3ULL;
	h = (h ^ ((__u64)rec->ev.errno << 32 | rec->ev.signal)) * 0x100000001b3ULL;
	for (j = 0; j < GEN_MAX_ARGS; j++) {
		h = (h ^ ((__u64)rec->ev.arg_off[j] << 32 | (__u64)rec->ev.arg_len[j] << 8 | rec->ev.arg_state[j])) *
		    0x100000001b3ULL;
	}
	words = pos / 8;
	tail = pos % 8;
	for (j = 0; j < GEN_FOLD_MAX / 8; j++) {
		if (j >= words)
			break;
		w = *(__u64 *)&rec->data[(j * 8) & (GEN_DATA_MASK & ~7)];
		h = (h ^ w) * 0x100000001b3ULL;
	}
	if (tail) {
		w = *(__u64 *)&rec->data[(words * 8) & (GEN_DATA_MASK & ~7)];
		w &= (1ULL << (tail * 8)) - 1;
		h = (h ^ w) * 0x100000001b3ULL;
	}
	return h ? h : 1;
}

/* gen_fold_call counts a repeat of an earlier call of the same run and
 * returns true: the call is not reported. For the first call of a run it
 * starts the run, marks the record as its head and returns false. */
static __always_inline bool gen_fold_call(struct gen_state *st, struct gen_record *rec, struct gen_hook_stats *stats,
					  __u32 sel, __u64 now)
{
	struct gen_fold_key fk = { .tgid = st->tgid, .hook_id = st->hook_id, .selector = sel };
	struct gen_fold nf = { .first = now, .last = now }, *f;
	struct proc_entry *pe;

	fk.hash = gen_record_hash(st->pos);
	if (!fk.hash)
		return false;
	pe = bpf_map_lookup_elem(&procs, &fk.tgid);
	if (pe)
		fk.exec_ktime = pe->exec_ktime;
	f = bpf_map_lookup_elem(&gen_folds, &fk);
	if (f) {
		__sync_fetch_and_add(&f->count, 1);
		f->last = now;
		if (stats)
			stats->folded++;
		return true;
	}
	if (bpf_map_update_elem(&gen_folds, &fk, &nf, BPF_NOEXIST) == 0) {
		rec->ev.flags |= GEN_EV_FOLD_HEAD;
		rec->ev.exec_ktime = fk.exec_ktime;
		rec->ev.fold_hash = fk.hash;
	} else if (stats) {
		stats->fold_full++;
	}
	return false;
}

/* gen_track_socks does the socket tracking of a matching call (the
 * selector's TrackSock and UntrackSock, the hook's returnArgAction) and
 * returns the thread group the event belongs to: the owner of the call's
 * first sock argument when that socket is tracked, else the caller. */
static __always_inline __u32 gen_track_socks(struct gen_state *st, struct gen_hook *h, struct gen_selector *s, __u32 actions)
{
	__u32 tgid = st->tgid;
	__u32 *owner;
	__u64 sk;
	int k;

	if (s && (actions & (GEN_ACT_TRACK_SOCK | GEN_ACT_UNTRACK_SOCK))) {
		__u32 pi = s->sock_arg;

		if (pi < GEN_MAX_ARGS) {
			sk = st->param[pi];
			if (actions & GEN_ACT_TRACK_SOCK)
				bpf_map_update_elem(&gen_socks, &sk, &tgid, BPF_ANY);
			else
				bpf_map_delete_elem(&gen_socks, &sk);
		}
	}
	if (st->phase != GEN_PHASE_ENTRY && st->ret && (h->flags & (GEN_HOOK_RET_TRACK_SOCK | GEN_HOOK_RET_UNTRACK_SOCK))) {
		sk = st->ret;
		if (h->flags & GEN_HOOK_RET_TRACK_SOCK)
			bpf_map_update_elem(&gen_socks, &sk, &tgid, BPF_ANY);
		else
			bpf_map_delete_elem(&gen_socks, &sk);
	}
	for (k = 0; k < GEN_MAX_ARGS; k++) {
		struct gen_arg_desc *d = &h->args[k];
		__u32 pi;

		if (k >= h->nargs)
			break;
		if (d->type != GEN_ARG_SOCK || (d->flags & GEN_ARGF_RESOLVE))
			continue;
		pi = d->index;
		if (pi >= GEN_MAX_ARGS)
			break;
		sk = st->param[pi];
		owner = bpf_map_lookup_elem(&gen_socks, &sk);
		if (owner)
			tgid = *owner;
		break;
	}
	return tgid;
}

/* gen_finish takes the actions of the matching selector, writes the record
 * and returns the error an Override asks for (0: none). can_override says
 * whether the running program can change the call's result. */
static __always_inline int gen_finish(struct gen_state *st, __u32 mask, bool can_override)
{
	struct gen_record *rec = gen_record();
	struct gen_hook *h;
	struct gen_policy *pol;
	struct gen_hook_stats *stats;
	struct gen_selector *s = 0;
	__u32 id = st->hook_id, sel = 0xff, actions = GEN_ACT_POST, key, i, tgid;
	__u64 now = bpf_ktime_get_ns();
	int override = 0;
	__u64 size;

	if (!rec)
		return 0;
	h = bpf_map_lookup_elem(&gen_hooks, &id);
	if (!h)
		return 0;
	pol = bpf_map_lookup_elem(&gen_policies, &h->policy_id);
	if (!pol)
		return 0;
	if (!(mask & (1u << 31))) {
		for (i = 0; i < GEN_MAX_SELECTORS; i++) {
			if (mask & (1u << i)) {
				sel = i;
				break;
			}
		}
		key = id * GEN_MAX_SELECTORS + sel;
		s = bpf_map_lookup_elem(&gen_selectors, &key);
		if (!s)
			return 0;
		actions = s->actions;
	}
	stats = gen_hook_stats(id);
	if (stats)
		stats->matched++;
	tgid = gen_track_socks(st, h, s, actions);

	rec->ev.flags = 0;
	rec->ev.errno = 0;
	rec->ev.signal = 0;
	if (s && (actions & (GEN_ACT_SIGKILL | GEN_ACT_SIGNAL | GEN_ACT_OVERRIDE))) {
		if (actions & GEN_ACT_OVERRIDE)
			rec->ev.errno = s->errno;
		if (actions & GEN_ACT_SIGKILL)
			rec->ev.signal = 9;
		else if (actions & GEN_ACT_SIGNAL)
			rec->ev.signal = s->signal;
		if (pol->mode == GEN_MODE_MONITOR) {
			rec->ev.flags |= GEN_EV_MONITOR;
		} else if (!s->explicit_target && protected_task(st)) {
			rec->ev.flags |= GEN_EV_PROTECTED;
			if (stats)
				stats->protected++;
		} else {
			long err = 0;

			if (rec->ev.signal)
				err = bpf_send_signal(rec->ev.signal);
			if ((actions & GEN_ACT_OVERRIDE) && can_override)
				override = s->errno;
			if (stats) {
				stats->actions++;
				if (err < 0)
					stats->action_errors++;
			}
			if (err < 0)
				rec->ev.flags |= GEN_EV_ACTION_FAILED;
		}
	} else {
		if (actions & GEN_ACT_NOPOST)
			return 0;
		if (s && rate_limited(st, sel, s->rate_ms, now)) {
			if (stats)
				stats->rate_limited++;
			return 0;
		}
	}

	for (i = 0; i < GEN_MAX_ARGS; i++) {
		if (i >= h->nargs)
			break;
		gen_read_arg(i);
	}
	rec->ev.hdr.op = VIGIL_OP_GENERIC;
	rec->ev.hdr.pid = tgid;
	rec->ev.hdr.tid = tgid == st->tgid ? (__u32)bpf_get_current_pid_tgid() : tgid;
	rec->ev.hdr.ktime = now;
	rec->ev.hook_id = id;
	rec->ev.policy_id = h->policy_id;
	rec->ev.action = actions;
	rec->ev.selector = sel;
	rec->ev.nargs = h->nargs;
	rec->ev.ret = st->ret;
	if (st->phase != GEN_PHASE_ENTRY && (h->flags & GEN_HOOK_RETURN))
		rec->ev.flags |= GEN_EV_RETURN;
	rec->ev.cgroup_id = bpf_get_current_cgroup_id();
	rec->ev.exec_ktime = 0;
	rec->ev.fold_hash = 0;
	if (pol->repeats == GEN_REPEATS_FOLD && gen_fold_call(st, rec, stats, sel, now))
		return override;
	size = sizeof(rec->ev) + st->pos;
	if (size > sizeof(*rec))
		size = sizeof(*rec);
	rec->ev.hdr.size = size;
	submit(rec, size, VIGIL_OP_GENERIC);
	return override;
}

/* gen_call handles a call whose parameters are in st->param: entry-only
 * hooks report at once; hooks reported at return save the call. */
static __always_inline int gen_call(struct gen_state *st, bool can_override)
{
	struct gen_hook *h = bpf_map_lookup_elem(&gen_hooks, &st->hook_id);
	__u32 mask;

	if (!h)
		return 0;
	if (h->flags & GEN_HOOK_RETURN) {
		struct gen_pending_key pk = { .tid = (__u32)bpf_get_current_pid_tgid(), .hook_id = st->hook_id };
		struct gen_pending p = {};
		int k;

		st->phase = GEN_PHASE_ENTRY;
		mask = gen_select(1, 0x1f);
		if (!mask)
			return 0;
		for (k = 0; k < GEN_MAX_ARGS; k++)
			p.param[k] = st->param[k];
		p.sel_mask = mask;
		bpf_map_update_elem(&gen_pending_calls, &pk, &p, BPF_ANY);
		return 0;
	}
	mask = gen_select(0, 0x1f);
	if (!mask)
		return 0;
	return gen_finish(st, mask, can_override);
}

/* gen_return handles the return of a call saved by gen_call. */
static __always_inline int gen_return(struct gen_state *st, __s64 ret)
{
	struct gen_pending_key pk = { .tid = (__u32)bpf_get_current_pid_tgid(), .hook_id = st->hook_id };
	struct gen_pending *p = bpf_map_lookup_elem(&gen_pending_calls, &pk);
	__u32 mask, cand;
	int k;

	if (!p)
		return 0;
	for (k = 0; k < GEN_MAX_ARGS; k++)
		st->param[k] = p->param[k];
	cand = p->sel_mask;
	bpf_map_delete_elem(&gen_pending_calls, &pk);
	st->ret = ret;
	st->phase = GEN_PHASE_RETURN;
	if (cand & (1u << 31))
		mask = cand;
	else
		mask = gen_select(0, cand);
	if (!mask)
		return 0;
	return gen_finish(st, mask, false);
}

/* params_from_user_regs reads the six syscall arguments from the user
 * registers a syscall wrapper (__x64_sys_*) receives: the fourth is in r10. */
static __always_inline void params_from_user_regs(struct gen_state *st, struct pt_regs *regs)
{
	st->param[0] = BPF_CORE_READ(regs, di);
	st->param[1] = BPF_CORE_READ(regs, si);
	st->param[2] = BPF_CORE_READ(regs, dx);
	st->param[3] = BPF_CORE_READ(regs, r10);
	st->param[4] = BPF_CORE_READ(regs, r8);
	st->param[5] = BPF_CORE_READ(regs, r9);
}

static __always_inline void params_from_regs(struct gen_state *st, struct pt_regs *ctx, __u32 flags)
{
	if (flags & GEN_HOOK_WRAPPED_REGS) {
		params_from_user_regs(st, (struct pt_regs *)PT_REGS_PARM1(ctx));
	} else {
		st->param[0] = PT_REGS_PARM1(ctx);
		st->param[1] = PT_REGS_PARM2(ctx);
		st->param[2] = PT_REGS_PARM3(ctx);
		st->param[3] = PT_REGS_PARM4(ctx);
		st->param[4] = PT_REGS_PARM5(ctx);
		st->param[5] = ctx->r9;
	}
}

static __always_inline int kprobe_entry(struct pt_regs *ctx, __u32 id)
{
	struct gen_state *st = gen_state();
	struct gen_hook *h = bpf_map_lookup_elem(&gen_hooks, &id);

	if (!st || !h || !gen_begin(st, id, GEN_PHASE_ALL))
		return 0;
	st->ret = 0;
	params_from_regs(st, ctx, h->flags);
	gen_call(st, false);
	return 0;
}

static __always_inline int kprobe_return(struct pt_regs *ctx, __u32 id)
{
	struct gen_state *st = gen_state();

	if (!st || !gen_begin(st, id, GEN_PHASE_RETURN))
		return 0;
	gen_return(st, PT_REGS_RC(ctx));
	return 0;
}

SEC("kprobe")
int generic_kprobe(struct pt_regs *ctx)
{
	return kprobe_entry(ctx, hook_id);
}

SEC("kretprobe")
int generic_kretprobe(struct pt_regs *ctx)
{
	return kprobe_return(ctx, hook_id);
}

SEC("kprobe.multi")
int generic_kprobe_multi(struct pt_regs *ctx)
{
	return kprobe_entry(ctx, bpf_get_attach_cookie(ctx));
}

SEC("kretprobe.multi")
int generic_kretprobe_multi(struct pt_regs *ctx)
{
	return kprobe_return(ctx, bpf_get_attach_cookie(ctx));
}

/* usdt_arg reads one USDT argument where the probe's note says it is, and
 * extends it from its size as the note's sign says. */
static __always_inline __u64 usdt_arg(struct pt_regs *ctx, struct gen_usdt_arg *a)
{
	__u64 v = 0, m = 0;
	__u32 size = a->size, shift;

	switch (a->kind) {
	case GEN_USDT_CONST:
		v = a->val;
		break;
	case GEN_USDT_REG:
		bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx + (a->reg_off & 0xff));
		break;
	case GEN_USDT_DEREF:
		bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx + (a->reg_off & 0xff));
		if (size == 0 || size > 8)
			return 0;
		bpf_probe_read_user(&m, size, (void *)(v + a->val));
		v = m;
		break;
	default:
		return 0;
	}
	if (size == 0 || size >= 8)
		return v;
	shift = 64 - size * 8;
	if (a->is_signed)
		return (__u64)(((__s64)(v << shift)) >> shift);
	return (v << shift) >> shift;
}

/* A USDT probe: a uprobe at the probe's address whose arguments are read
 * as its note describes (gen_usdts), then handled as a call's. */
SEC("uprobe")
int generic_usdt(struct pt_regs *ctx)
{
	__u32 id = hook_id;
	struct gen_state *st = gen_state();
	struct gen_usdt *u = bpf_map_lookup_elem(&gen_usdts, &id);

	if (!st || !u || !bpf_map_lookup_elem(&gen_hooks, &id) || !gen_begin(st, id, GEN_PHASE_ALL))
		return 0;
	st->ret = 0;
	for (int i = 0; i < GEN_MAX_ARGS; i++)
		st->param[i] = usdt_arg(ctx, &u->args[i]);
	gen_call(st, false);
	return 0;
}

/* uprobe.multi: the probes of a uprobe hook in one link, their cookies
 * carrying the hook ids; the arguments are read as a kprobe's. */
SEC("uprobe.multi")
int generic_uprobe_multi(struct pt_regs *ctx)
{
	return kprobe_entry(ctx, bpf_get_attach_cookie(ctx));
}

/* BTF-typed programs: parameters come from the context array, whose size
 * the loader sets in nparams (dead branches are pruned by the verifier).
 * CTX_ARG loads one slot at a constant offset: verifiers refuse loads
 * through a context pointer the compiler has moved. */
#define CTX_ARG(ctx, n)                                                                  \
	({                                                                               \
		__u64 __v;                                                               \
		asm volatile("%0 = *(u64 *)(%1 + %2)" : "=r"(__v) : "r"(ctx), "i"((n) * 8)); \
		__v;                                                                     \
	})

static __always_inline void params_from_ctx(struct gen_state *st, __u64 *ctx, __u32 flags)
{
	if (flags & GEN_HOOK_WRAPPED_REGS) {
		params_from_user_regs(st, (struct pt_regs *)CTX_ARG(ctx, 0));
		return;
	}
	if (nparams > 0)
		st->param[0] = CTX_ARG(ctx, 0);
	if (nparams > 1)
		st->param[1] = CTX_ARG(ctx, 1);
	if (nparams > 2)
		st->param[2] = CTX_ARG(ctx, 2);
	if (nparams > 3)
		st->param[3] = CTX_ARG(ctx, 3);
	if (nparams > 4)
		st->param[4] = CTX_ARG(ctx, 4);
	if (nparams > 5)
		st->param[5] = CTX_ARG(ctx, 5);
}

/* ctx_return reads the return value, which follows the parameters. */
static __always_inline __s64 ctx_return(__u64 *ctx)
{
	switch (nparams) {
	case 0:
		return CTX_ARG(ctx, 0);
	case 1:
		return CTX_ARG(ctx, 1);
	case 2:
		return CTX_ARG(ctx, 2);
	case 3:
		return CTX_ARG(ctx, 3);
	case 4:
		return CTX_ARG(ctx, 4);
	case 5:
		return CTX_ARG(ctx, 5);
	case 6:
		return CTX_ARG(ctx, 6);
	}
	return 0;
}

static __always_inline int btf_entry(__u64 *ctx, bool can_override)
{
	struct gen_state *st = gen_state();
	__u32 id = hook_id;
	struct gen_hook *h = bpf_map_lookup_elem(&gen_hooks, &id);

	if (!st || !h || !gen_begin(st, id, GEN_PHASE_ALL))
		return 0;
	st->ret = 0;
	params_from_ctx(st, ctx, h->flags);
	return gen_call(st, can_override);
}

SEC("fentry")
int generic_fentry(__u64 *ctx)
{
	btf_entry(ctx, false);
	return 0;
}

SEC("fexit")
int generic_fexit(__u64 *ctx)
{
	struct gen_state *st = gen_state();
	__u32 id = hook_id;
	struct gen_hook *h = bpf_map_lookup_elem(&gen_hooks, &id);
	__u32 mask;

	if (!st || !h || !gen_begin(st, id, GEN_PHASE_ALL))
		return 0;
	params_from_ctx(st, ctx, h->flags);
	st->ret = ctx_return(ctx);
	mask = gen_select(0, 0x1f);
	if (mask)
		gen_finish(st, mask, false);
	return 0;
}

SEC("fmod_ret")
int generic_fmod_ret(__u64 *ctx)
{
	return btf_entry(ctx, true);
}

/* Returns a 64-bit value: verifiers check the whole register against the
 * LSM range [-MAX_ERRNO, 0], and an int would be zero-extended. */
SEC("lsm")
__s64 generic_lsm(__u64 *ctx)
{
	__s64 prev = ctx_return(ctx);
	__s64 ret;

	/* Another LSM already denied the call. LSM programs must return 0 or
	 * a negative errno: the verifier checks the range. */
	if (prev < 0 && prev >= -MAX_ERRNO)
		return prev;
	ret = btf_entry(ctx, true);
	if (ret < -MAX_ERRNO || ret > 0)
		ret = -1; /* EPERM: an Override's errno is validated, this cannot happen */
	return ret;
}

/* Tracepoints: syscalls/sys_enter_* carry the six arguments at offset 16,
 * sys_exit_* the return value there; other tracepoints are read field by
 * field at the offsets the loader found in their format. */
static __always_inline void params_from_tp(struct gen_state *st, void *ctx, struct gen_hook *h)
{
	int k;

	st->tp_ctx = (__u64)ctx;
	if (h->flags & GEN_HOOK_TP_SYSCALL) {
		bpf_probe_read_kernel(st->param, sizeof(st->param), ctx + 16);
		return;
	}
	for (k = 0; k < GEN_MAX_ARGS; k++) {
		struct gen_arg_desc *d = &h->args[k];
		__u64 v = 0;

		if (k >= h->nargs)
			break;
		bpf_probe_read_kernel(&v, d->tp_size & 7 ? d->tp_size & 7 : 8, ctx + d->tp_offset);
		st->param[k] = v;
	}
}

SEC("tracepoint")
int generic_tracepoint(void *ctx)
{
	struct gen_state *st = gen_state();
	__u32 id = hook_id;
	struct gen_hook *h = bpf_map_lookup_elem(&gen_hooks, &id);

	if (!st || !h || !gen_begin(st, id, GEN_PHASE_ALL))
		return 0;
	st->ret = 0;
	params_from_tp(st, ctx, h);
	gen_call(st, false);
	return 0;
}

/* Raw tracepoints: the tracepoint's own arguments (its TP_PROTO), nparams
 * of them as the loader found in its btf_trace_EVENT type. */
SEC("raw_tracepoint")
int generic_raw_tracepoint(__u64 *ctx)
{
	struct gen_state *st = gen_state();
	__u32 id = hook_id;
	struct gen_hook *h = bpf_map_lookup_elem(&gen_hooks, &id);

	if (!st || !h || !gen_begin(st, id, GEN_PHASE_ALL))
		return 0;
	st->ret = 0;
	params_from_ctx(st, ctx, 0);
	gen_call(st, false);
	return 0;
}

SEC("tracepoint")
int generic_tracepoint_exit(void *ctx)
{
	struct gen_state *st = gen_state();
	__s64 ret = 0;

	if (!st || !gen_begin(st, hook_id, GEN_PHASE_RETURN))
		return 0;
	bpf_probe_read_kernel(&ret, sizeof(ret), ctx + 16);
	gen_return(st, ret);
	return 0;
}

SEC_LICENSE;
