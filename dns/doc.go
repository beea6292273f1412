// Package dns holds what Vigil knows about DNS names and messages, without
// touching the kernel: the name patterns of network policies (Cilium's
// matchName and matchPattern, validated strictly), the automaton they
// compile to (the table the BPF datapath walks to classify the name of a
// DNS message before the application can read it), and ParseAnswer, the
// reference of the datapath's parser of DNS answers (same bounds, same
// refusals), which the BPF parser is tested against and which is itself
// fuzzed against github.com/miekg/dns; and, for DNS visibility,
// ParseMessage (the fields of Hubble's L7 DNS record of a query or answer
// copied from the kernel) and Stream (DNS over TCP split into messages
// across segments), both fuzzed.
//
// Kernel state (the maps the automaton is written to, the learned
// addresses) belongs to networkpolicy/datapath; policy semantics to
// networkpolicy.
package dns
