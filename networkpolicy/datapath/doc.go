// Package datapath is the kernel side of network policy: it loads the cgroup
// v2 programs of kprobes/abi/netpol.bpf.c, attaches them at the cgroup root (next to
// any CNI), writes the maps the engine's Flatten derives (ipcache, cgroup to
// identity, one policy map per local identity of a pod on the node), and
// reads the verdict records of denied and audited flows.
//
// Lifecycle: New(cfg, log) -> Load() -> Apply(resources)... -> Close().
// Apply is incremental and may be called whenever pods or policies change:
// it compiles what changed (networkpolicy.Compiler) and writes the entries
// that differ, in an order that never shows a packet a half-written state.
// With Config.LinkPinDir and KeepOnClose the links stay pinned after
// Close (or the process's end) and their programs keep enforcing the last
// Apply; a later datapath on the same directory attaches nothing at Load,
// and its first successful Apply replaces the programs of those links
// (keep.go). The package holds kernel state; policy semantics live in the parent
// package and must not be reimplemented here.
package datapath
