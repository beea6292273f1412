package agent

import (
	"os"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vigilsec/vigil/exporter"
	"github.com/vigilsec/vigil/internal/buildinfo"
	"github.com/vigilsec/vigil/kprobes"
)

// Status is what `vigil status` shows: the agent's build, the kernel
// features it uses, its sensors and policies, and the health of the ring
// buffer and of the export.
type Status struct {
	Build     buildinfo.Info     `json:"build"`
	Node      string             `json:"node"`
	PID       int                `json:"pid"`
	Ready     bool               `json:"ready"`
	StartedAt time.Time          `json:"started_at"`
	Uptime    string             `json:"uptime"`
	Kernel    kprobes.KernelInfo `json:"kernel"`
	Features  []FeatureStatus    `json:"features"`
	Hooks     []kprobes.Plan     `json:"hooks"`
	Sensors   []SensorStatus     `json:"sensors"`
	Policies  []PolicyStatus     `json:"policies"`
	Ring      RingStatus         `json:"ring_buffer"`
	Export    ExportStatus       `json:"export"`
	// PolicyStates counts the policies by state.
	PolicyStates map[string]int `json:"policy_states"`
}

// FeatureStatus is one kernel feature probe's result.
type FeatureStatus struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// SensorStatus is one sensor of the agent and how it is attached.
type SensorStatus struct {
	Name      string `json:"name"`
	Mechanism string `json:"mechanism,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// RingStatus is the health of the shared event ring buffer.
type RingStatus struct {
	SizeBytes   uint64 `json:"size_bytes"`
	Records     uint64 `json:"records"`
	Undecodable uint64 `json:"undecodable"`
	Lost        uint64 `json:"lost"`
}

// ExportStatus is the health of the export stream.
type ExportStatus struct {
	// Events counts the exported events by type.
	Events map[string]uint64 `json:"events"`
	// Lost counts the events not delivered, by reason and sink.
	Lost  []LostCount  `json:"lost"`
	Sinks []SinkHealth `json:"sinks"`
	Tails TailsHealth  `json:"live_tails"`
}

// LostCount is one series of vigil_events_lost_total.
type LostCount struct {
	Reason string `json:"reason"`
	Sink   string `json:"sink,omitempty"`
	Count  uint64 `json:"count"`
}

// SinkHealth is one sink's queue.
type SinkHealth struct {
	Name          string  `json:"name"`
	QueuedLines   int64   `json:"queued_lines"`
	QueuedBytes   int64   `json:"queued_bytes"`
	CapacityBytes int64   `json:"capacity_bytes"`
	Fill          float64 `json:"fill"`
}

// TailsHealth is the live tails' (vigil events) state.
type TailsHealth struct {
	Connected    int    `json:"connected"`
	LinesDropped uint64 `json:"lines_dropped"`
}

// noteSensor records an attached sensor for the status.
func (a *Agent) noteSensor(name, mechanism, detail string) {
	a.sensors = append(a.sensors, SensorStatus{Name: name, Mechanism: mechanism, Detail: detail})
}

// status gathers the agent's status.
func (a *Agent) status() Status {
	st := Status{Build: buildinfo.Get(), Node: a.cfg.NodeName, PID: os.Getpid(), Ready: a.Ready(), StartedAt: a.startedAt,
		Sensors: a.sensors, Policies: a.policyStatuses(), PolicyStates: map[string]int{}}
	st.Uptime = time.Since(a.startedAt).Round(time.Second).String()
	if f := a.feats; f != nil {
		st.Kernel = f.Kernel
		st.Hooks = f.Plans
		for _, feat := range kprobes.AllFeatures {
			r := f.Results[feat]
			st.Features = append(st.Features, FeatureStatus{Name: string(feat), OK: r.OK, Error: r.Error})
		}
	}
	for _, p := range st.Policies {
		st.PolicyStates[p.State]++
	}
	st.Ring.SizeBytes = a.cfg.RingBufferSize
	st.Export.Events = map[string]uint64{}
	mfs, _ := a.reg.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "vigil_ring_records_total":
			st.Ring.Records = sumOf(mf)
		case "vigil_ring_records_undecodable_total":
			st.Ring.Undecodable = sumOf(mf)
		case "vigil_events_total":
			for _, m := range mf.GetMetric() {
				if n := uint64(m.GetCounter().GetValue()); n > 0 {
					st.Export.Events[label(m, "type")] += n
				}
			}
		case "vigil_events_lost_total":
			for _, m := range mf.GetMetric() {
				if n := uint64(m.GetCounter().GetValue()); n > 0 {
					st.Export.Lost = append(st.Export.Lost, LostCount{Reason: label(m, "reason"), Sink: label(m, "sink"), Count: n})
					if label(m, "reason") == exporter.ReasonRingbufFull {
						st.Ring.Lost += n
					}
				}
			}
		case "vigil_export_subscribers":
			st.Export.Tails.Connected = int(sumOf(mf))
		case "vigil_export_subscriber_lines_dropped_total":
			st.Export.Tails.LinesDropped = sumOf(mf)
		}
	}
	sort.Slice(st.Export.Lost, func(i, j int) bool {
		if st.Export.Lost[i].Reason != st.Export.Lost[j].Reason {
			return st.Export.Lost[i].Reason < st.Export.Lost[j].Reason
		}
		return st.Export.Lost[i].Sink < st.Export.Lost[j].Sink
	})
	capacity := int64(a.cfg.Export.QueueMB) << 20
	for _, s := range a.exp.Status() {
		h := SinkHealth{Name: s.Name, QueuedLines: s.QueuedLines, QueuedBytes: s.QueuedBytes, CapacityBytes: capacity}
		if capacity > 0 {
			h.Fill = float64(s.QueuedBytes) / float64(capacity)
		}
		st.Export.Sinks = append(st.Export.Sinks, h)
	}
	return st
}

func sumOf(mf *dto.MetricFamily) uint64 {
	var n float64
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			n += m.GetCounter().GetValue()
		case m.Gauge != nil:
			n += m.GetGauge().GetValue()
		}
	}
	return uint64(n)
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
