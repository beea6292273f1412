// Package dns holds what Vigil knows about DNS names and messages, without
// touching the kernel: the name patterns of network policies (Cilium's
// matchName and matchPattern, validated strictly), the automaton they
// compile to (the table the BPF datapath walks to classify the name of a
// DNS answer before the application can read it), and the parser of DNS
// messages for visibility (github.com/miekg/dns).
//
// Kernel state (the maps the automaton is written to, the learned
// addresses) belongs to networkpolicy/datapath; policy semantics to
// networkpolicy.
package dns
