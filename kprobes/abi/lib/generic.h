/* Tracing policies in the kernel: the compiled form of hooks and selectors
 * that user space writes into maps, and the record a matching call produces.
 * Every layout here is mirrored by a Go type generated with bpf2go; the
 * compiler in tracingpolicies/ writes these maps, tests check it byte for
 * byte. */
#ifndef VIGIL_GENERIC_H
#define VIGIL_GENERIC_H

#include "common.h"
#include "task.h"

/* Limits of the compiled form. An enum, not macros, so that the Go bindings
 * carry them (abi.GenericGenLimit*). */
enum gen_limit {
	GEN_MAX_HOOKS = 1024,
	GEN_MAX_POLICIES = 1024,
	GEN_MAX_ARGS = 6,
	GEN_MAX_SELECTORS = 5,
	GEN_MAX_ARG_FILTERS = 6, /* 5 matchArgs and 1 matchReturnArgs */
	GEN_MAX_BIN_FILTERS = 2,
	GEN_MAX_PID_FILTERS = 4,
	GEN_MAX_NS_FILTERS = 10,
	GEN_MAX_CAP_FILTERS = 3,
	GEN_STR_MAX = 252, /* bytes of a string compared in a set */
	GEN_MAX_RESOLVE = 10, /* steps of a resolve path */
	GEN_ARG_RETURN = 0xff,
};

/* Argument types, as read by the kernel. */
enum gen_arg_type {
	GEN_ARG_NONE = 0,
	GEN_ARG_S8,
	GEN_ARG_U8,
	GEN_ARG_S16,
	GEN_ARG_U16,
	GEN_ARG_S32,
	GEN_ARG_U32,
	GEN_ARG_S64,
	GEN_ARG_U64,
	GEN_ARG_STRING,
	GEN_ARG_CHAR_BUF,
	GEN_ARG_CHAR_IOVEC,
	GEN_ARG_FD,
	GEN_ARG_FILE,
	GEN_ARG_PATH,
	GEN_ARG_FILENAME,
	GEN_ARG_BINPRM,
	GEN_ARG_SOCK,
	GEN_ARG_SOCKET,
	GEN_ARG_SOCKADDR,
	GEN_ARG_SKB,
	GEN_ARG_CRED,
	GEN_ARG_CAP_T,
	GEN_ARG_SYSCALL64, /* s64, bit 31 set for a 32-bit compat syscall */
	GEN_ARG_DENTRY,    /* path within its file system */
};

/* Flags of an argument description. */
enum gen_arg_flags {
	GEN_ARGF_USER = 1 << 0,        /* pointer into user memory */
	GEN_ARGF_RETURN_COPY = 1 << 1, /* read at return (buffers filled by the call) */
	GEN_ARGF_MAX_DATA = 1 << 2,    /* read up to the largest size */
	GEN_ARGF_DATALOC = 1 << 3,     /* tracepoint __data_loc field */
	GEN_ARGF_TP_PTR = 1 << 4,      /* tracepoint field holding a pointer */
	GEN_ARGF_RESOLVE = 1 << 5,     /* the value is found along gen_resolve's steps */
	GEN_ARGF_WHOLE = 1 << 6,       /* a selector reads the string whole on every call it gets:
					* head checks take their bytes from the record */
};

struct gen_arg_desc {
	__u8 type;     /* enum gen_arg_type */
	__u8 index;    /* parameter index */
	__u8 flags;    /* enum gen_arg_flags */
	__u8 size_arg; /* 1 + index of the parameter holding the size, 0: none */
	__u16 tp_offset; /* tracepoint field offset in the record */
	__u8 tp_size;    /* tracepoint field size */
	__u8 pad;
};

/* resolve: the path to a field through the parameter's structures, from
 * the kernel's BTF. Each step adds off to the current value (a pointer)
 * and then keeps that address (size 0) or loads size bytes from it (8: a
 * pointer to follow, or a u64). The value after the last step is what
 * the argument's type reads. Keyed by hook id * GEN_MAX_ARGS + argument. */
