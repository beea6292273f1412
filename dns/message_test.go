package dns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
)

func packMsg(t testing.TB, m *mdns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseMessage(t *testing.T) {
	q := new(mdns.Msg)
	q.SetQuestion("WWW.Example.com.", mdns.TypeAAAA)
	q.Id = 4242
	got, err := ParseMessage(packMsg(t, q))
	if err != nil {
		t.Fatal(err)
	}
	want := Message{ID: 4242, Query: "www.example.com.", QTypes: []string{"AAAA"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("query (-want +got):\n%s", d)
	}

	r := new(mdns.Msg)
	r.SetReply(q)
	r.Compress = true
	for _, s := range []string{
		"www.example.com. 300 IN CNAME edge.CDN.example.net.",
		"edge.cdn.example.net. 20 IN AAAA 2001:db8::5",
		"edge.cdn.example.net. 40 IN AAAA 2001:db8::6",
	} {
		rr, err := mdns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		r.Answer = append(r.Answer, rr)
	}
	got, err = ParseMessage(packMsg(t, r))
	if err != nil {
		t.Fatal(err)
	}
	want = Message{ID: 4242, Response: true, Query: "www.example.com.", QTypes: []string{"AAAA"},
		IPs: []netip.Addr{netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("2001:db8::6")},
		TTL: 20, CNAMEs: []string{"edge.cdn.example.net."}, RRTypes: []string{"CNAME", "AAAA"}}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("answer (-want +got):\n%s", d)
	}

	nx := new(mdns.Msg)
	nx.SetRcode(q, mdns.RcodeNameError)
	got, err = ParseMessage(packMsg(t, nx))
	if err != nil || !got.Response || got.RCode != 3 || RCodeName(got.RCode) != "NXDOMAIN" {
		t.Errorf("NXDOMAIN: %+v, %v", got, err)
	}
}

func TestParseMessageRefuses(t *testing.T) {
	q := new(mdns.Msg)
	q.SetQuestion("a.example.com.", mdns.TypeA)
	msg := packMsg(t, q)
	// A compression pointer to itself in the question: a loop.
	loop := append([]byte(nil), msg...)
	loop[12], loop[13] = 0xc0, 12
	// A pointer beyond the message.
	oob := append([]byte(nil), msg...)
	oob[12], oob[13] = 0xc0, 0xff
	// 10,000 answers announced, none there.
	many := append([]byte(nil), msg...)
	binary.BigEndian.PutUint16(many[6:], 10000)
	for name, b := range map[string][]byte{"loop": loop, "out of bounds": oob, "10,000 answers": many,
		"short": msg[:11], "cut": msg[:len(msg)-3], "empty": nil} {
		if m, err := ParseMessage(b); !errors.Is(err, ErrNotDNS) {
			t.Errorf("%s: %+v, %v; want ErrNotDNS", name, m, err)
		}
	}
}

func TestStream(t *testing.T) {
	q := new(mdns.Msg)
	q.SetQuestion("a.example.com.", mdns.TypeA)
	m1 := packMsg(t, q)
	q.SetQuestion("b.example.com.", mdns.TypeA)
	m2 := packMsg(t, q)
	frame := func(m []byte) []byte { return append([]byte{byte(len(m) >> 8), byte(len(m))}, m...) }
	wire := append(frame(m1), frame(m2)...)

	// Every way of cutting the stream into three segments gives the two
	// messages, in order.
	for i := 0; i <= len(wire); i++ {
		for j := i; j <= len(wire); j++ {
			var s Stream
			var got [][]byte
			for _, seg := range [][]byte{wire[:i], wire[i:j], wire[j:]} {
				msgs, err := s.Feed(seg, true)
				if err != nil {
					t.Fatalf("cut %d,%d: %v", i, j, err)
				}
				for _, m := range msgs {
					got = append(got, bytes.Clone(m))
				}
			}
			if len(got) != 2 || !bytes.Equal(got[0], m1) || !bytes.Equal(got[1], m2) || s.Pending() != 0 {
				t.Fatalf("cut %d,%d: %d messages, %d pending", i, j, len(got), s.Pending())
			}
		}
	}

	// A segment captured only in part loses the stream; the next segment
	// that starts a message is read again.
	var s Stream
	if _, err := s.Feed(frame(m1)[:5], false); !errors.Is(err, ErrStreamLost) {
		t.Fatalf("cut segment: %v, want ErrStreamLost", err)
	}
	msgs, err := s.Feed(frame(m2), true)
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0], m2) {
		t.Fatalf("after a loss: %d messages, %v", len(msgs), err)
	}
}

func FuzzParseMessage(f *testing.F) {
	q := new(mdns.Msg)
	q.SetQuestion("www.example.com.", mdns.TypeA)
	f.Add(packMsg(f, q))
	r := new(mdns.Msg)
	r.SetReply(q)
	r.Compress = true
	rr, _ := mdns.NewRR("www.example.com. 60 IN CNAME x.example.com.")
	rr2, _ := mdns.NewRR("x.example.com. 60 IN A 192.0.2.1")
	r.Answer = append(r.Answer, rr, rr2)
	f.Add(packMsg(f, r))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		if m.Query == "" || m.Query[len(m.Query)-1] != '.' || len(m.QTypes) == 0 {
			t.Fatalf("parsed %+v without a fully qualified question", m)
		}
		for _, a := range m.IPs {
			if !a.IsValid() {
				t.Fatalf("an invalid address in %+v", m)
			}
		}
	})
}

func FuzzStream(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 3, 0}, uint8(2), true)
	f.Add([]byte{0xff, 0xff, 1}, uint8(1), false)
	f.Fuzz(func(t *testing.T, b []byte, cut uint8, whole bool) {
		var s Stream
		i := min(int(cut), len(b))
		for _, seg := range [][]byte{b[:i], b[i:]} {
			msgs, _ := s.Feed(seg, whole)
			for _, m := range msgs {
				if len(m) > MaxTCPMessage {
					t.Fatalf("a message of %d bytes", len(m))
				}
			}
			if s.Pending() > MaxTCPMessage+2 {
				t.Fatalf("%d bytes pending", s.Pending())
			}
		}
	})
}
