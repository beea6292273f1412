package flows_test

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/vigilsec/vigil/flows"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
	"github.com/vigilsec/vigil/process"
)

func TestMain(m *testing.M) {
	testpods.RunHelperIfRequested()
	os.Exit(m.Run())
}

// BenchmarkPrivDNSVisibility measures what --dns-visibility adds to a DNS
// lookup: a pod looks a name up at a server in another network namespace
// (miekg/dns), 2,000 lookups a round, each from a socket of its own, in
// rounds alternating the sensor attached (its records read and dropped, as
// the agent's reader would) and detached. Figures are medians of the
// rounds; lost/op counts records the ring had no room for.
func BenchmarkPrivDNSVisibility(b *testing.B) {
	root := testpods.Require(b)
	cl := testpods.New(b, root)
	srvIP := netip.MustParseAddr("198.51.100.53")
	client := cl.Add("x/client", []netip.Addr{netip.MustParseAddr("198.18.0.11")}, true)
	server := cl.Add("dns", []netip.Addr{srvIP}, false)
	dnsAddr := netip.AddrPortFrom(srvIP, 53)
	if r := server.ServeDNS(dnsAddr, 300); r != "ok" {
		b.Fatal(r)
	}
	procs, err := process.NewSensor(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer procs.Close()
	rd, err := ringbuf.NewReader(procs.Events())
	if err != nil {
		b.Fatal(err)
	}
	defer rd.Close()
	// Records are read and dropped; DNS records are counted. Once the
	// rounds are over, a flush makes the reader drain the ring and stop.
	records := make(chan int)
	go func() {
		n := 0
		var rec ringbuf.Record
		for {
			if err := rd.ReadInto(&rec); err != nil {
				if errors.Is(err, os.ErrClosed) || errors.Is(err, ringbuf.ErrFlushed) {
					records <- n
					return
				}
				continue
			}
			if len(rec.RawSample) > 0 && rec.RawSample[0] == abi.OpDNS {
				n++
			}
		}
	}()
	const per = 2000
	var on, off, added []float64
	var lost uint64
	rounds := 0
	for b.Loop() {
		var pair [2]int64
		for _, attached := range []bool{rounds%2 == 0, rounds%2 != 0} {
			var s *flows.DNSSensor
			if attached {
				if s, err = flows.NewDNSSensor(procs, root); err != nil {
					b.Fatal(err)
				}
			}
			ns, err := client.DNSBench(dnsAddr, "n1.fqdn.test", per)
			if err != nil {
				b.Fatal(err)
			}
			if attached {
				st, err := s.Stats()
				if err != nil {
					b.Fatal(err)
				}
				lost += st.Lost
				s.Close()
				pair[0] = ns
			} else {
				pair[1] = ns
			}
		}
		on, off = append(on, float64(pair[0])), append(off, float64(pair[1]))
		added = append(added, float64(pair[0]-pair[1]))
		rounds++
	}
	// What the ring still holds is read before the count is taken.
	if err := rd.Flush(); err != nil {
		b.Fatal(err)
	}
	n := <-records
	if n < rounds*per*2 {
		b.Errorf("%d records read, want at least a query and an answer for each of %d lookups", n, rounds*per)
	}
	b.ReportMetric(median(on), "ns/lookup-on")
	b.ReportMetric(median(off), "ns/lookup-off")
	b.ReportMetric(median(added), "ns/lookup-added")
	b.ReportMetric(median(off)/median(on), "lookups/s-ratio")
	b.ReportMetric(float64(lost)/float64(rounds), "lost/op")
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
