// Package identity tells which pod, container and workload a process belongs
// to, from the cgroup id the kernel reports for it.
//
// The chain is cgroup id -> cgroup path (an index built by walking the
// cgroup2 tree, completed one id at a time on a miss) -> container id
// (identity/cgroup parses every common layout) -> pod and container metadata,
// merged from the sources: the container runtime over CRI (identity/cri),
// the Kubernetes API (identity/kube) and standalone Workload files
// (identity/workloadfile).
//
// Lifecycle: New, OnChange (any time), then Run in its own goroutine; Run
// syncs, then follows changes until its context ends. PodForCgroup is the
// hot path: a lookup in an immutable map, no locks, syscalls or RPCs; a miss
// queues the id for the Run goroutine. Every OnChange callback is called
// from that goroutine and must not block for long. Source failures are
// logged (rate-limited) and counted, never returned: events then flow
// without pod metadata.
package identity
