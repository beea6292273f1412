package flows

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"

	"github.com/vigilsec/vigil/event"
	"github.com/vigilsec/vigil/kprobes/abi"
)

func dnsRecord(r abi.DNSEvent, payload []byte, capLen int) []byte {
	r.Hdr.Op = abi.OpDNS
	r.Len, r.CapLen = uint32(len(payload)), uint32(capLen)
	b := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&r)), abi.DNSEventHead)...)
	return append(b, payload[:capLen]...)
}

func dnsPair(t *testing.T) (query, answer []byte) {
	q := new(mdns.Msg)
	q.SetQuestion("api.example.com.", mdns.TypeA)
	a := new(mdns.Msg)
	a.SetReply(q)
	rr, _ := mdns.NewRR("api.example.com. 30 IN A 192.0.2.7")
	a.Answer = append(a.Answer, rr)
	qb, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	ab, err := a.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return qb, ab
}

func TestDNSDecoder(t *testing.T) {
	c, _ := newDecoder(t, nil)
	out := &collect{}
	names := NewNames(time.Minute, 0)
	d := NewDNSDecoder(c.cache, out, nil, nil, names)
	qb, ab := dnsPair(t)
	base := abi.DNSEvent{CgroupId: 42, Cookie: 9, Local: addr("::ffff:10.0.0.5"), Remote: addr("::ffff:10.96.0.10"),
		LocalPort: 40000, RemotePort: 53, Protocol: event.ProtoUDP, Family: 4}
	q, a := base, base
	q.Direction, q.Hdr.Ktime = uint8(abi.DnsvisDnsvisDirectionDNSVIS_EGRESS), 1000
	a.Direction, a.Hdr.Ktime = uint8(abi.DnsvisDnsvisDirectionDNSVIS_INGRESS), 1500
	for _, rec := range [][]byte{dnsRecord(q, qb, len(qb)), dnsRecord(a, ab, len(ab)),
		// An answer cut by the capture is not reported.
		dnsRecord(a, ab, len(ab)-4)} {
		if err := d.Handle(rec); err != nil {
			t.Fatal(err)
		}
	}
	host := event.Endpoint{Identity: IdentityHost, Labels: []string{"reserved:host"}}
	world := event.Endpoint{Identity: IdentityWorldIPv4, Labels: []string{"reserved:world"}}
	local, server := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.96.0.10")
	want := []*event.Flow{{
		Phase: event.FlowPacket, Verdict: event.VerdictForwarded, Protocol: event.ProtoUDP, Count: 1, Direction: event.DirectionEgress,
		Source: local, SourcePort: 40000, Destination: server, DestinationPort: 53, SourceEndpoint: host, DestEndpoint: world,
		DNS: &event.DNS{Query: "api.example.com.", QTypes: []string{"A"}},
	}, {
		Phase: event.FlowPacket, Verdict: event.VerdictForwarded, Protocol: event.ProtoUDP, Count: 1, Direction: event.DirectionEgress,
		IsReply: true, Source: server, SourcePort: 53, Destination: local, DestinationPort: 40000, SourceEndpoint: world, DestEndpoint: host,
		DNS: &event.DNS{Response: true, LatencyNS: 500, Query: "api.example.com.", QTypes: []string{"A"},
			IPs: []netip.Addr{netip.MustParseAddr("192.0.2.7")}, TTL: 30, RRTypes: []string{"A"}},
	}}
	var got []*event.Flow
	for _, ev := range out.events {
		got = append(got, ev.Flow)
	}
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}
	if d.Stats.Malformed.Load() != 1 || d.Stats.Queries.Load() != 1 || d.Stats.Answers.Load() != 1 {
		t.Errorf("stats: %d queries, %d answers, %d malformed; want 1, 1, 1", d.Stats.Queries.Load(), d.Stats.Answers.Load(), d.Stats.Malformed.Load())
	}
	// The name stays for at least the minimum TTL, for this cgroup only.
	now := c.cache.Clock().Wall(1500)
	owner := OwnerOf(nil, 42)
	if n := names.Lookup(owner, netip.MustParseAddr("192.0.2.7"), now.Add(59*time.Second)); cmp.Diff([]string{"api.example.com"}, n) != "" {
		t.Errorf("names %v, want api.example.com", n)
	}
	if n := names.Lookup(owner, netip.MustParseAddr("192.0.2.7"), now.Add(61*time.Second)); n != nil {
		t.Errorf("names %v after the TTL, want none", n)
	}
	if n := names.Lookup(OwnerOf(nil, 43), netip.MustParseAddr("192.0.2.7"), now); n != nil {
		t.Errorf("another cgroup sees names %v", n)
	}

	// A flow of the cgroup to the address carries the name.
	fout := &collect{}
	fd := NewDecoder(c.cache, fout, nil)
	fd.Names(names)
	conn := abi.FlowEvent{Phase: uint8(abi.FlowFlowPhaseFLOW_START), Direction: uint8(abi.FlowFlowDirectionFLOW_EGRESS),
		Protocol: event.ProtoTCP, Family: 4, CgroupId: 42, Local: addr("::ffff:10.0.0.5"), Remote: addr("::ffff:192.0.2.7"),
		LocalPort: 40001, RemotePort: 443}
	conn.Hdr.Ktime = 2000
	if err := fd.Handle(flowRecord(conn)); err != nil {
		t.Fatal(err)
	}
	if len(fout.events) != 1 || cmp.Diff([]string{"api.example.com"}, fout.events[0].Flow.DestinationNames) != "" {
		t.Errorf("connection flows %v, want one with destination_names [api.example.com]", fout.events)
	}
}

