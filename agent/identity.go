package agent

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/flows"
	"github.com/vigilsec/vigil/identity"
	"github.com/vigilsec/vigil/process"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// podLookup adapts the identity resolver to the process cache.
type podLookup struct{ r *identity.Resolver }

func (p podLookup) PodForCgroup(id uint64) *event.Pod {
	pod, _ := p.r.PodForCgroup(id)
	return pod
}

// holder delays the events of a container whose metadata is not known yet
// (an exec that is the first thing a new container does races the runtime's
// report of it): they are released with their pod when it arrives, or
// without it after a bounded wait. Nothing is dropped and the rest of the
// stream never waits.
type holder struct {
	next  process.Sink
	r     *identity.Resolver
	cache *process.Cache
	wait  time.Duration
	max   int

	mu   sync.Mutex
	held map[uint64][]heldEvent
	n    int

	heldTotal, enriched, expired, overflow prometheus.Counter
}

type heldEvent struct {
	ev    *event.Event
	since time.Time
}

func newHolder(next process.Sink, r *identity.Resolver, cache *process.Cache, wait time.Duration, max int, reg prometheus.Registerer) *holder {
	c := func(name, help string) prometheus.Counter {
		m := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(m)
		return m
	}
	return &holder{
		next: next, r: r, cache: cache, wait: wait, max: max, held: map[uint64][]heldEvent{},
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
		if _, pending := h.r.PodForCgroup(cg); !pending {
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
	h.heldTotal.Inc()
}

// release sends a cgroup's held events, with pod when known.
func (h *holder) release(cg uint64, pod *event.Pod) {
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
		h.next.Export(he.ev)
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

// expire releases, without a pod, what waited too long.
func (h *holder) expire(now time.Time) {
	h.mu.Lock()
	var due []uint64
	for cg, q := range h.held {
		if len(q) > 0 && now.Sub(q[0].since) >= h.wait {
			due = append(due, cg)
		}
	}
	h.mu.Unlock()
	for _, cg := range due {
		h.release(cg, nil)
	}
}

// scoper returns the cgroups of the pods a scoped tracing policy selects.
func scoper(r *identity.Resolver) func(p *tracingpolicies.Policy) []uint64 {
	return func(p *tracingpolicies.Policy) []uint64 {
		var out []uint64
		for _, w := range r.Workloads() {
			for _, id := range w.CgroupIDs {
				pod, _ := r.PodForCgroup(id)
				if pod == nil {
					pod = w.Pod
				}
				if policySelects(p, pod) {
					out = append(out, id)
				}
			}
		}
		return out
	}
}

// policySelects reports whether a scoped policy applies to a pod (and its
// container, when the pod value names one).
func policySelects(p *tracingpolicies.Policy, pod *event.Pod) bool {
	if pod == nil {
		return false
	}
	if p.Kind == tracingpolicies.KindTracingPolicyNamespaced && pod.Namespace != p.Namespace {
		return false
	}
	if p.PodSelector != nil {
		set := labels.Set{tracingpolicies.PodNamespaceLabel: pod.Namespace}
		for _, l := range pod.Labels {
			set[l.Key] = l.Value
		}
		if !p.PodSelector.Matches(set) {
			return false
		}
	}
	if p.ContainerSelector != nil {
		if pod.Container.ID == "" {
			return false // the pod's own cgroups, not a container's
		}
		repo := pod.Container.ImageName
		if i := strings.LastIndexAny(repo, ":@"); i > strings.LastIndexByte(repo, '/') {
			repo = repo[:i]
		}
		if !p.ContainerSelector.Matches(labels.Set{"name": pod.Container.Name, "repo": repo}) {
			return false
		}
	}
	return true
}

// endpoints resolves flow ends from the node's pods: a remote address of a
// known pod is that pod, any other is the host or the world.
type endpoints struct {
	byIP atomic.Pointer[map[netip.Addr]*event.Pod]
}

func (e *endpoints) refresh(r *identity.Resolver) {
	m := map[netip.Addr]*event.Pod{}
	for _, w := range r.Workloads() {
		for _, ip := range w.IPs {
			m[ip.Unmap()] = w.Pod
		}
	}
	e.byIP.Store(&m)
}

func (e *endpoints) Local(pod *event.Pod, cg uint64, addr netip.Addr, ep *event.Endpoint) {
	flows.NodeEndpoints{}.Local(pod, cg, addr, ep)
}

func (e *endpoints) Remote(addr netip.Addr, ep *event.Endpoint) {
	if m := e.byIP.Load(); m != nil {
		if pod := (*m)[addr.Unmap()]; pod != nil {
			flows.FillFromPod(ep, pod)
			return
		}
	}
	flows.NodeEndpoints{}.Remote(addr, ep)
}
