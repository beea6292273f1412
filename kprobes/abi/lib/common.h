/* Definitions shared by every Vigil BPF object: record opcodes, the shared
 * event ring buffer, loss counters and small helpers. */
#ifndef VIGIL_COMMON_H
#define VIGIL_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#define SEC_LICENSE char LICENSE[] SEC("license") = "Dual BSD/GPL"

/* Record opcodes: the first byte of every record in the event ring buffer. */
enum vigil_op {
	VIGIL_OP_EXEC = 1,
	VIGIL_OP_EXIT = 2,
	VIGIL_OP_FORK = 3,
	VIGIL_OP_GENERIC = 4,
	VIGIL_OP_FLOW = 5,
	VIGIL_OP_DNS = 6,
	VIGIL_OP_MAX = 16,
};

/* The header of every record. */
struct event_header {
	__u8 op;
	__u8 pad0;
	__u16 size; /* bytes of the whole record, header included */
	__u32 pid;  /* thread group id of the task the record is about */
	__u32 tid;
	__u32 pad1;
	__u64 ktime; /* bpf_ktime_get_ns() when the record was made */
};

/* One ring buffer for every record, so that exec, exit and policy events of
 * a process are read in the order they were produced. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by the loader */
} events SEC(".maps");

/* What the programs and the reader share through memory mapping
 * (BPF_F_MMAPABLE), so that neither side needs a system call for it:
 *   need_wakeup  set by the reader just before it sleeps; a program that
 *                publishes a record while it is set wakes the reader once
 *                and clears it (see submit);
 *   lost         records the kernel could not reserve, per opcode. */
struct reader_state {
	__u32 need_wakeup;
	__u32 pad;
	__u64 lost[VIGIL_OP_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct reader_state);
} ring_reader SEC(".maps");

static __always_inline struct reader_state *reader(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ring_reader, &zero);
}

static __always_inline void count_lost(__u32 op)
{
	struct reader_state *st = reader();

	if (st)
		__sync_fetch_and_add(&st->lost[op & (VIGIL_OP_MAX - 1)], 1);
}

/* While the reader drains the ring or lingers after a batch, records are
 * published without a wakeup: a wakeup is an irq_work, a self-interrupt that
 * costs the traced process microseconds (tens on virtual machines). A
 * backlog of an eighth of the ring wakes it regardless. */
#define WAKEUP_FRACTION 8

static __always_inline __u64 wakeup_flags(void)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);

	return avail >= size / WAKEUP_FRACTION ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* wake_reader wakes a reader that went to sleep. It runs after the record
 * is published: the commit is a full barrier, and the reader sets
 * need_wakeup (a full barrier too) before it looks at the ring a last time,
 * so either the reader sees the record or this program sees the flag. The
 * wakeup rides on an empty record that is discarded at once. */
static __always_inline void wake_reader(void)
{
	struct reader_state *st = reader();
	void *p;

	if (!st || !*(volatile __u32 *)&st->need_wakeup)
		return;
	st->need_wakeup = 0;
	p = bpf_ringbuf_reserve(&events, 8, 0);
	if (p)
		bpf_ringbuf_discard(p, BPF_RB_FORCE_WAKEUP);
}

/* submit copies size bytes of rec into the ring buffer, counting a failure. */
static __always_inline void submit(void *rec, __u64 size, __u32 op)
{
	if (bpf_ringbuf_output(&events, rec, size, wakeup_flags()) < 0) {
		count_lost(op);
		return;
	}
	wake_reader();
}

#endif
