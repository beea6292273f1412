/* What the process and the tracing-policy programs both read of a task:
 * its credentials and its pid namespace. */
#ifndef VIGIL_TASK_H
#define VIGIL_TASK_H

#include "common.h"

/* The ids and capability sets of a struct cred, as records carry them (not
 * "struct creds": vmlinux.h declares one, and its CO-RE attribute would
 * follow the name). */
struct task_creds {
	__u32 uid, gid, euid, egid, suid, sgid, fsuid, fsgid;
	__u64 cap_permitted, cap_effective, cap_inheritable;
};

static __always_inline void read_creds(const struct cred *c, struct task_creds *out)
{
	out->uid = BPF_CORE_READ(c, uid.val);
	out->gid = BPF_CORE_READ(c, gid.val);
	out->euid = BPF_CORE_READ(c, euid.val);
	out->egid = BPF_CORE_READ(c, egid.val);
	out->suid = BPF_CORE_READ(c, suid.val);
	out->sgid = BPF_CORE_READ(c, sgid.val);
	out->fsuid = BPF_CORE_READ(c, fsuid.val);
	out->fsgid = BPF_CORE_READ(c, fsgid.val);
	/* kernel_cap_t is a u32[2] before 6.3 and a u64 after: 8 bytes either way. */
	bpf_core_read(&out->cap_permitted, sizeof(__u64), &c->cap_permitted);
	bpf_core_read(&out->cap_effective, sizeof(__u64), &c->cap_effective);
	bpf_core_read(&out->cap_inheritable, sizeof(__u64), &c->cap_inheritable);
}

/* task_pidns_inum returns the inode of the pid namespace the task's pid
 * lives in (its innermost). */
static __always_inline __u32 task_pidns_inum(struct task_struct *task)
{
	struct pid *p = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid up = {};

	bpf_core_read(&up, sizeof(up), &p->numbers[level & 31]);
	return BPF_CORE_READ(up.ns, ns.inum);
}

#endif
