/* The per-process state the kernel side keeps: one entry per live thread
 * group, written by the process programs and read by policy programs (for
 * matchBinaries) and by the exit handler (to honour exec filters). */
#ifndef VIGIL_PROCESS_H
#define VIGIL_PROCESS_H

#include "common.h"

#define BINARY_MAX 256

enum proc_flags {
	PROC_F_FILTERED = 1, /* exec/exit events of this process are not reported */
};

struct proc_entry {
	__u64 exec_ktime;
	__u64 follow_mask; /* matchBinaries followChildren sets this process belongs to */
	__u32 flags;
	__u32 ppid;
	__u32 bin_len;
	__u32 pad;
	char bin[BINARY_MAX]; /* executable path, NUL padded, truncated to BINARY_MAX-1 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768); /* set by the loader */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct proc_entry);
} procs SEC(".maps");

/* Processes policies never act on unless a selector names them exactly (and
 * its policy opts in): the agent's parent chain and PID 1, written by the
 * agent (value: why, enum protect_reason). The exit handler removes a thread
 * group's entry, so that a reused PID is not protected. */
enum protect_reason {
	PROTECT_AGENT = 1,
	PROTECT_AGENT_PARENT = 2,
	PROTECT_INIT = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} protected_tgids SEC(".maps");

#endif
