package encode

import (
	"strconv"

	"github.com/vigilsec/vigil/dns"
	"github.com/vigilsec/vigil/event"
)

// flowType is Hubble's Type of a flow: L7 for a DNS query or answer.
func flowType(f *event.Flow) string {
	if f.DNS != nil || f.HTTP != nil {
		return "L7"
	}
	return "L3_L4"
}

// appendDNS appends Hubble's "l7" member of a DNS flow, as protobuf's JSON
// mapping writes flow.Layer7 (latency_ns as a quoted decimal).
func appendDNS(dst []byte, r *event.DNS) []byte {
	dst = appendKey(dst, "l7")
	dst = append(dst, '{')
	if r.Response {
		dst = appendStringField(dst, "type", "RESPONSE")
	} else {
		dst = appendStringField(dst, "type", "REQUEST")
	}
	if r.LatencyNS != 0 {
		dst = appendUint64Field(dst, "latency_ns", r.LatencyNS)
	}
	dst = appendKey(dst, "dns")
	dst = append(dst, '{')
	dst = appendStringField(dst, "query", r.Query)
	if len(r.IPs) > 0 {
		dst = appendKey(dst, "ips")
		dst = append(dst, '[')
		for i, ip := range r.IPs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = ip.AppendTo(dst)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	if r.TTL != 0 {
		dst = appendUintField(dst, "ttl", uint64(r.TTL))
	}
	if len(r.CNAMEs) > 0 {
		dst = appendStringList(dst, "cnames", r.CNAMEs)
	}
	if r.ObservationSource != "" {
		dst = appendStringField(dst, "observation_source", r.ObservationSource)
	}
	if r.RCode != 0 {
		dst = appendUintField(dst, "rcode", uint64(r.RCode))
	}
	if len(r.QTypes) > 0 {
		dst = appendStringList(dst, "qtypes", r.QTypes)
	}
	if len(r.RRTypes) > 0 {
		dst = appendStringList(dst, "rrtypes", r.RRTypes)
	}
	return append(dst, '}', '}')
}

// DNSSummary is Hubble's summary of a DNS flow: `DNS Query NAME TYPES`, or
// `DNS Answer "IP,IP" TTL: N (NAME TYPES)`, with `RCode: NAME` first for an
// answer that is not NOERROR.
func DNSSummary(r *event.DNS) string {
	types := ""
	for i, t := range r.QTypes {
		if i > 0 {
			types += ","
		}
		types += t
	}
	if !r.Response {
		return "DNS Query " + r.Query + " " + types
	}
	s := "DNS Answer "
	if r.RCode != 0 {
		s += "RCode: " + dns.RCodeName(r.RCode) + " "
	}
	if len(r.IPs) > 0 {
		b := []byte{'"'}
		for i, ip := range r.IPs {
			if i > 0 {
				b = append(b, ',')
			}
			b = ip.AppendTo(b)
		}
		s += string(append(b, '"', ' '))
	}
	return s + "TTL: " + strconv.FormatUint(uint64(r.TTL), 10) + " (" + r.Query + " " + types + ")"
}
