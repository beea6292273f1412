package dns

import (
	"errors"
	"net/netip"
)

// Bounds of the datapath's parser of DNS answers (lib/dns.h); ParseAnswer
// keeps the same ones.
const (
	// MaxMessage is how much of a message the parser reads.
	MaxMessage = 4096
	// MaxAnswers is how many records of the answer section it reads.
	MaxAnswers = 256
	// maxLabels bounds the labels of a skipped owner name.
	maxLabels = 128
	maxWire   = 255
)

// ErrMalformed is returned for a message the datapath refuses; what was
// learned before the malformed part stays learned.
var ErrMalformed = errors.New("malformed DNS message")

// Answer is what the datapath learns from one DNS response.
type Answer struct {
	// Skipped: not a NOERROR response to a standard query with one
	// question; nothing is learned.
	Skipped bool
	// Name is the question name as on the wire (labels joined by dots,
	// bytes as they are).
	Name string
	// Records are the A and AAAA records of class IN of the answer
	// section, in order.
	Records []AddrRecord
	// Truncated: the message is longer than MaxMessage.
	Truncated bool
}

// AddrRecord is an address of an answer with its TTL in seconds (a TTL with
// the top bit set counts as 0, RFC 2181 section 8).
type AddrRecord struct {
	Addr netip.Addr
	TTL  uint32
}

// ParseAnswer parses a DNS response as the datapath does, with the same
// bounds and the same refusals: the question must be uncompressed,
// compression pointers are never followed (owner names are skipped), at
// most MaxAnswers records are read. It is the reference the BPF parser is
// tested against.
func ParseAnswer(msg []byte) (Answer, error) {
	var a Answer
	if len(msg) > MaxMessage {
		msg, a.Truncated = msg[:MaxMessage], true
	}
	if len(msg) < 12 {
		return a, ErrMalformed
	}
	qd := int(msg[4])<<8 | int(msg[5])
	an := int(msg[6])<<8 | int(msg[7])
	if msg[2]&0x80 == 0 || msg[2]&0x78 != 0 || msg[3]&0x0f != 0 || qd != 1 {
		a.Skipped = true
		return a, nil
	}
	off, wire := 12, 0
	var name []byte
	for {
		if off >= len(msg) {
			return a, ErrMalformed
		}
		c := int(msg[off])
		off++
		if c == 0 {
			break
		}
		if c&0xc0 != 0 {
			return a, ErrMalformed
		}
		wire += c + 1
		if wire > maxWire-1 || off+c > len(msg) {
			return a, ErrMalformed
		}
		if len(name) > 0 {
			name = append(name, '.')
		}
		name = append(name, msg[off:off+c]...)
		off += c
	}
	a.Name = string(name)
	off += 4
	for i := 0; i < an && i < MaxAnswers; i++ {
		n, ok := skipName(msg, off)
		if !ok || n+10 > len(msg) {
			return a, ErrMalformed
		}
		typ := int(msg[n])<<8 | int(msg[n+1])
		class := int(msg[n+2])<<8 | int(msg[n+3])
		ttl := uint32(msg[n+4])<<24 | uint32(msg[n+5])<<16 | uint32(msg[n+6])<<8 | uint32(msg[n+7])
		rdlen := int(msg[n+8])<<8 | int(msg[n+9])
		off = n + 10
		if off+rdlen > len(msg) {
			return a, ErrMalformed
		}
		if ttl > 0x7fffffff {
			ttl = 0
		}
		if class == 1 && (typ == 1 && rdlen == 4 || typ == 28 && rdlen == 16) {
			addr, _ := netip.AddrFromSlice(msg[off : off+rdlen])
			a.Records = append(a.Records, AddrRecord{Addr: addr, TTL: ttl})
		}
		off += rdlen
	}
	return a, nil
}

func skipName(msg []byte, off int) (int, bool) {
	for i := 0; i < maxLabels; i++ {
		if off >= len(msg) {
			return 0, false
		}
		c := int(msg[off])
		switch {
		case c == 0:
			return off + 1, true
		case c&0xc0 == 0xc0:
			return off + 2, off+2 <= len(msg)
		case c&0xc0 != 0:
			return 0, false
		}
		off += c + 1
	}
	return 0, false
}