// An answer over TCP whose length prefix and body come in separate
// segments is reported once whole.
func TestDNSDecoderTCPSplit(t *testing.T) {
	c, _ := newDecoder(t, nil)
	out := &collect{}
	d := NewDNSDecoder(c.cache, out, nil, nil, nil)
	_, ab := dnsPair(t)
	r := abi.DNSEvent{Cookie: 5, Local: addr("::ffff:10.0.0.5"), Remote: addr("::ffff:10.96.0.10"),
		LocalPort: 40000, RemotePort: 53, Protocol: event.ProtoTCP, Family: 4, Direction: uint8(abi.DnsvisDnsvisDirectionDNSVIS_INGRESS)}
	prefix := []byte{byte(len(ab) >> 8), byte(len(ab))}
	for _, seg := range [][]byte{prefix, ab[:10], ab[10:]} {
		if err := d.Handle(dnsRecord(r, seg, len(seg))); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.events) != 1 || out.events[0].Flow.DNS == nil || len(out.events[0].Flow.DNS.IPs) != 1 {
		t.Fatalf("events %v, want the one answer", out.events)
	}
	if len(d.streams) != 0 {
		t.Errorf("%d streams kept after the whole message", len(d.streams))
	}
}

func TestNamesBounded(t *testing.T) {
	n := NewNames(time.Minute, 2)
	now := time.Unix(1000, 0)
	o := OwnerOf(nil, 1)
	n.Learn(o, "a.test.", []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")}, 0, now)
	if n.Len() != 2 || n.Dropped.Load() != 1 {
		t.Errorf("%d pairs, %d dropped; want 2 and 1", n.Len(), n.Dropped.Load())
	}
	// Once they expire, room is made.
	n.Learn(o, "b.test", []netip.Addr{netip.MustParseAddr("192.0.2.9")}, 0, now.Add(2*time.Minute))
	if got := n.Lookup(o, netip.MustParseAddr("192.0.2.9"), now.Add(2*time.Minute)); cmp.Diff([]string{"b.test"}, got) != "" {
		t.Errorf("names %v, want b.test", got)
	}
}
