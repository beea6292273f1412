package httpproxy

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/event"
)

// Metrics are the request metrics between workloads. Their labels are
// bounded: workloads (the pod's controller, else the pod), namespaces, a
// fixed set of methods and the status class; never paths.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

var workloadLabels = []string{"source_namespace", "source_workload", "destination_namespace", "destination_workload"}

// latencyBuckets run from 100 µs to 10 s.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// NewMetrics registers the metrics (reg nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_http_requests_total",
			Help: "HTTP requests the proxy saw between workloads, by method, status class (2xx ... 5xx; none: no response) and verdict (FORWARDED, DROPPED)."},
			append(append([]string{}, workloadLabels...), "method", "status_class", "verdict")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_http_request_duration_seconds",
			Help: "Time from a forwarded request's headers to its response's headers, between workloads.", Buckets: latencyBuckets},
			append(append([]string{}, workloadLabels...), "method")),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("HTTP metrics: %w", err)
		}
	}
	return m, nil
}

// Observe counts one request.
func (m *Metrics) Observe(src, dst *event.Endpoint, verdict event.Verdict, h *event.HTTP) {
	labels := []string{src.Namespace, workloadName(src), dst.Namespace, workloadName(dst), methodLabel(h.Method)}
	m.requests.WithLabelValues(append(labels, statusClass(h.Code), verdict.String())...).Inc()
	if verdict == event.VerdictForwarded && h.Code != 0 {
		m.latency.WithLabelValues(labels...).Observe(h.Latency.Seconds())
	}
}

// workloadName is the controller of a pod, else the pod; "" outside the
// cluster.
func workloadName(ep *event.Endpoint) string {
	if len(ep.Workloads) > 0 {
		return ep.Workloads[0].Name
	}
	return ep.PodName
}

// methodLabel keeps the methods of RFC 9110 and PATCH; others are OTHER,
// so that clients cannot grow the label set.
func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return m
	}
	return "OTHER"
}

func statusClass(code uint32) string {
	if code < 100 || code > 599 {
		return "none"
	}
	return strconv.Itoa(int(code/100)) + "xx"
}
