package harness

import (
	"fmt"
	"strings"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy/conntest"
)

// The generated network policy set follows conntest.ScaleManifests (the one
// networkpolicy's own benchmarks use): identities p0..pN-1 labelled
// id=iK at 198.18.K/250.(1+K%250), and one NetworkPolicy giving the client
// (role=client) egress rules spread over them. Here the pods are Workload
// documents, so that the agent learns them as it learns a node's pods: the
// client is the benchmark's cgroup, p0 the server's cgroup in its network
// namespace, the others cgroups that do not exist (remote pods).
const (
	benchNamespace = "bench"
	clientIP       = "198.19.0.1"
	serverIP       = "198.18.0.1"
	// Ports of the server in its namespace: allowed by a rule of every set,
	// denied to the client (no rule), and allowed only by the large set
	// (a marker that tells which set is in force).
	portAllowed = 5201
	portDenied  = 5202
	portMarker  = 5203
)

// identityIP is the address of identity k, as in conntest.ScaleManifests.
func identityIP(k int) string { return fmt.Sprintf("198.18.%d.%d", k/250, 1+k%250) }

// WorkloadDoc is one vigil.dev/v1alpha1 Workload.
func WorkloadDoc(name string, labels map[string]string, cgroupPath string, ips ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: vigil.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: %s\n  namespace: %s\n", name, benchNamespace)
	if len(labels) > 0 {
		b.WriteString("  labels:\n")
		for _, k := range sortedKeys(labels) {
			fmt.Fprintf(&b, "    %s: %q\n", k, labels[k])
		}
	}
	fmt.Fprintf(&b, "spec:\n  cgroupPath: %s\n", cgroupPath)
	if len(ips) > 0 {
		fmt.Fprintf(&b, "  ips: [%s]\n", strings.Join(ips, ", "))
	}
	return b.String()
}

// Workloads returns the Workload file of the client, the server and
// identities-1 remote pods. base is the benchmark's cgroup path.
func Workloads(base string, identities int) string {
	docs := []string{
		WorkloadDoc("client", map[string]string{"role": "client"}, base+"/client", clientIP),
		WorkloadDoc("p0", map[string]string{"id": "i0"}, base+"/server", serverIP),
	}
	for k := 1; k < identities; k++ {
		docs = append(docs, WorkloadDoc(fmt.Sprintf("p%d", k), map[string]string{"id": fmt.Sprintf("i%d", k)},
			fmt.Sprintf("%s/remote/p%d", base, k), identityIP(k)))
	}
	return strings.Join(docs, "---\n")
}

// Policies returns the policy documents of a set: the client's egress
// policy of conntest.ScaleManifests with rules rules over identities
// identities (UDP ports), the TCP rules the benchmark connects through (the
// marker port only when marker is set), and egress to the node.
func Policies(identities, rules int, marker bool) (string, error) {
	docs, err := manifest.Split("scale.yaml", []byte(conntest.ScaleManifests(identities, rules)))
	if err != nil {
		return "", err
	}
	var out []string
	for _, d := range docs {
		if d.Kind == "NetworkPolicy" {
			out = append(out, strings.TrimSpace(string(d.Raw())))
		}
	}
	if len(out) != 1 {
		return "", fmt.Errorf("conntest.ScaleManifests gave %d NetworkPolicy documents, want 1", len(out))
	}
	ports := fmt.Sprintf("[{port: %d, protocol: TCP}]", portAllowed)
	if marker {
		ports = fmt.Sprintf("[{port: %d, protocol: TCP}, {port: %d, protocol: TCP}]", portAllowed, portMarker)
	}
	out = append(out, fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-tcp, namespace: %s}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {id: "i0"}}}]
    ports: %s`, benchNamespace, ports))
	// The node (toEntities: host) is allowed so that the workloads'
	// loopback connections pass: the agent maps 127.0.0.1 and ::1 to the
	// host identity (they are addresses of lo), not to the never-policed
	// localhost range, so without this rule the pod's loopback connects
	// are denied.
	out = append(out, fmt.Sprintf(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-node, namespace: %s}
spec:
  endpointSelector: {matchLabels: {role: client}}
  egress:
  - toEntities: [host]`, benchNamespace))
	return strings.Join(out, "\n---\n") + "\n", nil
}
