package encode

import (
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/event"
)

var tcpFlagNames = [...]struct {
	flag event.TCPFlags
	name string
}{
	{event.TCPSYN, "SYN"}, {event.TCPACK, "ACK"}, {event.TCPFIN, "FIN"},
	{event.TCPRST, "RST"}, {event.TCPPSH, "PSH"},
}

var flowPhaseNames = [...]string{
	event.FlowStart:  "FLOW_START",
	event.FlowEnd:    "FLOW_END",
	event.FlowPacket: "FLOW_PACKET",
}

// appendFlow appends a flow body with Hubble's field names, plus the
// process and parent that own the local socket.
func appendFlow(dst []byte, ev *event.Event, nodeName string, e *Encoder) []byte {
	f := ev.Flow
	if f == nil {
		f = &event.Flow{}
	}
	dst = append(dst, `{"time":`...)
	dst = appendTime(dst, ev.Time)
	dst = appendStringField(dst, "verdict", f.Verdict.String())
	if f.DropReasonDesc != "" {
		dst = appendStringField(dst, "drop_reason_desc", f.DropReasonDesc)
	}
	if f.Source.IsValid() || f.Destination.IsValid() {
		dst = appendKey(dst, "IP")
		dst = append(dst, '{')
		if f.Source.IsValid() {
			dst = appendKey(dst, "source")
			dst = append(dst, '"')
			dst = f.Source.AppendTo(dst)
			dst = append(dst, '"')
		}
		if f.Destination.IsValid() {
			dst = appendKey(dst, "destination")
			dst = append(dst, '"')
			dst = f.Destination.AppendTo(dst)
			dst = append(dst, '"')
		}
		ip := f.Source
		if !ip.IsValid() {
			ip = f.Destination
		}
		if ip.Is4() || ip.Is4In6() {
			dst = appendStringField(dst, "ipVersion", "IPv4")
		} else {
			dst = appendStringField(dst, "ipVersion", "IPv6")
		}
		dst = append(dst, '}')
	}
	if l4 := l4Name(f.Protocol); l4 != "" {
		dst = appendKey(dst, "l4")
		dst = append(dst, `{"`...)
		dst = append(dst, l4...)
		dst = append(dst, `":{"source_port":`...)
		dst = strconv.AppendUint(dst, uint64(f.SourcePort), 10)
		dst = append(dst, `,"destination_port":`...)
		dst = strconv.AppendUint(dst, uint64(f.DestinationPort), 10)
		if f.Protocol == event.ProtoTCP && f.TCPFlags != 0 {
			dst = append(dst, `,"flags":{`...)
			for _, n := range tcpFlagNames {
				if f.TCPFlags&n.flag != 0 {
					dst = appendBoolField(dst, n.name, true)
				}
			}
			dst = append(dst, '}')
		}
		dst = append(dst, '}', '}')
	}
	dst = appendKey(dst, "source")
	dst = appendEndpoint(dst, &f.SourceEndpoint)
	dst = appendKey(dst, "destination")
	dst = appendEndpoint(dst, &f.DestEndpoint)
	dst = appendStringField(dst, "Type", flowType(f))
	if f.HTTP != nil {
		dst = appendHTTP(dst, f.HTTP)
	}
	dst = appendStringField(dst, "node_name", nodeName)
	dst = appendStringField(dst, "traffic_direction", f.Direction.String())
	dst = appendBoolField(dst, "is_reply", f.IsReply)
	if len(f.EgressDeniedBy) > 0 {
		dst = appendPolicies(dst, "egress_denied_by", f.EgressDeniedBy)
	}
	if len(f.IngressDeniedBy) > 0 {
		dst = appendPolicies(dst, "ingress_denied_by", f.IngressDeniedBy)
	}
	if f.DNS != nil {
		dst = appendDNS(dst, f.DNS)
		dst = appendStringField(dst, "Summary", DNSSummary(f.DNS))
	} else if f.HTTP != nil {
		dst = appendStringField(dst, "Summary", HTTPSummary(f.HTTP))
	} else {
		dst = appendKey(dst, "Summary")
		dst = append(dst, '"')
		dst = AppendSummary(dst, f)
		dst = append(dst, '"')
	}
	if len(f.DestinationNames) > 0 {
		dst = appendStringList(dst, "destination_names", f.DestinationNames)
	}
	dst = appendProcessPair(dst, ev.Process, ev.Parent, e)
	if len(f.PolicyNames) > 0 {
		dst = appendStringList(dst, "policy_names", f.PolicyNames)
	}
	if int(f.Phase) < len(flowPhaseNames) && flowPhaseNames[f.Phase] != "" {
		dst = appendStringField(dst, "phase", flowPhaseNames[f.Phase])
	}
	if f.BytesSent != 0 {
		dst = appendUintField(dst, "bytes_sent", f.BytesSent)
	}
	if f.BytesReceived != 0 {
		dst = appendUintField(dst, "bytes_received", f.BytesReceived)
	}
	if f.PacketsSent != 0 {
		dst = appendUintField(dst, "packets_sent", f.PacketsSent)
	}
	if f.PacketsReceived != 0 {
		dst = appendUintField(dst, "packets_received", f.PacketsReceived)
	}
	if f.Count > 1 {
		dst = appendUintField(dst, "count", f.Count)
	}
	return append(dst, '}')
}

