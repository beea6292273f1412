package dns

import (
	"net"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

func answerMsg(t testing.TB, name string, compress bool, rrs ...string) []byte {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	m.Response = true
	m.Compress = compress
	for _, s := range rrs {
		rr, err := mdns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseAnswer(t *testing.T) {
	rrs := []string{
		"www.example.com. 300 IN CNAME edge.cdn.example.net.",
		"edge.cdn.example.net. 20 IN A 203.0.113.5",
		"edge.cdn.example.net. 4294967295 IN AAAA 2001:db8::5",
		"edge.cdn.example.net. 20 CH A 203.0.113.6",
	}
	for _, compress := range []bool{false, true} {
		a, err := ParseAnswer(answerMsg(t, "WWW.example.com", compress, rrs...))
		if err != nil {
			t.Fatal(err)
		}
		want := []AddrRecord{{netip.MustParseAddr("203.0.113.5"), 20}, {netip.MustParseAddr("2001:db8::5"), 0}}
		if a.Name != "WWW.example.com" || len(a.Records) != 2 || a.Records[0] != want[0] || a.Records[1] != want[1] {
			t.Errorf("compress %v: %+v, want name WWW.example.com and %v", compress, a, want)
		}
	}
	msg := answerMsg(t, "a.example.com", true, "a.example.com. 60 IN A 192.0.2.1")
	for cut := 0; cut < len(msg); cut++ {
		a, err := ParseAnswer(msg[:cut])
		if err == nil && len(a.Records) > 0 {
			t.Errorf("cut at %d of %d: %+v, want an error", cut, len(msg), a)
		}
	}
	// A pointer in the question is refused; one pointing at itself in an
	// owner name ends the name and is never followed.
	q := append([]byte(nil), msg...)
	q[12], q[13] = 0xc0, 12
	if _, err := ParseAnswer(q); err == nil {
		t.Errorf("a pointer in the question was accepted")
	}
	loop := answerMsg(t, "a.example.com", false, "a.example.com. 60 IN A 192.0.2.1")
	owner := 12 + len("a.example.com") + 2 + 4
	loop = append(loop[:owner], append([]byte{0xc0, byte(owner)}, loop[owner+len("a.example.com")+2:]...)...)
	if a, err := ParseAnswer(loop); err != nil || len(a.Records) != 1 {
		t.Errorf("a self-pointing owner name: %+v, %v; want the record", a, err)
	}
	// 10,000 answers claimed: at most MaxAnswers are read.
	many := answerMsg(t, "a.example.com", true, "a.example.com. 60 IN A 192.0.2.1")
	many[6], many[7] = 0x27, 0x10
	if a, err := ParseAnswer(many); err == nil || len(a.Records) != 1 {
		t.Errorf("10000 answers claimed, one there: %+v, %v; want the one and an error", a, err)
	}
}

// FuzzParseAnswer checks the datapath's reference parser against
// miekg/dns: it never panics, and whenever both parse a response, the
// addresses it learns are the A and AAAA records of class IN of the
// answer section.
func FuzzParseAnswer(f *testing.F) {
	f.Add(answerMsg(f, "www.example.com", true, "www.example.com. 300 IN CNAME e.example.net.", "e.example.net. 20 IN A 203.0.113.5"))
	f.Add(answerMsg(f, "x.org", false, "x.org. 1 IN AAAA 2001:db8::1", "x.org. 1 IN A 192.0.2.1"))
	f.Add([]byte{0, 0, 0x81, 0x80, 0, 1, 0x27, 0x10, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 0xc0, 0x13})
	f.Fuzz(func(t *testing.T, msg []byte) {
		a, err := ParseAnswer(msg)
		if err != nil || a.Skipped || a.Truncated {
			return
		}
		var m mdns.Msg
		if m.Unpack(msg) != nil || len(m.Answer) > MaxAnswers {
			return
		}
		var want []AddrRecord
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Class != mdns.ClassINET {
				continue
			}
			ttl := h.Ttl
			if ttl > 0x7fffffff {
				ttl = 0
			}
			var ip net.IP
			switch r := rr.(type) {
			case *mdns.A:
				ip = r.A.To4()
			case *mdns.AAAA:
				ip = r.AAAA.To16()
			}
			if addr, ok := netip.AddrFromSlice(ip); ok {
				want = append(want, AddrRecord{addr, ttl})
			}
		}
		if len(want) != len(a.Records) {
			t.Fatalf("records %v, miekg/dns %v", a.Records, want)
		}
		for i := range want {
			if want[i] != a.Records[i] {
				t.Fatalf("records %v, miekg/dns %v", a.Records, want)
			}
		}
	})
}
