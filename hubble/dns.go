package hubble

import (
	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/exporter/encode"
)

// dnsLayer7 makes a flow of a DNS query or answer Hubble's L7 DNS flow.
func dnsLayer7(out *flowpb.Flow, r *event.DNS) {
	d := &flowpb.DNS{Query: r.Query, Ttl: r.TTL, Cnames: r.CNAMEs, ObservationSource: r.ObservationSource,
		Rcode: uint32(r.RCode), Qtypes: r.QTypes, Rrtypes: r.RRTypes}
	if len(r.IPs) > 0 {
		d.Ips = make([]string, len(r.IPs))
		for i, ip := range r.IPs {
			d.Ips[i] = ip.String()
		}
	}
	typ := flowpb.L7FlowType_REQUEST
	if r.Response {
		typ = flowpb.L7FlowType_RESPONSE
	}
	out.Type = flowpb.FlowType_L7
	out.L7 = &flowpb.Layer7{Type: typ, LatencyNs: r.LatencyNS, Record: &flowpb.Layer7_Dns{Dns: d}}
	out.Summary = encode.DNSSummary(r)
}