func l4Name(proto uint8) string {
	switch proto {
	case event.ProtoTCP:
		return "TCP"
	case event.ProtoUDP:
		return "UDP"
	case event.ProtoSCTP:
		return "SCTP"
	}
	return ""
}

// AppendSummary appends Hubble's one-line summary ("TCP Flags: SYN, ACK",
// "UDP") without quotes; it contains no characters that need escaping.
func AppendSummary(dst []byte, f *event.Flow) []byte {
	switch f.Protocol {
	case event.ProtoTCP:
		dst = append(dst, "TCP Flags:"...)
		first := true
		for _, n := range tcpFlagNames {
			if f.TCPFlags&n.flag == 0 {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			dst = append(dst, ' ')
			dst = append(dst, n.name...)
			first = false
		}
		return dst
	case event.ProtoUDP:
		return append(dst, "UDP"...)
	case event.ProtoSCTP:
		return append(dst, "SCTP"...)
	}
	dst = append(dst, "IP protocol "...)
	return strconv.AppendUint(dst, uint64(f.Protocol), 10)
}

func appendEndpoint(dst []byte, ep *event.Endpoint) []byte {
	dst = append(dst, '{')
	if ep.Identity != 0 {
		dst = appendUintField(dst, "identity", uint64(ep.Identity))
	}
	if ep.Namespace != "" {
		dst = appendStringField(dst, "namespace", ep.Namespace)
	}
	if len(ep.Labels) > 0 {
		dst = appendStringList(dst, "labels", ep.Labels)
	}
	if ep.PodName != "" {
		dst = appendStringField(dst, "pod_name", ep.PodName)
	}
	if len(ep.Workloads) > 0 {
		dst = appendKey(dst, "workloads")
		dst = append(dst, '[')
		for i := range ep.Workloads {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = AppendString(dst, ep.Workloads[i].Name)
			dst = append(dst, `,"kind":`...)
			dst = AppendString(dst, ep.Workloads[i].Kind)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendPolicies appends Hubble's policy objects; a "namespace/name"
// reference becomes {"name":..., "namespace":...}.
func appendPolicies(dst []byte, key string, refs []string) []byte {
	dst = appendKey(dst, key)
	dst = append(dst, '[')
	for i, ref := range refs {
		if i > 0 {
			dst = append(dst, ',')
		}
		ns, name, ok := strings.Cut(ref, "/")
		if !ok {
			ns, name = "", ref
		}
		dst = append(dst, `{"name":`...)
		dst = AppendString(dst, name)
		if ns != "" {
			dst = appendStringField(dst, "namespace", ns)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendHTTP appends Hubble's l7 object of an HTTP flow.
func appendHTTP(dst []byte, h *event.HTTP) []byte {
	dst = appendKey(dst, "l7")
	dst = append(dst, '{')
	dst = appendStringField(dst, "type", h.L7Type())
	if h.Latency > 0 {
		dst = appendUintField(dst, "latency_ns", uint64(h.Latency))
	}
	dst = appendKey(dst, "http")
	dst = append(dst, '{')
	if h.Code != 0 {
		dst = appendUintField(dst, "code", uint64(h.Code))
	}
	dst = appendStringField(dst, "method", h.Method)
	dst = appendStringField(dst, "url", h.URL)
	dst = appendStringField(dst, "protocol", h.Protocol)
	if len(h.Headers) > 0 {
		dst = appendKey(dst, "headers")
		dst = append(dst, '[')
		for i, hd := range h.Headers {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			dst = appendStringField(dst, "key", hd.Key)
			dst = appendStringField(dst, "value", hd.Value)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, '}')
	if h.RequestBytes >= 0 {
		dst = appendUintField(dst, "request_bytes", uint64(h.RequestBytes))
	}
	if h.ResponseBytes >= 0 && h.Code != 0 {
		dst = appendUintField(dst, "response_bytes", uint64(h.ResponseBytes))
	}
	return append(dst, '}')
}

// HTTPSummary is Hubble's summary of an HTTP flow: "HTTP/1.1 403 1ms (PUT
// http://deathstar/v1/exhaust-port)", or the request alone without a
// response.
func HTTPSummary(h *event.HTTP) string {
	if h.Code == 0 {
		return h.Protocol + " " + h.Method + " " + h.URL
	}
	return h.Protocol + " " + strconv.FormatUint(uint64(h.Code), 10) + " " + h.Latency.Round(time.Microsecond).String() + " (" + h.Method + " " + h.URL + ")"
}
