// Package networkpolicy holds Kubernetes NetworkPolicy and Cilium network
// policy types, label identities, and the one verdict function that decides
// (source, destination, protocol, port). The datapath compiler derives kernel
// maps from that function and the offline commands call it directly, so what
// the tool says and what the kernel does cannot disagree.
//
// The pipeline is pure and needs no privileges:
//
//	manifests -> Load (strict decoding, validation with FILE:LINE: field paths)
//	          -> Compile (label and CIDR identities, per-local-identity rules: the IR)
//	          -> Engine.Decide / Engine.Check (the verdict function)
//	          -> Engine.Flatten (the exact keys and values the BPF programs look up)
//
// A Compiler does the same again and again, compiling only what each
// change touches, and says in a Delta which entries may differ; Compile is
// its first update. Engines are immutable: an update shares with the
// previous engine what did not change.
//
// Kernel state (loading, attaching, map updates) lives in the datapath
// subpackage; this package must not touch the kernel.
package networkpolicy
