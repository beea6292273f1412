package rules

import (
	"os"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	loaded     prometheus.Gauge
	evaluated  prometheus.Counter
	duration   prometheus.Histogram
	dropped    prometheus.Counter
	ruledOut   prometheus.Counter
	rego       *prometheus.CounterVec
	fileErrors prometheus.Counter
	alerts     *prometheus.CounterVec
	silenced   *prometheus.CounterVec
	evalErrors *prometheus.CounterVec
	reloads    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_rules_loaded",
			Help: "Detection rules in force."}),
		evaluated: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_rules_events_evaluated_total",
			Help: "Events the detection rules evaluated."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_rules_eval_duration_seconds",
			Help:    "Time to evaluate the rules on one queued event (Go plans, Rego where needed, exceptions).",
			Buckets: prometheus.ExponentialBuckets(2e-6, 4, 9)}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_rules_events_dropped_total",
			Help: "Events not evaluated because the rules' queue was full (also reported as lost_events reason rules_queue_full)."}),
		ruledOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_rules_events_ruled_out_total",
			Help: "Events of a type some rule consumes on which no rule could alert, left before being copied or queued."}),
		rego: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_rules_rego_evaluations_total",
			Help: "Rule evaluations done in Rego, by rule: rules (or events) the Go evaluator cannot decide."}, []string{"rule"}),
		fileErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_rules_file_errors_total",
			Help: "Rule files refused at load or reload (syntax, metadata, compile errors)."}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_rules_alerts_total",
			Help: "Alerts raised, by rule and severity."}, []string{"rule", "severity"}),
		silenced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_rules_alerts_silenced_total",
			Help: "Alerts an exception silenced, by rule."}, []string{"rule"}),
		evalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_rules_eval_errors_total",
			Help: "Rule evaluations that failed, by rule (empty: the event could not be read)."}, []string{"rule"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_rules_reloads_total",
			Help: "Loads of the rule files, by result."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.loaded, m.evaluated, m.duration, m.dropped, m.ruledOut, m.rego, m.fileErrors, m.alerts, m.silenced, m.evalErrors, m.reloads)
	}
	return m
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