struct gen_resolve_step {
	__u32 off;
	__u8 size;
	__u8 pad[3];
};

struct gen_resolve {
	__u8 n;
	__u8 pad[3];
	struct gen_resolve_step steps[GEN_MAX_RESOLVE];
};

/* Where a USDT probe's argument is, as its .note.stapsdt entry says: a
 * constant, a register, or memory at a register plus a displacement. */
enum gen_usdt_kind {
	GEN_USDT_NONE = 0,
	GEN_USDT_CONST = 1,
	GEN_USDT_REG = 2,
	GEN_USDT_DEREF = 3,
};

struct gen_usdt_arg {
	__u8 kind;
	__u8 size; /* 1, 2, 4 or 8 bytes */
	__u8 is_signed;
	__u8 pad;
	__u32 reg_off; /* offset of the register in struct pt_regs */
	__s64 val;     /* the constant, or the displacement */
};

/* The arguments of a USDT probe, by hook id. */
struct gen_usdt {
	struct gen_usdt_arg args[GEN_MAX_ARGS];
};

/* Flags of a hook. */
enum gen_hook_flags {
	GEN_HOOK_SYSCALL = 1 << 0,      /* arguments are syscall arguments */
	GEN_HOOK_WRAPPED_REGS = 1 << 1, /* kprobe on a syscall wrapper: arg 0 is the user pt_regs */
	GEN_HOOK_RETURN = 1 << 2,       /* report at return */
	GEN_HOOK_TRACEPOINT = 1 << 3,   /* arguments are tracepoint fields */
	GEN_HOOK_TP_SYSCALL = 1 << 4,   /* a syscalls/sys_enter_* tracepoint: args at offset 16 */
	GEN_HOOK_RET_TRACK_SOCK = 1 << 5,   /* returnArgAction TrackSock: remember the returned socket's process */
	GEN_HOOK_RET_UNTRACK_SOCK = 1 << 6, /* returnArgAction UntrackSock */
};

struct gen_hook {
	__u32 policy_id;
	__u32 flags; /* enum gen_hook_flags */
	__u8 nargs;  /* entries of args in use */
	__u8 nsel;   /* selectors in use; 0 matches every call */
	__u8 pad[6];
	struct gen_arg_desc args[GEN_MAX_ARGS];
	struct gen_arg_desc ret;
};

/* Filter operators. */
enum gen_op {
	GEN_OP_INT_IN = 1,  /* value in int set */
	GEN_OP_GT,          /* signed or unsigned per arg type */
	GEN_OP_LT,
	GEN_OP_MASK,        /* value & mask != 0 */
	GEN_OP_STR_EQ,      /* string in set (exact) */
	GEN_OP_STR_PREFIX,  /* string has a prefix in set */
	GEN_OP_STR_POSTFIX, /* string has a suffix in set (set holds reversed strings) */
	GEN_OP_SADDR,
	GEN_OP_DADDR,
	GEN_OP_SPORT,
	GEN_OP_DPORT,
	GEN_OP_PROTOCOL,
	GEN_OP_FAMILY,
	GEN_OP_STATE, /* sock state (TCP_ESTABLISHED, ...) in int set */
};

struct gen_arg_filter {
	__u8 arg;    /* position in the hook's args, or GEN_ARG_RETURN */
	__u8 op;     /* enum gen_op */
	__u8 negate; /* NotEqual, NotPrefix, NotSAddr, ... */
	__u8 is_signed;
	__u32 set_id;
	/* GT, LT, Mask: the operand. Prefix and Equal: the length of the set's
	 * heads in gen_str_heads (see struct gen_head_key), Postfix: of its
	 * tails; 0 when it has none. */
	__u64 value;
};

