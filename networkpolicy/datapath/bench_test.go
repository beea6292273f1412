package datapath_test

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/conntest"
	"github.com/vigilsec/vigil/networkpolicy/datapath/testpods"
)

// BenchmarkPrivConnect measures connect() of a UDP socket in a policed pod
// (the connect4 program: cgroup, ipcache and policy lookups; no packet is
// sent) with no program attached, and with an egress policy of 10 and of
// 10,000 rules over 1,000 identities. connect_ns/op is measured inside the
// pod around the connect() calls alone.
func BenchmarkPrivConnect(b *testing.B) {
	root := testpods.Require(b)
	target := netip.MustParseAddrPort("198.18.0.5:1000") // pod p4: allowed by rule 4
	run := func(b *testing.B, client *testpods.Endpoint) {
		b.Helper()
		out := client.Command(fmt.Sprintf("bench %s %d", target, b.N))
		ns, result, _ := strings.Cut(out, " ")
		n, err := strconv.ParseFloat(ns, 64)
		if err != nil || result != testpods.Allowed {
			b.Fatalf("bench: %s", out)
		}
		b.ReportMetric(n, "connect_ns/op")
	}
	b.Run("detached", func(b *testing.B) {
		cl := testpods.New(b, root)
		run(b, cl.Add("bench/client", []netip.Addr{netip.MustParseAddr("198.19.0.1")}, true))
	})
	for _, rules := range []int{10, 10000} {
		b.Run(fmt.Sprintf("rules=%d", rules), func(b *testing.B) {
			cl := testpods.New(b, root)
			client := cl.Add("bench/client", []netip.Addr{netip.MustParseAddr("198.19.0.1")}, true)
			docs, err := manifest.Split("scale.yaml", []byte(conntest.ScaleManifests(1000, rules)))
			if err != nil {
				b.Fatal(err)
			}
			res, err := networkpolicy.Parse(docs)
			if err != nil {
				b.Fatal(err)
			}
			src := &testpods.Workloads{}
			src.Set(res, map[string]*testpods.Endpoint{"bench/client": client})
			d := testpods.NewDatapath(b, root, src, -1)
			if _, err := d.Apply(context.Background(), res); err != nil {
				b.Fatal(err)
			}
			e := d.Engine()
			ep, _ := e.Pod("bench/client")
			b.ReportMetric(float64(len(e.FlattenLocal(ep.Local))), "policy_entries")
			run(b, client)
		})
	}
}
