// Package flows is the flow sensor: it loads the programs of
// kprobes/abi/flow.bpf.c (a tracepoint for TCP state changes, cgroup socket
// hooks for UDP), which report connections and UDP exchanges with the
// process that owns the local socket into the shared ring buffer, and turns
// their records into flow events in Hubble's shape, with an identity for
// each end.
//
// The decoder holds no kernel state: it is given the process cache and a
// resolver of endpoints (pods and policy identities). Network-policy verdict
// records are the datapath's (networkpolicy/datapath).
package flows
