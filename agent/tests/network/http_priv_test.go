package network_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/agent/agenttest"
	"github.com/vigilsec/vigil/examples"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// Cilium's L7 Death Star policy through the agent, the YAML of its
// tutorial unchanged: the tiefighter lands, its PUT /v1/exhaust-port gets
// 403, and both requests are flows in Hubble's L7 shape with both pods and
// the tiefighter's process; the requests are counted between workloads.
func TestPrivDeathStarL7ThroughAgent(t *testing.T) {
	root := testpods.Require(t)
	c := testpods.New(t, root)
	ds := c.Add("deathstar", []netip.Addr{netip.MustParseAddr("10.211.0.10")}, true)
	tie := c.Add("tiefighter", []netip.Addr{netip.MustParseAddr("10.211.0.11")}, true)
	cgBase := "/" + filepath.Join(fmt.Sprintf("vigil-testpods-%d", os.Getpid()))
	workload := func(name, labels string, n int, ip string) string {
		return fmt.Sprintf("apiVersion: vigil.dev/v1alpha1\nkind: Workload\nmetadata: {name: %s, namespace: default, labels: {%s}}\nspec: {cgroupPath: %s/pod%d, ips: [%s]}\n",
			name, labels, cgBase, n, ip)
	}
	wl := agenttest.WritePolicy(t, t.TempDir(), "workloads.yaml", workload("deathstar", "org: empire, class: deathstar", 1, "10.211.0.10")+
		"---\n"+workload("tiefighter", "org: empire, class: tiefighter", 2, "10.211.0.11"))
	src, err := examples.DeathStarL7.ReadFile("deathstar-l7/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol := agenttest.WritePolicy(t, t.TempDir(), "policy.yaml", string(src))
	h := agenttest.StartAgent(t, func(cfg *agent.Config) {
		cfg.NetworkPolicies = []string{pol}
		cfg.Identity.WorkloadFiles = []string{wl}
		cfg.Identity.CRIEndpoints = []string{"none"}
		cfg.Identity.Kubernetes = "off"
	})
	if r := ds.HTTPServe(80); r != "ok" {
		t.Fatal(r)
	}
	// The policy and the proxy's listener come once the pods are known:
	// until then the landing is refused or, before the policy, lands
	// unproxied; retry until the exhaust port is refused.
	deadline := time.Now().Add(agenttest.Timeout())
	for {
		r := tie.HTTPNew("PUT", "http://10.211.0.10/v1/exhaust-port", 5*time.Second)
		if r == "403 Access denied" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tiefighter at the exhaust port: %s, want 403 Access denied", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := tie.HTTPNew("POST", "http://10.211.0.10/v1/request-landing", 20*time.Second); r != "200 Ship landed" {
		t.Errorf("tiefighter landing: %s", r)
	}
	drop := h.WaitFor("the refused request's flow", func(e agenttest.Event) bool {
		return e.Str("flow.verdict") == "DROPPED" && e.Str("flow.l7.http.method") == "PUT"
	})
	ok := h.WaitFor("the landing's flow", func(e agenttest.Event) bool {
		return e.Str("flow.verdict") == "FORWARDED" && e.Str("flow.l7.http.method") == "POST"
	})
	for _, tt := range []struct {
		e          agenttest.Event
		url        string
		code       float64
		policyPath string
	}{{drop, "http://10.211.0.10/v1/exhaust-port", 403, "flow.ingress_denied_by"}, {ok, "http://10.211.0.10/v1/request-landing", 200, "flow.policy_names"}} {
		e := tt.e
		if e.Str("flow.Type") != "L7" || e.Str("flow.l7.type") != "RESPONSE" || e.Str("flow.l7.http.url") != tt.url ||
			e.Num("flow.l7.http.code") != tt.code || e.Str("flow.l7.http.protocol") != "HTTP/1.1" {
			t.Errorf("l7: %s", e)
		}
		if e.Str("flow.source.pod_name") != "tiefighter" || e.Str("flow.destination.pod_name") != "deathstar" ||
			int(e.Num("flow.process.pid")) != tie.PID() || e.Str("flow.traffic_direction") != "INGRESS" {
			t.Errorf("ends: %s", e)
		}
		if !strings.Contains(fmt.Sprint(e.Get(tt.policyPath)), "rule1") {
			t.Errorf("%s lacks rule1: %s", tt.policyPath, e)
		}
	}
	if n := requests(t, h, "PUT", "4xx", "DROPPED"); n < 1 {
		t.Errorf("vigil_http_requests_total for the refused PUT: %g", n)
	}
	if n := requests(t, h, "POST", "2xx", "FORWARDED"); n != 1 {
		t.Errorf("vigil_http_requests_total for the landing: %g, want 1", n)
	}
}

// requests reads vigil_http_requests_total from the tiefighter to the
// deathstar.
func requests(t *testing.T, h *agenttest.Harness, method, class, verdict string) float64 {
	t.Helper()
	fams, err := h.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range fams {
		if mf.GetName() != "vigil_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "method") == method && label(m, "status_class") == class && label(m, "verdict") == verdict &&
				label(m, "source_workload") == "tiefighter" && label(m, "destination_workload") == "deathstar" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
