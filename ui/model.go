package ui

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/vigilsec/vigil/hubble"
)

// Limits of what the map keeps per workload and edge.
const (
	bucketCount     = 60 // one-minute buckets: the longest time window is an hour
	recentPerEdge   = 4  // more come from the store's ring when asked
	maxProcsPerEdge = 16
	maxL7PerEdge    = 16
	maxPodsPerWork  = 64
	maxPolicies     = 16
)

// wkey identifies a workload: its namespace and name (the controller's,
// else the pod's), or a reserved identity such as reserved:world.
type wkey struct{ ns, name string }

func (k wkey) id() string {
	if k.ns == "" {
		return k.name
	}
	return k.ns + "/" + k.name
}

// ekey identifies an edge: from one workload to another, on one protocol
// and destination port.
type ekey struct {
	src, dst wkey
	proto    string
	port     uint32
}

func (k ekey) id() string {
	return k.src.id() + ">" + k.dst.id() + ":" + k.proto + "/" + itoa(k.port)
}

type policyKey struct{ kind, ns, name string }

func (p policyKey) String() string {
	s := p.name
	if p.ns != "" {
		s = p.ns + "/" + s
	}
	if p.kind != "" {
		s = p.kind + " " + s
	}
	return s
}

type counts struct{ fwd, drop, audit uint64 }

func (c *counts) add(v flowpb.Verdict, n uint64) {
	switch v {
	case flowpb.Verdict_DROPPED, flowpb.Verdict_ERROR:
		c.drop += n
	case flowpb.Verdict_AUDIT:
		c.audit += n
	default:
		c.fwd += n
	}
}

// sided counts a flow where it was observed: at the destination
// (ingress) or at the source (egress, or unknown).
type sided struct{ in, out counts }

func (s *sided) add(dir flowpb.TrafficDirection, v flowpb.Verdict, n uint64) {
	if dir == flowpb.TrafficDirection_INGRESS {
		s.in.add(v, n)
	} else {
		s.out.add(v, n)
	}
}

// merged counts connections rather than observations: a connection seen
// at both ends reports twice, and where the destination saw it, its
// verdict is the one that counts (an X-wing's connect passes its own
// socket and is dropped at the Death Star). Drops at the source never
// reach the destination and always count.
func (s sided) merged() counts {
	if s.in.fwd+s.in.drop+s.in.audit == 0 {
		return s.out
	}
	return counts{fwd: s.in.fwd, drop: s.in.drop + s.out.drop, audit: s.in.audit + s.out.audit}
}

type bucket struct {
	minute int64
	sided
}

type workload struct {
	key      wkey
	kind     string
	labels   []string
	pods     map[string]*podSeen
	policies map[policyKey]bool // policies that decided this workload's own traffic
	last     time.Time
}

type podSeen struct {
	node string
	last time.Time
}

type edge struct {
	key      ekey
	src, dst *workload
	buckets  [bucketCount]bucket
	total    sided
	reasons  map[string]uint64
	policies map[policyKey]flowpb.Verdict
	procs    map[string]uint64 // binary of the process behind the edge
	l7       map[string]uint64
	recent   [recentPerEdge]hubble.Record
	nrecent  int
	last     time.Time
	// version counts the changes of the sets above (not of the counts);
	// parts caches what view builds from them (ids and sorted lists).
	version uint64
	parts   atomic.Pointer[edgeParts]
}

// graph aggregates flows into workloads and edges. Safe for concurrent
// use: one writer (the feed) and many readers (HTTP handlers).
type graph struct {
	mu    sync.RWMutex
	works map[wkey]*workload
	edges map[ekey]*edge
	procs hubble.ProcessDecoder
	seen  uint64
	// missed counts flows the map's reader lost to the store's ring while
	// a page followed it; unwatched those it lost while none did.
	missed, unwatched uint64
}

func newGraph() *graph {
	return &graph{works: map[wkey]*workload{}, edges: map[ekey]*edge{}}
}

