package rules

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// flow bodies, with Hubble's field names (encode/flow.go).
type flowNode view

var zeroFlow event.Flow

func flowOf(v *view) *event.Flow {
	if v.ev.Flow == nil {
		return &zeroFlow
	}
	return v.ev.Flow
}

func flowField(name string, get func(*view, *event.Flow) val) field[view] {
	return field[view]{name, func(v *view) val { return get(v, flowOf(v)) }}
}

func policiesVal(refs *[]string) val {
	if len(*refs) == 0 {
		return undef
	}
	return nodeVal(arrKind, (*policyList)(refs))
}

var flowSchema = newSchema(
	flowField("time", func(v *view, _ *event.Flow) val { return strVal(timeText(v.ev.Time)) }),
	flowField("verdict", func(_ *view, f *event.Flow) val { return textVal(f.Verdict.String()) }),
	flowField("drop_reason_desc", func(_ *view, f *event.Flow) val { return textIf(f.DropReasonDesc) }),
	flowField("IP", func(_ *view, f *event.Flow) val {
		if !f.Source.IsValid() && !f.Destination.IsValid() {
			return undef
		}
		return nodeVal(objKind, (*ipNode)(f))
	}),
	flowField("l4", func(_ *view, f *event.Flow) val {
		if encode.L4Name(f.Protocol) == "" {
			return undef
		}
		return nodeVal(objKind, (*l4Node)(f))
	}),
	flowField("source", func(_ *view, f *event.Flow) val {
		return nodeVal(objKind, (*endpointNode)(&f.SourceEndpoint))
	}),
	flowField("destination", func(_ *view, f *event.Flow) val {
		return nodeVal(objKind, (*endpointNode)(&f.DestEndpoint))
	}),
	flowField("Type", func(*view, *event.Flow) val { return strVal("L3_L4") }),
	flowField("node_name", func(v *view, _ *event.Flow) val { return textVal(v.nodeName) }),
	flowField("traffic_direction", func(_ *view, f *event.Flow) val { return textVal(f.Direction.String()) }),
	flowField("is_reply", func(_ *view, f *event.Flow) val { return boolOf(f.IsReply) }),
	flowField("egress_denied_by", func(_ *view, f *event.Flow) val { return policiesVal(&f.EgressDeniedBy) }),
	flowField("ingress_denied_by", func(_ *view, f *event.Flow) val { return policiesVal(&f.IngressDeniedBy) }),
	flowField("Summary", func(_ *view, f *event.Flow) val { return strVal(encode.FlowSummaryText(f)) }),
	processField, parentField,
	flowField("policy_names", func(_ *view, f *event.Flow) val { return listVal(&f.PolicyNames) }),
	flowField("phase", func(_ *view, f *event.Flow) val {
		if p := encode.FlowPhaseText(f.Phase); p != "" {
			return strVal(p)
		}
		return undef
	}),
	flowField("bytes_sent", func(_ *view, f *event.Flow) val { return uintIf(f.BytesSent) }),
	flowField("bytes_received", func(_ *view, f *event.Flow) val { return uintIf(f.BytesReceived) }),
	flowField("packets_sent", func(_ *view, f *event.Flow) val { return uintIf(f.PacketsSent) }),
	flowField("packets_received", func(_ *view, f *event.Flow) val { return uintIf(f.PacketsReceived) }),
	flowField("count", func(_ *view, f *event.Flow) val {
		if f.Count <= 1 {
			return undef
		}
		return uintVal(f.Count)
	}),
)

func (n *flowNode) get(k key) val       { return flowSchema.get((*view)(n), k) }
func (n *flowNode) size() int           { return len(flowSchema.fields) }
func (n *flowNode) at(i int) (val, val) { return flowSchema.at((*view)(n), i) }
func (n *flowNode) term(m *materializer) ast.Value {
	return flowSchema.term(m, (*view)(n))
}

// "IP": {"source", "destination", "ipVersion"}.
type ipNode event.Flow

var ipSchema = newSchema(
	field[event.Flow]{"source", func(f *event.Flow) val { return addrIf(f.Source) }},
	field[event.Flow]{"destination", func(f *event.Flow) val { return addrIf(f.Destination) }},
	field[event.Flow]{"ipVersion", func(f *event.Flow) val {
		ip := f.Source
		if !ip.IsValid() {
			ip = f.Destination
		}
		if ip.Is4() || ip.Is4In6() {
			return strVal("IPv4")
		}
		return strVal("IPv6")
	}},
)

