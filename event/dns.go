package event

import "net/netip"

// DNS is the L7 record of a DNS query or response flow, with the fields of
// Hubble's flow.l7.dns.
type DNS struct {
	// Response: the flow is an answer (Hubble's l7.type RESPONSE), else a
	// query (REQUEST).
	Response bool
	// LatencyNS is the time from the query to this answer (0: the query
	// was not seen).
	LatencyNS uint64
	// Query is the question name, fully qualified with a trailing dot.
	Query  string
	QTypes []string
	// RCode is the response code of an answer.
	RCode uint16
	// IPs are the addresses of the answer's A and AAAA records.
	IPs []netip.Addr
	// TTL is the least TTL of the answer's records.
	TTL     uint32
	CNAMEs  []string
	RRTypes []string
	// ObservationSource says where the message was seen.
	ObservationSource string
}
