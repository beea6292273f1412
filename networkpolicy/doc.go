// Package networkpolicy holds Kubernetes NetworkPolicy and Cilium network
// policy types, label identities, and the one verdict function that decides
// (source, destination, protocol, port). The datapath compiler derives kernel
// maps from that function and the offline commands call it directly, so what
// the tool says and what the kernel does cannot disagree.
package networkpolicy
