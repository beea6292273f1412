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

/* Records the kernel could not reserve in the ring buffer, per opcode. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIGIL_OP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lost_counters SEC(".maps");

static __always_inline void count_lost(__u32 op)
{
	__u64 *c = bpf_map_lookup_elem(&lost_counters, &op);
	if (c)
		(*c)++;
}

/* The reader is woken only once a backlog builds up (an eighth of the
 * ring). A wakeup is an irq_work, a self-interrupt that costs microseconds
 * (tens on virtual machines) and that the default policy would raise for
 * nearly every record of a reader that keeps up; the reader polls on a short
 * timer instead, so a record waits at most that long. */
#define WAKEUP_FRACTION 8

static __always_inline __u64 wakeup_flags(void)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);

	return avail >= size / WAKEUP_FRACTION ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* submit copies size bytes of rec into the ring buffer, counting a failure. */
static __always_inline void submit(void *rec, __u64 size, __u32 op)
{
	if (bpf_ringbuf_output(&events, rec, size, wakeup_flags()) < 0)
		count_lost(op);
}

#endif
