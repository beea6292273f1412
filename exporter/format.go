package exporter

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// formatGate decides which events the export format can write. In the
// tetragon format, events Tetragon has no type for are skipped, counted
// in vigil_export_format_skipped_total and announced once at start.
type formatGate struct {
	format  encode.Format
	skipped [event.TypeRateLimitInfo + 1]prometheus.Counter
}

// skippedTypes are the event types the tetragon format does not write
// (lost_events only for losses by filter, see writes).
var skippedTypes = []event.Type{event.TypeFlow, event.TypeAlert, event.TypeLostEvents}

func newFormatGate(f encode.Format, m *exporterMetrics) *formatGate {
	g := &formatGate{format: f}
	if f != encode.FormatTetragon {
		return g
	}
	for _, t := range skippedTypes {
		g.skipped[t] = m.skipped.WithLabelValues(f.String(), t.String())
	}
	return g
}

// writes reports whether ev is written to the stream in the gate's format,
// and counts it when it is not. Lost events are rate_limit_info records in
// Tetragon's format, except losses to the allow and deny lists: Tetragon
// does not report filtered events as dropped.
func (g *formatGate) writes(ev *event.Event) bool {
	if g.format != encode.FormatTetragon {
		return true
	}
	skip := !encode.Encodable(g.format, ev.Type) ||
		(ev.Type == event.TypeLostEvents && ev.Lost != nil && ev.Lost.Reason == ReasonFiltered)
	if !skip {
		return true
	}
	if int(ev.Type) < len(g.skipped) && g.skipped[ev.Type] != nil {
		g.skipped[ev.Type].Inc()
	}
	return false
}

// note is the start-up message of a format that skips events, "" if none.
func (g *formatGate) note() string {
	if g.format != encode.FormatTetragon {
		return ""
	}
	names := make([]string, 0, len(skippedTypes))
	for _, t := range skippedTypes {
		n := t.String()
		if t == event.TypeLostEvents {
			n += " (reason filtered; other losses become rate_limit_info)"
		}
		names = append(names, n)
	}
	return "export format tetragon: Tetragon's schema has no " + strings.Join(names, ", ") +
		"; these events are not written to the sinks or the live tail and are counted in vigil_export_format_skipped_total"
}
