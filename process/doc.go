// Package process is the process lifecycle sensor and the agent's view of
// the process tree.
//
// The sensor (sensor.go) loads the exec, fork and exit programs of
// kprobes/abi/process.bpf.c and owns the maps every other sensor shares: the
// event ring buffer, its loss counters and the kernel's table of live
// processes. The decoder (decoder.go) turns their records into cache updates
// and process_exec / process_exit events.
//
// The cache keeps one entry per live (and recently exited) process, built
// from those records and, at start-up, from /proc. It assigns exec_ids and
// links parents. It is bounded: exited entries are kept for a grace period
// so that late events still resolve, and when the bound is reached the
// oldest exited entries go first; evictions are counted. The cache itself
// never touches the kernel.
package process
