package exporter

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/spool"
)

// exporterMetrics are the exporter's Prometheus metrics.
type exporterMetrics struct {
	events      *prometheus.CounterVec   // type, policy
	lost        *prometheus.CounterVec   // reason, sink
	delivered   *prometheus.CounterVec   // sink
	latency     *prometheus.HistogramVec // sink
	failures    *prometheus.CounterVec   // sink, reason
	retries     *prometheus.CounterVec   // sink
	subDropped  prometheus.Counter
	subscribers prometheus.Gauge
	evDropped   *prometheus.CounterVec            // subscriber
	skipped     *prometheus.CounterVec            // format, type
	byType      [16]map[string]prometheus.Counter // cache of events by type and policy
	registerer  prometheus.Registerer
	registered  []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer) (*exporterMetrics, error) {
	m := &exporterMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_events_total",
			Help: "Events written to the export stream, by event type and policy.",
		}, []string{"type", "policy"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_events_lost_total",
			Help: "Events not delivered, by reason (ringbuf_full, queue_full, filtered, rate_limited, sink_error) and sink (empty when the event never reached a sink).",
		}, []string{"reason", "sink"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_export_sink_lines_total",
			Help: "Lines a sink's destination accepted.",
		}, []string{"sink"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_export_sink_write_seconds",
			Help:    "Duration of one write or request to a sink's destination.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10), // 50µs to ~13s
		}, []string{"sink"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_export_sink_failures_total",
			Help: "Failed attempts to reach or write to a sink's destination, by reason (network, http_5xx, http_429, http_408, http_refused, write, too_large). Lines a retry delivers are not lost; those that are lost are counted in vigil_events_lost_total.",
		}, []string{"sink", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_export_sink_retries_total",
			Help: "New attempts after a failure: webhook batches sent again, syslog connections tried again.",
		}, []string{"sink"}),
		subDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_export_subscriber_lines_dropped_total",
			Help: "Lines live-tail subscribers lost because they read too slowly.",
		}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_export_subscribers",
			Help: "Live-tail subscribers connected.",
		}),
		evDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_export_event_subscriber_dropped_total",
			Help: "Events in-process subscribers (the flow API and UI) lost because they read too slowly.",
		}, []string{"subscriber"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_export_format_skipped_total",
			Help: "Events not written because the export format has no such event (--export-format tetragon: flow, alert, lost_events of filtered events), by format and event type. In-process subscribers (the flow API and UI) still receive them.",
		}, []string{"format", "type"}),
		registerer: reg,
	}
	for i := range m.byType {
		m.byType[i] = map[string]prometheus.Counter{}
	}
	if err := m.register(m.events, m.lost, m.delivered, m.latency, m.failures, m.retries, m.subDropped, m.subscribers, m.evDropped, m.skipped); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *exporterMetrics) register(cs ...prometheus.Collector) error {
	if m.registerer == nil {
		return nil
	}
	for _, c := range cs {
		if err := m.registerer.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("exporter metrics: %w (one exporter per registry)", err)
			}
			return fmt.Errorf("exporter metrics: %w", err)
		}
		m.registered = append(m.registered, c)
	}
	return nil
}

// unregister removes the metrics, for an exporter that failed to start.
func (m *exporterMetrics) unregister() {
	if m.registerer == nil {
		return
	}
	for _, c := range m.registered {
		m.registerer.Unregister(c)
	}
}

// countEvent counts one exported event. Called with the exporter's lock.
func (m *exporterMetrics) countEvent(ev *event.Event) {
	t := int(ev.Type) % len(m.byType)
	policy := ev.PolicyName()
	c, ok := m.byType[t][policy]
	if !ok {
		c = m.events.WithLabelValues(ev.Type.String(), policy)
		m.byType[t][policy] = c
	}
	c.Inc()
}

// queueGauges exports the depth of each sink's queue.
func (m *exporterMetrics) queueGauges(qs []*queue) error {
	for _, q := range qs {
		q := q
		lines := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vigil_export_queue_lines",
			Help:        "Encoded events waiting in a sink's queue.",
			ConstLabels: prometheus.Labels{"sink": q.name},
		}, func() float64 { return float64(q.lines.Load()) })
		bytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vigil_export_queue_bytes",
			Help:        "Bytes of encoded events waiting in a sink's queue.",
			ConstLabels: prometheus.Labels{"sink": q.name},
		}, func() float64 { return float64(q.bytes.Load()) })
		if err := m.register(lines, bytes); err != nil {
			return err
		}
	}
	return nil
}

// spoolStats is what the webhook sink reports of its spool.
type spoolStats interface{ Spooled() spool.Stats }

// spoolGauges exports what the webhook's spool holds: batches, lines and
// bytes in memory and on disk, and the records found damaged on disk.
func (m *exporterMetrics) spoolGauges(s spoolStats) error {
	return m.register(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_export_webhook_spool_lines",
			Help: "Events in webhook batches waiting for the receiver (memory and disk).",
		}, func() float64 { return float64(s.Spooled().Lines) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_export_webhook_spool_batches",
			Help: "Webhook batches waiting for the receiver (memory and disk).",
		}, func() float64 { return float64(s.Spooled().Records) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vigil_export_webhook_spool_bytes",
			Help:        "Bytes of webhook batches waiting for the receiver, in memory and on disk.",
			ConstLabels: prometheus.Labels{"where": "memory"},
		}, func() float64 { return float64(s.Spooled().MemoryBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vigil_export_webhook_spool_bytes",
			Help:        "Bytes of webhook batches waiting for the receiver, in memory and on disk.",
			ConstLabels: prometheus.Labels{"where": "disk"},
		}, func() float64 { return float64(s.Spooled().DiskBytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_export_webhook_spool_corrupt_batches_total",
			Help: "Webhook batches found damaged in the spool directory and skipped (their lines are counted lost).",
		}, func() float64 { return float64(s.Spooled().Corrupt) }),
	)
}

// syslogGauge exports whether the syslog sink is connected.
func (m *exporterMetrics) syslogGauge(connected func() bool) error {
	return m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_export_syslog_connected",
		Help: "1 while the syslog sink holds a connection to its receiver, 0 while it waits to reconnect.",
	}, func() float64 {
		if connected() {
			return 1
		}
		return 0
	}))
}
