package datapath_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/manifest"
	"github.com/vigilsec/vigil/networkpolicy"
	"github.com/vigilsec/vigil/networkpolicy/conntest"
	"github.com/vigilsec/vigil/networkpolicy/datapath"
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

// BenchmarkPrivApplyChurn measures Apply for changes of a cluster with
// 10,000 rules over 1,000 identities (conntest.ScaleManifests; pods have
// cgroups that do not exist, so only the maps are written): each operation
// is a change and its reverse (two applies, timed apart: ms/change and
// ms/reverse; entries/change are the map entries the change wrote).
// full_ms is a full compile and flatten of the cluster, what every change
// cost before compilation was incremental (without its map writes);
// speedup is full_ms over the mean time of one apply.
func BenchmarkPrivApplyChurn(b *testing.B) {
	root := testpods.Require(b)
	docs, err := manifest.Split("scale.yaml", []byte(conntest.ScaleManifests(1000, 10000)))
	if err != nil {
		b.Fatal(err)
	}
	base, err := networkpolicy.Parse(docs)
	if err != nil {
		b.Fatal(err)
	}
	more := base
	if docs, err = manifest.Split("scale.yaml", []byte(conntest.ScaleManifests(1000, 10001))); err == nil {
		more, err = networkpolicy.Parse(docs)
	}
	if err != nil {
		b.Fatal(err)
	}
	extra := func(port int) []*networkpolicy.Policy {
		d, err := manifest.Split("extra.yaml", []byte(fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: extra, namespace: bench}
spec:
  podSelector: {matchLabels: {id: "i7"}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: %d, protocol: TCP}]
`, port)))
		if err != nil {
			b.Fatal(err)
		}
		res, err := networkpolicy.Parse(d)
		if err != nil {
			b.Fatal(err)
		}
		return append(append([]*networkpolicy.Policy(nil), base.Policies...), res.Policies...)
	}
	const firstCgroup = 1 << 50
	workloads := func(pods []*networkpolicy.Pod, withCgroup ...string) staticPods {
		var out staticPods
		for i, p := range pods {
			dp := datapath.Pod{Pod: *p}
			if p.Name == "client" || slices.Contains(withCgroup, p.Name) {
				dp.CgroupIDs = []uint64{firstCgroup + uint64(i)}
			}
			out = append(out, dp)
		}
		return out
	}
	pod := func(name string, labels map[string]string, ip string) *networkpolicy.Pod {
		return &networkpolicy.Pod{Namespace: "bench", Name: name, Labels: labels, ServiceAccount: "default",
			IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	plus := func(p *networkpolicy.Pod) []*networkpolicy.Pod {
		out := append(append([]*networkpolicy.Pod(nil), base.Pods...), p)
		slices.SortFunc(out, func(a, b *networkpolicy.Pod) int { return strings.Compare(a.Key(), b.Key()) })
		return out
	}
	relabel := func(name string, p *networkpolicy.Pod) []*networkpolicy.Pod {
		out := append([]*networkpolicy.Pod(nil), base.Pods...)
		for i, q := range out {
			if q.Name == name {
				out[i] = p
			}
		}
		return out
	}
	type state struct {
		pods staticPods
		pols []*networkpolicy.Policy
	}
	cases := []struct {
		name string
		a, b state
	}{
		{"a pod of the client's identity comes and goes", state{workloads(base.Pods), base.Policies},
			state{workloads(plus(pod("client2", map[string]string{"role": "client"}, "198.19.0.2")), "client2"), base.Policies}},
		{"a pod of a new identity that rules select comes and goes", state{workloads(base.Pods), base.Policies},
			state{workloads(plus(pod("new", map[string]string{"id": "i5", "v": "2"}, "198.18.9.1"))), base.Policies}},
		{"a pod relabelled between two selected identities", state{workloads(base.Pods), base.Policies},
			state{workloads(relabel("p5", pod("p5", map[string]string{"id": "i6"}, "198.18.0.6"))), base.Policies}},
		{"a pod of a new identity that a policy selects comes and goes", state{workloads(base.Pods), extra(80)},
			state{workloads(plus(pod("new", map[string]string{"id": "i7", "v": "2"}, "198.18.9.1")), "new"), extra(80)}},
		{"the policy of another pod changes", state{workloads(base.Pods), extra(80)}, state{workloads(base.Pods), extra(81)}},
		{"the client's policy of 10,000 rules gains a rule", state{workloads(base.Pods), base.Policies}, state{workloads(base.Pods), more.Policies}},
	}
	t0 := time.Now()
	e, err := networkpolicy.Compile(base, nil)
	if err != nil {
		b.Fatal(err)
	}
	e.Flatten()
	fullMS := float64(time.Since(t0)) / 1e6
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			src := &switchPods{}
			d := testpods.NewDatapath(b, root, src, -1)
			apply := func(s state) datapath.ApplyStats {
				src.pods = s.pods
				st, err := d.Apply(context.Background(), &networkpolicy.Resources{Policies: s.pols})
				if err != nil {
					b.Fatal(err)
				}
				return st
			}
			apply(tc.a)
			var entries [2]int
			var took [2]time.Duration
			for b.Loop() {
				for i, s := range []state{tc.b, tc.a} {
					t0 := time.Now()
					entries[i] += apply(s).Entries()
					took[i] += time.Since(t0)
				}
			}
			perApply := float64(b.Elapsed()) / float64(2*b.N)
			b.ReportMetric(float64(took[0])/float64(b.N)/1e6, "ms/change")
			b.ReportMetric(float64(took[1])/float64(b.N)/1e6, "ms/reverse")
			b.ReportMetric(float64(entries[0])/float64(b.N), "entries/change")
			b.ReportMetric(fullMS, "full_ms")
			b.ReportMetric(fullMS*1e6/perApply, "speedup")
		})
	}
}

// switchPods is a workload source whose pods a benchmark sets.
type switchPods struct{ pods staticPods }

func (s *switchPods) Pods(context.Context) ([]datapath.Pod, error) { return s.pods, nil }
