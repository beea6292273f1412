package httpproxy_test

import (
	"fmt"
	"testing"
)

// benchPolicy lets empire ships reach the Death Star on ports 80 and 8080;
// with l7, port 80 carries Cilium's rules.http and 8080 does not.
func benchPolicy(l7 bool) string {
	rules := ""
	if l7 {
		rules = "\n      rules:\n        http:\n        - {method: POST, path: /v1/request-landing}"
	}
	return `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: bench, namespace: default}
spec:
  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]` + rules + `
    - ports: [{port: "8080", protocol: TCP}]
`
}

// BenchmarkPrivHTTP measures requests of the tiefighter to the Death
// Star's Go server, one kept-alive connection (keep) or a connection each
// (new): direct (an L4 policy: no proxy), proxied (rules.http on the
// port) and ungoverned (a port without rules.http while another port has
// them: the one extra lookup at connect). p50-ns/req is the median request
// latency inside the pod, req/s the rate of the whole run.
func BenchmarkPrivHTTP(b *testing.B) {
	for _, mode := range []struct {
		name string
		l7   bool
		port int
	}{{"direct", false, 80}, {"proxied", true, 80}, {"ungoverned", true, 8080}} {
		for _, keep := range []bool{true, false} {
			name := mode.name + "/new"
			if keep {
				name = mode.name + "/keep"
			}
			b.Run(name, func(b *testing.B) {
				ds, tie, _, _, _, _, _ := deathStarWith(b, benchPolicy(mode.l7))
				if mode.port != 80 {
					if r := ds.HTTPServe(uint16(mode.port)); r != "ok" {
						b.Fatal(r)
					}
				}
				url := fmt.Sprintf("http://198.18.20.1:%d/v1/request-landing", mode.port)
				if _, _, err := tie.HTTPBench(url, 10, keep); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				p50, total, err := tie.HTTPBench(url, b.N, keep)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns/req")
				b.ReportMetric(float64(b.N)/total.Seconds(), "req/s")
			})
		}
	}
}
