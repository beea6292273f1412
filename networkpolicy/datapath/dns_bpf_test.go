package datapath

import (
	"encoding/binary"
	"math/rand"
	"net/netip"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	mdns "github.com/miekg/dns"

	"github.com/vigilsec/vigil/dns"
	"github.com/vigilsec/vigil/internal/kerneltest"
	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/networkpolicy"
)

const parserPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: x}
spec:
  endpointSelector: {}
  egress:
  - toFQDNs:
    - matchPattern: "*.example.com"
    - matchName: api.example.org
`

// parserRig is the DNS parser of netpol.bpf.c loaded alone (np_dns_test),
// with the automaton of parserPolicy in its maps.
type parserRig struct {
	d     *Datapath
	names *networkpolicy.NameTable
	local uint32
}

const (
	rigMinTTL = 30
	rigMaxIPs = 8
)

func newParserRig(t testing.TB) *parserRig {
	kerneltest.Require(t)
	spec, err := abi.LoadNetpol()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables[abi.NetpolVarNpCfg].Set(abi.NetpolNpConfig{DnsMinTtl: rigMinTTL, DnsMaxIps: rigMaxIPs}); err != nil {
		t.Fatal(err)
	}
	d := &Datapath{}
	if err := spec.LoadAndAssign(&d.objs, nil); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { d.objs.Close() })
	d.loaded = true
	docs, err := manifest.Split("p.yaml", []byte(parserPolicy))
	if err != nil {
		t.Fatal(err)
	}
	res, err := networkpolicy.Parse(docs)
	if err != nil {
		t.Fatal(err)
	}
	e, err := networkpolicy.Compile(res, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.writeNames(e.Names()); err != nil {
		t.Fatal(err)
	}
	r := &parserRig{d: d, names: e.Names(), local: 777}
	if err := d.objs.NpDnsTestLocal.Set(r.local); err != nil {
		t.Fatal(err)
	}
	return r
}

// packet wraps a DNS message in Ethernet, IPv4 and UDP headers from port 53.
func packet(msg []byte) []byte {
	b := make([]byte, 14+20+8, 14+20+8+len(msg))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(msg)))
	ip[8], ip[9] = 64, 17
	copy(ip[12:], []byte{192, 0, 2, 53})
	copy(ip[16:], []byte{10, 0, 0, 5})
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 53)
	binary.BigEndian.PutUint16(udp[2:], 40000)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(msg)))
	return append(b, msg...)
}

// run parses one message and returns what np_fqdn holds afterwards (then
// empties it): address -> slot.
func (r *parserRig) run(t *testing.T, msg []byte) map[netip.Addr]abi.NetpolFqdnValue {
	t.Helper()
	ret, err := r.d.objs.NpDnsTest.Run(&ebpf.RunOptions{Data: packet(msg)})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	if ret != 1 {
		t.Fatalf("test run returned %d", ret)
	}
	out := map[netip.Addr]abi.NetpolFqdnValue{}
	var k abi.NetpolFqdnKey
	var v abi.NetpolFqdnValue
	var keys []abi.NetpolFqdnKey
	it := r.d.objs.NpFqdn.Iterate()
	for it.Next(&k, &v) {
		if k.Local != r.local {
			t.Fatalf("learned for local identity %d, want %d", k.Local, r.local)
		}
		out[netip.AddrFrom16(k.Addr).Unmap()] = v
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := r.d.objs.NpFqdn.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// expect is what the reference parser says the datapath learns from msg.
func (r *parserRig) expect(msg []byte) (identity uint32, ttls map[netip.Addr]uint32) {
	a, _ := dns.ParseAnswer(msg)
	if a.Skipped {
		return 0, nil
	}
	id, ok := r.names.Identity(a.Name)
	if !ok || a.Name == "" {
		return 0, nil
	}
	// The automaton sees the wire bytes; Identity normalises case only,
	// which the automaton folds too.
	if set := r.names.Automaton.Run(a.Name); set == 0 {
		return 0, nil
	}
	ttls = map[netip.Addr]uint32{}
	for i, rec := range a.Records {
		if i >= rigMaxIPs {
			break
		}
		ttl := max(rec.TTL, rigMinTTL)
		if ttl > ttls[rec.Addr.Unmap()] {
			ttls[rec.Addr.Unmap()] = ttl
		}
	}
	return id, ttls
}

func (r *parserRig) check(t *testing.T, what string, msg []byte) int {
	t.Helper()
	before := monotonicNow()
	got := r.run(t, msg)
	after := monotonicNow()
	id, want := r.expect(msg)
	if len(got) != len(want) {
		t.Fatalf("%s: learned %d addresses %v, the reference parser %d %v\nmessage % x", what, len(got), got, len(want), want, msg)
	}
	for addr, ttl := range want {
		v, ok := got[addr]
		if !ok {
			t.Fatalf("%s: %s not learned", what, addr)
		}
		s := v.Slot[0]
		lo, hi := before+uint64(ttl)*1e9, after+uint64(ttl)*1e9
		if s.Identity != id || s.ExpiresNs < lo || s.ExpiresNs > hi || v.Slot[1].ExpiresNs != 0 {
			t.Fatalf("%s: %s learned as %+v, want identity %d expiring in %ds", what, addr, v, id, ttl)
		}
	}
	return len(got)
}

func msgOf(t testing.TB, name string, compress bool, rrs ...string) []byte {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	m.Response, m.Compress = true, compress
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

// TestPrivDNSParserBPF runs the kernel's DNS parser through
// BPF_PROG_TEST_RUN on answers, malformed ones and mutations of them, and
// checks that it learns exactly what the reference parser (dns.ParseAnswer,
// itself fuzzed against miekg/dns) says.
func TestPrivDNSParserBPF(t *testing.T) {
	r := newParserRig(t)
	chain := msgOf(t, "WWW.Example.com", true,
		"www.example.com. 300 IN CNAME edge.cdn.example.net.",
		"edge.cdn.example.net. 3600 IN A 203.0.113.5",
		"edge.cdn.example.net. 5 IN AAAA 2001:db8::5")
	if n := r.check(t, "CNAME chain", chain); n != 2 {
		t.Fatalf("CNAME chain: %d addresses learned, want 2", n)
	}
	if n := r.check(t, "matchName", msgOf(t, "api.example.org", false, "api.example.org. 60 IN A 198.51.100.1")); n != 1 {
		t.Fatalf("matchName: %d addresses learned, want 1", n)
	}
	for name, msg := range map[string][]byte{
		"no pattern matches": msgOf(t, "example.com", true, "example.com. 60 IN A 198.51.100.2"),
		"two labels under":   msgOf(t, "a.b.example.com", true, "a.b.example.com. 60 IN A 198.51.100.3"),
		"NXDOMAIN":           func() []byte { b := msgOf(t, "x.example.com", true); b[3] |= 3; return b }(),
		"a query, not an answer": func() []byte {
			b := msgOf(t, "x.example.com", true, "x.example.com. 1 IN A 1.2.3.4")
			b[2] &^= 0x80
			return b
		}(),
		"pointer in the question": func() []byte {
			b := msgOf(t, "x.example.com", true, "x.example.com. 1 IN A 1.2.3.4")
			b[12], b[13] = 0xc0, 12
			return b
		}(),
	} {
		if n := r.check(t, name, msg); n != 0 {
			t.Errorf("%s: %d addresses learned, want none", name, n)
		}
	}
	// Truncated at every length.
	for cut := 0; cut <= len(chain); cut++ {
		r.check(t, "truncated", chain[:cut])
	}
	// A pointer loop and a pointer out of bounds in owner names: skipped,
	// never followed.
	one := msgOf(t, "x.example.com", false, "x.example.com. 60 IN A 192.0.2.1")
	owner := 12 + len("x.example.com") + 2 + 4
	for _, ptr := range [][]byte{{0xc0, byte(owner)}, {0xff, 0xff}, {0xc0, 12}} {
		m := append(append(append([]byte(nil), one[:owner]...), ptr...), one[owner+len("x.example.com")+2:]...)
		if n := r.check(t, "owner pointer", m); n != 1 {
			t.Errorf("owner pointer % x: %d addresses learned, want 1", ptr, n)
		}
	}
	// 10,000 answers claimed, 200 there (BPF_PROG_TEST_RUN takes packets up to about a page): at most DNS_MAX_ANSWERS read,
	// at most DnsMaxIps learned.
	var rrs []string
	for i := 0; i < 200; i++ {
		rrs = append(rrs, "m.example.com. 60 IN A 10.1."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256))
	}
	many := msgOf(t, "m.example.com", true, rrs...)
	many[6], many[7] = 0x27, 0x10
	if n := r.check(t, "10000 answers", many); n != rigMaxIPs {
		t.Errorf("10000 answers: %d addresses learned, want the cap %d", n, rigMaxIPs)
	}
	// Mutations: random bytes changed, cut, or appended; the kernel and
	// the reference must agree on every one.
	rng := rand.New(rand.NewSource(1))
	seeds := [][]byte{chain, one, many[:600]}
	for i := 0; i < 3000; i++ {
		m := append([]byte(nil), seeds[i%len(seeds)]...)
		for j := rng.Intn(4) + 1; j > 0; j-- {
			switch rng.Intn(4) {
			case 0:
				m[rng.Intn(len(m))] = byte(rng.Intn(256))
			case 1:
				if len(m) <= 12 {
					continue
				}
				m[12+rng.Intn(len(m)-12)] = []byte{0, 0xc0, 0x3f, 0xff, 1}[rng.Intn(5)]
			case 2:
				m = m[:rng.Intn(len(m))+1]
			case 3:
				m = append(m, byte(rng.Intn(256)))
			}
		}
		r.check(t, "mutation", m)
	}
	st := readStats(t, r.d)
	if st.DNSMalformed == 0 || st.DNSCapped == 0 || st.DNSLearned == 0 {
		t.Errorf("stats %+v: want malformed, capped and learned counted", st)
	}
}

// FuzzPrivDNSParserBPF feeds arbitrary messages to the kernel's parser
// (privileged; seeds only in a plain go test).
func FuzzPrivDNSParserBPF(f *testing.F) {
	f.Add(msgOf(f, "www.example.com", true, "www.example.com. 300 IN CNAME e.example.net.", "e.example.net. 20 IN A 203.0.113.5"))
	f.Add([]byte{0, 0, 0x81, 0x80, 0, 1, 0x27, 0x10, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1, 0xc0, 0x13})
	r := newParserRig(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > 3000 {
			return
		}
		r.check(t, "fuzz", msg)
	})
}

func readStats(t *testing.T, d *Datapath) Stats {
	t.Helper()
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}
