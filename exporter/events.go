package exporter

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/event"
)

// EventSubscribeOptions select what an in-process event subscriber receives.
type EventSubscribeOptions struct {
	// Name labels the subscriber's drop counter
	// (vigil_export_event_subscriber_dropped_total{subscriber=Name}).
	Name string
	// Types are the event types delivered; none means every type.
	Types []event.Type
	// Buffer is the number of events the subscriber may fall behind before
	// it loses events (default 4096).
	Buffer int
}

// EventSubscription delivers copies of the exported events (after the
// export filters and rate limit) to a consumer in the same process, such as
// the flow API. Unlike Subscription it hands over typed events, not lines.
type EventSubscription struct {
	// C delivers the events; they belong to the subscriber (see
	// event.Event.Clone). It is closed by Cancel.
	C <-chan *event.Event

	c       chan *event.Event
	types   uint64 // bit set of event.Type; 0 means all
	dropped atomic.Uint64
	counter prometheus.Counter
	e       *Exporter
}

// SubscribeEvents starts delivering copies of exported events. A subscriber
// that reads too slowly loses events, counted in Dropped and in
// vigil_export_event_subscriber_dropped_total; it never slows the exporter.
// Call Cancel when done.
func (e *Exporter) SubscribeEvents(opts EventSubscribeOptions) *EventSubscription {
	if opts.Buffer <= 0 {
		opts.Buffer = 4096
	}
	c := make(chan *event.Event, opts.Buffer)
	s := &EventSubscription{C: c, c: c, e: e, counter: e.metrics.evDropped.WithLabelValues(opts.Name)}
	for _, t := range opts.Types {
		s.types |= 1 << t
	}
	e.mu.Lock()
	e.evsubs = append(e.evsubs, s)
	e.mu.Unlock()
	e.metrics.subscribers.Inc()
	return s
}

// Dropped returns the number of events this subscriber lost.
func (s *EventSubscription) Dropped() uint64 { return s.dropped.Load() }

// Cancel ends the subscription and closes C. It may be called more than once.
func (s *EventSubscription) Cancel() {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, x := range e.evsubs {
		if x == s {
			e.evsubs = append(e.evsubs[:i], e.evsubs[i+1:]...)
			close(s.c)
			e.metrics.subscribers.Dec()
			return
		}
	}
}

// publishEvents hands a copy of ev to every event subscriber that wants its
// type. Called with the exporter's lock held.
func (e *Exporter) publishEvents(ev *event.Event) {
	var c *event.Event
	for _, s := range e.evsubs {
		if s.types != 0 && s.types&(1<<ev.Type) == 0 {
			continue
		}
		if c == nil {
			// One copy serves every subscriber: they must not modify it.
			c = ev.Clone()
		}
		select {
		case s.c <- c:
		default:
			s.dropped.Add(1)
			s.counter.Inc()
		}
	}
}

// NodeName is the node name the exporter writes into every event.
func (e *Exporter) NodeName() string { return e.nodeName }

// RedactArgs applies the --export-redact patterns to process arguments, as
// the exporter does for every process object it writes. Consumers of
// SubscribeEvents call it before showing arguments to anyone.
func (e *Exporter) RedactArgs(args string) string {
	if e.redact == nil {
		return args
	}
	return e.redact(args)
}
