/* Path resolution: a bounded walk up the dentry and mount tree that rebuilds
 * the path of a struct path the way d_path() would, usable from any program
 * type (bpf_d_path is only allowed in a few hooks). */
#ifndef VIGIL_PATH_H
#define VIGIL_PATH_H

#include "common.h"

#define PATH_BUF 4096 /* longest path reported is PATH_BUF-1 bytes */
#define PATH_MASK (PATH_BUF - 1)
#define PATH_MAX_DEPTH 96 /* components walked before giving up (truncated) */
#define NAME_MAX_LEN 255

#define PATH_F_TRUNCATED 1
#define PATH_F_ERROR 2

/* Scratch space for path walks: PATH_BUF plus room for one component past a
 * masked offset, so the verifier can bound every write. The write position
 * lives in the map value rather than a register: the verifier does not track
 * map contents, so the iterations of the walk stay equivalent and verify in
 * linear time. */
struct path_scratch {
	__u32 off;
	__u32 flags;
	/* The walk's position, kept here for the same reason. */
	__u64 dentry;
	__u64 vfsmnt;
	__u64 root_dentry;
	__u64 root_mnt;
	char buf[PATH_BUF + NAME_MAX_LEN + 1];
};

#define PATH_SLOTS 4

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PATH_SLOTS);
	__type(key, __u32);
	__type(value, struct path_scratch);
} path_scratch_map SEC(".maps");

static __always_inline struct path_scratch *path_scratch(__u32 slot)
{
	return bpf_map_lookup_elem(&path_scratch_map, &slot);
}

/* path_step walks one component of the path being resolved in slot: it
 * prepends the component's name, or crosses a mount point. It returns 0 to
 * go on and 1 when the walk is over. A global function, so the verifier
 * checks the step once and the loop around it in linear time. */
__noinline int path_step(__u32 slot)
{
	struct path_scratch *s = path_scratch(slot);
	struct dentry *dentry, *mnt_root, *parent;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	const unsigned char *name;
	__u32 len, off;

	if (!s)
		return 1;
	dentry = (struct dentry *)s->dentry;
	vfsmnt = (struct vfsmount *)s->vfsmnt;
	if (s->dentry == s->root_dentry && s->vfsmnt == s->root_mnt)
		return 1;
	mnt = container_of(vfsmnt, struct mount, mnt);
	mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root || dentry == parent) {
		struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

		if (dentry != mnt_root || mnt == mnt_parent)
			return 1; /* the global root, or an internal mount */
		s->dentry = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		s->vfsmnt = (__u64)mnt_parent + bpf_core_field_offset(struct mount, mnt);
		return 0;
	}
	len = BPF_CORE_READ(dentry, d_name.len);
	name = BPF_CORE_READ(dentry, d_name.name);
	if (len > NAME_MAX_LEN)
		len = NAME_MAX_LEN;
	off = s->off;
	if (off > PATH_BUF || len + 1 >= off) {
		s->flags |= PATH_F_TRUNCATED;
		return 1;
	}
	off -= len;
	if (bpf_probe_read_kernel(&s->buf[off & PATH_MASK], len & NAME_MAX_LEN, name) < 0) {
		s->flags |= PATH_F_ERROR;
		return 1;
	}
	off -= 1;
	s->buf[off & PATH_MASK] = '/';
	s->off = off;
	s->dentry = (__u64)parent;
	return 0;
}

/* resolve_path writes the path of (dentry, vfsmnt) relative to the root of
 * task (vfsmnt 0: to the root of the dentry's file system) into the end of the buf of scratch slot `slot`, and returns the offset
 * of its first byte: the path is buf[off, PATH_BUF), without a NUL. When it
 * does not fit, its leading components are dropped and PATH_F_TRUNCATED is
 * set in the slot's flags.
 *
 * It is a global function so the verifier checks it once, not once per
 * caller; arguments are plain addresses, read with CO-RE. */
__noinline int resolve_path(__u64 dentry_addr, __u64 vfsmnt_addr, __u64 task_addr, __u32 slot)
{
	struct task_struct *task = (struct task_struct *)task_addr;
	struct path_scratch *s = path_scratch(slot);
	int i;

	if (!s)
		return PATH_BUF;
	s->off = PATH_BUF;
	s->flags = 0;
	/* Without its mount (a dentry argument) the walk stops at the root of
	 * the dentry's file system: the path within it. */
	if (!dentry_addr) {
		s->flags = PATH_F_ERROR;
		return PATH_BUF;
	}
	s->dentry = dentry_addr;
	s->vfsmnt = vfsmnt_addr;
	s->root_dentry = (__u64)BPF_CORE_READ(task, fs, root.dentry);
	s->root_mnt = (__u64)BPF_CORE_READ(task, fs, root.mnt);
	for (i = 0; i < PATH_MAX_DEPTH; i++) {
		if (path_step(slot))
			break;
	}
	if (i == PATH_MAX_DEPTH)
		s->flags |= PATH_F_TRUNCATED;
	if (s->off >= PATH_BUF) {
		s->off = PATH_BUF - 1;
		s->buf[PATH_BUF - 1] = '/';
	}
	return s->off;
}

#endif