// endpointKey names the workload of one side of a flow.
func endpointKey(ep *flowpb.Endpoint, ip string) wkey {
	var workload string
	if ws := ep.GetWorkloads(); len(ws) > 0 {
		workload = ws[0].GetName()
	}
	return workloadKey(ep.GetNamespace(), workload, ep.GetPodName(), ep.GetLabels(), ip != "")
}

// workloadKey names a workload: its controller's name or its pod's within
// its namespace, else its reserved label (Cilium's form), else the world
// when it has an address.
func workloadKey(ns, workload, pod string, labels []string, hasIP bool) wkey {
	if ns != "" {
		if workload != "" {
			return wkey{ns, workload}
		}
		if pod != "" {
			return wkey{ns, pod}
		}
	}
	for _, l := range labels {
		if strings.HasPrefix(l, "reserved:") {
			name, _, _ := strings.Cut(l, "=")
			return wkey{"", name}
		}
	}
	if hasIP {
		return wkey{"", "reserved:world"}
	}
	return wkey{"", "reserved:unknown"}
}

func l4Of(f *flowpb.Flow) (string, uint32) {
	l4 := f.GetL4()
	switch {
	case l4.GetTCP() != nil:
		return "TCP", l4.GetTCP().GetDestinationPort()
	case l4.GetUDP() != nil:
		return "UDP", l4.GetUDP().GetDestinationPort()
	case l4.GetSCTP() != nil:
		return "SCTP", l4.GetSCTP().GetDestinationPort()
	case l4.GetICMPv4() != nil, l4.GetICMPv6() != nil:
		return "ICMP", 0
	}
	return "IP", 0
}

// add folds one Hubble flow into the map.
func (g *graph) add(f *flowpb.Flow) { g.addRecord(hubble.FlowRecord(f)) }

// addRecord folds one stored flow into the map. Replies are left out: an
// edge points from the side that opened the connection.
func (g *graph) addRecord(r hubble.Record) {
	fa := factsOf(r, &g.procs)
	if fa.reply {
		return
	}
	t := fa.time
	k := fa.edge()

	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen++
	// An edge keeps its workloads (neither is ever removed): a flow of a
	// known edge costs one lookup.
	e := g.edges[k]
	if e == nil {
		e = &edge{key: k, reasons: map[string]uint64{}, policies: map[policyKey]flowpb.Verdict{},
			procs: map[string]uint64{}, l7: map[string]uint64{}}
		e.src = g.workload(&fa.src, fa.node, t)
		e.dst = g.workload(&fa.dst, fa.node, t)
		g.edges[k] = e
	} else {
		e.src.saw(&fa.src, fa.node, t)
		e.dst.saw(&fa.dst, fa.node, t)
	}
	sw, dw := e.src, e.dst
	v := fa.verdict
	min := t.Unix() / 60
	b := &e.buckets[min%bucketCount]
	if b.minute != min {
		*b = bucket{minute: min}
	}
	n := max(fa.n, 1)
	b.add(fa.dir, v, n)
	e.total.add(fa.dir, v, n)
	if t.After(e.last) {
		e.last = t
	}
	if fa.dropReason != "" {
		e.count(e.reasons, fa.dropReason, n, 1<<10)
	}
	for _, p := range [...]struct {
		refs policyRefs
		w    *workload
		deny bool
	}{{fa.egressAllowed, sw, false}, {fa.egressDenied, sw, true}, {fa.ingressAllowed, dw, false}, {fa.ingressDenied, dw, true}} {
		pv := v
		if p.deny {
			pv = flowpb.Verdict_DROPPED
		}
		for i := range p.refs.len() {
			addPolicy(e, p.w, p.refs.at(i), pv)
		}
	}
	if fa.binary != "" {
		e.count(e.procs, fa.binary, n, maxProcsPerEdge)
	}
	if fa.l7 != "" {
		e.count(e.l7, fa.l7, n, maxL7PerEdge)
	}
	e.recent[e.nrecent%recentPerEdge] = r
	e.nrecent++
}

