package agent

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/flows"
	"github.com/vigilsec/vigil/identity"
	"github.com/vigilsec/vigil/pipeline"
	"github.com/vigilsec/vigil/process"
)

// dnsVisibility is the DNS visibility sensor and its decoder: every DNS
// query and answer of a local socket as an L7 flow, and the names of
// answers on later flows to their addresses.
type dnsVisibility struct {
	sensor  *flows.DNSSensor
	decoder *flows.DNSDecoder
	names   *flows.Names
}

// startDNSVisibility loads the sensor and routes its records; names is
// shared with the flow decoder.
func startDNSVisibility(procs *process.Sensor, cgroupRoot string, cache *process.Cache, sink process.Sink,
	eps flows.Endpoints, ids *identity.Resolver, pipe *pipeline.Pipeline, names *flows.Names, reg prometheus.Registerer) (*dnsVisibility, error) {
	s, err := flows.NewDNSSensor(procs, cgroupRoot)
	if err != nil {
		return nil, err
	}
	v := &dnsVisibility{sensor: s, names: names,
		decoder: flows.NewDNSDecoder(cache, sink, eps, podLookup{ids}, names)}
	pipe.Route(v.decoder.Routes()...)
	reg.MustRegister(newDNSVisibilityCollector(v))
	return v, nil
}

// sweep forgets expired names until ctx ends.
func (v *dnsVisibility) sweep(ctx context.Context) {
	t := time.NewTicker(dnsSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			v.names.Sweep(now)
		}
	}
}

func (v *dnsVisibility) close() error { return v.sensor.Close() }

type dnsVisibilityCollector struct {
	v                          *dnsVisibility
	messages, dropped, tracked *prometheus.Desc
}

func newDNSVisibilityCollector(v *dnsVisibility) *dnsVisibilityCollector {
	return &dnsVisibilityCollector{v: v,
		messages: prometheus.NewDesc("vigil_dns_messages_total",
			"DNS messages of local sockets reported as flows (--dns-visibility), by type: query or answer.", []string{"type"}, nil),
		dropped: prometheus.NewDesc("vigil_dns_visibility_dropped_total",
			"What DNS visibility could not report in full, by reason: ring_full (the kernel found no room in the ring buffer), cut (a message longer than the 2048 bytes copied; an answer over UDP is then not reported, over TCP its stream is read again from its next message), malformed (not a DNS message), stream_lost (bytes of a DNS-over-TCP stream missed), pending_full (an answer reported without latency: too many queries waited), names_full (a name not kept for destination_names: the table was full).", []string{"reason"}, nil),
		tracked: prometheus.NewDesc("vigil_dns_names_tracked",
			"(local end, address) pairs with a DNS name in force for destination_names.", nil, nil),
	}
}

func (c *dnsVisibilityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.dropped
	ch <- c.tracked
}

func (c *dnsVisibilityCollector) Collect(ch chan<- prometheus.Metric) {
	st := &c.v.decoder.Stats
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(st.Queries.Load()), "query")
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(st.Answers.Load()), "answer")
	ks, err := c.v.sensor.Stats()
	if err == nil {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(ks.Lost), "ring_full")
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(ks.Cut), "cut")
	}
	for reason, n := range map[string]uint64{"malformed": st.Malformed.Load() + st.Short.Load(), "stream_lost": st.StreamLost.Load(),
		"pending_full": st.PendingFull.Load(), "names_full": c.v.names.Dropped.Load()} {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(c.v.names.Len()))
}
