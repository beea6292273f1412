// Package kprobes is Vigil's kernel side: the BPF programs and their ABI
// (kprobes/abi), and the attach layer. It probes what the running kernel can
// do, decides which mechanism serves each kind of hook (kprobe,
// kprobe.multi, fentry/fexit, fmod_ret, BPF LSM, tracepoint, raw
// tracepoint), and attaches loaded programs with it.
//
// It must not know about policies or events: callers hand it hook requests
// and programs, and receive links they own and must close. The sensors
// (process, flows, tracingsensor, networkpolicy/datapath) load their own
// objects from kprobes/abi.
package kprobes
