package agent

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/networkpolicy/datapath"
)

// netpolMetrics are the network-policy manager's metrics: how long applies
// take (whole and by stage), how soon a change is in force, what they write,
// and the size of what is compiled and loaded.
type netpolMetrics struct {
	duration   prometheus.Histogram
	stage      *prometheus.HistogramVec
	delay      prometheus.Histogram
	entries    prometheus.Histogram
	written    *prometheus.CounterVec
	applies    *prometheus.CounterVec
	refused    prometheus.Counter
	identities prometheus.Gauge
	maps       prometheus.Gauge
	loaded     prometheus.Gauge
}

// applyBuckets run from half a millisecond to ten seconds.
var applyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newNetpolMetrics(reg prometheus.Registerer) (*netpolMetrics, error) {
	m := &netpolMetrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_netpol_apply_duration_seconds",
			Help: "Time to apply network policies to the pods: reading changed policy files, compiling what changed, writing the kernel maps.", Buckets: applyBuckets}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_netpol_apply_stage_duration_seconds",
			Help: "Time of each stage of an apply: parse (policy files), compile, flatten (the entries that may differ), write (the kernel maps).", Buckets: applyBuckets}, []string{"stage"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_netpol_change_in_force_seconds",
			Help: "Time from a change of pods or cluster policies being reported to the apply that put it in force.", Buckets: applyBuckets}),
		entries: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_netpol_apply_entries",
			Help:    "Kernel map entries an apply wrote or deleted (policy, ipcache and cgroup maps).",
			Buckets: []float64{0, 1, 10, 100, 1000, 10000, 100000}}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_netpol_map_writes_total",
			Help: "Kernel map entries written (op=put) or deleted (op=delete), by map."}, []string{"map", "op"}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_netpol_applies_total",
			Help: "Applies of network policies, by result (ok, error)."}, []string{"result"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_netpol_file_errors_total",
			Help: "Reads of the network-policy files that found problems (the policies in force stayed)."}),
		identities: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_netpol_identities",
			Help: "Security identities the network policies are compiled for (pods' label sets, CIDRs, reserved)."}),
		maps: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_netpol_policy_maps",
			Help: "Policy maps in the kernel: one per local identity of a pod on this node that a policy selects."}),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_netpol_policy_entries",
			Help: "Entries of the policy maps in the kernel."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.duration, m.stage, m.delay, m.entries, m.written, m.applies, m.refused, m.identities, m.maps, m.loaded} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("network policy metrics: %w", err)
		}
	}
	return m, nil
}

// observe records one apply: since is when the change it applies was
// reported (unix nanoseconds; 0 when it applies none, such as a start or
// a change of policy files).
func (m *netpolMetrics) observe(parse time.Duration, st datapath.ApplyStats, times datapath.ApplyTimes, total time.Duration, since int64, err error) {
	if err != nil {
		m.applies.WithLabelValues("error").Inc()
	} else {
		m.applies.WithLabelValues("ok").Inc()
	}
	m.duration.Observe(total.Seconds())
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"parse", parse}, {"compile", times.Compile}, {"flatten", times.Flatten}, {"write", times.Write}} {
		m.stage.WithLabelValues(s.name).Observe(s.d.Seconds())
	}
	if since > 0 && err == nil {
		m.delay.Observe(time.Since(time.Unix(0, since)).Seconds())
	}
	m.entries.Observe(float64(st.Entries()))
	for _, w := range []struct {
		m, op string
		n     int
	}{
		{"policy", "put", st.PolicyEntriesWritten}, {"policy", "delete", st.PolicyEntriesRemoved},
		{"ipcache", "put", st.IPCacheUpdated}, {"ipcache", "delete", st.IPCacheRemoved},
		{"cgroups", "put", st.CgroupsUpdated}, {"cgroups", "delete", st.CgroupsRemoved},
	} {
		if w.n > 0 {
			m.written.WithLabelValues(w.m, w.op).Add(float64(w.n))
		}
	}
}

// size records what is compiled and loaded.
func (m *netpolMetrics) size(identities, maps, entries int) {
	m.identities.Set(float64(identities))
	m.maps.Set(float64(maps))
	m.loaded.Set(float64(entries))
}
