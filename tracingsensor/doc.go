// Package tracingsensor runs tracing policies: it owns the maps of the
// generic program (kprobes/abi/generic.bpf.c), loads one copy of the program
// per hook with the mechanism kprobes plans for it, writes compiled policies
// into the maps, keeps what every loaded hook means, and turns the kernel's
// policy records into process_kprobe, process_tracepoint and process_lsm
// events.
//
// Loading is all or nothing: a policy that fails at any step leaves no map
// entry, program or id behind, and a replacement is fully attached before
// the version it replaces is detached.
package tracingsensor
