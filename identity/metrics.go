package identity

import "github.com/prometheus/client_golang/prometheus"

// metrics are the resolver's Prometheus series (vigil_identity_*).
type metrics struct {
	pods, cgroups, pending prometheus.Gauge
	sourceUp               *prometheus.GaugeVec
	sourceErrors           *prometheus.CounterVec
	misses                 *prometheus.CounterVec
	lookups                *prometheus.CounterVec
	rescans                prometheus.Counter
	rebuilds               prometheus.Counter
	missesDropped          prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "vigil", "identity"
	m := &metrics{
		pods: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "pods",
			Help: "Pods and standalone workloads known on this node."}),
		cgroups: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "cgroups",
			Help: "Cgroups in the id-to-path index."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "pending_cgroups",
			Help: "Cgroups of containers whose metadata is being looked up."}),
		sourceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "source_up",
			Help: "1 when a metadata source answered its last request, 0 when it failed."}, []string{"source"}),
		sourceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "source_errors_total",
			Help: "Failures of metadata sources, by source and operation."}, []string{"source", "op"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "cgroup_misses_total",
			Help: "Cgroup ids not in the index when asked for, by outcome: container (a container's), no_container (a cgroup of no container), gone (removed before it was resolved), error."}, []string{"result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "container_lookups_total",
			Help: "Lookups of containers not known yet, by result: found, not_found, error."}, []string{"result"}),
		rescans: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "cgroup_rescans_total",
			Help: "Walks of the cgroup tree."}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rebuilds_total",
			Help: "Recomputations of the cgroup-to-pod map after a change."}),
		missesDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "cgroup_misses_dropped_total",
			Help: "Misses not queued because the queue was full (they are retried on the next event)."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.pods, m.cgroups, m.pending, m.sourceUp, m.sourceErrors, m.misses, m.lookups, m.rescans, m.rebuilds, m.missesDropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
