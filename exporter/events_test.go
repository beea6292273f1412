package exporter

import (
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/vigilsec/vigil/event"
)

func TestSubscribeEvents(t *testing.T) {
	h := start(t, func(c *Config) { c.Redact = []string{`--password[= ](\S+)`} })
	flows := h.e.SubscribeEvents(EventSubscribeOptions{Name: "flows", Types: []event.Type{event.TypeFlow}})
	slow := h.e.SubscribeEvents(EventSubscribeOptions{Name: "slow", Buffer: 1})
	ev := &event.Event{Type: event.TypeFlow, Time: t0, Flow: &event.Flow{Verdict: event.VerdictDropped, DestinationPort: 80}}
	h.e.Export(ev)
	ev.Flow.DestinationPort = 443 // the producer reuses its event
	h.e.Export(execEvent(proc(1, "/bin/true", "", nil)))

	got := <-flows.C
	if got.Type != event.TypeFlow || got.Flow.DestinationPort != 80 || got.Flow.Verdict != event.VerdictDropped {
		t.Errorf("flow subscriber got %+v, want the dropped flow to port 80 as exported", got.Flow)
	}
	select {
	case extra := <-flows.C:
		t.Errorf("flow subscriber got a %s event", extra.Type)
	default:
	}
	if slow.Dropped() != 1 {
		t.Errorf("slow subscriber dropped %d, want 1", slow.Dropped())
	}
	var m dto.Metric
	if err := h.e.metrics.evDropped.WithLabelValues("slow").Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		n := m.GetCounter().GetValue()
		t.Errorf("vigil_export_event_subscriber_dropped_total{subscriber=slow} = %v, want 1", n)
	}
	if got := h.e.RedactArgs("login --password hunter2"); got != "login --password *****" {
		t.Errorf("RedactArgs = %q", got)
	}
	if h.e.NodeName() != "node-a" {
		t.Errorf("NodeName = %q", h.e.NodeName())
	}
	flows.Cancel()
	flows.Cancel()
	if _, ok := <-flows.C; ok {
		t.Error("C still open after Cancel")
	}
}
