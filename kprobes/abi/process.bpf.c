//go:build ignore

/* Process lifecycle: exec, fork and exit of thread groups, reported through
 * the shared ring buffer. Threads are not processes: a clone that shares the
 * thread group is ignored and a process exits once, with its last thread. */

#include "lib/common.h"
#include "lib/path.h"
#include "lib/process.h"
#include "lib/task.h"

#define ARGS_BUF 4096
/* The environment is read whole up to ENV_BUF-1 bytes; a longer one as its
 * first and last ENV_HALF bytes (a variable added by setenv(3) or env(1)
 * lands at the end, one set by a shell's command prefix at the start). */
#define ENV_BUF 8192
#define ENV_HALF 4096
#define DATA_BUF (4 * PATH_BUF + ENV_BUF)

#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define TMPFS_MAGIC 0x01021994
#define HUGETLBFS_MAGIC 0x958458f6
#define S_ISUID 04000
#define S_ISGID 02000
#define S_IXGRP 00010

/* Flags of an exec record. */
enum exec_flags {
	EXEC_F_TRUNC_PATH = 1 << 0,
	EXEC_F_ERR_PATH = 1 << 1,
	EXEC_F_TRUNC_CWD = 1 << 2,
	EXEC_F_ERR_CWD = 1 << 3,
	EXEC_F_TRUNC_ARGS = 1 << 4,
	EXEC_F_ERR_ARGS = 1 << 5,
	EXEC_F_UPPER_LAYER = 1 << 6,
	EXEC_F_MEMFD = 1 << 7,
	EXEC_F_DELETED = 1 << 8,
	EXEC_F_SETUID = 1 << 9,
	EXEC_F_SETGID = 1 << 10,
	EXEC_F_TRUNC_ENV = 1 << 11,
	EXEC_F_ERR_ENV = 1 << 12,
};

struct exec_event {
	struct event_header hdr;
	__u32 ppid;
	__u32 flags;
	struct task_creds creds;
	__u32 auid;
	__u32 pidns;
	__u32 mntns;
	__u32 netns;
	__u64 cgroup_id;
	__u64 start_ktime; /* task start (fork) time */
	__u64 ino;
	__u32 nlink;
	__u32 mode;
	__u32 file_uid;
	__u32 file_gid;
	__u16 path_len;
	__u16 cwd_len;
	__u16 args_len; /* argv, NUL separated, argv[0] included */
	__u16 env_len;  /* environment, NUL separated; 0 unless exec_env is set */
	__u16 env_head; /* bytes of env from its start; the rest, up to env_len,
			 * are its last bytes (env_head < env_len when truncated) */
	__u16 pad[3];
	/* followed by path_len bytes of path, cwd_len of cwd, args_len of args,
	 * env_len of environment */
};

/* An exec record under construction: the fixed part and room for the
 * variable part; only the used bytes are sent. */
struct exec_record {
	struct exec_event ev;
	char data[DATA_BUF];
};

struct exit_event {
	struct event_header hdr;
	__u32 exit_code; /* as wait(2) encodes it: status << 8 | signal */
	__u32 pad;
	__u64 start_ktime;
};

struct fork_event {
	struct event_header hdr;
	__u32 ppid;
	__u32 pad;
	__u64 start_ktime;
};

/* Runtime configuration, written by user space. */
struct process_config {
	__u32 filter_cgroups;   /* consult filter_cgroup_ids */
	__u32 filter_pidns;     /* consult filter_pidns_ids */
	__u32 filter_binaries;  /* consult filter_binary_paths */
	__u32 pad;
};

/* The agent's own thread group id, set at load time: its events are never
 * reported. */
const volatile __u32 agent_tgid = 0;

/* Whether exec records carry the new image's environment, set at load time. */
const volatile __u32 exec_env = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct process_config);
} process_config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} filter_cgroup_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} filter_pidns_ids SEC(".maps");

struct binary_key {
	char path[BINARY_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct binary_key);
	__type(value, __u8);
} filter_binary_paths SEC(".maps");

/* Executables whose processes, and their descendants, carry follow bits
 * (tracing policies' matchBinaries with followChildren). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct binary_key);
	__type(value, __u64);
} follow_binaries SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_record);
} exec_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct proc_entry);
} proc_scratch SEC(".maps");

/* Force the record types into BTF so bpf2go generates Go types for them. */
const struct exec_event *unused_exec_event __attribute__((unused));
const struct exit_event *unused_exit_event __attribute__((unused));
const struct fork_event *unused_fork_event __attribute__((unused));
const enum exec_flags *unused_exec_flags __attribute__((unused));
const enum vigil_op *unused_vigil_op __attribute__((unused));
const enum protect_reason *unused_protect_reason __attribute__((unused));

