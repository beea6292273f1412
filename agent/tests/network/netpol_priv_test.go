package network_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/agent/agenttest"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// Network policy through the agent: pods are network namespaces in
// cgroups that a Workload file names; a NetworkPolicy lets only org=empire
// reach the deathstar on TCP 80, and an egress policy keeps the xwing from
// it. The tiefighter lands; the xwing's connect fails at once with EPERM and
// its flow event names the xwing's process and the policy; a third pod's
// packets are dropped at the deathstar, whose flow event names the policy.
func TestPrivNetworkPolicyThroughAgent(t *testing.T) {
	root := testpods.Require(t)
	c := testpods.New(t, root)
	star := netip.MustParseAddr("10.210.0.10")
	ds := c.Add("deathstar", []netip.Addr{star}, true)
	tie := c.Add("tiefighter", []netip.Addr{netip.MustParseAddr("10.210.0.11")}, true)
	xw := c.Add("xwing", []netip.Addr{netip.MustParseAddr("10.210.0.12")}, true)
	probe := c.Add("probe", []netip.Addr{netip.MustParseAddr("10.210.0.13")}, true)
	cgBase := "/" + filepath.Join(fmt.Sprintf("vigil-testpods-%d", os.Getpid()))
	workload := func(name, labels string, n int, ip string) string {
		return fmt.Sprintf(`apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata: {name: %s, namespace: default, labels: {%s}}
spec: {cgroupPath: %s/pod%d, ips: [%s]}
`, name, labels, cgBase, n, ip)
	}
	// The probe's address belongs to a workload with no cgroup on this
	// node, as a pod of another node would: its labels decide the
	// deathstar's ingress verdict.
	remote := func(org string) string {
		return fmt.Sprintf(`apiVersion: vigil.dev/v1alpha1
kind: Workload
metadata: {name: probe-addr, namespace: default, labels: {org: %s}}
spec: {cgroupPath: %s/elsewhere, ips: [10.210.0.13]}
`, org, cgBase)
	}
	pods := []string{
		workload("deathstar", "org: empire, class: deathstar", 1, "10.210.0.10"),
		workload("tiefighter", "org: empire", 2, "10.210.0.11"),
		workload("xwing", "org: alliance", 3, "10.210.0.12"),
		strings.Replace(workload("probe", "org: neutral", 4, ""), ", ips: []", "", 1),
	}
	wl := agenttest.WritePolicy(t, t.TempDir(), "workloads.yaml", strings.Join(append(pods, remote("neutral")), "---\n"))
	pol := agenttest.WritePolicy(t, t.TempDir(), "np.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deathstar-empire-only, namespace: default}
spec:
  podSelector: {matchLabels: {class: deathstar}}
  ingress:
  - from: [{podSelector: {matchLabels: {org: empire}}}]
    ports: [{protocol: TCP, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: alliance-egress, namespace: default}
spec:
  podSelector: {matchLabels: {org: alliance}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.210.0.10/32]}}]
`)
	h := agenttest.StartAgent(t, func(cfg *agent.Config) {
		cfg.NetworkPolicies = []string{pol}
		cfg.Identity.WorkloadFiles = []string{wl}
		cfg.Identity.CRIEndpoints = []string{"none"}
		cfg.Identity.Kubernetes = "off"
	})
	if r := ds.Listen("tcp", 80); r != "" && r != "ok" {
		t.Fatalf("listen: %s", r)
	}
	target := netip.AddrPortFrom(star, 80)
	// The policy is applied once the pods are known: retry the allowed
	// probe until it lands.
	deadline := time.Now().Add(agenttest.Timeout())
	for {
		if r := tie.Probe("tcp", target, time.Second); r == testpods.Allowed {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("tiefighter: %s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for time.Now().Before(deadline) && xw.Probe("tcp", target, time.Second) != testpods.EPERM {
		time.Sleep(100 * time.Millisecond)
	}
	if r := xw.Probe("tcp", target, time.Second); r != testpods.EPERM {
		t.Errorf("xwing: %s, want eperm", r)
	}
	if r := probe.Probe("tcp", target, 500*time.Millisecond); r != testpods.Timeout {
		t.Errorf("probe pod: %s, want timeout (dropped at the deathstar)", r)
	}

	eg := h.WaitFor("xwing's dropped flow", func(e agenttest.Event) bool {
		return e.Str("flow.verdict") == "DROPPED" && e.Str("flow.traffic_direction") == "EGRESS" &&
			int(e.Num("flow.process.pid")) == xw.PID()
	})
	if !strings.Contains(fmt.Sprint(eg.Get("flow.egress_denied_by")), "alliance-egress") || eg.Str("flow.source.pod_name") != "xwing" ||
		eg.Str("flow.destination.pod_name") != "deathstar" {
		t.Errorf("xwing's flow: %s", eg)
	}
	in := h.WaitFor("dropped ingress at the deathstar", func(e agenttest.Event) bool {
		return e.Str("flow.verdict") == "DROPPED" && e.Str("flow.traffic_direction") == "INGRESS" && e.Str("flow.IP.source") == "10.210.0.13"
	})
	if !strings.Contains(fmt.Sprint(in.Get("flow.ingress_denied_by")), "deathstar-empire-only") || in.Str("flow.destination.pod_name") != "deathstar" ||
		in.Str("flow.source.pod_name") != "probe-addr" {
		t.Errorf("ingress drop: %s", in)
	}

	// The address's workload joins the empire: no cgroup changes, the
	// deathstar lets it in.
	if err := os.WriteFile(wl, []byte(strings.Join(append(pods, remote("empire")), "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(agenttest.Timeout())
	for {
		r := probe.Probe("tcp", target, 300*time.Millisecond)
		if r == testpods.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe after its address's workload was relabelled org=empire: %s, want allowed", r)
		}
	}
}