/* The head of every value of a Prefix or Equal string set: its first len
 * bytes, len being the shortest value's length capped at 8. A string whose
 * head is not in the set matches none of its values, which is found with
 * one small read and one hash lookup instead of reading the whole string
 * and walking the trie. A Postfix set keeps its values' tails the same way:
 * their last len bytes, in order, checked before the string's end is
 * reversed into a trie key. */
struct gen_head_key {
	__u32 set_id;
	__u32 len;
	__u8 head[8];
};

enum gen_bin_op {
	GEN_BIN_IN = 1,
	GEN_BIN_PREFIX,
	GEN_BIN_POSTFIX,
};

struct gen_bin_filter {
	__u8 op;     /* enum gen_bin_op */
	__u8 negate;
	__u8 follow; /* followChildren: also match descendants (via follow_bit) */
	__u8 follow_bit;
	__u32 set_id;
};

struct gen_pid_filter {
	__u8 negate;
	__u8 ns_pid; /* compare the pid in the process's own pid namespace */
	__u8 follow; /* followForks: descendants match (via follow_bit) */
	__u8 follow_bit;
	__u32 set_id;
};

enum gen_ns {
	GEN_NS_UTS = 0,
	GEN_NS_IPC,
	GEN_NS_MNT,
	GEN_NS_PID,
	GEN_NS_PID_FOR_CHILDREN,
	GEN_NS_NET,
	GEN_NS_TIME,
	GEN_NS_TIME_FOR_CHILDREN,
	GEN_NS_CGROUP,
	GEN_NS_USER,
};

struct gen_ns_filter {
	__u8 ns; /* enum gen_ns */
	__u8 negate;
	__u8 pad[2];
	__u32 set_id;
};

enum gen_cap_set {
	GEN_CAP_EFFECTIVE = 0,
	GEN_CAP_INHERITABLE,
	GEN_CAP_PERMITTED,
};

struct gen_cap_filter {
	__u8 set; /* enum gen_cap_set */
	__u8 negate;
	__u8 pad[2];
	__u32 host_userns; /* isNamespaceCapability: the host's user namespace, which never matches; 0: any */
	__u64 mask;
};

/* Actions of a selector (a bit set) and the enforcement outcome of a
 * record. */
enum gen_action {
	GEN_ACT_POST = 1 << 0,
	GEN_ACT_NOPOST = 1 << 1,
	GEN_ACT_SIGKILL = 1 << 2,
	GEN_ACT_SIGNAL = 1 << 3,
	GEN_ACT_OVERRIDE = 1 << 4,
	GEN_ACT_TRACK_SOCK = 1 << 5,   /* remember the process of sock_arg's socket */
	GEN_ACT_UNTRACK_SOCK = 1 << 6, /* forget it */
};

struct gen_selector {
	__u8 nargs;
	__u8 nbins;
	__u8 npids;
	__u8 nns;
	__u8 ncaps;
	__u8 explicit_target; /* names its processes exactly (matchPIDs In, matchBinaries In) and its policy opts in: may act on protected ones */
	__u8 sock_arg;        /* TrackSock, UntrackSock: the parameter holding the struct sock * */
	__u8 pad;
	__u32 actions;   /* enum gen_action */
	__s32 errno;     /* Override */
	__u32 signal;    /* Signal */
	__u32 rate_ms;   /* Post rate limit per thread group, 0: none */
	struct gen_arg_filter args[GEN_MAX_ARG_FILTERS];
	struct gen_bin_filter bins[GEN_MAX_BIN_FILTERS];
	struct gen_pid_filter pids[GEN_MAX_PID_FILTERS];
	struct gen_ns_filter ns[GEN_MAX_NS_FILTERS];
	struct gen_cap_filter caps[GEN_MAX_CAP_FILTERS];
};

enum gen_policy_mode {
	GEN_MODE_ENFORCE = 0,
	GEN_MODE_MONITOR = 1,
};