static __always_inline struct process_config *process_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&process_config_map, &zero);
}

/* filtered_by_task applies the cgroup and pid namespace filters. */
static __always_inline bool filtered_by_task(struct process_config *cfg, struct task_struct *task, __u64 cgid)
{
	if (cfg->filter_cgroups && bpf_map_lookup_elem(&filter_cgroup_ids, &cgid))
		return true;
	if (cfg->filter_pidns) {
		__u32 inum = task_pidns_inum(task);
		if (bpf_map_lookup_elem(&filter_pidns_ids, &inum))
			return true;
	}
	return false;
}


static __always_inline void fill_creds(struct exec_event *e, struct task_struct *task)
{
	read_creds(BPF_CORE_READ(task, cred), &e->creds);
	if (bpf_core_field_exists(task->loginuid))
		e->auid = BPF_CORE_READ(task, loginuid.val);
	else
		e->auid = (__u32)-1;
}

static __always_inline void fill_file_info(struct exec_event *e, struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	unsigned long magic = BPF_CORE_READ(inode, i_sb, s_magic);
	unsigned int nlink = BPF_CORE_READ(inode, __i_nlink);
	umode_t mode = BPF_CORE_READ(inode, i_mode);

	e->ino = BPF_CORE_READ(inode, i_ino);
	e->nlink = nlink;
	e->mode = mode;
	e->file_uid = BPF_CORE_READ(inode, i_uid.val);
	e->file_gid = BPF_CORE_READ(inode, i_gid.val);
	if (mode & S_ISUID)
		e->flags |= EXEC_F_SETUID;
	if ((mode & S_ISGID) && (mode & S_IXGRP))
		e->flags |= EXEC_F_SETGID;

	if (magic == OVERLAYFS_SUPER_MAGIC) {
		/* struct ovl_inode embeds the VFS inode and is followed by
		 * __upperdentry in every kernel since 4.x; the type lives in the
		 * overlay module's BTF, so locate the field from struct inode. */
		struct dentry *upper = 0;

		bpf_probe_read_kernel(&upper, sizeof(upper), (void *)inode + bpf_core_type_size(struct inode));
		if (upper)
			e->flags |= EXEC_F_UPPER_LAYER;
	}
	if (nlink == 0) {
		char name[6] = {};

		bpf_probe_read_kernel(name, sizeof(name), BPF_CORE_READ(dentry, d_name.name));
		if ((magic == TMPFS_MAGIC || magic == HUGETLBFS_MAGIC) && name[0] == 'm' && name[1] == 'e' &&
		    name[2] == 'm' && name[3] == 'f' && name[4] == 'd' && name[5] == ':')
			e->flags |= EXEC_F_MEMFD;
		else
			e->flags |= EXEC_F_DELETED;
	}
}

static __always_inline void update_proc(struct task_struct *task, struct exec_record *r, __u32 pflags)
{
	__u32 zero = 0;
	struct proc_entry *p = bpf_map_lookup_elem(&proc_scratch, &zero);
	struct proc_entry *old;
	struct exec_event *e = &r->ev;
	__u32 n = e->path_len;
	__u64 mask = 0, *follow;

	if (!p)
		return;
	/* Follow bits survive the exec: a followed process stays followed. */
	old = bpf_map_lookup_elem(&procs, &e->hdr.pid);
	if (old) {
		mask = old->follow_mask;
	} else {
		old = bpf_map_lookup_elem(&procs, &e->ppid);
		if (old)
			mask = old->follow_mask;
	}
	__builtin_memset(p, 0, sizeof(*p));
	p->exec_ktime = e->hdr.ktime;
	p->flags = pflags;
	p->ppid = e->ppid;
	if (n > BINARY_MAX - 1)
		n = BINARY_MAX - 1;
	p->bin_len = n;
	bpf_probe_read_kernel(p->bin, n & (BINARY_MAX - 1), r->data);
	follow = bpf_map_lookup_elem(&follow_binaries, p->bin);
	if (follow)
		mask |= *follow;
	p->follow_mask = mask;
	bpf_map_update_elem(&procs, &e->hdr.pid, p, BPF_ANY);
}

