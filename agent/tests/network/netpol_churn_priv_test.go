package network_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/agent/agenttest"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// New pods through the agent: pods come as Workload files appear in the
// workloads directory, each gets the policy of its labels, also while the
// policy file is broken (the policies in force stay and keep applying to
// the pods that come), and the manager's metrics count the applies.
func TestPrivNetworkPolicyNewPodsThroughAgent(t *testing.T) {
	root := testpods.Require(t)
	c := testpods.New(t, root)
	server := netip.MustParseAddr("10.211.0.10")
	srv := c.Add("server", []netip.Addr{server}, true)
	first := c.Add("client1", []netip.Addr{netip.MustParseAddr("10.211.0.11")}, true)
	second := c.Add("client2", []netip.Addr{netip.MustParseAddr("10.211.0.12")}, true)
	third := c.Add("client3", []netip.Addr{netip.MustParseAddr("10.211.0.13")}, true)
	for _, port := range []uint16{80, 81} {
		if r := srv.Listen("tcp", port); r != "ok" {
			t.Fatalf("listen %d: %s", port, r)
		}
	}
	cgBase := "/" + fmt.Sprintf("vigil-testpods-%d", os.Getpid())
	workload := func(name, labels string, n int, ip string) string {
		return fmt.Sprintf("apiVersion: vigil.dev/v1alpha1\nkind: Workload\nmetadata: {name: %s, namespace: default, labels: {%s}}\nspec: {cgroupPath: %s/pod%d, ips: [%s]}\n",
			name, labels, cgBase, n, ip)
	}
	wdir := t.TempDir()
	agenttest.WritePolicy(t, wdir, "base.yaml", workload("server", "app: server", 1, "10.211.0.10")+"---\n"+workload("client1", "app: client", 2, "10.211.0.11"))
	policy := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: clients-to-80, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: server}}}]
    ports: [{protocol: TCP, port: 80}]
`
	pdir := t.TempDir()
	pol := agenttest.WritePolicy(t, pdir, "np.yaml", policy)
	h := agenttest.StartAgent(t, func(cfg *agent.Config) {
		cfg.NetworkPolicies = []string{pdir}
		cfg.Identity.WorkloadFiles = []string{wdir}
		cfg.Identity.CRIEndpoints = []string{"none"}
		cfg.Identity.Kubernetes = "off"
	})
	allowed, denied := netip.AddrPortFrom(server, 80), netip.AddrPortFrom(server, 81)
	// waitFor probes until the pod gets want, or fails.
	waitFor := func(ep *testpods.Endpoint, addr netip.AddrPort, want, what string) {
		t.Helper()
		deadline := time.Now().Add(agenttest.Timeout())
		for {
			r := ep.Probe("tcp", addr, 300*time.Millisecond)
			if r == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s to %s, want %s", what, r, addr, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(first, denied, testpods.EPERM, "client1 with the policy in force")
	if r := first.Probe("tcp", allowed, time.Second); r != testpods.Allowed {
		t.Fatalf("client1 to port 80: %s", r)
	}
	if r := second.Probe("tcp", denied, time.Second); r != testpods.Allowed {
		t.Fatalf("client2 before it is a pod: %s, want allowed (no policy selects it)", r)
	}

	// A pod appears: its cgroup runs already, its Workload file is written.
	agenttest.WritePolicy(t, wdir, "client2.yaml", workload("client2", "app: client", 3, "10.211.0.12"))
	waitFor(second, denied, testpods.EPERM, "client2 once its Workload file is written")
	if r := second.Probe("tcp", allowed, time.Second); r != testpods.Allowed {
		t.Errorf("client2 to port 80: %s", r)
	}

	// The policy file breaks: the policy in force stays, and applies to
	// the next pod.
	if err := os.WriteFile(pol, []byte(strings.Replace(policy, "policyTypes: [Egress]", "policyTypes: [Egress, Sideways]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(agenttest.Timeout())
	for metricSum(t, h, "vigil_netpol_file_errors_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the broken policy file was not read")
		}
		time.Sleep(20 * time.Millisecond)
	}
	agenttest.WritePolicy(t, wdir, "client3.yaml", workload("client3", "app: client", 4, "10.211.0.13"))
	waitFor(third, denied, testpods.EPERM, "client3, while the policy file is broken")
	if r := third.Probe("tcp", allowed, time.Second); r != testpods.Allowed {
		t.Errorf("client3 to port 80: %s", r)
	}
	if r := first.Probe("tcp", denied, time.Second); r != testpods.EPERM {
		t.Errorf("client1 while the policy file is broken: %s, want %s", r, testpods.EPERM)
	}

	for _, m := range []struct {
		name string
		min  float64
	}{
		{"vigil_netpol_applies_total", 3},           // start, client2, client3 (and the file change)
		{"vigil_netpol_apply_duration_seconds", 3},  // one observation per apply
		{"vigil_netpol_change_in_force_seconds", 2}, // client2 and client3 came as changes
		{"vigil_netpol_map_writes_total", 4},        // cgroups and addresses of three clients
		{"vigil_netpol_identities", 2},              // server and clients, beside the reserved ones
		{"vigil_netpol_policy_maps", 1},             // the clients' identity
	} {
		if v := metricSum(t, h, m.name); v < m.min {
			t.Errorf("%s = %v, want at least %v", m.name, v, m.min)
		}
	}
}

// metricSum is the sum of a metric's series (for histograms, of their
// observation counts); -1 when the agent has no such metric.
func metricSum(t *testing.T, h *agenttest.Harness, name string) float64 {
	t.Helper()
	mfs, err := h.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		n := 0.0
		for _, m := range mf.GetMetric() {
			switch {
			case m.Histogram != nil:
				n += float64(m.Histogram.GetSampleCount())
			case m.Counter != nil:
				n += m.Counter.GetValue()
			case m.Gauge != nil:
				n += m.Gauge.GetValue()
			}
		}
		return n
	}
	return -1
}
