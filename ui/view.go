package ui

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/vigilsec/vigil/hubble"
)

// windows are the time windows the UI offers; "all" is every flow since
// the map started.
var windows = map[string]time.Duration{"1m": time.Minute, "5m": 5 * time.Minute, "15m": 15 * time.Minute, "1h": time.Hour, "all": 0}

// viewFilter is what the page's URL selects: namespaces, verdicts, a label
// selector (matching either end of an edge), a node and a time window.
type viewFilter struct {
	namespaces []string
	verdicts   []string // forwarded, dropped, audit
	label      string
	labelMatch func([]string) bool
	node       string
	window     string
	windowDur  time.Duration
}

// parseFilter reads the filter query parameters; errors name the parameter.
func parseFilter(q url.Values) (*viewFilter, error) {
	f := &viewFilter{window: "15m", windowDur: windows["15m"]}
	for _, ns := range splitList(q.Get("ns")) {
		f.namespaces = append(f.namespaces, ns)
	}
	for _, v := range splitList(q.Get("verdict")) {
		v = strings.ToLower(v)
		if v != "forwarded" && v != "dropped" && v != "audit" {
			return nil, fmt.Errorf("verdict: %q is not one of forwarded, dropped, audit", v)
		}
		f.verdicts = append(f.verdicts, v)
	}
	if l := strings.TrimSpace(q.Get("label")); l != "" {
		m, err := hubble.LabelMatcher(l)
		if err != nil {
			return nil, fmt.Errorf("label: %w", err)
		}
		f.label, f.labelMatch = l, m
	}
	f.node = strings.TrimSpace(q.Get("node"))
	if w := q.Get("window"); w != "" {
		d, ok := windows[w]
		if !ok {
			return nil, fmt.Errorf("window: %q is not one of 1m, 5m, 15m, 1h, all", w)
		}
		f.window, f.windowDur = w, d
	}
	return f, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (f *viewFilter) wantVerdict(v string) bool {
	return len(f.verdicts) == 0 || slices.Contains(f.verdicts, v)
}

func verdictName(v flowpb.Verdict) string {
	switch v {
	case flowpb.Verdict_DROPPED, flowpb.Verdict_ERROR:
		return "dropped"
	case flowpb.Verdict_AUDIT:
		return "audit"
	}
	return "forwarded"
}

// matchFlow applies the filter to one Hubble flow.
func (f *viewFilter) matchFlow(fl *flowpb.Flow, now time.Time) bool {
	fa := flowFacts(fl, nil)
	return f.match(&fa, now)
}

// matchRecord applies the filter to one stored flow, reading an event's
// fields directly: the stream checks every new flow.
func (f *viewFilter) matchRecord(r hubble.Record, procs *hubble.ProcessDecoder, now time.Time) bool {
	ev := r.Event()
	if ev == nil || f.labelMatch != nil {
		fa := factsOf(r, procs)
		return f.match(&fa, now)
	}
	fl := ev.Flow
	if fl.IsReply || (f.windowDur > 0 && ev.Time.Before(now.Add(-f.windowDur))) {
		return false
	}
	if !f.wantVerdict(verdictName(hubble.Verdict(fl.Verdict))) {
		return false
	}
	if f.node != "" && r.Converter().NodeName() != f.node {
		return false
	}
	ns := f.namespaces
	return len(ns) == 0 || slices.Contains(ns, fl.SourceEndpoint.Namespace) || slices.Contains(ns, fl.DestEndpoint.Namespace)
}

// match applies the filter to one flow (for the table and the stream).
func (f *viewFilter) match(fa *facts, now time.Time) bool {
	if fa.reply {
		return false
	}
	if f.windowDur > 0 && fa.time.Before(now.Add(-f.windowDur)) {
		return false
	}
	if !f.wantVerdict(verdictName(fa.verdict)) {
		return false
	}
	if f.node != "" && fa.node != f.node {
		return false
	}
	if len(f.namespaces) > 0 && !slices.Contains(f.namespaces, fa.src.ns) && !slices.Contains(f.namespaces, fa.dst.ns) {
		return false
	}
	if f.labelMatch != nil && !f.labelMatch(fa.src.labels) && !f.labelMatch(fa.dst.labels) {
		return false
	}
	return true
}

// nodeView is a workload on the map.
type nodeView struct {
	ID        string   `json:"id"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	Kind      string   `json:"kind,omitempty"`
	Labels    []string `json:"labels,omitempty"`
	Pods      int      `json:"pods"`
	Reserved  bool     `json:"reserved,omitempty"`
}

type policyView struct {
	Name    string `json:"name"`
	Verdict string `json:"verdict"`
}

// edgeView is an edge on the map: counts are those of the time window.
type edgeView struct {
	ID        string       `json:"id"`
	Source    string       `json:"source"`
	Target    string       `json:"target"`
	Protocol  string       `json:"protocol"`
	Port      uint32       `json:"port"`
	Forwarded uint64       `json:"forwarded"`
	Dropped   uint64       `json:"dropped"`
	Audit     uint64       `json:"audit"`
	Verdict   string       `json:"verdict"` // forwarded, dropped, mixed, audit
	Reasons   []string     `json:"drop_reasons,omitempty"`
	Policies  []policyView `json:"policies,omitempty"`
	Processes []string     `json:"processes,omitempty"`
	L7        []string     `json:"l7,omitempty"`
	Last      time.Time    `json:"last"`
}

// sig changes whenever what the page shows of the edge changes.
func (e *edgeView) sig() edgeSig {
	return edgeSig{e.Forwarded, e.Dropped, e.Audit, e.Last.UnixNano(), len(e.Reasons) + len(e.Policies)<<8 + len(e.Processes)<<16 + len(e.L7)<<24}
}

type edgeSig struct {
	fwd, drop, audit uint64
	last             int64
	sets             int
}

type statsView struct {
	Flows     uint64 `json:"flows"`
	Missed    uint64 `json:"missed"`
	Lost      uint64 `json:"lost"`
	Workloads int    `json:"workloads"`
	Edges     int    `json:"edges"`
}

type mapView struct {
	Now    time.Time  `json:"now"`
	Window string     `json:"window"`
	Nodes  []nodeView `json:"nodes"`
	Edges  []edgeView `json:"edges"`
	Stats  statsView  `json:"stats"`
}

func (w *workload) view() nodeView {
	v := nodeView{ID: w.key.id(), Namespace: w.key.ns, Name: w.key.name, Kind: w.kind, Labels: w.labels, Pods: len(w.pods)}
	if w.key.ns == "" {
		v.Reserved = true
		v.Name = strings.TrimPrefix(w.key.name, "reserved:")
	}
	return v
}

// view computes what the map shows under f, in no particular order (see
// sorted).
func (g *graph) view(f *viewFilter, now time.Time, lost uint64) *mapView {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := &mapView{Now: now, Window: f.window, Nodes: []nodeView{}, Edges: []edgeView{}}
	labelOK := map[wkey]bool{}
	matchLabels := func(k wkey) bool {
		ok, seen := labelOK[k]
		if !seen {
			w := g.works[k]
			ok = w != nil && f.labelMatch(w.labels)
			labelOK[k] = ok
		}
		return ok
	}
	used := map[wkey]bool{}
	for k, e := range g.edges {
		if len(f.namespaces) > 0 && !slices.Contains(f.namespaces, k.src.ns) && !slices.Contains(f.namespaces, k.dst.ns) {
			continue
		}
		if f.labelMatch != nil && !matchLabels(k.src) && !matchLabels(k.dst) {
			continue
		}
		if f.node != "" && !g.onNode(k, f.node) {
			continue
		}
		c := e.windowCounts(now, f.windowDur)
		if !f.wantVerdict("forwarded") {
			c.fwd = 0
		}
		if !f.wantVerdict("dropped") {
			c.drop = 0
		}
		if !f.wantVerdict("audit") {
			c.audit = 0
		}
		if c.fwd+c.drop+c.audit == 0 {
			continue
		}
		out.Edges = append(out.Edges, e.view(c))
		used[k.src], used[k.dst] = true, true
	}
	for k := range used {
		out.Nodes = append(out.Nodes, g.works[k].view())
	}
	out.Stats = statsView{Flows: g.seen, Missed: g.missed, Lost: lost, Workloads: len(out.Nodes), Edges: len(out.Edges)}
	return out
}

// sorted orders the view's workloads and edges by id.
func (v *mapView) sorted() *mapView {
	slices.SortFunc(v.Nodes, func(a, b nodeView) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(v.Edges, func(a, b edgeView) int { return strings.Compare(a.ID, b.ID) })
	return v
}

// onNode reports whether one of the edge's workloads has a pod seen on node.
func (g *graph) onNode(k ekey, node string) bool {
	for _, wk := range []wkey{k.src, k.dst} {
		if w := g.works[wk]; w != nil {
			for _, p := range w.pods {
				if p.node == node {
					return true
				}
			}
		}
	}
	return false
}

// edgeParts are the parts of an edge's view that change only with its
// version: computed once per change, not once per client and update.
type edgeParts struct {
	version      uint64
	id, src, dst string
	reasons      []string
	policies     []policyView
	procs, l7    []string
}

func (e *edge) viewParts() *edgeParts {
	// Readers hold the graph's read lock, so version is stable; two of
	// them may build the same parts, the pointer keeps one.
	if p := e.parts.Load(); p != nil && p.version == e.version {
		return p
	}
	p := &edgeParts{version: e.version, id: e.key.id(), src: e.key.src.id(), dst: e.key.dst.id(), reasons: sortedKeys(e.reasons),
		procs: sortedKeys(e.procs), l7: sortedKeys(e.l7)}
	for k, verdict := range e.policies {
		p.policies = append(p.policies, policyView{Name: k.String(), Verdict: verdictName(verdict)})
	}
	slices.SortFunc(p.policies, func(a, b policyView) int { return strings.Compare(a.Name, b.Name) })
	e.parts.Store(p)
	return p
}

func (e *edge) view(c counts) edgeView {
	p := e.viewParts()
	v := edgeView{ID: p.id, Source: p.src, Target: p.dst, Protocol: e.key.proto, Port: e.key.port,
		Forwarded: c.fwd, Dropped: c.drop, Audit: c.audit, Last: e.last,
		Reasons: p.reasons, Policies: p.policies, Processes: p.procs, L7: p.l7}
	switch {
	case c.drop > 0 && c.fwd > 0:
		v.Verdict = "mixed"
	case c.drop > 0:
		v.Verdict = "dropped"
	case c.fwd > 0:
		v.Verdict = "forwarded"
	default:
		v.Verdict = "audit"
	}
	return v
}

// flowRow is one flow as the table, the panels and the exports show it.
type flowRow struct {
	Time            time.Time `json:"time"`
	Node            string    `json:"node"`
	Edge            string    `json:"edge"`
	Source          string    `json:"source"`
	SourcePod       string    `json:"source_pod,omitempty"`
	SourceIP        string    `json:"source_ip,omitempty"`
	SourcePort      uint32    `json:"source_port,omitempty"`
	Destination     string    `json:"destination"`
	DestinationPod  string    `json:"destination_pod,omitempty"`
	DestinationIP   string    `json:"destination_ip,omitempty"`
	DestinationPort uint32    `json:"destination_port,omitempty"`
	Protocol        string    `json:"protocol"`
	Verdict         string    `json:"verdict"`
	DropReason      string    `json:"drop_reason,omitempty"`
	Direction       string    `json:"direction"`
	Policies        []string  `json:"policies,omitempty"`
	Process         string    `json:"process,omitempty"`
	PID             uint32    `json:"pid,omitempty"`
	Arguments       string    `json:"arguments,omitempty"`
	Parent          string    `json:"parent,omitempty"`
	L7              string    `json:"l7,omitempty"`
	Summary         string    `json:"summary,omitempty"`
}

func rowOf(f *flowpb.Flow, procs *hubble.ProcessDecoder) flowRow {
	src := endpointKey(f.GetSource(), f.GetIP().GetSource())
	dst := endpointKey(f.GetDestination(), f.GetIP().GetDestination())
	proto, port := l4Of(f)
	r := flowRow{
		Time: f.GetTime().AsTime(), Node: f.GetNodeName(), Edge: ekey{src, dst, proto, port}.id(),
		Source: src.id(), SourcePod: f.GetSource().GetPodName(), SourceIP: f.GetIP().GetSource(),
		Destination: dst.id(), DestinationPod: f.GetDestination().GetPodName(), DestinationIP: f.GetIP().GetDestination(),
		DestinationPort: port, Protocol: proto, Verdict: f.GetVerdict().String(),
		Direction: f.GetTrafficDirection().String(), L7: l7Summary(f), Summary: f.GetSummary(),
	}
	if s, _, ok := portsOf(f); ok {
		r.SourcePort = s
	}
	if d := f.GetDropReasonDesc(); d != flowpb.DropReason_DROP_REASON_UNKNOWN {
		r.DropReason = d.String()
	}
	for _, l := range []struct {
		what string
		ps   []*flowpb.Policy
	}{{"allowed by", f.GetEgressAllowedBy()}, {"allowed by", f.GetIngressAllowedBy()},
		{"denied by", f.GetEgressDeniedBy()}, {"denied by", f.GetIngressDeniedBy()}} {
		for _, p := range l.ps {
			r.Policies = append(r.Policies, l.what+" "+policyKey{p.GetKind(), p.GetNamespace(), p.GetName()}.String())
		}
	}
	if p, parent := procs.ProcessOf(f); p != nil {
		r.Process, r.PID, r.Arguments = p.Binary, p.PID, p.Arguments
		if parent != nil {
			r.Parent = parent.Binary + "[" + strconv.FormatUint(uint64(parent.PID), 10) + "]"
		}
	}
	return r
}

func portsOf(f *flowpb.Flow) (src, dst uint32, ok bool) {
	l4 := f.GetL4()
	switch {
	case l4.GetTCP() != nil:
		return l4.GetTCP().GetSourcePort(), l4.GetTCP().GetDestinationPort(), true
	case l4.GetUDP() != nil:
		return l4.GetUDP().GetSourcePort(), l4.GetUDP().GetDestinationPort(), true
	case l4.GetSCTP() != nil:
		return l4.GetSCTP().GetSourcePort(), l4.GetSCTP().GetDestinationPort(), true
	}
	return 0, 0, false
}