/* What becomes of repeated identical calls of a process (same hook,
 * selector, arguments, return value and action): folded (counted in
 * gen_folds, the first reported at once, the repeats as counts by user
 * space), or each one reported. */
enum gen_repeats {
	GEN_REPEATS_FOLD = 0,
	GEN_REPEATS_REPORT = 1,
};

struct gen_policy {
	__u8 mode;    /* enum gen_policy_mode, switchable live */
	__u8 scoped;  /* restricted to the cgroups in policy_cgroups */
	__u8 repeats; /* enum gen_repeats */
	__u8 pad[5];
};

/* A run of identical calls of one process image: the key of gen_folds. */
struct gen_fold_key {
	__u32 tgid;
	__u32 hook_id;
	__u64 exec_ktime; /* the image: an exec starts new runs */
	__u64 hash;       /* of the call's record: arguments, return, action */
	__u32 selector;
	__u32 pad;
};

/* The repeats of a run since its first call, which was reported. */
struct gen_fold {
	__u64 count;
	__u64 first; /* bpf_ktime_get_ns of the first call */
	__u64 last;  /* of the latest repeat */
};

/* Set keys. */
struct gen_int_key {
	__u32 set_id;
	__u32 pad;
	__u64 value;
};

struct gen_str_key {
	__u32 prefixlen; /* bits, counting the 32 of set_id */
	__u32 set_id;
	__u8 data[GEN_STR_MAX];
};

struct gen_addr_key {
	__u32 prefixlen; /* bits, counting the 32 of set_id; IPv4 is v4-mapped */
	__u32 set_id;
	__u8 addr[16];
};

struct gen_port_key {
	__u32 prefixlen; /* bits, counting the 32 of set_id */
	__u32 set_id;
	__u16 port; /* host byte order, compared big-endian by the trie */
	__u16 pad;
};

struct gen_scope_key {
	__u32 policy_id;
	__u32 pad;
	__u64 cgroup_id;
};

/* Flags of a record. */
enum gen_event_flags {
	GEN_EV_MONITOR = 1 << 0,    /* policy in monitor mode: action not taken */
	GEN_EV_PROTECTED = 1 << 1,  /* action not taken: protected process */
	GEN_EV_RETURN = 1 << 2,     /* has a return value */
	GEN_EV_ACTION_FAILED = 1 << 3,
	GEN_EV_FOLD_HEAD = 1 << 4, /* the first of a run: repeats are counted under fold_hash */
};

/* Flags of one argument in a record. */
enum gen_arg_state {
	GEN_ARGS_TRUNCATED = 1 << 0,
	GEN_ARGS_ERROR = 1 << 1,
};

struct gen_event {
	struct event_header hdr;
	__u32 hook_id;
	__u32 policy_id;
	__u32 action; /* enum gen_action: what was done (or, in monitor mode, would have been) */
	__u32 flags;  /* enum gen_event_flags */
	__s32 errno;
	__u32 signal;
	__s64 ret;
	__u64 cgroup_id;
	__u8 selector; /* index of the selector that matched, 0xff: none (no selectors) */
	__u8 nargs;
	__u8 arg_state[GEN_MAX_ARGS];
	__u16 arg_off[GEN_MAX_ARGS]; /* offset of each argument in the data that follows */
	__u16 arg_len[GEN_MAX_ARGS];
	__u32 pad;
	__u64 exec_ktime; /* GEN_EV_FOLD_HEAD: the run's key (struct gen_fold_key) */
	__u64 fold_hash;
};

/* Serialised forms of structured arguments. */
struct gen_file_arg {
	__u32 flags; /* f_flags, or the permission mask for paths */
	__u32 mode;
	/* followed by the path */
};

struct gen_sock_arg {
	__u16 family;
	__u16 type;
	__u16 protocol;
	__u8 state;
	__u8 pad;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 pad2;
	__u64 cookie;
};

/* A cred argument is a struct task_creds (lib/task.h). */

#endif