static __always_inline int handle_exec(struct task_struct *task)
{
	__u32 zero = 0, pflags = 0, pf;
	struct process_config *cfg = process_cfg();
	struct exec_record *r;
	struct exec_event *e;
	struct mm_struct *mm;
	struct file *exe;
	struct path_scratch *ps;
	__u32 off, len, pos;
	unsigned long arg_start, arg_end;
	__u64 size;

	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (tgid == agent_tgid || !cfg)
		return 0;
	r = bpf_map_lookup_elem(&exec_scratch, &zero);
	ps = path_scratch(0);
	if (!r || !ps)
		return 0;
	e = &r->ev;

	e->hdr.op = VIGIL_OP_EXEC;
	e->hdr.pid = tgid;
	e->hdr.tid = BPF_CORE_READ(task, pid);
	e->hdr.ktime = bpf_ktime_get_ns();
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->flags = 0;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->start_ktime = BPF_CORE_READ(task, start_time);
	e->pidns = task_pidns_inum(task);
	e->mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	e->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	fill_creds(e, task);

	/* The executed file: mm->exe_file is the binary that now runs (the
	 * interpreter for scripts, whose path is then the first argument). */
	mm = BPF_CORE_READ(task, mm);
	exe = BPF_CORE_READ(mm, exe_file);
	off = resolve_path((__u64)BPF_CORE_READ(exe, f_path.dentry), (__u64)BPF_CORE_READ(exe, f_path.mnt),
			   bpf_get_current_task(), 0);
	pf = ps->flags;
	if (pf & PATH_F_TRUNCATED)
		e->flags |= EXEC_F_TRUNC_PATH;
	if (pf & PATH_F_ERROR)
		e->flags |= EXEC_F_ERR_PATH;
	len = PATH_BUF - off;
	if (len > PATH_MASK)
		len = PATH_MASK;
	bpf_probe_read_kernel(r->data, len & PATH_MASK, &ps->buf[off & PATH_MASK]);
	e->path_len = len;
	pos = len;
	if (exe)
		fill_file_info(e, exe);

	if (filtered_by_task(cfg, task, e->cgroup_id)) {
		pflags |= PROC_F_FILTERED;
	} else if (cfg->filter_binaries) {
		struct path_scratch *ks = path_scratch(1);
		struct binary_key *k = ks ? (struct binary_key *)ks->buf : 0;
		__u32 n = len;

		if (k) {
			__builtin_memset(k, 0, sizeof(*k));
			if (n > BINARY_MAX - 1)
				n = BINARY_MAX - 1;
			bpf_probe_read_kernel(k->path, n & (BINARY_MAX - 1), r->data);
			if (bpf_map_lookup_elem(&filter_binary_paths, k))
				pflags |= PROC_F_FILTERED;
		}
	}
	update_proc(task, r, pflags);
	if (pflags & PROC_F_FILTERED)
		return 0;

	/* Current working directory. */
	off = resolve_path((__u64)BPF_CORE_READ(task, fs, pwd.dentry), (__u64)BPF_CORE_READ(task, fs, pwd.mnt),
			   bpf_get_current_task(), 0);
	pf = ps->flags;
	if (pf & PATH_F_TRUNCATED)
		e->flags |= EXEC_F_TRUNC_CWD;
	if (pf & PATH_F_ERROR)
		e->flags |= EXEC_F_ERR_CWD;
	len = PATH_BUF - off;
	if (len > PATH_MASK)
		len = PATH_MASK;
	bpf_probe_read_kernel(&r->data[pos & PATH_MASK], len & PATH_MASK, &ps->buf[off & PATH_MASK]);
	e->cwd_len = len;
	pos += len;

	/* Arguments, from the new image's argument memory. */
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	len = 0;
	if (arg_end > arg_start) {
		unsigned long n = arg_end - arg_start;

		if (n > ARGS_BUF - 1) {
			n = ARGS_BUF - 1;
			e->flags |= EXEC_F_TRUNC_ARGS;
		}
		len = n;
		if (bpf_probe_read_user(&r->data[pos & (2 * PATH_BUF - 1)], len & (ARGS_BUF - 1), (void *)arg_start) < 0) {
			e->flags |= EXEC_F_ERR_ARGS;
			len = 0;
		}
	}
	e->args_len = len;
	pos += len;

	/* Environment, from the same memory; user space keeps the variables
	 * it was asked for. */
	e->env_len = 0;
	e->env_head = 0;
	if (exec_env) {
		unsigned long env_start = BPF_CORE_READ(mm, env_start);
		unsigned long env_end = BPF_CORE_READ(mm, env_end);

		if (env_end > env_start) {
			unsigned long n = env_end - env_start;

			if (n <= ENV_BUF - 1) {
				if (bpf_probe_read_user(&r->data[pos & (4 * PATH_BUF - 1)], n & (ENV_BUF - 1),
							(void *)env_start) < 0)
					e->flags |= EXEC_F_ERR_ENV;
				else
					e->env_len = e->env_head = n;
			} else {
				e->flags |= EXEC_F_TRUNC_ENV;
				if (bpf_probe_read_user(&r->data[pos & (4 * PATH_BUF - 1)], ENV_HALF, (void *)env_start) < 0 ||
				    bpf_probe_read_user(&r->data[(pos + ENV_HALF) & (4 * PATH_BUF - 1)], ENV_HALF,
							(void *)(env_end - ENV_HALF)) < 0) {
					e->flags |= EXEC_F_ERR_ENV;
				} else {
					e->env_head = ENV_HALF;
					e->env_len = 2 * ENV_HALF;
				}
			}
		}
	}
	pos += e->env_len;

	size = sizeof(*e) + pos;
	if (size > sizeof(*r))
		size = sizeof(*r);
	e->hdr.size = size;
	submit(r, size, VIGIL_OP_EXEC);
	return 0;
}