// count adds n to m[k], within limit keys; a new key is a new version
// of what the edge shows.
func (e *edge) count(m map[string]uint64, k string, n uint64, limit int) {
	if _, ok := m[k]; ok {
		m[k] += n
	} else if len(m) < limit {
		m[k] = n
		e.version++
	}
}

func addPolicy(e *edge, w *workload, k policyKey, v flowpb.Verdict) {
	if old, ok := e.policies[k]; ok || len(e.policies) < maxPolicies {
		if !ok || (v == flowpb.Verdict_DROPPED && old != flowpb.Verdict_DROPPED) {
			e.policies[k] = v
			e.version++
		}
	}
	if len(w.policies) < maxPolicies {
		w.policies[k] = true
	}
}

// workload returns the workload of one side of a flow, creating it, and
// updates what the flow says of it.
func (g *graph) workload(sd *side, node string, t time.Time) *workload {
	k := sd.key
	w := g.works[k]
	if w == nil {
		w = &workload{key: k, pods: map[string]*podSeen{}, policies: map[policyKey]bool{}}
		if sd.kind != "" {
			w.kind = sd.kind
		} else if k.ns != "" {
			w.kind = "Pod"
		}
		g.works[k] = w
	}
	w.saw(sd, node, t)
	return w
}

func (w *workload) saw(sd *side, node string, t time.Time) {
	if ls := sd.labels; len(ls) > 0 && !sameLabels(ls, w.labels) {
		w.labels = ls
	}
	if p := sd.pod; p != "" {
		ps := w.pods[p]
		if ps == nil && len(w.pods) < maxPodsPerWork {
			ps = &podSeen{}
			w.pods[p] = ps
		}
		if ps != nil {
			if ps.node == "" || node != "" {
				ps.node = node
			}
			if t.After(ps.last) {
				ps.last = t
			}
		}
	}
	if t.After(w.last) {
		w.last = t
	}
}

// sameLabels compares label lists, quickly when they share their array
// (the flows of one pod do).
func sameLabels(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0] || slices.Equal(a, b)
}

func l7Summary(f *flowpb.Flow) string {
	l7 := f.GetL7()
	switch {
	case l7.GetDns() != nil:
		d := l7.GetDns()
		s := "DNS " + d.GetQuery()
		if ips := d.GetIps(); len(ips) > 0 {
			s += " → " + strings.Join(ips, ", ")
		}
		return s
	case l7.GetHttp() != nil:
		h := l7.GetHttp()
		s := "HTTP " + h.GetMethod() + " " + h.GetUrl()
		if h.GetCode() != 0 {
			s += " " + itoa(h.GetCode())
		}
		return s
	case l7.GetKafka() != nil:
		return "Kafka " + l7.GetKafka().GetApiKey() + " " + l7.GetKafka().GetTopic()
	}
	return ""
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// windowCounts sums the buckets of e within the last window (0: all time).
func (e *edge) windowCounts(now time.Time, window time.Duration) counts {
	if window <= 0 {
		return e.total.merged()
	}
	var c sided
	nowMin := now.Unix() / 60
	// A window of 5m covers the current minute and the 4 before it.
	first := nowMin - int64((window+time.Minute-1)/time.Minute) + 1
	for i := range e.buckets {
		b := &e.buckets[i]
		if b.minute >= first && b.minute <= nowMin {
			for _, p := range [2][2]*counts{{&c.in, &b.in}, {&c.out, &b.out}} {
				p[0].fwd += p[1].fwd
				p[0].drop += p[1].drop
				p[0].audit += p[1].audit
			}
		}
	}
	return c.merged()
}

// recentFlows returns the edge's flows, newest first.
func (e *edge) recentFlows() []hubble.Record {
	n := min(e.nrecent, recentPerEdge)
	out := make([]hubble.Record, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, e.recent[(e.nrecent-1-i)%recentPerEdge])
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
