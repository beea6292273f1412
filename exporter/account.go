package exporter

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/sink"
)

// Reasons an event is not delivered, as used in vigil_events_lost_total and
// lost_events records.
const (
	// ReasonRingbufFull: the kernel could not reserve ring buffer space;
	// reported by the agent with ReportLost.
	ReasonRingbufFull = "ringbuf_full"
	// ReasonQueueFull: a sink's queue (or spool) was full.
	ReasonQueueFull = sink.ReasonQueueFull
	// ReasonUndecodable: a kernel record no decoder could turn into an
	// event (an unknown opcode, a record too short for its layout, a
	// policy record of a hook no longer loaded).
	ReasonUndecodable = "undecodable"
	// ReasonFiltered: the allow or deny list removed the event.
	ReasonFiltered = "filtered"
	// ReasonRateLimited: the export rate limit dropped the event; reported
	// in rate_limit_info records.
	ReasonRateLimited = "rate_limited"
	// ReasonSinkError: a sink's destination failed.
	ReasonSinkError = sink.ReasonSinkError
)

type lossKey struct{ reason, sink string }

type lossCounter struct {
	n        atomic.Uint64
	reported uint64 // owned by the reporting goroutine
	prom     prometheus.Counter
}

// losses counts undelivered events by reason and sink.
type losses struct {
	mu sync.RWMutex
	m  map[lossKey]*lossCounter
	v  *prometheus.CounterVec
}

func newLosses(v *prometheus.CounterVec) *losses {
	l := &losses{m: map[lossKey]*lossCounter{}, v: v}
	// Known reasons are visible at 0 from the start.
	for _, r := range []string{ReasonRingbufFull, ReasonUndecodable, ReasonFiltered, ReasonRateLimited} {
		l.counter(lossKey{reason: r})
	}
	return l
}

func (l *losses) counter(k lossKey) *lossCounter {
	l.mu.RLock()
	c := l.m[k]
	l.mu.RUnlock()
	if c != nil {
		return c
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c = l.m[k]; c == nil {
		c = &lossCounter{prom: l.v.WithLabelValues(k.reason, k.sink)}
		l.m[k] = c
	}
	return c
}

func (l *losses) add(reason, sinkName string, n uint64) {
	if n == 0 {
		return
	}
	c := l.counter(lossKey{reason, sinkName})
	c.n.Add(n)
	c.prom.Add(float64(n))
}

// Total returns the number of events lost for reason in all sinks.
func (l *losses) total(reason string) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n uint64
	for k, c := range l.m {
		if k.reason == reason {
			n += c.n.Load()
		}
	}
	return n
}

// deltas returns the records that report losses since the last call: one
// lost_events record per reason and sink, and one rate_limit_info record
// for the rate limit. Called by one goroutine at a time.
func (l *losses) deltas(now time.Time) []*event.Event {
	l.mu.RLock()
	keys := make([]lossKey, 0, len(l.m))
	for k := range l.m {
		keys = append(keys, k)
	}
	l.mu.RUnlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].reason != keys[j].reason {
			return keys[i].reason < keys[j].reason
		}
		return keys[i].sink < keys[j].sink
	})
	var out []*event.Event
	for _, k := range keys {
		c := l.counter(k)
		n := c.n.Load()
		d := n - c.reported
		if d == 0 {
			continue
		}
		c.reported = n
		if k.reason == ReasonRateLimited {
			out = append(out, &event.Event{Type: event.TypeRateLimitInfo, Time: now,
				RateLimit: &event.RateLimitInfo{NumberOfDroppedProcessEvents: d}})
			continue
		}
		out = append(out, &event.Event{Type: event.TypeLostEvents, Time: now,
			Lost: &event.Lost{Count: d, Reason: k.reason, Sink: k.sink}})
	}
	return out
}