static __always_inline int handle_fork(struct task_struct *parent, struct task_struct *child)
{
	struct process_config *cfg = process_cfg();
	struct fork_event ev = {};
	struct proc_entry *pp;
	__u32 tgid = BPF_CORE_READ(child, tgid);
	__u32 pid = BPF_CORE_READ(child, pid);
	__u32 ptgid = BPF_CORE_READ(parent, tgid);

	if (tgid != pid || !cfg) /* a new thread, not a new process */
		return 0;

	/* The child runs the parent's binary until it execs. */
	pp = bpf_map_lookup_elem(&procs, &ptgid);
	if (pp) {
		bpf_map_update_elem(&procs, &tgid, pp, BPF_ANY);
		if (pp->flags & PROC_F_FILTERED)
			return 0;
	}
	if (ptgid == agent_tgid)
		return 0;
	if (filtered_by_task(cfg, parent, bpf_get_current_cgroup_id()))
		return 0;

	ev.hdr.op = VIGIL_OP_FORK;
	ev.hdr.size = sizeof(ev);
	ev.hdr.pid = tgid;
	ev.hdr.tid = pid;
	ev.hdr.ktime = bpf_ktime_get_ns();
	ev.ppid = ptgid;
	ev.start_ktime = BPF_CORE_READ(child, start_time);
	submit(&ev, sizeof(ev), VIGIL_OP_FORK);
	return 0;
}

static __always_inline int handle_exit(struct task_struct *task)
{
	struct exit_event ev = {};
	struct proc_entry *p;
	__u32 tgid = BPF_CORE_READ(task, tgid);
	bool filtered = false;

	/* Only the last thread of the group reports the exit. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	p = bpf_map_lookup_elem(&procs, &tgid);
	if (p)
		filtered = p->flags & PROC_F_FILTERED;
	bpf_map_delete_elem(&procs, &tgid);
	bpf_map_delete_elem(&protected_tgids, &tgid);
	if (filtered || tgid == agent_tgid)
		return 0;

	ev.hdr.op = VIGIL_OP_EXIT;
	ev.hdr.size = sizeof(ev);
	ev.hdr.pid = tgid;
	ev.hdr.tid = BPF_CORE_READ(task, pid);
	ev.hdr.ktime = bpf_ktime_get_ns();
	ev.exit_code = BPF_CORE_READ(task, exit_code);
	ev.start_ktime = BPF_CORE_READ(task, start_time);
	submit(&ev, sizeof(ev), VIGIL_OP_EXIT);
	return 0;
}

/* BTF-enabled tracepoints: preferred. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(tp_btf_exec, struct task_struct *p)
{
	return handle_exec(p);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(tp_btf_fork, struct task_struct *parent, struct task_struct *child)
{
	return handle_fork(parent, child);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(tp_btf_exit, struct task_struct *p)
{
	return handle_exit(p);
}

/* Raw tracepoints: the fallback for kernels without tp_btf. They carry the
 * same task pointers, read through CO-RE. */
SEC("raw_tracepoint/sched_process_exec")
int raw_tp_exec(struct bpf_raw_tracepoint_args *ctx)
{
	return handle_exec((struct task_struct *)ctx->args[0]);
}

SEC("raw_tracepoint/sched_process_fork")
int raw_tp_fork(struct bpf_raw_tracepoint_args *ctx)
{
	return handle_fork((struct task_struct *)ctx->args[0], (struct task_struct *)ctx->args[1]);
}

SEC("raw_tracepoint/sched_process_exit")
int raw_tp_exit(struct bpf_raw_tracepoint_args *ctx)
{
	return handle_exit((struct task_struct *)ctx->args[0]);
}

SEC_LICENSE;
