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
	// FormatCompact sends Tetragon-style compact lines (see AppendCompact).
	FormatCompact
)

// ReasonSubscriberBehind is the reason of the lost_events notices a live
// tail gets for lines it lost because it read too slowly.
const ReasonSubscriberBehind = "subscriber_behind"

// SubscribeOptions select what a live-tail subscriber receives.
type SubscribeOptions struct {
	// Allow and Deny filter the subscriber's view, on top of the export
	// filters; nil lists pass everything (see filter.Parse).
	Allow, Deny *filter.List
	// Require is a further list an event must match too (ANDed with
	// Allow and Deny); nil passes everything. `vigil events` puts its
	// getevents flags (--namespace, --pod, ...) there.
	Require *filter.List
	Format  Format
	// Color adds ANSI colour to FormatText and FormatCompact lines.
	Color bool
	// Timestamps starts FormatCompact lines with the event's time.
	Timestamps bool
	// Buffer is the number of lines the subscriber may fall behind before
	// it loses lines (default 1024).
	Buffer int
}

// Subscription is a live tail of the export stream, for the agent's control
// socket. Lines end with '\n' and belong to the subscriber.
type Subscription struct {
	// C delivers the lines; it is closed by Cancel.
	C <-chan []byte

	c          chan []byte
	set        filter.Set
	require    *filter.List
	format     Format
	color      bool
	timestamps bool
	dropped    atomic.Uint64
	// reported is how many of the dropped lines a notice has told the
	// subscriber about; only publish touches it, under the exporter's lock.
	reported uint64
	e        *Exporter
}

// Subscribe starts a live tail of the events written to the stream (after
// the export filters and rate limit). A subscriber that reads too slowly
// loses lines, counted in Dropped and vigil_export_subscriber_lines_dropped_total;
// it never slows the exporter; once there is room again it is sent a
// lost_events notice with reason ReasonSubscriberBehind and the count.
// Lost-event and rate-limit notices pass every subscriber's filters: a
// filtered view still says what it may be missing. Call Cancel when done.
func (e *Exporter) Subscribe(opts SubscribeOptions) *Subscription {
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	c := make(chan []byte, opts.Buffer)
	s := &Subscription{C: c, c: c, set: filter.Set{Allow: opts.Allow, Deny: opts.Deny}, require: opts.Require,
		format: opts.Format, color: opts.Color, timestamps: opts.Timestamps, e: e}
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
	notice := ev.Type == event.TypeLostEvents || ev.Type == event.TypeRateLimitInfo
	for _, s := range e.subs {
		if !notice && (!s.set.Pass(ev) || (s.require.Len() > 0 && !s.require.Match(ev))) {
			continue
		}
		if d := s.dropped.Load(); d > s.reported && len(s.c) < cap(s.c)-1 {
			// Tell the subscriber what it missed before the next line.
			lost := &event.Event{Type: event.TypeLostEvents, Time: ev.Time,
				Lost: &event.Lost{Count: d - s.reported, Reason: ReasonSubscriberBehind}}
			s.c <- s.render(lost, e.enc.AppendJSON(nil, lost, e.nodeName))
			s.reported = d
		}
		select {
		case s.c <- s.render(ev, line):
		default:
			s.dropped.Add(1)
			e.metrics.subDropped.Inc()
		}
	}
}

// render returns ev in the subscriber's format, as a line of its own.
func (s *Subscription) render(ev *event.Event, line []byte) []byte {
	var out []byte
	switch s.format {
	case FormatText:
		out = encode.AppendText(make([]byte, 0, 160), ev, encode.TextOptions{Color: s.color})
	case FormatCompact:
		out = encode.AppendCompact(make([]byte, 0, 160), ev, encode.CompactOptions{Color: s.color, Timestamps: s.timestamps})
	default:
		out = append(make([]byte, 0, len(line)+1), line...)
		if len(out) > 0 && out[len(out)-1] == '\n' {
			return out
		}
	}
	return append(out, '\n')
}
