package pipeline

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/event"
)

// Pods says which pod a cgroup's processes belong to, and whether that is
// still being looked up (the identity resolver).
type Pods interface {
	PodForCgroup(cgroupID uint64) (pod *event.Pod, pending bool)
}

// holder delays the events of a container whose metadata is not known yet
// (an exec that is the first thing a new container does races the runtime's
// report of it): they are released with their pod when it arrives, or
// without it after a bounded wait. Nothing is dropped and the rest of the
// stream never waits.
type holder struct {
	// next takes the events that pass through; release the held ones,
	// which leave from another goroutine.
	next, release Stage
	pods          Pods
	wait          time.Duration
	max           int

	mu   sync.Mutex
	held map[uint64][]heldEvent
	n    int
	// started is signalled when the hold goes from empty to holding, so
	// that expiry is checked only while something waits.
	started chan struct{}

	heldTotal, enriched, expired, overflow prometheus.Counter
}

type heldEvent struct {
	ev    *event.Event
	since time.Time
}

func newHolder(next, release Stage, pods Pods, wait time.Duration, max int, reg prometheus.Registerer) *holder {
	c := func(name, help string) prometheus.Counter {
		m := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(m)
		return m
	}
	return &holder{
		next: next, release: release, pods: pods, wait: wait, max: max, held: map[uint64][]heldEvent{},
		started:   make(chan struct{}, 1),
		heldTotal: c("vigil_identity_events_held_total", "Events held until their container's metadata was known."),
		enriched:  c("vigil_identity_events_held_enriched_total", "Held events released with their pod."),
		expired:   c("vigil_identity_events_held_expired_total", "Held events released without a pod when the wait ended."),
		overflow:  c("vigil_identity_events_hold_overflow_total", "Events that were not held because the hold was full (sent without a pod)."),
	}
}

func (h *holder) Export(ev *event.Event) {
	if h.wait <= 0 || ev.Process == nil || ev.Process.Pod != nil || ev.Process.CgroupID == 0 {
		h.next.Export(ev)
		return
	}
	cg := ev.Process.CgroupID
	h.mu.Lock()
	defer h.mu.Unlock()
	_, holding := h.held[cg]
	if !holding {
		if _, pending := h.pods.PodForCgroup(cg); !pending {
			h.next.Export(ev)
			return
		}
	}
	if h.n >= h.max {
		h.overflow.Inc()
		h.next.Export(ev)
		return
	}
	h.held[cg] = append(h.held[cg], heldEvent{ev: ev.Clone(), since: time.Now()})
	h.n++
	if h.n == 1 {
		select {
		case h.started <- struct{}{}:
		default:
		}
	}
	h.heldTotal.Inc()
}

// releaseCgroup sends a cgroup's held events, with pod when known.
func (h *holder) releaseCgroup(cg uint64, pod *event.Pod) {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.held[cg]
	delete(h.held, cg)
	h.n -= len(q)
	for _, he := range q {
		if pod != nil {
			withPod(he.ev, pod)
			h.enriched.Inc()
		} else {
			h.expired.Inc()
		}
		h.release.Export(he.ev)
	}
}

// withPod gives an event's process (and a parent in the same cgroup) the
// pod, on copies: process values are shared and immutable.
func withPod(ev *event.Event, pod *event.Pod) {
	p := *ev.Process
	p.Pod = pod
	ev.Process = &p
	if ev.Parent != nil && ev.Parent.CgroupID == p.CgroupID && ev.Parent.Pod == nil {
		pp := *ev.Parent
		pp.Pod = pod
		ev.Parent = &pp
	}
}

// expire releases, without a pod, what waited too long, and returns how
// many events are still held.
func (h *holder) expire(now time.Time) int {
	h.mu.Lock()
	var due []uint64
	for cg, q := range h.held {
		if len(q) > 0 && now.Sub(q[0].since) >= h.wait {
			due = append(due, cg)
		}
	}
	h.mu.Unlock()
	for _, cg := range due {
		h.releaseCgroup(cg, nil)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}
