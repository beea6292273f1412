package exporter

import (
	"sync/atomic"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
	"github.com/vigilsec/vigil/exporter/filter"
)

// Format is the line format of a subscription.
type Format int

const (
	// FormatJSON sends the exported JSON lines.
	FormatJSON Format = iota
	// FormatText sends one-line human summaries (see AppendText).
	FormatText
)

// SubscribeOptions select what a live-tail subscriber receives.
type SubscribeOptions struct {
	// Allow and Deny filter the subscriber's view, on top of the export
	// filters; nil lists pass everything (see filter.Parse).
	Allow, Deny *filter.List
	Format      Format
	// Color adds ANSI colour to FormatText lines.
	Color bool
	// Buffer is the number of lines the subscriber may fall behind before
	// it loses lines (default 1024).
	Buffer int
}

// Subscription is a live tail of the export stream, for the agent's control
// socket. Lines end with '\n' and belong to the subscriber.
type Subscription struct {
	// C delivers the lines; it is closed by Cancel.
	C <-chan []byte

	c       chan []byte
	set     filter.Set
	format  Format
	color   bool
	dropped atomic.Uint64
	e       *Exporter
}

// Subscribe starts a live tail of the events written to the stream (after
// the export filters and rate limit). A subscriber that reads too slowly
// loses lines, counted in Dropped and vigil_export_subscriber_lines_dropped_total;
// it never slows the exporter. Call Cancel when done.
func (e *Exporter) Subscribe(opts SubscribeOptions) *Subscription {
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	c := make(chan []byte, opts.Buffer)
	s := &Subscription{C: c, c: c, set: filter.Set{Allow: opts.Allow, Deny: opts.Deny},
		format: opts.Format, color: opts.Color, e: e}
	e.mu.Lock()
	e.subs = append(e.subs, s)
	e.mu.Unlock()
	e.metrics.subscribers.Inc()
	return s
}

// Dropped returns the number of lines this subscriber lost.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Cancel ends the subscription and closes C. It may be called more than once.
func (s *Subscription) Cancel() {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, x := range e.subs {
		if x == s {
			e.subs = append(e.subs[:i], e.subs[i+1:]...)
			close(s.c)
			e.metrics.subscribers.Dec()
			return
		}
	}
}

// publish sends line (or its text form) to every subscriber whose filters
// pass ev. Called with the exporter's lock held.
func (e *Exporter) publish(ev *event.Event, line []byte) {
	for _, s := range e.subs {
		if !s.set.Pass(ev) {
			continue
		}
		var out []byte
		if s.format == FormatText {
			out = encode.AppendText(make([]byte, 0, 160), ev, encode.TextOptions{Color: s.color})
			out = append(out, '\n')
		} else {
			out = append([]byte(nil), line...)
		}
		select {
		case s.c <- out:
		default:
			s.dropped.Add(1)
			e.metrics.subDropped.Inc()
		}
	}
}