func (n *ipNode) get(k key) val       { return ipSchema.get((*event.Flow)(n), k) }
func (n *ipNode) size() int           { return len(ipSchema.fields) }
func (n *ipNode) at(i int) (val, val) { return ipSchema.at((*event.Flow)(n), i) }
func (n *ipNode) term(m *materializer) ast.Value {
	return ipSchema.term(m, (*event.Flow)(n))
}

// "l4": {"TCP": {"source_port", "destination_port", "flags"}} (or UDP,
// SCTP).
type (
	l4Node       event.Flow
	l4PortsNode  event.Flow
	tcpFlagsNode event.Flow
)

var l4IDs = [3]uint16{fieldID("TCP"), fieldID("UDP"), fieldID("SCTP")}

// l4ID is the field id of the protocol's member of "l4".
func l4ID(proto uint8) uint16 {
	switch proto {
	case event.ProtoTCP:
		return l4IDs[0]
	case event.ProtoUDP:
		return l4IDs[1]
	case event.ProtoSCTP:
		return l4IDs[2]
	}
	return 0
}

func (n *l4Node) get(k key) val {
	if id := l4ID(n.Protocol); k.id != 0 && k.id == id {
		return nodeVal(objKind, (*l4PortsNode)(n))
	}
	return undef
}
func (n *l4Node) size() int { return 1 }
func (n *l4Node) at(int) (val, val) {
	return strVal(encode.L4Name(n.Protocol)), nodeVal(objKind, (*l4PortsNode)(n))
}
func (n *l4Node) term(m *materializer) ast.Value {
	return ast.NewObject([2]*ast.Term{ast.StringTerm(encode.L4Name(n.Protocol)), ast.NewTerm((*l4PortsNode)(n).term(m))})
}

var l4PortsSchema = newSchema(
	field[event.Flow]{"source_port", func(f *event.Flow) val { return intVal(int64(f.SourcePort)) }},
	field[event.Flow]{"destination_port", func(f *event.Flow) val { return intVal(int64(f.DestinationPort)) }},
	field[event.Flow]{"flags", func(f *event.Flow) val {
		if f.Protocol != event.ProtoTCP || f.TCPFlags == 0 {
			return undef
		}
		return nodeVal(objKind, (*tcpFlagsNode)(f))
	}},
)

func (n *l4PortsNode) get(k key) val       { return l4PortsSchema.get((*event.Flow)(n), k) }
func (n *l4PortsNode) size() int           { return len(l4PortsSchema.fields) }
func (n *l4PortsNode) at(i int) (val, val) { return l4PortsSchema.at((*event.Flow)(n), i) }
func (n *l4PortsNode) term(m *materializer) ast.Value {
	return l4PortsSchema.term(m, (*event.Flow)(n))
}

// tcpFlags are the flags a TCP flow's "flags" object can name.
var tcpFlags = func() (out []struct {
	flag event.TCPFlags
	name string
}) {
	for f := event.TCPFlags(1); f != 0; f <<= 1 {
		if names := encode.TCPFlagNames(nil, f); len(names) == 1 {
			out = append(out, struct {
				flag event.TCPFlags
				name string
			}{f, names[0]})
		}
	}
	return out
}()

func (n *tcpFlagsNode) get(k key) val {
	for _, f := range tcpFlags {
		if n.TCPFlags&f.flag != 0 && k.isName() && k.s == f.name {
			return trueVal
		}
	}
	return undef
}
func (n *tcpFlagsNode) size() int { return len(tcpFlags) }
func (n *tcpFlagsNode) at(i int) (val, val) {
	return strVal(tcpFlags[i].name), trueIf(n.TCPFlags&tcpFlags[i].flag != 0)
}
func (n *tcpFlagsNode) term(*materializer) ast.Value {
	obj := ast.NewObject()
	for _, name := range encode.TCPFlagNames(nil, n.TCPFlags) {
		obj.Insert(ast.StringTerm(name), ast.BooleanTerm(true))
	}
	return obj
}

