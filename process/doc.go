// Package process keeps the agent's view of the process tree: one entry per
// live (and recently exited) process, built from the kernel's exec, fork and
// exit records and, at start-up, from /proc. It assigns exec_ids, links
// parents, and turns records into process_exec and process_exit events.
//
// The cache is bounded: exited entries are kept for a grace period so that
// late events still resolve, and when the bound is reached the oldest exited
// entries go first; evictions are counted. It must not touch the kernel:
// callers feed it decoded records.
package process
