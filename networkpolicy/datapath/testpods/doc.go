// Package testpods builds pods for privileged network policy tests: each
// pod is a network namespace with a veth pair on a test bridge (itself in a
// namespace of its own, so nothing touches the host's network) and, for
// pods the datapath polices, a cgroup of its own. Each namespace is owned by
// a helper process (the test binary, re-executed into a new network
// namespace and the pod's cgroup) that configures its side of the network
// over rtnetlink and listens and probes with real TCP, UDP and SCTP
// sockets. Nothing outside the Go binary is needed, so the same tests run
// on the host and in the busybox-only test VMs; when the helpers exit their
// namespaces vanish.
//
// Test binaries using it call RunHelperIfRequested first in TestMain.
package testpods