// Endpoints: {"identity", "namespace", "labels", "pod_name", "workloads"}.
type endpointNode event.Endpoint

var endpointSchema = newSchema(
	field[event.Endpoint]{"identity", func(e *event.Endpoint) val { return uintIf(uint64(e.Identity)) }},
	field[event.Endpoint]{"namespace", func(e *event.Endpoint) val { return textIf(e.Namespace) }},
	field[event.Endpoint]{"labels", func(e *event.Endpoint) val { return listVal(&e.Labels) }},
	field[event.Endpoint]{"pod_name", func(e *event.Endpoint) val { return textIf(e.PodName) }},
	field[event.Endpoint]{"workloads", func(e *event.Endpoint) val {
		if len(e.Workloads) == 0 {
			return undef
		}
		return nodeVal(arrKind, (*workloadList)(&e.Workloads))
	}},
)

func (n *endpointNode) get(k key) val       { return endpointSchema.get((*event.Endpoint)(n), k) }
func (n *endpointNode) size() int           { return len(endpointSchema.fields) }
func (n *endpointNode) at(i int) (val, val) { return endpointSchema.at((*event.Endpoint)(n), i) }
func (n *endpointNode) term(m *materializer) ast.Value {
	return endpointSchema.term(m, (*event.Endpoint)(n))
}

type (
	workloadList []event.Workload
	workloadNode event.Workload
)

func (n *workloadList) get(k key) val {
	if k.isNum && k.num < len(*n) {
		return nodeVal(objKind, (*workloadNode)(&(*n)[k.num]))
	}
	return undef
}
func (n *workloadList) size() int { return len(*n) }
func (n *workloadList) at(i int) (val, val) {
	return intVal(int64(i)), nodeVal(objKind, (*workloadNode)(&(*n)[i]))
}
func (n *workloadList) term(m *materializer) ast.Value {
	terms := make([]*ast.Term, len(*n))
	for i := range *n {
		terms[i] = ast.NewTerm((*workloadNode)(&(*n)[i]).term(m))
	}
	return ast.NewArray(terms...)
}

var workloadSchema = newSchema(
	field[event.Workload]{"name", func(w *event.Workload) val { return textVal(w.Name) }},
	field[event.Workload]{"kind", func(w *event.Workload) val { return textVal(w.Kind) }},
)

func (n *workloadNode) get(k key) val       { return workloadSchema.get((*event.Workload)(n), k) }
func (n *workloadNode) size() int           { return 2 }
func (n *workloadNode) at(i int) (val, val) { return workloadSchema.at((*event.Workload)(n), i) }
func (n *workloadNode) term(m *materializer) ast.Value {
	return workloadSchema.term(m, (*event.Workload)(n))
}

// "egress_denied_by", "ingress_denied_by": a "namespace/name" reference
// becomes {"name": ..., "namespace": ...}.
type (
	policyList []string
	policyRef  string
)

func (n *policyList) get(k key) val {
	if k.isNum && k.num < len(*n) {
		return nodeVal(objKind, (*policyRef)(&(*n)[k.num]))
	}
	return undef
}
func (n *policyList) size() int { return len(*n) }
func (n *policyList) at(i int) (val, val) {
	return intVal(int64(i)), nodeVal(objKind, (*policyRef)(&(*n)[i]))
}
func (n *policyList) term(m *materializer) ast.Value {
	terms := make([]*ast.Term, len(*n))
	for i := range *n {
		terms[i] = ast.NewTerm((*policyRef)(&(*n)[i]).term(m))
	}
	return ast.NewArray(terms...)
}

func policyParts(ref string) (ns, name string) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return "", ref
	}
	return ns, name
}

var policyRefSchema = newSchema(
	field[string]{"name", func(r *string) val { _, n := policyParts(*r); return textVal(n) }},
	field[string]{"namespace", func(r *string) val { ns, _ := policyParts(*r); return textIf(ns) }},
)

func (n *policyRef) get(k key) val       { return policyRefSchema.get((*string)(n), k) }
func (n *policyRef) size() int           { return 2 }
func (n *policyRef) at(i int) (val, val) { return policyRefSchema.at((*string)(n), i) }
func (n *policyRef) term(m *materializer) ast.Value {
	return policyRefSchema.term(m, (*string)(n))
}
