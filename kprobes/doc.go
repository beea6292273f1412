// Package kprobes is Vigil's kernel attach layer: it probes what the running
// kernel can do, decides which mechanism serves each kind of hook (kprobe,
// kprobe.multi, fentry/fexit, fmod_ret, BPF LSM, tracepoint, raw tracepoint),
// and loads the BPF objects generated from bpf/.
//
// It must not know about policies or events: callers hand it resolved hook
// requests and receive links they own and must close.
package kprobes
