package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
)

// Message is what DNS visibility reports of one query or response: the
// fields of Hubble's L7 DNS record.
type Message struct {
	ID       uint16
	Response bool
	// RCode is the response code (0 NOERROR, 3 NXDOMAIN, 5 REFUSED, ...).
	RCode uint16
	// Query is the first question's name, fully qualified with a trailing
	// dot and in lower case, as Hubble reports it.
	Query string
	// QTypes are the questions' types ("A", "AAAA", ...).
	QTypes []string
	// IPs are the addresses of the A and AAAA records of the answer
	// section, in order.
	IPs []netip.Addr
	// TTL is the least TTL of the answer section's records (0 when there
	// are none).
	TTL uint32
	// CNAMEs are the targets of the CNAME records of the answer section.
	CNAMEs []string
	// RRTypes are the types of the answer section's records, each once.
	RRTypes []string
}

// ErrNotDNS is returned for bytes that are not a DNS message.
var ErrNotDNS = errors.New("not a DNS message")

// ParseMessage parses a DNS message (without the TCP length prefix). The
// message is untrusted: names are bounded in length and in compression
// pointers followed (github.com/miekg/dns's unpacker), every record the
// header announces must be there, and a message that does not parse
// returns an error wrapping ErrNotDNS.
func ParseMessage(b []byte) (Message, error) {
	var m mdns.Msg
	if len(b) < 12 {
		return Message{}, fmt.Errorf("%w: %d bytes, a header is 12", ErrNotDNS, len(b))
	}
	if err := m.Unpack(b); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrNotDNS, err)
	}
	// The unpacker stops quietly where records run out: a header that
	// announces more than the message holds is malformed.
	counts := [4]int{len(m.Question), len(m.Answer), len(m.Ns), len(m.Extra)}
	for i, n := range counts {
		if want := int(b[4+2*i])<<8 | int(b[5+2*i]); n != want {
			return Message{}, fmt.Errorf("%w: section %d announces %d records, holds %d", ErrNotDNS, i, want, n)
		}
	}
	if m.Opcode != mdns.OpcodeQuery || len(m.Question) == 0 {
		return Message{}, fmt.Errorf("%w: opcode %d with %d questions", ErrNotDNS, m.Opcode, len(m.Question))
	}
	out := Message{ID: m.Id, Response: m.Response, RCode: uint16(m.Rcode),
		Query: strings.ToLower(mdns.Fqdn(m.Question[0].Name))}
	for _, q := range m.Question {
		out.QTypes = append(out.QTypes, typeName(q.Qtype))
	}
	first := true
	for _, rr := range m.Answer {
		h := rr.Header()
		if first || h.Ttl < out.TTL {
			out.TTL, first = h.Ttl, false
		}
		if t := typeName(h.Rrtype); !slices.Contains(out.RRTypes, t) {
			out.RRTypes = append(out.RRTypes, t)
		}
		switch r := rr.(type) {
		case *mdns.A:
			if a, ok := netip.AddrFromSlice(r.A.To4()); ok {
				out.IPs = append(out.IPs, a)
			}
		case *mdns.AAAA:
			if a, ok := netip.AddrFromSlice(r.AAAA.To16()); ok {
				out.IPs = append(out.IPs, a)
			}
		case *mdns.CNAME:
			out.CNAMEs = append(out.CNAMEs, strings.ToLower(r.Target))
		}
	}
	return out, nil
}

func typeName(t uint16) string {
	if s, ok := mdns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// RCodeName is the name of a response code ("NOERROR", "NXDOMAIN", ...).
func RCodeName(rcode uint16) string {
	if s, ok := mdns.RcodeToString[int(rcode)]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rcode)
}
