package hubble

import (
	"math"
	"net/netip"
	"strings"
	"sync"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// Version is the emitter version flows and ServerStatus report.
const Version = "vigil-1"

// Hubble's monitor event types (Cilium's pkg/monitor/api message types),
// which clients read from Flow.event_type.
const (
	monitorDrop          = 1
	monitorTrace         = 4
	monitorPolicyVerdict = 5
	// monitorL7 is MessageTypeAccessLog, the type of the proxy's flows.
	monitorL7 = 129
)

// Converter turns flow events into Hubble flows. It keeps the process
// extensions it built, keyed by the immutable process values, so that the
// flows of one process share one extension. Safe for concurrent use.
type Converter struct {
	nodeName string
	redact   func(string) string
	emitter  *flowpb.Emitter

	mu     sync.Mutex
	procs  map[procKey]*processExt
	labels map[*string][]string // Cilium labels by the first of Vigil's (label slices are shared)
	works  map[*event.Workload][]*flowpb.Workload
	// summaries by protocol and TCP flags; drop event types by reason.
	summaries map[uint16]string
	drops     map[int32]*flowpb.CiliumEventType
}

type procKey struct{ p, parent *event.Process }

// maxCachedProcs bounds the extension cache; it starts over when full.
const maxCachedProcs = 8192

// NewConverter returns a converter that writes nodeName into every flow and
// passes process arguments through redact (nil: unchanged).
func NewConverter(nodeName string, redact func(string) string) *Converter {
	return &Converter{nodeName: nodeName, redact: redact, emitter: &flowpb.Emitter{Name: "Vigil", Version: Version},
		procs: map[procKey]*processExt{}, labels: map[*string][]string{}, works: map[*event.Workload][]*flowpb.Workload{},
		summaries: map[uint16]string{}, drops: map[int32]*flowpb.CiliumEventType{}}
}

// Convert returns the Hubble flow of ev, or nil when ev is not a flow.
func (c *Converter) Convert(ev *event.Event) *flowpb.Flow {
	f := ev.Flow
	if ev.Type != event.TypeFlow || f == nil {
		return nil
	}
	out := &flowpb.Flow{
		Time:             timestamppb.New(ev.Time),
		Emitter:          c.emitter,
		Verdict:          verdict(f.Verdict),
		Type:             flowpb.FlowType_L3_L4,
		NodeName:         c.nodeName,
		TrafficDirection: direction(f.Direction),
		IsReply:          isReply[b2i(f.IsReply)],
		Source:           c.endpoint(&f.SourceEndpoint),
		Destination:      c.endpoint(&f.DestEndpoint),
		L4:               layer4(f),
		IP:               ip(f.Source, f.Destination),
		Summary:          c.summary(f),
	}
	if ev.Process != nil {
		out.CgroupId = ev.Process.CgroupID
	}
	if f.DNS != nil {
		dnsLayer7(out, f.DNS)
	}
	out.DestinationNames = f.DestinationNames
	if f.HTTP != nil {
		out.Type = flowpb.FlowType_L7
		out.L7 = layer7HTTP(f.HTTP)
		out.Summary = encode.HTTPSummary(f.HTTP)
	}
	if f.Count > 1 {
		// A folded report (repeated connections, rate-limited drops)
		// stands for Count flows: Hubble's aggregation counters say so.
		out.Aggregate = aggregate(out.TrafficDirection, f.Count)
	}
	switch {
	case f.HTTP != nil:
		out.EventType = eventTypes[monitorL7]
	case f.Verdict == event.VerdictDropped:
		out.EventType = eventTypes[monitorDrop]
		if r, ok := flowpb.DropReason_value[f.DropReasonDesc]; ok {
			out.DropReasonDesc = flowpb.DropReason(r)
			out.DropReason = uint32(r)
			out.EventType = c.dropType(r)
		}
	case f.Verdict == event.VerdictAudit:
		out.EventType = eventTypes[monitorPolicyVerdict]
	default:
		out.EventType = eventTypes[monitorTrace]
		if f.Direction == event.DirectionIngress {
			out.TraceObservationPoint = flowpb.TraceObservationPoint_TO_ENDPOINT
		} else {
			out.TraceObservationPoint = flowpb.TraceObservationPoint_TO_STACK
		}
	}
	out.EgressDeniedBy = policies(f.EgressDeniedBy)
	out.IngressDeniedBy = policies(f.IngressDeniedBy)
	if allowed := policies(f.PolicyNames); allowed != nil {
		if f.Direction == event.DirectionIngress {
			out.IngressAllowedBy = allowed
		} else {
			out.EgressAllowedBy = allowed
		}
	}
	if ev.Process != nil {
		out.Extensions = c.process(ev.Process, ev.Parent).any
	}
	return out
}

func (c *Converter) process(p, parent *event.Process) *processExt {
	k := procKey{p, parent}
	c.mu.Lock()
	defer c.mu.Unlock()
	if x, ok := c.procs[k]; ok {
		return x
	}
	if len(c.procs) >= maxCachedProcs {
		clear(c.procs)
	}
	x := newProcessExt(p, parent, c.redact)
	c.procs[k] = x
	return x
}

// NodeName is the node name the converter writes into every flow.
func (c *Converter) NodeName() string { return c.nodeName }

// Labels returns pod labels as flows carry them, with Cilium's source
// prefixes (nil for none). The result is shared and must not be modified.
func (c *Converter) Labels(ls []string) []string {
	if len(ls) == 0 {
		return nil
	}
	return c.ciliumLabels(ls)
}

func (c *Converter) ciliumLabels(ls []string) []string {
	key := &ls[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	if out, ok := c.labels[key]; ok && len(out) == len(ls) {
		return out
	}
	if len(c.labels) >= maxCachedProcs {
		clear(c.labels)
	}
	out := make([]string, len(ls))
	for i, l := range ls {
		if k, _, _ := strings.Cut(l, "="); strings.Contains(k, ":") {
			out[i] = l
		} else {
			out[i] = "k8s:" + l
		}
	}
	c.labels[key] = out
	return out
}

func verdict(v event.Verdict) flowpb.Verdict {
	switch v {
	case event.VerdictForwarded:
		return flowpb.Verdict_FORWARDED
	case event.VerdictDropped:
		return flowpb.Verdict_DROPPED
	case event.VerdictAudit:
		return flowpb.Verdict_AUDIT
	}
	return flowpb.Verdict_VERDICT_UNKNOWN
}

// aggregate counts n flows in direction d, as Hubble's flow aggregation does.
func aggregate(d flowpb.TrafficDirection, n uint64) *flowpb.Aggregate {
	c := uint32(min(n, math.MaxUint32))
	switch d {
	case flowpb.TrafficDirection_INGRESS:
		return &flowpb.Aggregate{IngressFlowCount: c}
	case flowpb.TrafficDirection_EGRESS:
		return &flowpb.Aggregate{EgressFlowCount: c}
	}
	return &flowpb.Aggregate{UnknownDirectionFlowCount: c}
}

// FlowCount is how many flows f stands for: its aggregation counters, or 1.
func FlowCount(f *flowpb.Flow) uint64 {
	a := f.GetAggregate()
	if n := uint64(a.GetIngressFlowCount()) + uint64(a.GetEgressFlowCount()) + uint64(a.GetUnknownDirectionFlowCount()); n > 0 {
		return n
	}
	return 1
}

func direction(d event.Direction) flowpb.TrafficDirection {
	switch d {
	case event.DirectionIngress:
		return flowpb.TrafficDirection_INGRESS
	case event.DirectionEgress:
		return flowpb.TrafficDirection_EGRESS
	}
	return flowpb.TrafficDirection_TRAFFIC_DIRECTION_UNKNOWN
}

func ip(src, dst netip.Addr) *flowpb.IP {
	if !src.IsValid() && !dst.IsValid() {
		return nil
	}
	out := &flowpb.IP{IpVersion: flowpb.IPVersion_IPv6}
	if src.IsValid() {
		out.Source = src.String()
	}
	if dst.IsValid() {
		out.Destination = dst.String()
	}
	a := src
	if !a.IsValid() {
		a = dst
	}
	if a.Is4() || a.Is4In6() {
		out.IpVersion = flowpb.IPVersion_IPv4
	}
	return out
}

func layer4(f *event.Flow) *flowpb.Layer4 {
	sp, dp := uint32(f.SourcePort), uint32(f.DestinationPort)
	switch f.Protocol {
	case event.ProtoTCP:
		t := &flowpb.TCP{SourcePort: sp, DestinationPort: dp}
		if f.TCPFlags != 0 {
			t.Flags = &flowpb.TCPFlags{
				SYN: f.TCPFlags&event.TCPSYN != 0, ACK: f.TCPFlags&event.TCPACK != 0, FIN: f.TCPFlags&event.TCPFIN != 0,
				RST: f.TCPFlags&event.TCPRST != 0, PSH: f.TCPFlags&event.TCPPSH != 0,
			}
		}
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: t}}
	case event.ProtoUDP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: sp, DestinationPort: dp}}}
	case event.ProtoSCTP:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: sp, DestinationPort: dp}}}
	}
	return nil
}

