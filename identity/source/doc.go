// Package source defines what a source of workload metadata gives the
// identity resolver: pods (or standalone workloads) with their labels,
// addresses and containers. The CRI, Kubernetes and workloads-file sources
// implement Source; the resolver merges what they report.
//
// Sources own their goroutines and their clean-up; they report through a
// Sink and never block on the resolver's hot path.
package source
