package ui

import (
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/hubble"
)

// facts are what the map and its filters read of one flow. The agent's
// flows give them from Vigil's event, so that the map needs no Hubble
// message; the relay's from the Hubble flows it received. Both read the
// same: labels in Cilium's form, Hubble's verdict and direction.
type facts struct {
	time       time.Time
	reply      bool
	node       string
	verdict    flowpb.Verdict
	dir        flowpb.TrafficDirection
	src, dst   side
	proto      string
	port       uint32
	n          uint64 // how many flows the record stands for (folded reports: more than 1)
	dropReason string // "" when none
	binary     string // the process behind the flow, "" when unknown
	l7         string
	// The policies that allowed or denied the flow, at either end.
	egressAllowed, ingressAllowed, egressDenied, ingressDenied policyRefs
}

// side is one end of a flow.
type side struct {
	key    wkey
	ns     string
	pod    string
	kind   string // of its workload
	labels []string
}

func (fa *facts) edge() ekey { return ekey{fa.src.key, fa.dst.key, fa.proto, fa.port} }

// policyRefs are a flow's policies: Hubble's objects or Vigil's references
// ("Kind namespace/name").
type policyRefs struct {
	pb   []*flowpb.Policy
	refs []string
}

func (p policyRefs) len() int { return len(p.pb) + len(p.refs) }

func (p policyRefs) at(i int) policyKey {
	if i < len(p.pb) {
		x := p.pb[i]
		return policyKey{x.GetKind(), x.GetNamespace(), x.GetName()}
	}
	var k policyKey
	rest := p.refs[i-len(p.pb)]
	if kind, r, ok := strings.Cut(rest, " "); ok {
		k.kind, rest = kind, r
	}
	if ns, name, ok := strings.Cut(rest, "/"); ok {
		k.ns, k.name = ns, name
	} else {
		k.name = rest
	}
	return k
}

// factsOf reads a stored flow: its event when it has one, else its Hubble
// flow.
func factsOf(r hubble.Record, procs *hubble.ProcessDecoder) facts {
	if ev := r.Event(); ev != nil {
		return eventFacts(ev, r.Converter())
	}
	return flowFacts(r.Flow(), procs)
}

// flowFacts reads a Hubble flow; procs decodes its process (nil: left out).
func flowFacts(f *flowpb.Flow, procs *hubble.ProcessDecoder) facts {
	proto, port := l4Of(f)
	fa := facts{
		time: f.GetTime().AsTime(), reply: f.GetIsReply().GetValue(), node: f.GetNodeName(), verdict: f.GetVerdict(),
		dir: f.GetTrafficDirection(), proto: proto, port: port, l7: l7Summary(f), n: hubble.FlowCount(f),
		src:            flowSide(f.GetSource(), f.GetIP().GetSource()),
		dst:            flowSide(f.GetDestination(), f.GetIP().GetDestination()),
		egressAllowed:  policyRefs{pb: f.GetEgressAllowedBy()},
		ingressAllowed: policyRefs{pb: f.GetIngressAllowedBy()},
		egressDenied:   policyRefs{pb: f.GetEgressDeniedBy()},
		ingressDenied:  policyRefs{pb: f.GetIngressDeniedBy()},
	}
	if r := f.GetDropReasonDesc(); r != flowpb.DropReason_DROP_REASON_UNKNOWN {
		fa.dropReason = r.String()
	}
	if procs != nil {
		if p, _ := procs.ProcessOf(f); p != nil {
			fa.binary = p.Binary
		}
	}
	return fa
}

func flowSide(ep *flowpb.Endpoint, ip string) side {
	s := side{key: endpointKey(ep, ip), ns: ep.GetNamespace(), pod: ep.GetPodName(), labels: ep.GetLabels()}
	if ws := ep.GetWorkloads(); len(ws) > 0 {
		s.kind = ws[0].GetKind()
	}
	return s
}

func eventFacts(ev *event.Event, conv *hubble.Converter) facts {
	f := ev.Flow
	fa := facts{
		time: ev.Time.UTC(), reply: f.IsReply, node: conv.NodeName(), verdict: hubble.Verdict(f.Verdict),
		dir: hubble.Direction(f.Direction), dropReason: hubble.DropReasonName(f), proto: "IP", n: max(f.Count, 1),
		src:           eventSide(&f.SourceEndpoint, f.Source.IsValid(), conv),
		dst:           eventSide(&f.DestEndpoint, f.Destination.IsValid(), conv),
		egressDenied:  policyRefs{refs: f.EgressDeniedBy},
		ingressDenied: policyRefs{refs: f.IngressDeniedBy},
	}
	switch f.Protocol {
	case event.ProtoTCP:
		fa.proto, fa.port = "TCP", uint32(f.DestinationPort)
	case event.ProtoUDP:
		fa.proto, fa.port = "UDP", uint32(f.DestinationPort)
	case event.ProtoSCTP:
		fa.proto, fa.port = "SCTP", uint32(f.DestinationPort)
	}
	if f.Direction == event.DirectionIngress {
		fa.ingressAllowed.refs = f.PolicyNames
	} else {
		fa.egressAllowed.refs = f.PolicyNames
	}
	if ev.Process != nil {
		fa.binary = ev.Process.Binary
	}
	return fa
}

// eventSide reads one end of a flow event as its Hubble flow would show it
// (see endpointKey).
func eventSide(ep *event.Endpoint, hasIP bool, conv *hubble.Converter) side {
	s := side{ns: ep.Namespace, pod: ep.PodName, labels: conv.Labels(ep.Labels)}
	var workload string
	if len(ep.Workloads) > 0 {
		workload, s.kind = ep.Workloads[0].Name, ep.Workloads[0].Kind
	}
	s.key = workloadKey(ep.Namespace, workload, ep.PodName, s.labels, hasIP)
	return s
}

// recordTime is when a stored flow happened.
func recordTime(r hubble.Record) time.Time {
	if ev := r.Event(); ev != nil {
		return ev.Time
	}
	return r.Flow().GetTime().AsTime()
}

// sameRecord reports whether a and b are the same stored flow.
func sameRecord(a, b hubble.Record) bool {
	if a.Event() != nil || b.Event() != nil {
		return a.Event() == b.Event()
	}
	return a.Flow() == b.Flow()
}