// endpoint converts one side of a flow. Pod labels ("key=value") get
// Cilium's "k8s:" source prefix; reserved labels keep theirs. The
// endpoints of one pod share their label slice, and so do their flows'.
func (c *Converter) endpoint(ep *event.Endpoint) *flowpb.Endpoint {
	out := &flowpb.Endpoint{Identity: ep.Identity, Namespace: ep.Namespace, PodName: ep.PodName}
	if len(ep.Labels) > 0 {
		out.Labels = c.ciliumLabels(ep.Labels)
	}
	if len(ep.Workloads) > 0 {
		out.Workloads = c.workloads(ep.Workloads)
	}
	return out
}

// Parts of flows that many flows have alike are made once and shared:
// stored flows are never modified.
var (
	isReply    = [2]*wrapperspb.BoolValue{wrapperspb.Bool(false), wrapperspb.Bool(true)}
	eventTypes = map[int32]*flowpb.CiliumEventType{
		monitorDrop:          {Type: monitorDrop},
		monitorTrace:         {Type: monitorTrace},
		monitorPolicyVerdict: {Type: monitorPolicyVerdict},
		monitorL7:            {Type: monitorL7},
	}
)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c *Converter) workloads(ws []event.Workload) []*flowpb.Workload {
	key := &ws[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	if out, ok := c.works[key]; ok && len(out) == len(ws) {
		return out
	}
	if len(c.works) >= maxCachedProcs {
		clear(c.works)
	}
	out := make([]*flowpb.Workload, len(ws))
	for i, w := range ws {
		out[i] = &flowpb.Workload{Name: w.Name, Kind: w.Kind}
	}
	c.works[key] = out
	return out
}

func (c *Converter) summary(f *event.Flow) string {
	key := uint16(f.Protocol)<<8 | uint16(f.TCPFlags)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.summaries[key]; ok {
		return s
	}
	s := string(encode.AppendSummary(make([]byte, 0, 32), f))
	c.summaries[key] = s
	return s
}

func (c *Converter) dropType(reason int32) *flowpb.CiliumEventType {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.drops[reason]
	if !ok {
		t = &flowpb.CiliumEventType{Type: monitorDrop, SubType: reason}
		c.drops[reason] = t
	}
	return t
}

// policies converts Vigil's policy references ("Kind namespace/name",
// "Kind name" or a bare name) into Hubble's policy objects.
func policies(refs []string) []*flowpb.Policy {
	if len(refs) == 0 {
		return nil
	}
	out := make([]*flowpb.Policy, len(refs))
	for i, ref := range refs {
		out[i] = ParsePolicyRef(ref)
	}
	return out
}

// ParsePolicyRef splits a Vigil policy reference such as
// "CiliumNetworkPolicy default/rule1" into Hubble's policy object.
func ParsePolicyRef(ref string) *flowpb.Policy {
	p := &flowpb.Policy{}
	rest := ref
	if kind, r, ok := strings.Cut(ref, " "); ok {
		p.Kind, rest = kind, r
	}
	if ns, name, ok := strings.Cut(rest, "/"); ok {
		p.Namespace, p.Name = ns, name
	} else {
		p.Name = rest
	}
	return p
}

// Verdict is Hubble's verdict for Vigil's.
func Verdict(v event.Verdict) flowpb.Verdict { return verdict(v) }

// Direction is Hubble's traffic direction for Vigil's.
func Direction(d event.Direction) flowpb.TrafficDirection { return direction(d) }

// DropReasonName is the Hubble drop reason of a flow event (its name, as
// the converted flow's drop_reason_desc shows it), or "" when it has none
// Hubble knows.
func DropReasonName(f *event.Flow) string {
	if f.Verdict != event.VerdictDropped || f.DropReasonDesc == "" {
		return ""
	}
	r, ok := flowpb.DropReason_value[f.DropReasonDesc]
	if !ok || r == 0 {
		return ""
	}
	return flowpb.DropReason(r).String()
}

// layer7HTTP is Hubble's flow.l7 of an HTTP request and its response.
func layer7HTTP(h *event.HTTP) *flowpb.Layer7 {
	l7 := &flowpb.Layer7{Type: flowpb.L7FlowType_RESPONSE, LatencyNs: uint64(h.Latency)}
	if h.Code == 0 {
		l7.Type = flowpb.L7FlowType_REQUEST
	}
	hp := &flowpb.HTTP{Code: h.Code, Method: h.Method, Url: h.URL, Protocol: h.Protocol}
	for _, hd := range h.Headers {
		hp.Headers = append(hp.Headers, &flowpb.HTTPHeader{Key: hd.Key, Value: hd.Value})
	}
	l7.Record = &flowpb.Layer7_Http{Http: hp}
	return l7
}
