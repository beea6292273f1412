package httpproxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/event"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	tie := &event.Endpoint{Namespace: "default", PodName: "tiefighter"}
	ds := &event.Endpoint{Namespace: "default", PodName: "deathstar-6f87-x2", Workloads: []event.Workload{{Name: "deathstar", Kind: "Deployment"}}}
	m.Observe(tie, ds, event.VerdictForwarded, &event.HTTP{Method: "POST", URL: "http://deathstar/v1/request-landing", Code: 200, Latency: time.Millisecond})
	m.Observe(tie, ds, event.VerdictDropped, &event.HTTP{Method: "PUT", URL: "http://deathstar/v1/exhaust-port", Code: 403})
	m.Observe(tie, ds, event.VerdictForwarded, &event.HTTP{Method: "BREW", URL: "http://deathstar/coffee", Code: 503, Latency: time.Millisecond})
	m.Observe(tie, ds, event.VerdictForwarded, &event.HTTP{Method: "GET", URL: "http://deathstar/slow"})
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	latencySeries := 0
	for _, mf := range fams {
		for _, mt := range mf.GetMetric() {
			var ls []string
			for _, lp := range mt.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			switch mf.GetName() {
			case "vigil_http_requests_total":
				got = append(got, fmt.Sprintf("%s %g", strings.Join(ls, ","), mt.GetCounter().GetValue()))
			case "vigil_http_request_duration_seconds":
				latencySeries++
			}
		}
	}
	want := []string{
		"destination_namespace=default,destination_workload=deathstar,method=GET,source_namespace=default,source_workload=tiefighter,status_class=none,verdict=FORWARDED 1",
		"destination_namespace=default,destination_workload=deathstar,method=OTHER,source_namespace=default,source_workload=tiefighter,status_class=5xx,verdict=FORWARDED 1",
		"destination_namespace=default,destination_workload=deathstar,method=POST,source_namespace=default,source_workload=tiefighter,status_class=2xx,verdict=FORWARDED 1",
		"destination_namespace=default,destination_workload=deathstar,method=PUT,source_namespace=default,source_workload=tiefighter,status_class=4xx,verdict=DROPPED 1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Latency only for answered, forwarded requests: POST and BREW.
	if latencySeries != 2 {
		t.Errorf("latency series: %d, want 2", latencySeries)
	}
}
