// Package cri reads pods and containers from a container runtime over the
// Kubernetes Container Runtime Interface (containerd, CRI-O, cri-dockerd).
//
// RuntimeClient is the one interface Vigil uses for every runtime, with CRI
// as its base; Client implements it over a runtime's gRPC socket, and one
// contract test (contract_test.go) runs against a fake runtime and against
// a real containerd. Source turns a RuntimeClient into an identity source:
// a full listing at start, then container events where the runtime offers
// them (GetContainerEvents) or a short poll, and a lookup of one container
// on demand. It only reads: it never creates, changes or removes anything
// in the runtime.
package cri
